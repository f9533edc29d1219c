"""Every file location the pipeline reads or writes, relative to the repo root."""

from __future__ import annotations

import os
from pathlib import Path


def repo_root() -> Path:
    """The repository root: DVC_ROOT when DVC sets it, else the folder holding dvc.yaml."""
    if os.environ.get("DVC_ROOT"):
        return Path(os.environ["DVC_ROOT"]).resolve()
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
TRUTH = INTERIM / "truth.parquet"
REJECTED = INTERIM / "rejected"

FEATURES = ROOT / "data" / "features"
FEATURE_FILES = {role: FEATURES / f"{role}.parquet" for role in ("train", "eval", "score")}

REPORTS = ROOT / "reports"
INGEST_REPORT = REPORTS / "ingest.json"
FEATURES_REPORT = REPORTS / "features.json"
PLOTS = REPORTS / "plots"

OUTPUTS = ROOT / "outputs"
ARTIFACTS = ROOT / "artifacts"
MLFLOW_DB = ROOT / "mlflow.db"
