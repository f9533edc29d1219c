"""The streaming ingest path (sources already in contract order) and the byte copy of a clean Parquet source."""

from __future__ import annotations

import copy
from pathlib import Path

import duckdb
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from features import contract, ingest_stream
from features.ingest import TableSpec, check_table, map_columns
from pipelines import ingest, paths, sources
from tests.conftest import compose_params

# Sorted by (customer_id, ts). Row 1's quantity is unreadable (nulled), row 2 repeats row 1 (ties with it on
# the sort keys), row 3 ties on the sort keys only, rows 4 and 6 have an amount that is not a number (customer c
# has no usable row), row 7 has no customer.
SORTED_TX = ("customer_id,ts,amount,order_id,quantity\n"
             "a,2024-01-01,1,o1,x\n"
             "a,2024-01-01,1,o1,x\n"
             "a,2024-01-01,2,o2,1\n"
             "a,2024-01-02,abc,o3,1\n"
             "b,2024-01-01,3,o4,1\n"
             "c,2024-01-01,zz,o6,1\n"
             ",2024-01-03,1,o5,1\n")


@pytest.fixture(scope="module")
def files_params() -> dict:
    """conf/ composed with data=files, no rejection limit."""
    return compose_params(["data=files", "data.max_reject_share=null"])


def _checked(con: duckdb.DuckDBPyConnection, path: Path, key: tuple[str, ...] = ()) -> tuple[str, list, list, dict]:
    """check_table on a transactions CSV: path taken, kept rows, rejected (reason, row), stats."""
    relation, malformed = sources.read_csv(con, path, path.name, "transactions", None, "utf-8")
    spec = TableSpec(table="transactions", file=path.name, timezone="UTC", duplicate_key=key,
                     columns=map_columns("transactions", [c for c in relation.columns if c != "__ingest_row"],
                                         None, path.name))
    done = check_table(con, relation, spec, None, malformed)
    kept = done.kept.project("customer_id, epoch(ts), amount, order_id, quantity").fetchall()
    rejected = [(r[-4], r[-2]) for r in done.rejected.fetchall()]
    return done.path, kept, rejected, done.stats


def test_streaming_and_staged_paths_agree_on_a_sorted_source(tmp_path: Path) -> None:
    path = tmp_path / "tx.csv"
    path.write_text(SORTED_TX, encoding="utf-8")
    with sources.connect("1GB") as con:  # preserve_insertion_order on, in_clause off: streamed
        streamed = _checked(con, path)
    con = duckdb.connect()  # in_clause optimizer on: the general (staged) path
    try:
        staged = _checked(con, path)
    finally:
        con.close()
    assert (streamed[0], staged[0]) == ("streamed", "staged")
    assert streamed[1:] == staged[1:]
    _, kept, rejected, stats = streamed
    assert [(r[0], r[2], r[4]) for r in kept] == [("a", 1.0, None), ("a", 2.0, 1.0), ("b", 3.0, 1.0)]
    assert rejected == [("duplicate_row", 2), ("non_numeric_amount", 4), ("non_numeric_amount", 6),
                        ("null_customer_id", 7)]
    assert (stats["rows_read"], stats["rows_kept"], stats["customers"]) == (7, 3, 2)
    assert {r: n for r, n in stats["rejected_by_reason"].items() if n} == {
        "duplicate_row": 1, "non_numeric_amount": 2, "null_customer_id": 1}
    assert stats["nulled_by_column"] == {"quantity": 1}  # the repeat's unreadable quantity is not counted
    assert (stats["min_ts"], stats["max_ts"]) == ("2024-01-01T00:00:00Z", "2024-01-01T00:00:00Z")


@pytest.mark.parametrize("text", [
    "customer_id,ts,amount\na,bad,1\na,2024-01-01,1\na,2024-01-02,1\nb,2024-01-01,1\n",  # no time first
    "customer_id,ts,amount\na,2024-01-01,1\nb,2024-01-01,1\nb,2024-01-01,1\n,2024-01-01,1\n",  # no customer last
    "customer_id,ts,amount\na,2024-01-01,1\na,2024-01-02,x\na,2024-01-03,1\nb,2024-01-01,x\n",  # split customer
])
def test_customers_and_counts_of_the_stream_match_the_staged_path(tmp_path: Path, text: str) -> None:
    path = tmp_path / "tx.csv"
    path.write_text(text, encoding="utf-8")
    with sources.connect("1GB") as con:
        streamed = _checked(con, path)
    con = duckdb.connect()
    try:
        staged = _checked(con, path)
    finally:
        con.close()
    assert (streamed[0], staged[0]) == ("streamed", "staged") and streamed[1:] == staged[1:]
    assert streamed[3]["customers"] == (1 if "b,2024-01-01,x" in text else 2)


