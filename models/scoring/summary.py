"""segment_summary: customers, mean churn probability and CLV per as_of, RFM segment and risk band."""

from __future__ import annotations

import pandas as pd

from models.scoring.schema import Column, ScoreLayout


def summary_columns(layout: ScoreLayout) -> list[Column]:
    """The segment_summary columns in order."""
    n, money = layout.horizon_months, layout.currency
    return [
        Column("as_of", "date", "ISO-8601 date", "Scoring date of the batch."),
        Column("rfm_segment", "text", "label", "RFM segment label (as in customer_scores)."),
        Column("churn_risk_band", "text", "label", "Churn risk band label (as in customer_scores)."),
        Column("customers", "integer", "customers", "Customers in the segment and band."),
        Column("mean_churn_probability", "decimal", "probability 0-1", "Mean churn_probability.", 4),
        Column(f"total_clv_{n}m", "decimal", money, f"Sum of clv_{n}m.", 2),
        Column(f"mean_clv_{n}m", "decimal", money, f"Mean clv_{n}m.", 2),
    ]


def segment_summary(scores: pd.DataFrame, layout: ScoreLayout) -> pd.DataFrame:
    """One row per (as_of, rfm_segment, churn_risk_band) present in the scores, sorted by those keys."""
    n = layout.horizon_months
    keys = ["as_of", "rfm_segment", "churn_risk_band"]
    grouped = scores.groupby(keys, sort=True, observed=True)
    table = grouped.agg(
        customers=("customer_id", "size"),
        mean_churn_probability=("churn_probability", "mean"),
        **{f"total_clv_{n}m": (layout.clv_column, "sum"), f"mean_clv_{n}m": (layout.clv_column, "mean")},
    ).reset_index()
    table["customers"] = table["customers"].astype("int64")
    return table[[c.name for c in summary_columns(layout)]]
