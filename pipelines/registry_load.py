"""Load a registered model without running code from it: MLmodel checked first, then only its data files read.

`mlflow.pyfunc.load_model` executes the code logged with a model (our "models from code" entry, or anything a
URI points at) before any check. Here the MLmodel file is read as data first; a model is accepted only when it
is this project's python_function model (the code_model loader with our mlflow_entry.py and exactly our
artifact keys). Its artifact files are then downloaded and rebuilt with the local, installed code, after their
hashes are checked against the version's `model_sha256` tag (set by the training stage after verifying the
registered copy).
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import yaml

from pipelines import modelset

LOADER = "mlflow.pyfunc.loaders.code_model"
ENTRY = "mlflow_entry.py"
KINDS = {"churn": ("churn",), "clv": ("clv_params", "clv_draws")}  # artifact keys of each of our models


def check_mlmodel(uri: str, mlmodel: dict[str, Any], kind: str) -> dict[str, str]:
    """{artifact key: path inside the model} when MLmodel describes our `kind` model; ValueError otherwise."""
    flavors = mlmodel.get("flavors") or {}
    pyfunc = flavors.get("python_function") or {}
    artifacts = pyfunc.get("artifacts") or {}
    found = (f"flavours {sorted(flavors)}, loader {pyfunc.get('loader_module')!r}, "
             f"code {Path(str(pyfunc.get('model_code_path') or '')).name!r}, artifacts {sorted(artifacts)}")
    if (set(flavors) != {"python_function"} or pyfunc.get("loader_module") != LOADER
            or Path(str(pyfunc.get("model_code_path") or "")).name != ENTRY or set(artifacts) != set(KINDS[kind])):
        raise ValueError(f"{uri}: not a {kind} model of this project ({found}); refusing to load it")
    return {key: str(spec["path"]) for key, spec in artifacts.items()}


def check_hashes(uri: str, expected: str | None, files: dict[str, Path]) -> None:
    """ValueError when the downloaded files' digest differs from the version's model_sha256 tag."""
    if expected is None:
        return  # versions registered before model_sha256 existed: nothing to compare
    got = modelset.digest({path.name: modelset.sha256(path) for path in files.values()})
    if got != expected:
        raise ValueError(f"{uri}: the downloaded model files do not match the version's model_sha256 tag "
                         f"({got[:12]} != {expected[:12]}); refusing to load them")


def fetch(uri: str, kind: str, tracking_uri: str, dst: Path) -> dict[str, Path]:
    """Check the MLmodel of `uri`, then download only its artifact files; {artifact key: local path}."""
    import mlflow
    from mlflow.exceptions import MlflowException

    from pipelines.scoring_models import resolved_version

    try:
        text = Path(mlflow.artifacts.download_artifacts(artifact_uri=f"{uri}/MLmodel", dst_path=str(dst / "m")))
        keys = check_mlmodel(uri, yaml.safe_load(text.read_text(encoding="utf-8")) or {}, kind)
        files = {key: Path(mlflow.artifacts.download_artifacts(artifact_uri=f"{uri}/{path}",
                                                               dst_path=str(dst / key)))
                 for key, path in keys.items()}
        name, version = resolved_version(uri, tracking_uri).split("/", 1)
        client = mlflow.MlflowClient(tracking_uri, registry_uri=tracking_uri)
        tag = client.get_model_version(name, version).tags.get("model_sha256")
    except (MlflowException, OSError, yaml.YAMLError) as exc:
        raise ValueError(f"cannot load model {uri!r} from {tracking_uri}: {str(exc).splitlines()[0]}") from exc
    flat = {p.name: p for path in files.values() for p in ([path] if path.is_file() else path.iterdir())
            if p.is_file()}
    check_hashes(uri, tag, flat)
    return files


def load_churn(uri: str, tracking_uri: str) -> Any:
    """The ChurnScorer of a registered churn version (rebuilt with local code)."""
    from models.churn.base import load_scorer

    with tempfile.TemporaryDirectory(prefix="churn-model-") as tmp:
        return load_scorer(fetch(uri, "churn", tracking_uri, Path(tmp))["churn"])


def load_clv(uri: str, tracking_uri: str) -> tuple[Any, Any]:
    """The ClvModel and parameter draws of a registered CLV version (rebuilt with local code)."""
    import json

    from models.clv import ClvModel
    from models.clv.uncertainty import draws_from_dict

    with tempfile.TemporaryDirectory(prefix="clv-model-") as tmp:
        files = fetch(uri, "clv", tracking_uri, Path(tmp))
        read = {key: json.loads(path.read_text(encoding="utf-8")) for key, path in files.items()}
    return ClvModel.from_dict(read["clv_params"]), draws_from_dict(read["clv_draws"])
