"""Tiny synthetic feature tables shaped like data/features/*.parquet, for the churn tests."""

from __future__ import annotations

from datetime import date, timedelta

import numpy as np
import pandas as pd

CUTOFFS = ("2023-07-01", "2024-01-01", "2024-07-01", "2025-01-01")


def churn_frame(
    n: int = 600,
    cutoff: str = "2024-01-01",
    seed: int = 0,
    labelled: bool = True,
    ids: np.ndarray | None = None,
) -> pd.DataFrame:
    """One cutoff of features: RFM consistent with lifetimes, a channel, segments, events, labels."""
    rng = np.random.default_rng(seed)
    day = date.fromisoformat(cutoff)
    tenure = rng.integers(30, 360, n)
    frequency = rng.poisson(2.0, n).astype(float)
    recency = np.where(frequency > 0, np.floor(rng.uniform(0.2, 1.0, n) * tenure), 0.0)
    dslp = (tenure - recency).astype(int)
    views = rng.poisson(np.where(dslp < 60, 6.0, 1.0))
    monetary = np.where(frequency > 0, rng.gamma(2.0, 20.0, n).round(2), 0.0)
    logit = -1.0 + 0.02 * dslp - 0.5 * frequency - 0.15 * views
    churned = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(float)
    channel = rng.choice(["web", "app", "store"], n)
    frame = pd.DataFrame(
        {
            "customer_id": ids if ids is not None else np.char.add("c", np.arange(n).astype(str)),
            "cutoff": cutoff,
            "frequency": frequency,
            "recency": recency,
            "T": tenure.astype(float),
            "monetary_value": monetary,
            "recency_days": recency.astype(int),
            "tenure_days": tenure,
            "days_since_last_purchase": dslp,
            "first_purchase_date": [str(day - timedelta(days=int(t))) for t in tenure],
            "last_purchase_date": [str(day - timedelta(days=int(d))) for d in dslp],
            "orders_total": (frequency + 1).astype(int),
            "revenue_net_total": (monetary * (frequency + 1)).round(2),
            "avg_order_value": monetary,
            "page_view_30d": views,
            "main_channel": pd.Series(channel, dtype="str"),
            "rfm_r": np.clip(5 - dslp // 73, 1, 5).astype("int32"),
            "rfm_f": np.clip(frequency, 1, 5).astype("int32"),
            "rfm_m": np.clip(monetary // 20, 1, 5).astype("int32"),
            "rfm_segment": np.where(dslp < 90, "champions", "lost"),
            "rfm_segment_label": np.where(dslp < 90, "Champions", "Lost"),
            "rfm_score": "345",
            "future_purchases": np.where(churned == 1, 0.0, 1.0),
            "future_revenue": np.where(churned == 1, 0.0, 25.0),
            "churned": churned,
        }
    )
    if not labelled:
        frame[["future_purchases", "future_revenue", "churned"]] = np.nan
    return frame


def stacked(cutoffs: tuple[str, ...] = CUTOFFS[:2], n: int = 600, seed: int = 0) -> pd.DataFrame:
    """Several labelled cutoffs stacked, the same customers at each (different draws)."""
    ids = np.char.add("c", np.arange(n).astype(str))
    return pd.concat([churn_frame(n, c, seed + i, ids=ids) for i, c in enumerate(cutoffs)], ignore_index=True)


def test_frame_is_lifetimes_consistent() -> None:
    frame = churn_frame(200)
    assert (frame["recency"] <= frame["T"]).all()
    assert (frame.loc[frame["frequency"] == 0, "recency"] == 0).all()
    assert frame["customer_id"].is_unique and set(frame["churned"].unique()) == {0.0, 1.0}


def test_stacked_has_one_row_per_customer_and_cutoff() -> None:
    frame = stacked()
    assert not frame.duplicated(["customer_id", "cutoff"]).any()
    assert sorted(frame["cutoff"].unique()) == list(CUTOFFS[:2])