def test_a_row_without_sort_keys_amid_sorted_rows_takes_the_staged_path(tmp_path: Path) -> None:
    # b then (no customer) then a: b > a is only seen across the unusable row, so the stream cannot vouch
    path = tmp_path / "tx.csv"
    path.write_text("customer_id,ts,amount\nb,2024-01-01,1\n,2024-01-01,1\na,2024-01-02,1\n", encoding="utf-8")
    with sources.connect("1GB") as con:
        taken, kept, rejected, _ = _checked(con, path)
    assert taken == "staged" and [r[0] for r in kept] == ["a", "b"] and rejected == [("null_customer_id", 2)]


def test_a_duplicate_key_without_the_sort_keys_streams_only_without_repeats(tmp_path: Path) -> None:
    # duplicate key order_id: a repeat may be anywhere, so the stream only vouches for a source with none
    path = tmp_path / "tx.csv"
    with sources.connect("1GB") as con:
        path.write_text("customer_id,ts,amount,order_id\na,2024-01-01,1,o1\nb,2024-01-01,2,o2\n", encoding="utf-8")
        assert _checked(con, path, ("order_id",))[0] == "streamed"
        path.write_text("customer_id,ts,amount,order_id\na,2024-01-01,1,o1\nb,2024-01-01,2,o1\n", encoding="utf-8")
        taken, kept, rejected, stats = _checked(con, path, ("order_id",))
    assert (taken, [r[0] for r in kept], rejected) == ("staged", ["a"], [("duplicate_row", 2)])
    assert stats["customers"] == 1


def _events(customers: list[str], types: list[str], seconds: list[int]) -> pa.Table:
    """An events table in the contract schema."""
    n = len(customers)
    return pa.table({"customer_id": customers,
                     "ts": pa.array([1_704_067_200_000_000 + s * 1_000_000 for s in seconds],
                                    pa.timestamp("us", tz="UTC")),
                     "event_type": types, "channel": ["web"] * n, "session_id": [f"s{i}" for i in range(n)],
                     "value": [1.0] * n}, schema=contract.SCHEMAS["events"])


@pytest.mark.parametrize(("case", "table", "copied"), [
    ("clean", _events(["c1", "c1", "c2"], ["page_view"] * 3, [0, 1, 0]), True),
    ("untrimmed", _events(["c1", "c1", "c2 "], ["page_view"] * 3, [0, 1, 0]), False),
    ("upper case", _events(["c1", "c1", "c2"], ["page_view", "PAGE_VIEW", "page_view"], [0, 1, 0]), False),
    ("out of order", _events(["c1", "c1", "c2"], ["page_view"] * 3, [1, 0, 0]), False),
])
def test_only_a_clean_contract_parquet_source_is_copied(tmp_path: Path, files_params: dict, case: str,
                                                        table: pa.Table, copied: bool) -> None:
    pq.write_table(table, tmp_path / "ev.parquet")
    (tmp_path / "tx.csv").write_text("customer_id,ts,amount\nc1,2024-01-01,1\n", encoding="utf-8")
    params = copy.deepcopy(files_params)
    params["data"].update(transactions="tx.csv", events="ev.parquet")
    done = ingest.run(params, tmp_path)
    target = paths.rebase(paths.EVENTS, tmp_path)
    assert done["events"]["path"] == ("copied" if copied else "streamed" if case != "out of order" else "staged")
    assert (target.read_bytes() == (tmp_path / "ev.parquet").read_bytes()) is copied
    kept = pd.read_parquet(target)
    assert kept["customer_id"].tolist() == ["c1", "c1", "c2"] and set(kept["event_type"]) == {"page_view"}
    assert (kept["ts"] - pd.Timestamp("2024-01-01", tz="UTC")).dt.total_seconds().tolist() == [0, 1, 0]
    if copied:
        assert done["events"]["fingerprint"] == done["events"]["input_sha256"]


