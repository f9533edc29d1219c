"""Funnel (features/funnel.py): hand-computed steps, window, order, channels and segments on six customers."""

from __future__ import annotations

from datetime import date

import duckdb
import pandas as pd
import pytest

from features import contract
from features.funnel import FunnelConfig, entry_period, funnel

AS_OF = date(2024, 1, 31)  # window 2 days, lookback 10 days: entries in (01-20 00:00, 01-30 00:00]
CFG = FunnelConfig(window_days=2, lookback_days=10)

EVENTS = [  # customer, ts, event_type, channel
    ("A", "2024-01-22 10:00", "product_view", "web"), ("A", "2024-01-22 11:00", "add_to_cart", "web"),
    ("A", "2024-01-22 12:00", "checkout_start", "web"),
    ("B", "2024-01-23 00:00", "product_view", "app"), ("B", "2024-01-24 00:00", "add_to_cart", "app"),
    ("B", "2024-01-26 00:00", "checkout_start", "app"),  # 72 h after entry: outside the 48 h window
    ("C", "2024-01-24 00:00", "add_to_cart", "web"),  # before C's entry: out of order, does not count
    ("C", "2024-01-25 00:00", "product_view", "web"),
    ("D", "2024-01-15 00:00", "product_view", "web"),  # before the entry period
    ("D", "2024-01-30 12:00", "product_view", "web"),  # after it (its window would pass as_of)
    ("E", "2024-01-21 00:00", "product_view", "web"), ("E", "2024-01-21 05:00", "product_view", "app"),
    ("E", "2024-01-21 06:00", "add_to_cart", "web"), ("E", "2024-01-21 06:30", "checkout_start", "web"),
    ("F", "2024-01-22 00:00", "email_open", "email"),  # not a funnel step
    ("G", "2024-01-27 00:00", "product_view", "app"), ("G", "2024-01-27 02:00", "add_to_cart", "app"),
    ("G", "2024-01-27 03:00", "checkout_start", "app"),
]
TRANSACTIONS = [  # customer, ts, amount
    ("A", "2024-01-22 13:00", 30.0), ("B", "2024-01-26 01:00", 20.0), ("C", "2024-01-25 06:00", 10.0),
    ("E", "2024-01-21 08:00", 50.0), ("G", "2024-01-27 04:00", -5.0),  # G's row is a return, not a purchase
]
SEGMENTS = pd.DataFrame({"customer_id": ["A", "B", "E", "G"],
                         "rfm_segment": ["champions", "lost", "champions", "lost"]})


def frames() -> tuple[pd.DataFrame, pd.DataFrame]:
    """The events and transactions above in contract shape."""
    events = pd.DataFrame(EVENTS, columns=["customer_id", "ts", "event_type", "channel"])
    events["ts"] = pd.to_datetime(events["ts"], utc=True)
    events = events.assign(session_id=None, value=None)
    tx = pd.DataFrame(TRANSACTIONS, columns=["customer_id", "ts", "amount"])
    tx["ts"] = pd.to_datetime(tx["ts"], utc=True)
    tx = tx.assign(order_id=None, quantity=None, channel="web", category=None)
    return events, tx


def run(events: pd.DataFrame, tx: pd.DataFrame, segments: pd.DataFrame | None = SEGMENTS) -> pd.DataFrame:
    """The funnel of the frames at AS_OF."""
    con = duckdb.connect()
    con.register("ev", events)
    con.register("tx", tx)
    if segments is not None:
        con.register("seg", segments)
    return funnel(con, CFG, AS_OF, "ev", "tx", "seg" if segments is not None else None)


def rows(table: pd.DataFrame, dimension: str, value: str) -> pd.DataFrame:
    """The four step rows of one group."""
    return table[(table["dimension"] == dimension) & (table["dimension_value"] == value)].set_index("step")


def test_entry_period_closes_every_window_by_as_of() -> None:
    start, end, horizon = entry_period(AS_OF, CFG)
    assert (str(start), str(end), str(horizon)) == ("2024-01-20 00:00:00+00:00", "2024-01-30 00:00:00+00:00",
                                                    "2024-02-01 00:00:00+00:00")


def test_overall_funnel_by_hand() -> None:
    table = run(*frames())
    everyone = rows(table, "all", "all")
    assert list(everyone.index) == ["product_view", "add_to_cart", "checkout_start", "purchase"]
    assert everyone["customers"].tolist() == [5, 4, 3, 2]  # A B C E G; A B E G; A E G; A E
    assert everyone["drop_off"].tolist() == [0, 1, 1, 1]
    assert everyone["step_conversion"].tolist() == pytest.approx([1.0, 0.8, 0.75, 2 / 3])
    assert everyone["overall_conversion"].tolist() == pytest.approx([1.0, 0.8, 0.6, 0.4])
    # hours from entry: add_to_cart A 1, B 24, E 6, G 2; checkout A 2, E 6.5, G 3; purchase A 3, E 8
    assert everyone["mean_hours_from_entry"].tolist() == pytest.approx([0.0, 8.25, 11.5 / 3, 5.5])
    assert everyone["median_hours_from_entry"].tolist() == pytest.approx([0.0, 4.0, 3.0, 5.5])


