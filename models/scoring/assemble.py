"""Build customer_scores rows: CLV with intervals and deciles, churn with reasons, segments and actions."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import date

import numpy as np
import pandas as pd

from features.segments import SEGMENTS
from models.clv import ClvModel
from models.clv.inputs import RFM_COLUMNS
from models.clv.uncertainty import Horizon, ParameterDraws, predictive_clv_bounds
from models.scoring.config import ScoringConfig
from models.scoring.rules import action_labels, band_names
from models.scoring.schema import ScoreLayout, column_names

RFM = list(RFM_COLUMNS)


@dataclass(frozen=True)
class ClvSettings:
    """How CLV is predicted: discounting, month length, interval level and draws, seed."""

    discount_rate_monthly: float = 0.01
    days_per_month: float = 30.0
    level: float = 0.9
    grid_days: float = 7.0
    seed: int = 0
    n_draws: int = 100


def quantized(rfm: pd.DataFrame, grid_units: float) -> pd.DataFrame:
    """RFM rounded for interval simulation: recency and T to the grid (from one grid step up), spend to 2 digits."""
    out = rfm[RFM].copy()
    if grid_units > 0:
        for col in ("recency", "T"):
            v = out[col].to_numpy(dtype=float)
            out[col] = np.where(v >= grid_units, np.round(v / grid_units) * grid_units, v)
    m = out["monetary_value"].to_numpy(dtype=float)
    digits = np.where(m > 0, 1 - np.floor(np.log10(np.where(m > 0, m, 1.0))), 0).astype(int)
    scale = 10.0 ** digits
    out["monetary_value"] = np.where(m > 0, np.round(m * scale) / scale, m)
    return out


def first_draws(draws: ParameterDraws, n: int) -> ParameterDraws:
    """The first n parameter draws (all when fewer)."""
    return replace(draws, purchases=draws.purchases[:n], spend=draws.spend[:n])


def clv_scores(model: ClvModel, draws: ParameterDraws, rfm: pd.DataFrame, layout: ScoreLayout,
               settings: ClvSettings) -> pd.DataFrame:
    """Per customer: p_alive, expected purchases, expected AOV, CLV and its predictive interval (clv_low/high)."""
    point = model.predict(rfm[RFM], layout.horizon_days, layout.horizon_months, settings.discount_rate_monthly,
                          days_per_month=settings.days_per_month)
    horizon = Horizon(layout.horizon_days, layout.horizon_months, settings.discount_rate_monthly,
                      settings.days_per_month)
    coarse = quantized(rfm, settings.grid_days / model.time_unit_days)
    bounds = predictive_clv_bounds(model, coarse, first_draws(draws, settings.n_draws), horizon, settings.level,
                                   settings.seed)
    n = layout.horizon_months
    return point[["customer_id", "p_alive", layout.purchases_column, "expected_aov", layout.clv_column]].assign(
        clv_low=bounds[f"clv_{n}m_pred_low"].to_numpy(), clv_high=bounds[f"clv_{n}m_pred_high"].to_numpy())


def decile_edges(values: np.ndarray) -> np.ndarray:
    """The 9 inner decile edges of a batch's values."""
    return np.quantile(np.asarray(values, dtype=float), np.arange(1, 10) / 10.0)


def deciles(values: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Decile 1..10 of each value given the batch's edges (10 = highest; ties share a decile)."""
    return np.searchsorted(edges, np.asarray(values, dtype=float), side="right").astype("int64") + 1


def segment_labels(slugs: pd.Series, locale: str) -> np.ndarray:
    """RFM segment slugs as labels in the locale (ValueError on an unknown slug)."""
    table = {names[0]: names[1 if locale == "en" else 2] for names in SEGMENTS.values()}
    labels = slugs.map(table)
    if labels.isna().any():
        raise ValueError(f"unknown rfm_segment {slugs[labels.isna()].iloc[0]!r}")
    return labels.to_numpy(dtype=object)


def utc_naive(stamp: pd.Timestamp) -> np.datetime64:
    """A timestamp as naive UTC microseconds."""
    stamp = pd.Timestamp(stamp)
    stamp = stamp.tz_convert("UTC").tz_localize(None) if stamp.tzinfo else stamp
    return stamp.as_unit("us").to_datetime64()


def assemble(features: pd.DataFrame, churn: pd.DataFrame, clv: pd.DataFrame, edges: np.ndarray,
             cfg: ScoringConfig, layout: ScoreLayout, locale: str,
             stamp: tuple[date, str, pd.Timestamp]) -> pd.DataFrame:
    """customer_scores rows for one chunk: features, churn (p_churn, reason_*) and clv rows in the same order."""
    as_of, version, scored_at = stamp
    if not (len(features) == len(churn) == len(clv)):
        raise ValueError(f"chunk parts differ in length: features {len(features)}, churn {len(churn)}, "
                         f"clv {len(clv)}")
    ids = features["customer_id"].astype(str).to_numpy()
    if not np.array_equal(ids, clv["customer_id"].astype(str).to_numpy()):
        raise ValueError("CLV rows are not aligned with the feature rows")
    p = churn["p_churn"].to_numpy(dtype=float)
    bands = band_names(p, cfg.risk_bands)
    band_label = {b.name: b.labels[locale] for b in cfg.risk_bands}
    value = clv[layout.clv_column].to_numpy(dtype=float)
    decision = features[[c for c in cfg.rule_columns() if c in features.columns]].reset_index(drop=True).assign(
        churn_probability=p, churn_risk_band=bands, clv_decile=deciles(value, edges),
        p_alive=clv["p_alive"].to_numpy(), **{layout.clv_column: value},
        rfm_segment=features["rfm_segment"].to_numpy())
    if "tenure_days" not in decision.columns and "tenure_days" in features.columns:
        decision["tenure_days"] = features["tenure_days"].to_numpy()
    out = pd.DataFrame({
        "customer_id": ids,
        "as_of": np.full(len(ids), as_of, dtype=object),
        "churn_probability": p,
        "churn_risk_band": pd.Series(bands).map(band_label).to_numpy(dtype=object),
        "p_alive": clv["p_alive"].to_numpy(dtype=float),
        layout.purchases_column: clv[layout.purchases_column].to_numpy(dtype=float),
        "expected_aov": clv["expected_aov"].to_numpy(dtype=float),
        layout.clv_column: value,
        "clv_low": clv["clv_low"].to_numpy(dtype=float),
        "clv_high": clv["clv_high"].to_numpy(dtype=float),
        "clv_decile": decision["clv_decile"].to_numpy(),
        **{c: features[c].to_numpy(dtype="int64") for c in ("rfm_r", "rfm_f", "rfm_m")},
        "rfm_segment": segment_labels(features["rfm_segment"].reset_index(drop=True), locale),
        **{f"reason_{i}": churn[f"reason_{i}"].fillna("").to_numpy(dtype=object)
           for i in range(1, layout.reason_codes + 1)},
        "recommended_action": action_labels(decision, cfg.actions, cfg.default_action, locale),
        "model_version": np.full(len(ids), version, dtype=object),
        "scored_at": pd.DatetimeIndex(np.full(len(ids), utc_naive(scored_at))).tz_localize("UTC"),
    })
    return out[column_names(layout)]
