"""Our RFM and holdout labels equal lifetimes' own utilities on the full CDNOW file, exactly."""

from __future__ import annotations

from datetime import date
from importlib import resources

import duckdb
import numpy as np
import pandas as pd
import pytest
from lifetimes.utils import calibration_and_holdout_data, summary_data_from_transaction_data

from features.build import FeatureConfig, build_features, rfm
from features.timeline import Cutoff


@pytest.fixture(scope="module")
def cdnow() -> pd.DataFrame:
    """Raw CDNOW_master.txt from the installed lifetimes wheel (naive dates, every row)."""
    path = resources.files("lifetimes").joinpath("datasets", "CDNOW_master.txt")
    raw = pd.read_csv(str(path), sep=r"\s+", skiprows=1, header=None, dtype=str,
                      names=["customer_id", "date", "quantity", "amount"])
    return pd.DataFrame({"customer_id": raw["customer_id"],
                         "date": pd.to_datetime(raw["date"], format="%Y%m%d"),
                         "amount": raw["amount"].astype(float)})


@pytest.fixture(scope="module")
def con(cdnow: pd.DataFrame) -> duckdb.DuckDBPyConnection:
    """A connection holding CDNOW as the contract `transactions` table (UTC timestamps)."""
    tx = pd.DataFrame({"customer_id": cdnow["customer_id"], "ts": cdnow["date"].dt.tz_localize("UTC"),
                       "amount": cdnow["amount"], "order_id": None, "quantity": 1.0,
                       "channel": None, "category": None})
    connection = duckdb.connect()
    connection.register("transactions", tx)
    return connection


def assert_same(ours: pd.DataFrame, theirs: pd.DataFrame, columns: dict[str, str]) -> None:
    """Same customers, and each of our columns equals lifetimes' column (values to 1e-9 relative)."""
    ours = ours.set_index("customer_id").sort_index()
    theirs = theirs.sort_index()
    assert list(ours.index) == list(theirs.index)
    for mine, lifetimes_col in columns.items():
        np.testing.assert_allclose(ours[mine].to_numpy(float), theirs[lifetimes_col].to_numpy(float),
                                   rtol=1e-9, atol=1e-9, err_msg=mine)


@pytest.mark.parametrize(("freq", "multiplier"), [("D", 1), ("D", 7), ("W", 1)])
def test_rfm_equals_summary_data_from_transaction_data(con, cdnow, freq: str, multiplier: int) -> None:
    cutoff = date(1997, 9, 30)
    cfg = FeatureConfig(freq=freq, freq_multiplier=multiplier)
    ours = rfm(con, cutoff, cfg).df()
    theirs = summary_data_from_transaction_data(
        cdnow[cdnow["date"] <= pd.Timestamp(cutoff)], "customer_id", "date", "amount",
        observation_period_end=pd.Timestamp(cutoff), freq=freq, freq_multiplier=multiplier,
    )
    assert len(ours) == 23_570
    assert_same(ours, theirs, {c: c for c in ("frequency", "recency", "T", "monetary_value")})


def test_features_and_labels_equal_calibration_and_holdout_data(con, cdnow) -> None:
    cut = Cutoff("eval", date(1997, 12, 31), date(1998, 6, 30))
    ours = build_features(con, cut, FeatureConfig()).df()
    theirs = calibration_and_holdout_data(
        cdnow, "customer_id", "date", calibration_period_end=pd.Timestamp(cut.cutoff),
        observation_period_end=pd.Timestamp(cut.label_end), freq="D", monetary_value_col="amount",
    )
    # lifetimes' monetary_value_holdout is a mean per transaction row (not per period): times the rows
    holdout = cdnow[(cdnow["date"] > pd.Timestamp(cut.cutoff)) & (cdnow["date"] <= pd.Timestamp(cut.label_end))]
    rows = holdout.groupby("customer_id").size().reindex(theirs.index, fill_value=0)
    theirs["revenue_holdout"] = theirs["monetary_value_holdout"] * rows
    assert_same(ours, theirs, {"frequency": "frequency_cal", "recency": "recency_cal", "T": "T_cal",
                               "monetary_value": "monetary_value_cal",
                               "future_purchases": "frequency_holdout",
                               "future_revenue": "revenue_holdout"})
    churned = (theirs["frequency_holdout"] == 0).astype(int)
    assert (ours.set_index("customer_id").sort_index()["churned"].to_numpy() == churned.to_numpy()).all()
