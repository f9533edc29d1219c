"""Stage `campaigns` on tiny interim tables: effects per campaign, features before sent_at, no-campaign report."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from features import contract
from features.build import FeatureConfig
from models.scoring.schema import Column
from pipelines import campaigns, paths
from tests.conftest import compose_params

SENT = pd.Timestamp("2024-03-01 09:00", tz="UTC")


def _write(root: Path, tx: pd.DataFrame, exposure: pd.DataFrame) -> None:
    """Interim tables under root in the contract schemas (events and customers empty)."""
    for name, frame, file in (("transactions", tx, paths.TRANSACTIONS), ("campaigns", exposure, paths.CAMPAIGNS)):
        target = paths.rebase(file, root)
        target.parent.mkdir(parents=True, exist_ok=True)
        full = frame.reindex(columns=contract.SCHEMAS[name].names)
        pq.write_table(pa.Table.from_pandas(full, preserve_index=False).cast(contract.SCHEMAS[name]), target)


@pytest.fixture(scope="module")
def params() -> dict:
    """conf/ with a 30-day campaign horizon, groups of 2 enough for an effect, no uplift model."""
    return compose_params(["campaigns.horizon_days=30", "campaigns.min_group_size=2",
                           "campaigns.uplift.min_group_size=1000"])


def test_stage_measures_each_campaign_from_the_horizon_after_sent_at(tmp_path: Path, params: dict) -> None:
    ids = [f"c{i}" for i in range(8)]  # c0-c3 treatment, c4-c7 control
    exposure = pd.DataFrame({"customer_id": ids, "campaign": "spring", "sent_at": SENT,
                             "group": ["treatment"] * 4 + ["control"] * 4})
    history = [(c, "2024-01-10") for c in ids]
    after = [("c0", "2024-03-05"), ("c1", "2024-03-20"), ("c2", "2024-03-31 09:00"),  # 3 of 4 treated buy
             ("c4", "2024-03-10"), ("c5", "2024-04-15"),  # c5 buys after the 30-day horizon: 1 of 4 controls
             ("c7", "2024-03-01 08:00")]  # before sent_at on the send day: not an outcome
    tx = pd.DataFrame(history + after + [("c9", "2024-06-30")], columns=["customer_id", "ts"])
    tx["ts"] = pd.to_datetime(tx["ts"], utc=True, format="ISO8601")
    tx["amount"] = 10.0
    _write(tmp_path, tx, exposure)
    report = campaigns.run(params, tmp_path)
    (eff,) = report["campaigns"]
    assert (eff["status"], eff["purchasers_treatment"], eff["purchasers_control"]) == ("measured", 3, 1)
    assert eff["purchase_uplift"] == pytest.approx(0.5)
    assert eff["save_rate"] == pytest.approx(1 - 0.25 / 0.75)
    assert eff["uplift"]["status"] == "skipped" and "min_group_size = 1000" in eff["uplift"]["reason"]
    assert report["save_rates"]["spring"]["save_rate"] == pytest.approx(2 / 3)
    assert campaigns.read_report(tmp_path)["campaigns"][0]["campaign"] == "spring"
    key = {"as_of": pd.Timestamp("2024-06-30").date()}
    columns, table = campaigns.warehouse_table(tmp_path, key, [Column("as_of", "date", "day", "Scoring date.")])
    assert list(table.columns) == [c.name for c in columns] and columns[1].name == "campaign"
    assert table.loc[0, "purchase_uplift"] == pytest.approx(0.5) and table.loc[0, "as_of"] == key["as_of"]


def test_uplift_features_see_only_days_before_the_send_day() -> None:
    tx = pd.DataFrame({"customer_id": ["a", "a", "a"], "amount": [5.0, 5.0, 5.0],
                       "ts": pd.to_datetime(["2024-01-10", "2024-02-29 12:00", "2024-03-01 08:00"], utc=True,
                                            format="ISO8601")}).reindex(columns=contract.TRANSACTIONS.names)
    con = duckdb.connect()
    con.register("transactions", pa.Table.from_pandas(tx, preserve_index=False).cast(contract.TRANSACTIONS))
    rows = pd.DataFrame({"customer_id": ["a"], "campaign": "x", "sent_at": [SENT], "group": "treatment",
                         "purchases": [0], "revenue": [0.0]})
    got = campaigns.features_at_send(con, rows, FeatureConfig())
    # the cutoff is 2024-02-29: the purchase on the send day (before sent_at) is not seen either
    assert got.loc[0, "orders_total"] == 2 and got.loc[0, "days_since_last_purchase"] == 0


def test_data_without_campaigns_says_so(tmp_path: Path, params: dict) -> None:
    tx = pd.DataFrame({"customer_id": ["a"], "ts": pd.to_datetime(["2024-01-10"], utc=True), "amount": [1.0]})
    _write(tmp_path, tx, contract.empty_table("campaigns").to_pandas())
    report = campaigns.run(params, tmp_path)
    assert report["has_campaigns"] is False and report["save_rates"] == {}
    assert "no campaign exposure" in report["note"]
