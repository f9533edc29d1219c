"""MLflow helpers: the sqlite store at the repo root, the experiment, the tags every run carries."""

from __future__ import annotations

import hashlib
import os
import subprocess
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from pipelines import paths

CHUNK = 1 << 20
MAX_PARAM_CHARS = 6000


def anchor_root() -> Path:
    """DVC_ROOT when set (`dvc exp run --queue` runs in a temporary copy), else the repo root."""
    root = os.environ.get("DVC_ROOT")
    return Path(root).resolve() if root else paths.repo_root()


def tracking_uri(mlflow_params: Mapping[str, Any] | None = None) -> str:
    """params mlflow.tracking_uri, else sqlite:///<anchor root>/mlflow.db (never the ./mlruns file store)."""
    configured = (mlflow_params or {}).get("tracking_uri")
    return str(configured) if configured else f"sqlite:///{(anchor_root() / 'mlflow.db').as_posix()}"


def artifact_location(uri: str) -> str:
    """Where a new experiment keeps artifacts: mlartifacts/ beside a sqlite database, else the default."""
    if uri.startswith("sqlite:///"):
        return (Path(uri.removeprefix("sqlite:///")).parent / "mlartifacts").resolve().as_uri()
    return ""


def git_commit(cwd: Path | None = None) -> str:
    """HEAD's commit hash, suffixed '-dirty' when tracked files differ from it; 'unknown' outside git."""
    where = str(cwd or Path.cwd())
    try:
        head = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=where, capture_output=True, text=True, check=True, timeout=20
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=where,
            capture_output=True,
            text=True,
            check=True,
            timeout=20,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return f"{head}-dirty" if dirty else head


def fingerprint(files: Iterable[Path]) -> str:
    """sha256 over the names and bytes of the files, in the given order (first 16 hex digits)."""
    digest = hashlib.sha256()
    for path in files:
        path = Path(path)
        digest.update(path.name.encode() + b"\0")
        with open(path, "rb") as fh:
            for block in iter(lambda: fh.read(CHUNK), b""):
                digest.update(block)
    return digest.hexdigest()[:16]


def run_tags(params: Mapping[str, Any], data_fingerprint: str, as_of: str, **extra: Any) -> dict[str, str]:
    """Tags of a training run: git commit, DVC experiment, data source and fingerprint, as_of, horizon."""
    tags = {
        "git_commit": git_commit(),
        "dvc_experiment": os.environ.get("DVC_EXP_NAME", ""),
        "dvc_baseline_rev": os.environ.get("DVC_EXP_BASELINE_REV", ""),
        "data_source": str(params.get("data", {}).get("source", "")),
        "data_fingerprint": data_fingerprint,
        "as_of": as_of,
        "horizon_days": str(params.get("windows", {}).get("horizon_days", "")),
    }
    tags.update({k: str(v) for k, v in extra.items()})
    return {k: v for k, v in tags.items() if v != ""}


def flatten(tree: Mapping[str, Any], prefix: str = "") -> dict[str, str]:
    """Nested params as dotted keys with string values (MLflow params), long values truncated."""
    flat: dict[str, str] = {}
    for key, value in tree.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat.update(flatten(value, f"{name}."))
        else:
            flat[name] = str(value)[:MAX_PARAM_CHARS]
    return flat


@contextmanager
def start_run(mlflow_params: Mapping[str, Any], run_name: str, tags: Mapping[str, str]) -> Iterator[Any]:
    """An active MLflow run in params mlflow.experiment_name, on the configured tracking store."""
    import mlflow

    uri = tracking_uri(mlflow_params)
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    name = str(mlflow_params.get("experiment_name") or "churn-clv")
    if mlflow.get_experiment_by_name(name) is None:
        location = artifact_location(uri)
        try:
            mlflow.create_experiment(name, artifact_location=location or None)
        except mlflow.exceptions.MlflowException:
            if mlflow.get_experiment_by_name(name) is None:  # not a concurrent creation: a real error
                raise
    mlflow.set_experiment(name)
    with mlflow.start_run(run_name=run_name, tags=dict(tags)) as run:
        yield run


def set_champion(mlflow_params: Mapping[str, Any] | None, name: str, version: str | int, candidate: str) -> dict:
    """Point alias `champion` at version; the version it pointed at before becomes `challenger`.

    Every version is tagged with its candidate name and role, so the registry tells which model scores.
    """
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    client = MlflowClient(tracking_uri(mlflow_params))
    try:
        previous = client.get_model_version_by_alias(name, "champion").version
    except MlflowException:
        previous = None
    client.set_registered_model_alias(name, "champion", str(version))
    client.set_model_version_tag(name, str(version), "candidate", candidate)
    client.set_model_version_tag(name, str(version), "role", "champion")
    aliases = {"champion": str(version)}
    if previous is not None and str(previous) != str(version):
        client.set_registered_model_alias(name, "challenger", str(previous))
        client.set_model_version_tag(name, str(previous), "role", "challenger")
        aliases["challenger"] = str(previous)
    return aliases
