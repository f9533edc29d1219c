"""Feature means are the exact DECIMAL sum over the count on both engines (Spark's AVG of a DECIMAL rounds to 13
places: 4/3 would come out as 1.3333333333333, and a LightGBM split between the two flips a customer's score)."""

from __future__ import annotations

from datetime import date, datetime

import duckdb
import pyarrow as pa

from features.build import FeatureConfig, step_queries
from features.engine import DuckRunner, SparkRunner
from features.timeline import Cutoff

CUT = Cutoff("score", date(2024, 1, 31), None)
TX = pa.table({"customer_id": ["a", "a", "a", "a"],
               "ts": [datetime(2024, 1, d) for d in (2, 5, 9, 12)],
               "amount": [1.0, 1.0, 2.0, -0.5]})  # purchases 1, 1, 2 (mean 4/3) and one return
EV = pa.table({"customer_id": ["a", "a", "a"], "ts": [datetime(2024, 1, d) for d in (3, 4, 6)],
               "event_type": ["review", "review", "review"], "value": [4.0, 4.0, 5.0]})  # mean 13/3


def means(runner) -> tuple[float, float]:
    """avg_order_value of _orders and review_rating_mean of _events for customer a."""
    queries = step_queries(runner, CUT, FeatureConfig())
    [(order,)] = runner.rows(f"SELECT avg_order_value FROM ({queries['_orders']}) AS o")
    [(review,)] = runner.rows(f"SELECT review_rating_mean FROM ({queries['_events']}) AS e")
    return order, review


def test_means_exact_on_duckdb() -> None:
    con = duckdb.connect()
    con.register("transactions", TX)
    con.register("events", EV)
    assert means(DuckRunner(con)) == (4 / 3, 13 / 3)


def test_means_exact_on_spark(spark) -> None:
    for name, table in (("transactions", TX), ("events", EV)):
        spark.createDataFrame(table.to_pandas()).createOrReplaceTempView(name)
    try:
        assert means(SparkRunner(spark)) == (4 / 3, 13 / 3)
    finally:
        for name in ("transactions", "events"):
            spark.catalog.dropTempView(name)