def test_channel_and_segment_breakdowns() -> None:
    table = run(*frames())
    assert rows(table, "channel", "web")["customers"].tolist() == [3, 2, 2, 2]  # A C E (E entered on web)
    app = rows(table, "channel", "app")
    assert app["customers"].tolist() == [2, 2, 1, 0]  # B G; G's return is no purchase
    assert app.loc["purchase", "step_conversion"] == 0.0
    assert pd.isna(app.loc["purchase", "mean_hours_from_entry"])
    assert rows(table, "rfm_segment", "champions")["customers"].tolist() == [2, 2, 2, 2]
    assert rows(table, "rfm_segment", "lost")["customers"].tolist() == [2, 2, 1, 0]
    prospect = rows(table, "rfm_segment", "no_purchase")
    assert prospect["customers"].tolist() == [1, 0, 0, 0]  # C: cart before the view does not count
    assert pd.isna(prospect.loc["checkout_start", "step_conversion"])  # 0 of 0


def test_custom_steps_and_no_segments() -> None:
    events, tx = frames()
    con = duckdb.connect()
    con.register("ev", events)
    con.register("tx", tx)
    table = funnel(con, FunnelConfig(steps=("add_to_cart", "purchase"), window_days=2, lookback_days=10),
                   AS_OF, "ev", "tx")
    everyone = rows(table, "all", "all")
    assert everyone["customers"].tolist() == [5, 3]  # A B C E G add to cart; A C E buy (B 49 h later: no)
    assert set(table["dimension_value"][table["dimension"] == "rfm_segment"]) == {"no_purchase"}


def test_no_events_means_no_entrants() -> None:
    _, tx = frames()
    table = run(contract.empty_table("events").to_pandas(), tx)
    assert table.empty


@pytest.mark.parametrize("block", [{"steps": ["product_view"]}, {"steps": ["a", "a"]}, {"window_days": 0},
                                   {"lookback_days": 1.5}, {"steps": ["x'; drop"]}, {"windows": 3}])
def test_bad_config_is_one_clear_error(block: dict) -> None:
    with pytest.raises(ValueError, match="scoring.funnel"):
        FunnelConfig.from_params(block)


@pytest.mark.parametrize("cfg, seg", [(CFG, "seg"), (FunnelConfig(("add_to_cart", "purchase"), 2, 10), None)])
def test_spark_runs_the_same_sql_to_the_same_table(spark, cfg: FunnelConfig, seg: str | None) -> None:
    """The DuckDB-dialect funnel SQL on a SparkSession gives DuckDB's table (temp tables become views there)."""
    import pyarrow as pa

    from features.engine import SparkRunner

    events, tx = frames()
    runner = SparkRunner(spark)
    for name, frame in (("sp_ev", events), ("sp_tx", tx), ("sp_seg", SEGMENTS)):
        runner.register(name, pa.Table.from_pandas(frame, preserve_index=False))
    try:
        got = funnel(spark, cfg, AS_OF, "sp_ev", "sp_tx", seg and "sp_seg")
    finally:
        for name in ("sp_ev", "sp_tx", "sp_seg"):
            runner.drop(name)
    con = duckdb.connect()
    for name, frame in (("ev", events), ("tx", tx), ("seg", SEGMENTS)):
        con.register(name, frame)
    want = funnel(con, cfg, AS_OF, "ev", "tx", seg)
    assert len(want) > 4 and not {t.name for t in spark.catalog.listTables()} & {"_funnel_rows", "_funnel_window"}
    pd.testing.assert_frame_equal(got, want, check_dtype=False, rtol=1e-12)


def test_an_exact_percentile_never_becomes_spark_approximate_quietly() -> None:
    """SQLGlot writes PERCENTILE_CONT ... WITHIN GROUP as Spark's PERCENTILE_APPROX: refused; MEDIAN is exact."""
    from features.engine import transpile

    with pytest.raises(ValueError, match="approximately on spark"):
        transpile("SELECT PERCENTILE_CONT(0.5) WITHIN GROUP (ORDER BY h) FROM t", "spark")
    assert transpile("SELECT MEDIAN(h) FROM t", "spark") == "SELECT MEDIAN(h) FROM t"
    assert "PERCENTILE_APPROX" in transpile("SELECT APPROX_QUANTILE(h, 0.5) FROM t", "spark")
