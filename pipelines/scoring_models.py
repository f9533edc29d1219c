"""The models the score stage uses: the training stages' refits (artifacts/) or registered MLflow versions."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from models.churn.base import MANIFEST, ChurnScorer, load_scorer
from models.clv import ClvModel
from models.clv.uncertainty import ParameterDraws, draws_from_dict
from pipelines import modelset, paths

MODEL_FILES = (MANIFEST, "model.txt", "model.json", "calibrator.json", "features.json")  # hashed into the version


@dataclass
class ScoringModels:
    """Churn model, CLV model with its parameter draws, and the version text written on every row."""

    churn: ChurnScorer
    clv: ClvModel
    draws: ParameterDraws
    version: str


def _read_json(path: Path) -> dict[str, Any]:
    """A JSON file, or FileNotFoundError telling which stage makes it."""
    if not path.exists():
        raise FileNotFoundError(f"{path}: missing; run the training stages first (dvc repro train_churn train_clv)")
    return json.loads(path.read_text(encoding="utf-8"))


def _version(folder: Path, stage: str, name: str) -> str:
    """'<registered name>/<version>' from the set's verified provenance (pipelines/modelset.py), else
    '<name>@<content hash>'; ValueError (one line) when the files are not the set the stage wrote."""
    record = modelset.verify(folder, stage)
    info = record.get("mlflow") or {}
    if info.get("registered_version"):
        return f"{info['registered_model']}/{info['registered_version']}"
    return f"{name}@{record['digest'][:12]}"


def from_artifacts(root: Path) -> ScoringModels:
    """The refits saved by train_churn (artifacts/churn) and train_clv (artifacts/clv/production*.json)."""
    art = paths.rebase(paths.ARTIFACTS, root)
    churn_dir, clv_dir = art / "churn", art / "clv"
    if not (churn_dir / MANIFEST).exists() and not (churn_dir / "model.txt").exists():
        raise FileNotFoundError(f"{churn_dir / MANIFEST}: missing; run the train_churn stage first "
                                "(dvc repro train_churn)")
    churn_version = _version(churn_dir, "train_churn", "churn")  # checked before anything is loaded
    clv_version = _version(clv_dir, "train_clv", "clv")
    churn = load_scorer(churn_dir)
    clv = ClvModel.from_dict(_read_json(clv_dir / "production.json"))
    draws = draws_from_dict(_read_json(clv_dir / "production_draws.json"))
    version = "|".join((churn_version.replace("churn@", f"churn-{churn.name}@"),
                        clv_version.replace("clv@", f"clv-{clv.model}@")))
    return ScoringModels(churn, clv, draws, version)


def resolved_version(uri: str, tracking_uri: str) -> str:
    """'<name>/<version number>' of a models:/ URI: an alias (@champion) or 'latest' resolved in the registry."""
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    body = uri.removeprefix("models:/")
    name, alias = body.split("@", 1) if "@" in body else (body.partition("/")[0], None)
    client = MlflowClient(tracking_uri, registry_uri=tracking_uri)
    try:
        if alias is not None:
            return f"{name}/{client.get_model_version_by_alias(name, alias).version}"
        if body.endswith("/latest"):
            versions = client.search_model_versions(f"name='{name}'")
            return f"{name}/{max(int(v.version) for v in versions)}" if versions else body
    except MlflowException as exc:
        raise ValueError(f"cannot resolve model {uri!r} in {tracking_uri}: {exc.message}") from exc
    return body


def from_registry(churn_uri: str, clv_uri: str, tracking_uri: str) -> ScoringModels:
    """Registered versions, e.g. models:/churn@champion and models:/clv-bgnbd@champion (no retraining).

    No code logged with a model is run: MLflow's MLmodel is checked and only the data files are loaded
    (pipelines/registry_load.py).
    """
    import mlflow

    from pipelines import registry_load
    from pipelines.tracking import quiet_mlflow

    quiet_mlflow()
    mlflow.set_tracking_uri(tracking_uri)
    mlflow.set_registry_uri(tracking_uri)  # not an inherited MLFLOW_REGISTRY_URI: the models live with the runs
    churn = registry_load.load_churn(churn_uri, tracking_uri)
    clv, draws = registry_load.load_clv(clv_uri, tracking_uri)
    version = "|".join(resolved_version(u, tracking_uri) for u in (churn_uri, clv_uri))
    return ScoringModels(churn, clv, draws, version)
