"""Build customer_scores rows: CLV with intervals and deciles, churn with reasons, segments and actions."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import date

import numpy as np
import pandas as pd

from features.segments import SEGMENTS
from models.churn.reasons import localised_reasons
from models.clv import ClvModel
from models.clv.bounds import expected_clv_bounds
from models.clv.inputs import RFM_COLUMNS
from models.clv.uncertainty import ParameterDraws
from models.scoring.config import ScoringConfig
from models.scoring.rules import band_names, choose_actions, labels_of
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


def first_draws(draws: ParameterDraws, n: int) -> ParameterDraws:
    """The first n parameter draws (all when fewer)."""
    return replace(draws, purchases=draws.purchases[:n], spend=draws.spend[:n])


def clv_scores(model: ClvModel, draws: ParameterDraws, rfm: pd.DataFrame, layout: ScoreLayout,
               settings: ClvSettings) -> pd.DataFrame:
    """Per customer: p_purchase, expected_purchases, AOV, clv, its expected-value interval, p_no_purchase_clv.

    Spend columns are NaN when the model has no spend part (data without amounts). p_no_purchase_clv is the
    purchase model's P(no purchase) over round(M x days_per_month) days. The model's frame names its columns
    by horizon (expected_purchases_<H>d, clv_<M>m); the output uses the layout's stable names.
    """
    h, months = layout.horizon_days, layout.horizon_months
    rate, dpm = settings.discount_rate_monthly, settings.days_per_month
    point = model.predict(rfm[RFM], h, months, rate, days_per_month=dpm)
    clv_days = max(1, round(months * dpm))
    long = model.predict(rfm[RFM], clv_days, months, rate, days_per_month=dpm)[f"p_no_purchase_{clv_days}d"]
    out = pd.DataFrame({
        "customer_id": point["customer_id"],
        layout.p_purchase_column: 1.0 - point[f"p_no_purchase_{h}d"].to_numpy(dtype=float),
        layout.purchases_column: point[f"expected_purchases_{h}d"].to_numpy(dtype=float),
        "expected_aov": point["expected_aov"].to_numpy(dtype=float),
        layout.clv_column: point[f"clv_{months}m"].to_numpy(dtype=float),
        "clv_low": np.nan, "clv_high": np.nan,
        layout.p_no_purchase_column: long.to_numpy(dtype=float),
    })
    if layout.has_spend:
        bounds = expected_clv_bounds(model, first_draws(draws, settings.n_draws), rfm[RFM],
                                     out[layout.clv_column].to_numpy(), (h, months, rate, dpm), settings.level,
                                     settings.grid_days / model.time_unit_days)
        out["clv_low"], out["clv_high"] = bounds.low, bounds.high
    return out


DECILES = np.arange(1, 10) / 10.0


def edge_ranks(n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For n sorted values: the 0-based ranks below and above each inner decile edge and the weight of the one
    above (numpy's default 'linear' quantile: position (n - 1) q)."""
    position = (n - 1) * DECILES
    below = np.floor(position)
    weight = position - below
    below = below.astype(np.int64)
    above = below + 1
    top = position >= n - 1
    below[top], above[top] = n - 1, n - 1
    return below, above, weight


def edges_between(low: np.ndarray, high: np.ndarray, weight: np.ndarray) -> np.ndarray:
    """Linear interpolation between the order statistics, as np.quantile does it (bit for bit)."""
    low, high = np.asarray(low, dtype=float), np.asarray(high, dtype=float)
    diff = high - low
    return np.where(weight >= 0.5, high - diff * (1 - weight), low + diff * weight)


def decile_edges(values: np.ndarray) -> np.ndarray:
    """The 9 inner decile edges of a batch's values (= np.quantile; all NaN when a value is NaN).

    Split into order statistics + interpolation so that engine=spark, which finds the order statistics on the
    cluster (pipelines/score_spark.py), computes the very same edges.
    """
    values = np.asarray(values, dtype=float)
    if values.size == 0 or np.isnan(values).any():
        return np.full(DECILES.size, np.nan)
    below, above, weight = edge_ranks(values.size)
    ranks = np.unique(np.concatenate([below, above]))
    ordered = np.partition(values, ranks)
    return edges_between(ordered[below], ordered[above], weight)


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


