"""The score role built and written in customer-id ranges: same file as one sorted DuckDB write, ranges cut right."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import duckdb
import pyarrow.parquet as pq

from features.build import FeatureConfig, build_features, customer_range, drop_steps, population_columns
from features.timeline import Cutoff
from pipelines.features import range_bounds, sql_path, write_ranged
from tests.conftest import event_frame, tx_frame

CUT = Cutoff("score", date(2024, 3, 31), None)
# Eleven customers in the population (z99 buys after the cutoff); events for a few (NULLs before COALESCE).
TX = [(f"k{i:02d}", f"2024-0{1 + i % 3}-{10 + i}", float(5 * i), "web" if i % 2 else "app", "books")
      for i in range(1, 12)] + [("k03", "2024-03-30", 7.5), ("k07", "2024-02-02", -2.0), ("z99", "2024-04-02", 1.0)]
EVENTS = [("k02", "2024-03-29", "page_view"), ("k05", "2024-03-01", "add_to_cart"),
          ("k05", "2024-03-02", "support_ticket", 3.0), ("k11", "2024-01-05", "email_sent")]


def _connection() -> duckdb.DuckDBPyConnection:
    """A connection with the tiny transactions and events."""
    con = duckdb.connect()
    con.register("transactions", tx_frame(TX))
    con.register("events", event_frame(EVENTS))
    return con


def test_customer_range_cuts_every_customer_table_and_leaves_the_rest() -> None:
    con = duckdb.connect()
    con.execute("CREATE TABLE _orders AS SELECT * FROM (VALUES ('a', 1), ('b', 2), ('c', 3), ('d', 4)) "
                "t(customer_id, x)")
    con.execute("INSERT INTO _orders VALUES (NULL, 5)")  # ORDER BY puts it last: the last range holds it
    con.execute("CREATE TABLE _profile AS SELECT * FROM (VALUES ('b', 'n'), ('d', 's')) t(customer_id, region)")
    con.execute("CREATE TABLE _segments AS SELECT * FROM (VALUES ('zz', 'gold')) t(customer_id, slug)")  # not cut
    query = ("SELECT o.customer_id, o.x, p.region, s.slug FROM _orders AS o LEFT JOIN _profile AS p USING "
             "(customer_id) CROSS JOIN _segments AS s")
    assert customer_range(query, None, None) == query
    rows = sorted(con.execute(customer_range(query, "b", "d")).fetchall())
    assert rows == [("b", 2, "n", "gold"), ("c", 3, None, "gold")]
    rows = con.execute(customer_range(query, "c", None) + " ORDER BY 1").fetchall()
    assert rows == [("c", 3, None, "gold"), ("d", 4, "s", "gold"), (None, 5, None, "gold")]
    assert sorted(r[0] for r in con.execute(customer_range(query, None, "b'c")).fetchall()) == ["a", "b"]  # quoted


def test_range_bounds_split_the_customers_in_order() -> None:
    con = _connection()
    assert range_bounds(con, 100) == [None, None]  # one range: no cut
    bounds = range_bounds(con, 4)  # 12 customers with transactions: 3 ranges
    inner = bounds[1:-1]
    assert bounds[0] is None and bounds[-1] is None and inner == sorted(set(inner)) and len(inner) == 2
    assert all(b in [f"k{i:02d}" for i in range(1, 12)] + ["z99"] for b in inner)


def test_population_columns_are_the_ones_scores_sql_ranks_on() -> None:
    assert population_columns() == {"_orders": ("customer_id", "last_purchase_date", "revenue_net_total"),
                                    "_rfm": ("customer_id", "frequency")}


def test_ranged_build_equals_one_sorted_duckdb_write(tmp_path: Path) -> None:
    con = _connection()
    cfg = FeatureConfig()
    one = tmp_path / "one.parquet"
    con.execute(f"COPY ({build_features(con, CUT, cfg).sql_query()} ORDER BY customer_id) TO {sql_path(one)} "
                "(FORMAT parquet)")
    drop_steps(con)
    for per_range in (3, 100):  # 3: four ranges, each built from its own customers' rows; ranks still global
        ranged = tmp_path / f"ranged-{per_range}.parquet"
        write_ranged(con, CUT, cfg, ranged, per_range=per_range)
        expected, got = pq.read_table(one), pq.read_table(ranged)
        assert got.schema.equals(expected.schema)  # names, types and NOT NULL columns as DuckDB writes them
        assert got.equals(expected), per_range
        assert got.num_rows == 11 and got["customer_id"].to_pylist() == sorted(got["customer_id"].to_pylist())
        assert set(got["rfm_r"].to_pylist()) == {1, 2, 3, 4, 5}  # ranked over all 11, not within a range
        assert con.execute("SELECT COUNT(*) FROM transactions").fetchall() == [(len(TX),)]  # whole views back
    assert sorted(p.name for p in tmp_path.iterdir()) == ["one.parquet", "ranged-100.parquet", "ranged-3.parquet"]
