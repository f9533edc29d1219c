"""One interface for every churn model the score stage can use: probability, feature spec, reasons, save/load.

A model kind (LightGBM booster, logistic regression, BTYD P(no purchase)) subclasses ``ChurnScorer`` and is
registered once with ``@register``; ``save_scorer`` writes a manifest (``churn_model.json``: kind and name)
beside the kind's own files and ``load_scorer`` rebuilds whatever kind the manifest names. Pipelines call
only this interface, never a branch per kind.
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from models.churn.features import FeatureSpec

MANIFEST = "churn_model.json"
FORMAT = "churn-clv/churn-model"
KINDS: dict[str, type[ChurnScorer]] = {}


class ChurnScorer(ABC):
    """A fitted churn model: calibrated P(no purchase in the horizon) per row, with reason codes."""

    kind: ClassVar[str] = ""
    spec: FeatureSpec
    info: dict[str, Any]

    @property
    def name(self) -> str:
        """Candidate name (e.g. lightgbm, lightgbm_prior_bgnbd, log_rfm, bgnbd)."""
        return str(self.info.get("name") or self.kind)

    @abstractmethod
    def predict_proba(self, frame: pd.DataFrame) -> np.ndarray:
        """Calibrated probability of no purchase within the horizon, one per row."""

    @abstractmethod
    def score_with_reasons(self, frame: pd.DataFrame, k: int = 3, direction: str = "abs") -> pd.DataFrame:
        """p_churn and reason_1..k per row (texts like 'days_since_last_purchase=143 raises risk')."""

    @abstractmethod
    def save_files(self, folder: Path) -> dict[str, Path]:
        """Write the kind's own files (JSON / text, no pickles) under folder; returns them by role."""

    @classmethod
    @abstractmethod
    def load_files(cls, folder: Path) -> ChurnScorer:
        """Inverse of save_files."""


def register(cls: type[ChurnScorer]) -> type[ChurnScorer]:
    """Class decorator: make a ChurnScorer kind loadable by load_scorer."""
    if not cls.kind or cls.kind in KINDS:
        raise ValueError(f"churn model kind {cls.kind!r} is empty or registered twice")
    KINDS[cls.kind] = cls
    return cls


def write_json_file(data: dict[str, Any], target: Path) -> Path:
    """A JSON document written through a temporary file (no half-written model files)."""
    tmp = target.with_name(target.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=True, default=float), encoding="utf-8")
    tmp.replace(target)
    return target


def read_json_file(path: Path) -> dict[str, Any]:
    """A JSON document, or FileNotFoundError naming it."""
    if not path.exists():
        raise FileNotFoundError(f"{path}: missing; run the train_churn stage first (dvc repro train_churn)")
    return json.loads(path.read_text(encoding="utf-8"))


def save_scorer(model: ChurnScorer, folder: Path) -> dict[str, Path]:
    """The model's files plus the manifest naming its kind; returns every file by role."""
    folder.mkdir(parents=True, exist_ok=True)
    files = model.save_files(folder)
    files["manifest"] = write_json_file({"format": FORMAT, "kind": model.kind, "name": model.name}, folder / MANIFEST)
    return files


def load_scorer(folder: Path) -> ChurnScorer:
    """Whatever kind of churn model save_scorer wrote under folder (a folder without manifest: LightGBM)."""
    from models.churn import scorers  # noqa: F401  (registers every kind)

    manifest = folder / MANIFEST
    kind = read_json_file(manifest)["kind"] if manifest.exists() else "lightgbm"
    if kind not in KINDS:
        raise ValueError(f"{manifest}: unknown churn model kind {kind!r}; known: {sorted(KINDS)}")
    return KINDS[kind].load_files(folder)