def reason_columns(churn: pd.DataFrame, layout: ScoreLayout, locale: str, unit_days: float) -> pd.DataFrame:
    """reason_<i> worded in the locale and reason_code_<i>; a scorer without codes keeps its texts, codes empty."""
    k = layout.reason_codes
    if k == 0 or "reason_code_1" in churn.columns:
        return localised_reasons(churn, k, locale, layout.horizon_days, unit_days)
    return pd.DataFrame({**{f"reason_{i}": churn[f"reason_{i}"].fillna("").to_numpy(dtype=object)
                            for i in range(1, k + 1)},
                         **{f"reason_code_{i}": np.full(len(churn), "", dtype=object) for i in range(1, k + 1)}})


def utc_naive(stamp: pd.Timestamp) -> np.datetime64:
    """A timestamp as naive UTC microseconds."""
    stamp = pd.Timestamp(stamp)
    stamp = stamp.tz_convert("UTC").tz_localize(None) if stamp.tzinfo else stamp
    return stamp.as_unit("us").to_datetime64()


def assemble(features: pd.DataFrame, churn: pd.DataFrame, clv: pd.DataFrame, edges: np.ndarray,
             cfg: ScoringConfig, layout: ScoreLayout, locale: str,
             stamp: tuple[date, str, pd.Timestamp], unit_days: float = 1.0) -> pd.DataFrame:
    """customer_scores rows for one chunk: features, churn (p_churn, reason_code_*/reason_value_*) and clv rows in
    the same order; reasons worded in the locale (unit_days: the features' time unit, for day counts)."""
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
    decile = (pd.array(deciles(value, edges), dtype="Int64") if layout.has_spend
              else pd.array([pd.NA] * len(value), dtype="Int64"))
    probabilities = {c: clv[c].to_numpy(dtype=float) for c in (layout.p_purchase_column, layout.p_no_purchase_column)}
    decision = features[[c for c in cfg.rule_columns() if c in features.columns]].reset_index(drop=True).assign(
        churn_probability=p, churn_risk_band=bands, clv_decile=decile, **probabilities,
        **{layout.clv_column: value}, rfm_segment=features["rfm_segment"].to_numpy())
    if "tenure_days" not in decision.columns and "tenure_days" in features.columns:
        decision["tenure_days"] = features["tenure_days"].to_numpy()
    reasons = reason_columns(churn.reset_index(drop=True), layout, locale, unit_days)
    chosen = choose_actions(decision, cfg.actions, cfg.must_act)
    action_names = np.array([r.name for r in cfg.actions] + [cfg.default_action.name], dtype=object)
    out = pd.DataFrame({
        "customer_id": ids,
        "as_of": np.full(len(ids), as_of, dtype=object),
        **{name: np.full(len(ids), value) for name, value in layout.setting_values().items()},
        "churn_probability": p,
        "churn_risk_band": pd.Series(bands).map(band_label).to_numpy(dtype=object),
        layout.p_purchase_column: probabilities[layout.p_purchase_column],
        layout.purchases_column: clv[layout.purchases_column].to_numpy(dtype=float),
        "expected_aov": clv["expected_aov"].to_numpy(dtype=float),
        layout.clv_column: value,
        "clv_low": clv["clv_low"].to_numpy(dtype=float),
        "clv_high": clv["clv_high"].to_numpy(dtype=float),
        layout.p_no_purchase_column: probabilities[layout.p_no_purchase_column],
        "clv_decile": decile,
        **{c: pd.array(features[c].to_numpy(), dtype="Int64") for c in ("rfm_r", "rfm_f", "rfm_m")},  # m: may be null
        "rfm_segment": segment_labels(features["rfm_segment"].reset_index(drop=True), locale),
        "rfm_segment_code": features["rfm_segment"].to_numpy(dtype=object),
        **{f"reason_{i}": reasons[f"reason_{i}"].to_numpy(dtype=object) for i in range(1, layout.reason_codes + 1)},
        **{f"reason_code_{i}": reasons[f"reason_code_{i}"].to_numpy(dtype=object)
           for i in range(1, layout.reason_codes + 1)},
        "recommended_action": labels_of(chosen, decision, cfg.actions, cfg.default_action, locale),
        "recommended_action_code": action_names[chosen],
        "model_version": np.full(len(ids), version, dtype=object),
        "scored_at": pd.DatetimeIndex(np.full(len(ids), utc_naive(scored_at))).tz_localize("UTC"),
    })
    return out[column_names(layout)]
