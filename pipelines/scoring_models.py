"""The models the score stage uses: the training stages' refits (artifacts/) or registered MLflow versions."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from models.churn.base import MANIFEST, ChurnScorer, load_scorer
from models.clv import ClvModel
from models.clv.uncertainty import ParameterDraws, draws_from_dict
from pipelines import paths

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


def _version(registry: Path, fallback_files: list[Path], name: str) -> str:
    """'<registered name>/<version>' from a stage's MLflow record, else '<name>@<content hash>'."""
    if registry.exists():
        info = json.loads(registry.read_text(encoding="utf-8"))
        if info.get("registered_version"):
            return f"{info['registered_model']}/{info['registered_version']}"
    digest = hashlib.sha256(b"".join(p.read_bytes() for p in fallback_files)).hexdigest()[:12]
    return f"{name}@{digest}"


def from_artifacts(root: Path) -> ScoringModels:
    """The refits saved by train_churn (artifacts/churn) and train_clv (artifacts/clv/production*.json)."""
    art = paths.rebase(paths.ARTIFACTS, root)
    churn_dir, clv_dir = art / "churn", art / "clv"
    if not (churn_dir / MANIFEST).exists() and not (churn_dir / "model.txt").exists():
        raise FileNotFoundError(f"{churn_dir / MANIFEST}: missing; run the train_churn stage first "
                                "(dvc repro train_churn)")
    churn = load_scorer(churn_dir)
    model_files = [churn_dir / n for n in MODEL_FILES if (churn_dir / n).exists()]
    clv = ClvModel.from_dict(_read_json(clv_dir / "production.json"))
    draws = draws_from_dict(_read_json(clv_dir / "production_draws.json"))
    version = "|".join((
        _version(churn_dir / "mlflow_run.json", model_files, f"churn-{churn.name}"),
        _version(clv_dir / "mlflow.json", [clv_dir / "production.json"], f"clv-{clv.model}"),
    ))
    return ScoringModels(churn, clv, draws, version)


def _registered(uri: str) -> Any:
    """The python model behind a registered pyfunc URI (models:/name/version)."""
    import mlflow

    try:
        return mlflow.pyfunc.load_model(uri).unwrap_python_model()
    except mlflow.exceptions.MlflowException as exc:
        raise ValueError(f"cannot load model {uri!r} from {mlflow.get_tracking_uri()}: {exc.message}") from exc


def resolved_version(uri: str, tracking_uri: str) -> str:
    """'<name>/<version number>' of a models:/ URI: an alias (@champion) or 'latest' resolved in the registry."""
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    body = uri.removeprefix("models:/")
    name, alias = body.split("@", 1) if "@" in body else (body.partition("/")[0], None)
    client = MlflowClient(tracking_uri)
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
    """Registered versions, e.g. models:/churn@champion and models:/clv-bgnbd@champion (no retraining)."""
    import mlflow

    from pipelines.tracking import quiet_mlflow

    quiet_mlflow()
    mlflow.set_tracking_uri(tracking_uri)
    churn, clv = _registered(churn_uri), _registered(clv_uri)
    if not isinstance(getattr(churn, "model", None), ChurnScorer):
        raise ValueError(f"{churn_uri} is not a churn pyfunc (no churn model inside; register one with train_churn)")
    if not isinstance(getattr(clv, "model", None), ClvModel) or getattr(clv, "draws", None) is None:
        raise ValueError(f"{clv_uri} is not a CLV pyfunc with parameter draws (register one with train_clv)")
    version = "|".join(resolved_version(u, tracking_uri) for u in (churn_uri, clv_uri))
    return ScoringModels(churn.model, clv.model, clv.draws, version)
