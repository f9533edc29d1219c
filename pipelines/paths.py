"""Compatibility names for file locations: every one derived from the catalog (pipelines/catalog.py owns them).

New code uses `Catalog(root).path(name)`; these constants (under the repo root) and `rebase` remain until every
caller has moved. input_file / cdnow_file locate the user's inputs, which are not catalog datasets.
"""

from __future__ import annotations

import os
from pathlib import Path

from pipelines.catalog import ROOT, TABLES, dataset, repo_root

__all__ = ["ROOT", "TABLES", "repo_root"]


def _at(name: str) -> Path:
    """The location of a catalog dataset under the repo root."""
    return ROOT / dataset(name).location


CONF_DIR = ROOT / "conf"
PARAMS = ROOT / "params.yaml"

TRANSACTIONS, EVENTS, CUSTOMERS, CAMPAIGNS = (_at(t) for t in TABLES)
TRUTH = _at("truth")
INTERIM = TRANSACTIONS.parent
REJECTED = _at("rejected")

FEATURE_FILES = {role: _at(f"features_{role}") for role in ("train", "eval", "score")}
FEATURES = FEATURE_FILES["train"].parent

INGEST_REPORT = _at("ingest_report")
FEATURES_REPORT = _at("features_report")
CAMPAIGNS_REPORT = _at("campaigns_report")
SCORE_REPORT = _at("score_report")
REPORTS = INGEST_REPORT.parent
PLOTS = _at("churn_plots").parent

OUTPUTS = _at("scores").parent
STANDALONE = _at("standalone")  # standalone scoring of new data: its own ingest + score features
ARTIFACTS = _at("params_valid").parent
MLFLOW_DB = ROOT / "mlflow.db"

# Ingest (pipelines/ingest.py): the canonical tables and their rejected rows, by table name.
INTERIM_FILES = {t: _at(t) for t in TABLES}
REJECTED_FILES = {t: _at(f"rejected_{t}") for t in TABLES}
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
