"""segment_summary: customers, mean churn probability and CLV per as_of, RFM segment and risk band."""

from __future__ import annotations

from collections.abc import Iterable

import pandas as pd

from models.scoring.schema import Column, ScoreLayout

KEYS = ["as_of", "horizon_days", "clv_months", "rfm_segment", "churn_risk_band"]


def summary_columns(layout: ScoreLayout) -> list[Column]:
    """The segment_summary columns in order."""
    money = layout.currency
    return [
        Column("as_of", "date", "ISO-8601 date", "Scoring date of the batch."),
        Column("horizon_days", "integer", "days", "horizon_days of the batch (as in customer_scores)."),
        Column("clv_months", "integer", "months", "clv_months of the batch (as in customer_scores)."),
        Column("rfm_segment", "text", "label", "RFM segment label (as in customer_scores)."),
        Column("churn_risk_band", "text", "label", "Churn risk band label (as in customer_scores)."),
        Column("customers", "integer", "customers", "Customers in the segment and band."),
        Column("mean_churn_probability", "decimal", "probability 0-1", "Mean churn_probability.", 4),
        Column("total_clv", "decimal", money, "Sum of clv (null when the data has no amounts).", 2,
               nullable=True),
        Column("mean_clv", "decimal", money, "Mean clv (null when the data has no amounts).", 2,
               nullable=True),
    ]


def summary_parts(scores: pd.DataFrame, layout: ScoreLayout) -> pd.DataFrame:
    """Additive per-group sums of one chunk of scores (customers, churn and CLV sums), for streaming."""
    grouped = scores.groupby(KEYS, sort=False, observed=True)
    return grouped.agg(
        customers=("customer_id", "size"),
        churn_sum=("churn_probability", "sum"),
        clv_sum=(layout.clv_column, "sum"),
        clv_count=(layout.clv_column, "count"),
    ).reset_index()


def finish_summary(parts: Iterable[pd.DataFrame], layout: ScoreLayout) -> pd.DataFrame:
    """Combine chunk sums into segment_summary, one row per (as_of, rfm_segment, churn_risk_band), sorted."""
    frames = [p for p in parts if len(p)]
    if not frames:
        return pd.DataFrame({c.name: [] for c in summary_columns(layout)})
    sums = pd.concat(frames, ignore_index=True).groupby(KEYS, sort=True, observed=True).sum().reset_index()
    total = sums["clv_sum"].where(sums["clv_count"] > 0)  # null, not 0, when no row has a CLV (no amounts)
    table = sums[KEYS].assign(
        customers=sums["customers"].astype("int64"),
        mean_churn_probability=sums["churn_sum"] / sums["customers"],
        total_clv=total, mean_clv=total / sums["customers"],
    )
    return table[[c.name for c in summary_columns(layout)]]


def segment_summary(scores: pd.DataFrame, layout: ScoreLayout) -> pd.DataFrame:
    """segment_summary of a whole scores table."""
    return finish_summary([summary_parts(scores, layout)], layout)
