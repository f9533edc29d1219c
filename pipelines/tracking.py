"""MLflow helpers: the sqlite store at the repo root, the experiment, run names, tags, datasets and registry notes."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import subprocess
import time
import warnings
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from pipelines import cleanup, paths

CHUNK = 1 << 20
MAX_PARAM_CHARS = 6000
VERBOSE_ENV = "CHURN_CLV_VERBOSE"  # 1 = keep MLflow's INFO logs and artifact download bars
ARROW_TO_MLFLOW = (("int", "long"), ("uint", "long"), ("float", "double"), ("double", "double"), ("bool", "boolean"),
                   ("timestamp", "datetime"), ("date", "datetime"), ("string", "string"), ("large_string", "string"))


def quiet_mlflow() -> None:
    """Silence MLflow's INFO lines and 'Downloading artifacts' bars (unless CHURN_CLV_VERBOSE=1)."""
    if os.environ.get(VERBOSE_ENV, "") not in ("", "0", "false"):
        return
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    for name in ("mlflow", "alembic", "alembic.runtime.migration"):
        logging.getLogger(name).setLevel(logging.WARNING)


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


def data_files(path: Path) -> list[Path]:
    """The file itself, or a folder's data files (engine=spark's parts) in name order, without _SUCCESS/.crc."""
    if not path.is_dir():
        return [path]
    return sorted(p for p in path.rglob("*") if p.is_file() and not p.name.startswith(("_", ".")))


def fingerprint(files: Iterable[Path]) -> str:
    """sha256 over the names and bytes of the files (a folder: its data files' bytes), in order (16 hex digits)."""
    digest = hashlib.sha256()
    for path in files:
        path = Path(path)
        digest.update(path.name.encode() + b"\0")
        for part in data_files(path):  # part names carry a random id per Spark write: only their bytes count
            with open(part, "rb") as fh:
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


def settings_digest(settings: Any) -> str:
    """6 hex digits over a JSON rendering of the settings (tells apart runs whose names would otherwise match)."""
    text = json.dumps(settings, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:6]


def run_name(stage: str, params: Mapping[str, Any], as_of: str, model: str | None = None,
             settings: Any = None) -> str:
    """What ran: 'train_churn cdnow as_of=1998-06-30 h=181d lightgbm cfg=3f2a1c [exp=<dvc experiment>]'."""
    data = params.get("data") or {}
    source = str(data.get("source", "?")) + ("_sample" if data.get("sample") else "")
    if data.get("source") == "synthetic" and data.get("regime") not in (None, "default"):
        source += f"_{data['regime']}"
    parts = [stage, source, f"as_of={str(as_of)[:10]}", f"h={(params.get('windows') or {}).get('horizon_days')}d"]
    if model:
        parts.append(str(model))
    if settings is not None:
        parts.append(f"cfg={settings_digest(settings)}")
    if os.environ.get("DVC_EXP_NAME"):
        parts.append(f"exp={os.environ['DVC_EXP_NAME']}")
    return " ".join(parts)


def stage_started() -> float:
    """Epoch seconds when this stage started (its progress heartbeat, i.e. load_params), else now."""
    from pipelines import progress

    if progress._ACTIVE:
        beat = progress._ACTIVE[0]
        return time.time() - (time.perf_counter() - beat.started)
    return time.time()


@contextmanager
def start_run(mlflow_params: Mapping[str, Any], run_name: str, tags: Mapping[str, str],
              started_at: float | None = None) -> Iterator[Any]:
    """An active MLflow run in params mlflow.experiment_name, on the configured tracking store.

    The run's start time is the stage's start (started_at, default stage_started()), not the moment of logging,
    so MLflow shows the stage's real duration.
    """
    import mlflow

    quiet_mlflow()
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
    experiment = mlflow.set_experiment(name)
    start_ms = int(1000 * (stage_started() if started_at is None else started_at))
    client = mlflow.MlflowClient(uri, registry_uri=uri)
    cleanup.end_killed_runs(client, experiment.experiment_id)  # runs of killed stages: FAILED, not RUNNING forever
    created = client.create_run(experiment.experiment_id, start_time=start_ms,
                                tags={**tags, **cleanup.run_tags()}, run_name=run_name)
    with mlflow.start_run(run_id=created.info.run_id) as run:
        yield run


def _schema(path: Path) -> Any:
    """The MLflow column schema of a Parquet file (None for other files)."""
    if path.suffix != ".parquet":
        return None
    import pyarrow.parquet as pq
    from mlflow.types import ColSpec, Schema

    def kind(arrow_type: Any) -> str:
        text = str(arrow_type)
        return next((m for a, m in ARROW_TO_MLFLOW if text.startswith(a)), "string")

    import pyarrow.dataset as ds

    schema = ds.dataset(path).schema if path.is_dir() else pq.read_schema(path)  # a folder: Spark's parts
    return Schema([ColSpec(kind(f.type), f.name) for f in schema])


def log_datasets(files: Mapping[str, Path], context: str = "training") -> None:
    """Log each file as a run input: a metadata-only dataset (name, source path, content digest, columns)."""
    import mlflow
    from mlflow.data.dataset_source_registry import resolve_dataset_source
    from mlflow.data.meta_dataset import MetaDataset

    for name, path in files.items():
        path = Path(path)
        with warnings.catch_warnings():  # "can be interpreted in multiple ways": two local sources, same meaning
            warnings.filterwarnings("ignore", message="The specified dataset source can be interpreted")
            source = resolve_dataset_source(str(path.resolve()))
        dataset = MetaDataset(source, name=name, digest=fingerprint([path]), schema=_schema(path))
        mlflow.log_input(dataset, context=context)


def describe_version(mlflow_params: Mapping[str, Any] | None, name: str, version: str | int, description: str,
                     tags: Mapping[str, Any]) -> None:
    """A registered version's description and tags (data fingerprint, as_of, key metrics, ...)."""
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri(mlflow_params), registry_uri=tracking_uri(mlflow_params))
    client.update_model_version(name, str(version), description=description)
    for key, value in tags.items():
        if value is not None and value != "":
            client.set_model_version_tag(name, str(version), key, str(value))


def set_champion(mlflow_params: Mapping[str, Any] | None, name: str, version: str | int, candidate: str) -> dict:
    """Point alias `champion` at version; the version it pointed at before becomes `challenger`.

    Every version is tagged with its candidate name and role, so the registry tells which model scores.
    """
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    client = MlflowClient(tracking_uri(mlflow_params), registry_uri=tracking_uri(mlflow_params))
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
