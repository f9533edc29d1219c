"""Feature-set ablation: the same recipe trained on RFM-only features and on every feature."""

from __future__ import annotations

import pandas as pd

from models.churn.config import ChurnConfig
from models.churn.evaluate import score_all
from models.churn.features import LABEL, RFM_ONLY, feature_columns
from models.churn.model import ChurnModel, fit_churn


def feature_sets(frame: pd.DataFrame) -> dict[str, list[str]]:
    """rfm_only (RFM_ONLY columns present in frame) and all (feature_columns)."""
    every = feature_columns(frame)
    return {"rfm_only": [c for c in RFM_ONLY if c in every], "all": every}


def run_ablation(
    train: pd.DataFrame,
    evaluation: pd.DataFrame,
    cfg: ChurnConfig,
    fitted: dict[str, ChurnModel] | None = None,
) -> pd.DataFrame:
    """One row per feature set: feature count, fit mode, out-of-time metrics at the evaluation cutoff."""
    y = evaluation[LABEL].to_numpy(dtype=float)
    rows = []
    for name, features in feature_sets(train).items():
        model = (fitted or {}).get(name) or fit_churn(train, cfg, features)
        result = score_all(y, {name: model.predict_proba(evaluation)}, cfg.top_fractions, cfg.ece_bins)[name]
        rows.append({"feature_set": name, "n_features": len(features), "mode": model.info["mode"], **result})
    return pd.DataFrame(rows)
