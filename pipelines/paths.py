"""Every file location the pipeline reads or writes, relative to the repo root."""

from __future__ import annotations

import os
from pathlib import Path


def repo_root() -> Path:
    """The workspace the stage runs in: the nearest folder holding dvc.yaml, from the working directory up.

    Not DVC_ROOT: `dvc exp run --queue` runs stages in a temporary copy while DVC_ROOT names the parent
    repository, so only the MLflow store (pipelines/tracking.py) is anchored on DVC_ROOT.
    """
    here = Path.cwd().resolve()
    for folder in (here, *here.parents):
        if (folder / "dvc.yaml").exists():
            return folder
    return Path(__file__).resolve().parents[1]


ROOT = repo_root()
CONF_DIR = ROOT / "conf"
PARAMS = ROOT / "params.yaml"

INTERIM = ROOT / "data" / "interim"
TRANSACTIONS = INTERIM / "transactions.parquet"
EVENTS = INTERIM / "events.parquet"
CUSTOMERS = INTERIM / "customers.parquet"
CAMPAIGNS = INTERIM / "campaigns.parquet"  # optional campaign exposure (empty when the source has none)
TRUTH = INTERIM / "truth.parquet"
REJECTED = INTERIM / "rejected"

FEATURES = ROOT / "data" / "features"
FEATURE_FILES = {role: FEATURES / f"{role}.parquet" for role in ("train", "eval", "score")}

REPORTS = ROOT / "reports"
INGEST_REPORT = REPORTS / "ingest.json"
FEATURES_REPORT = REPORTS / "features.json"
CAMPAIGNS_REPORT = REPORTS / "campaigns.json"
PLOTS = REPORTS / "plots"

OUTPUTS = ROOT / "outputs"
SCORE_REPORT = REPORTS / "score.json"
STANDALONE = ROOT / "data" / "standalone"  # standalone scoring of new data: its own ingest + score features
ARTIFACTS = ROOT / "artifacts"
MLFLOW_DB = ROOT / "mlflow.db"

# Ingest (pipelines/ingest.py): the canonical tables and their rejected rows, by table name.
TABLES = ("transactions", "events", "customers", "campaigns")
INTERIM_FILES = {"transactions": TRANSACTIONS, "events": EVENTS, "customers": CUSTOMERS, "campaigns": CAMPAIGNS}
REJECTED_FILES = {name: REJECTED / f"{name}.parquet" for name in TABLES}
CDNOW_RESOURCE = ("lifetimes", "datasets/CDNOW_master.txt")  # package, file inside it (never downloaded)
CDNOW_SAMPLE_RESOURCE = ("lifetimes", "datasets/CDNOW_sample.txt")  # the 1/10 sample (data=cdnow_sample)


def rebase(path: Path, root: Path) -> Path:
    """The location of `path` (a constant above, under ROOT) under another repository root."""
    return Path(root) / Path(path).relative_to(ROOT)


def input_file(value: str | os.PathLike[str], root: Path = ROOT) -> Path:
    """A configured input path (data.transactions, ...): relative paths are taken from the repo root."""
    path = Path(value).expanduser()
    return path if path.is_absolute() else Path(root) / path


def cdnow_file(sample: bool = False) -> Path:
    """CDNOW_master.txt (or the 1/10 CDNOW_sample.txt) inside the installed lifetimes package (not imported)."""
    from importlib.util import find_spec

    package, name = CDNOW_SAMPLE_RESOURCE if sample else CDNOW_RESOURCE
    spec = find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        return Path(package) / name
    return Path(next(iter(spec.submodule_search_locations))) / name