def test_a_clean_source_privacy_filters_is_written_not_copied(tmp_path: Path, files_params: dict) -> None:
    n = 3
    pq.write_table(pa.table({"customer_id": ["c1", "c2", "c2"],
                             "ts": pa.array([1_704_067_200_000_000 + s * 1_000_000 for s in range(n)],
                                            pa.timestamp("us", tz="UTC")),
                             "amount": [1.0, 2.0, 3.0], "order_id": ["o1", "o2", "o3"], "quantity": [1.0] * n,
                             "channel": ["web"] * n, "category": ["x"] * n}, schema=contract.SCHEMAS["transactions"]),
                   tmp_path / "tx.parquet")
    (tmp_path / "cust.csv").write_text("customer_id,consent\nc1,yes\nc2,no\n", encoding="utf-8")
    params = copy.deepcopy(files_params)
    params["data"].update(transactions="tx.parquet", customers="cust.csv", consent_column="consent")
    done = ingest.run(params, tmp_path)
    assert done["transactions"]["path"] == "streamed"  # c2 did not consent: its rows are left out
    assert pd.read_parquet(paths.rebase(paths.TRANSACTIONS, tmp_path))["customer_id"].tolist() == ["c1"]


def _ranged(con: duckdb.DuckDBPyConnection, path: Path, groups: bool) -> tuple[str, list, list, dict]:
    """check_table on an events Parquet file, its row groups checked as separate ranges or not."""
    relation = sources.read_parquet(con, path, path.name)
    spec = TableSpec(table="events", file=path.name, columns={n: n for n in contract.SCHEMAS["events"].names},
                     row_groups=sources.row_group_starts(con, path) if groups else ())
    done = check_table(con, relation, spec)
    kept = done.kept.project("customer_id, epoch(ts), event_type, session_id").fetchall()
    return done.path, kept, [(r[-4], r[-2]) for r in done.rejected.fetchall()], done.stats


@pytest.mark.parametrize(("case", "customers", "seconds", "taken"), [
    # row groups of two rows: (1, 2) (3, 4) (5, 6); the boundaries lie between rows 2|3 and 4|5
    ("customer across a boundary", ["a", "b", "b", "c", "c", "c"], [0, 0, 1, 0, 1, 2], "streamed"),
    ("repeat across a boundary", ["a", "b", "b", "c", "d", "e"], [0, 0, 0, 0, 0, 0], "streamed"),
    ("tie at every boundary", ["a", "a", "a", "a", "a", "a"], [0, 1, 1, 2, 2, 3], "streamed"),
    ("inverted at a boundary", ["a", "c", "b", "c", "d", "e"], [0, 0, 0, 0, 0, 0], "staged"),
    ("time inverted at a boundary", ["a", "b", "b", "b", "b", "c"], [0, 0, 1, 2, 1, 0], "staged"),
    ("no customer before a boundary", ["a", None, "b", "c", "d", "e"], [0, 0, 0, 0, 0, 0], "staged"),
    ("no customer after the last boundary", ["a", "b", "c", "d", None, None], [0, 0, 0, 0, 0, 0], "streamed"),
])
def test_row_groups_checked_as_ranges_agree_with_one_pass_and_the_staged_path(
        tmp_path: Path, case: str, customers: list, seconds: list, taken: str) -> None:
    table = _events(customers, ["page_view"] * 6, seconds)
    if case == "repeat across a boundary":  # rows 2 and 3 the same event: row 3 is the repeat
        table = table.set_column(4, "session_id", pa.array(["s0", "s", "s", "s3", "s4", "s5"]))
    path = tmp_path / "ev.parquet"
    pq.write_table(table, path, row_group_size=2)
    with sources.connect("1GB") as con:
        con.execute("SET threads = 3")  # three ranges
        assert sources.row_group_starts(con, path) == (1, 3, 5)
        ranged, single = _ranged(con, path, True), _ranged(con, path, False)
    con = duckdb.connect()  # in_clause optimizer on: the general (staged) path
    try:
        staged = _ranged(con, path, True)
    finally:
        con.close()
    assert (ranged[0], single[0], staged[0]) == (taken, taken, "staged")
    assert ranged[1:] == single[1:] == staged[1:]
    expected = {"customer across a boundary": 3, "repeat across a boundary": 5, "tie at every boundary": 1}
    assert ranged[3]["customers"] == expected.get(case, len({c for c in customers if c}))
    if case == "repeat across a boundary":
        assert ranged[2] == [("duplicate_row", 3)] and ranged[3]["rows_kept"] == 5


def test_clusters_split_row_numbers_at_the_widest_gaps() -> None:
    assert ingest_stream.clusters([5, 6, 100, 101, 3000, 3001, 50_000], 3) == [(5, 101), (3000, 3001),
                                                                             (50_000, 50_000)]
    assert ingest_stream.clusters([3, 1, 2], 8) == [(1, 1), (2, 2), (3, 3)]
    assert ingest_stream.runs([7, 3, 4, 5, 9, 4]) == [(3, 5), (7, 7), (9, 9)]
