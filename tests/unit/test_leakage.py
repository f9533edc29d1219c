"""Point-in-time correctness: rows after the cutoff never change features; rows after the horizon never
change labels."""

from __future__ import annotations

from datetime import date

import duckdb
import numpy as np
import pandas as pd

from features.build import FeatureConfig, build_features
from features.timeline import Cutoff
from tests.conftest import event_frame, tx_frame

CUT = Cutoff("eval", date(2024, 6, 30), date(2024, 9, 30))
LABELS = ["future_purchases", "future_revenue", "churned"]


def history(n_customers: int = 300, seed: int = 3) -> tuple[pd.DataFrame, pd.DataFrame]:
    """A random purchase and event history through 2024-12-31."""
    rng = np.random.default_rng(seed)
    n = n_customers * 8
    ids = rng.integers(0, n_customers, n).astype(str)
    days = pd.Timestamp("2024-01-01", tz="UTC") + pd.to_timedelta(rng.integers(0, 366 * 24 * 60, n), "min")
    tx = tx_frame(list(zip(ids, days.astype(str), rng.gamma(2, 20, n) * rng.choice([1, 1, 1, -1], n),
                           rng.choice(["web", "app"], n), rng.choice(["a", "b", "c"], n), strict=True)))
    ev = event_frame(list(zip(ids, days.astype(str), rng.choice(["page_view", "add_to_cart", "email_open",
                                                                 "support_ticket"], n),
                              rng.integers(1, 6, n).astype(float), strict=True)))
    return tx, ev


def features(tx: pd.DataFrame, ev: pd.DataFrame) -> pd.DataFrame:
    """Features at CUT, sorted by customer."""
    con = duckdb.connect()
    con.register("transactions", tx)
    con.register("events", ev)
    return build_features(con, CUT, FeatureConfig()).df().sort_values("customer_id").reset_index(drop=True)


def after(frame: pd.DataFrame, day: str) -> pd.DataFrame:
    """Rows strictly after the end of `day`."""
    return frame[frame["ts"] >= pd.Timestamp(day, tz="UTC") + pd.Timedelta(days=1)]


def test_rows_after_the_cutoff_do_not_change_features() -> None:
    tx, ev = history()
    full = features(tx, ev)
    truncated_tx = tx[tx["ts"] < pd.Timestamp("2024-07-01", tz="UTC")]
    truncated_ev = ev[ev["ts"] < pd.Timestamp("2024-07-01", tz="UTC")]
    assert len(after(tx, "2024-06-30")) > 100  # the test really removes future rows
    only_past = features(pd.concat([truncated_tx, after(tx, "2024-09-30")]), truncated_ev)
    feature_cols = [c for c in full.columns if c not in LABELS]
    pd.testing.assert_frame_equal(full[feature_cols], features(truncated_tx, truncated_ev)[feature_cols])
    pd.testing.assert_frame_equal(full[feature_cols], only_past[feature_cols])


def test_appending_future_rows_for_new_and_existing_customers_changes_nothing() -> None:
    tx, ev = history()
    base = features(tx, ev)
    extra_tx = tx_frame([("0", "2024-07-01 00:00:00", 999.0), ("new", "2024-07-02", 5.0),
                         ("1", "2025-03-01", -50.0)])
    extra_ev = event_frame([("0", "2024-07-01 00:00:01", "page_view"), ("new", "2024-08-01", "review", 1.0)])
    grown = features(pd.concat([tx, extra_tx]), pd.concat([ev, extra_ev]))
    feature_cols = [c for c in base.columns if c not in LABELS]
    pd.testing.assert_frame_equal(base[feature_cols], grown[feature_cols])


def test_rows_after_the_horizon_do_not_change_labels() -> None:
    tx, ev = history()
    base = features(tx, ev)
    late = tx_frame([("0", "2024-10-01 00:00:00", 77.0), ("2", "2024-12-01", 12.0)])
    grown = features(pd.concat([tx, late]), ev)
    pd.testing.assert_frame_equal(base, grown)


def test_a_purchase_just_inside_the_horizon_is_a_label_not_a_feature() -> None:
    tx, ev = history()
    base = features(tx, ev).set_index("customer_id")
    churner = base.index[base["churned"] == 1][0]
    grown = features(pd.concat([tx, tx_frame([(churner, "2024-09-30 23:59:59", 10.0)])]), ev)
    grown = grown.set_index("customer_id")
    assert grown.loc[churner, "churned"] == 0
    assert grown.loc[churner, "future_revenue"] == base.loc[churner, "future_revenue"] + 10.0
    assert grown.loc[churner, "frequency"] == base.loc[churner, "frequency"]
