"""ScoreSinks: batch history in the warehouse, Parquet types, all-or-nothing commits, row counts, kill safety."""

from __future__ import annotations

import datetime as dt
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import duckdb
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from models.scoring.schema import Column, ScoreLayout
from models.scoring.summary import segment_summary
from pipelines import output_schema
from pipelines.config import load_params
from pipelines.sinks import RowCountMismatch, ScoreSinks, migrate
from pipelines.sinks.evolve import SchemaMismatch
from pipelines.sinks.parquet import ParquetSink
from tests.sink_writer import FIRST_AS_OF, LAYOUT, SECOND_AS_OF, scores_frame

ROOT = Path(__file__).resolve().parents[2]
OUTPUT_NAMES = {"customer_scores.csv", "customer_scores.parquet", "warehouse.duckdb"}


def run_batch(outputs: Path, frame: pd.DataFrame, as_of: dt.date = FIRST_AS_OF, sql_url: str | None = None,
              layout: ScoreLayout = LAYOUT) -> dict:
    """Write one frame as a whole batch; the finish() report."""
    with ScoreSinks(outputs, layout, as_of, sql_url) as sinks:
        sinks.write(frame)
        return sinks.finish(segment_summary(frame, layout))


def warehouse_counts(outputs: Path, table: str = "customer_scores") -> dict[str, int]:
    """Rows per as_of in a warehouse table."""
    with duckdb.connect(str(outputs / "warehouse.duckdb"), read_only=True) as con:
        rows = con.execute(f"SELECT as_of, count(*) FROM {table} GROUP BY as_of").fetchall()
    return {as_of.isoformat(): n for as_of, n in rows}


def snapshot(outputs: Path) -> dict[str, object]:
    """What a reader sees: CSV bytes, Parquet rows, warehouse rows per as_of."""
    return {"csv": (outputs / "customer_scores.csv").read_bytes(),
            "parquet": pq.read_table(outputs / "customer_scores.parquet").to_pandas(),
            "warehouse": warehouse_counts(outputs), "summary": warehouse_counts(outputs, "segment_summary")}


def assert_same(before: dict, after: dict) -> None:
    """Outputs unchanged."""
    assert after["csv"] == before["csv"]
    pd.testing.assert_frame_equal(after["parquet"], before["parquet"])
    assert (after["warehouse"], after["summary"]) == (before["warehouse"], before["summary"])


def leftovers(outputs: Path) -> list[str]:
    """Files in the outputs folder other than the outputs themselves (DuckDB's WAL aside)."""
    return sorted(p.name for p in outputs.iterdir() if p.name not in OUTPUT_NAMES | {"warehouse.duckdb.wal"})


def test_report_counts_every_sink(tmp_path):
    report = run_batch(tmp_path, scores_frame(4))
    assert report["rows"] == 4
    assert {name: r["rows"] for name, r in report["sinks"].items()} == {"csv": 4, "parquet": 4, "duckdb": 4}
    assert report["sinks"]["duckdb"]["summary_rows"] == report["summary_rows"] == 2
    assert leftovers(tmp_path) == []


def test_same_as_of_replaces_its_batch_and_another_as_of_adds_one(tmp_path):
    run_batch(tmp_path, scores_frame(3))
    run_batch(tmp_path, scores_frame(2, start=10))
    assert warehouse_counts(tmp_path) == {"2024-01-31": 2}
    run_batch(tmp_path, scores_frame(4, SECOND_AS_OF), SECOND_AS_OF)
    assert warehouse_counts(tmp_path) == {"2024-01-31": 2, "2024-02-29": 4}
    assert warehouse_counts(tmp_path, "segment_summary") == {"2024-01-31": 2, "2024-02-29": 2}
    with duckdb.connect(str(tmp_path / "warehouse.duckdb"), read_only=True) as con:
        query = "SELECT customer_id FROM customer_scores WHERE as_of = ? ORDER BY 1"
        ids = con.execute(query, [FIRST_AS_OF]).fetchall()
    assert ids == [("c0000010",), ("c0000011",)]


def test_warehouse_types_are_strict(tmp_path):
    frame = scores_frame(2)
    frame["clv"] = [3.0, 1.2567]
    run_batch(tmp_path, frame)
    with duckdb.connect(str(tmp_path / "warehouse.duckdb"), read_only=True) as con:
        info = {r[1]: (r[2], r[3]) for r in con.execute("PRAGMA table_info('customer_scores')").fetchall()}
        value = con.execute("SELECT clv FROM customer_scores WHERE customer_id = 'c0000001'").fetchone()[0]
    assert info["as_of"] == ("DATE", True)
    assert info["churn_probability"] == ("DECIMAL(18,4)", True)
    assert info["clv_decile"] == ("INTEGER", False)  # spend columns are nullable (null only without amounts)
    assert info["clv"] == ("DECIMAL(18,2)", False) and info["p_purchase"] == ("DECIMAL(18,4)", True)
    assert info["scored_at"] == ("TIMESTAMP", True)
    assert str(value) == "1.26"  # rounded to 2 places


def test_parquet_types_and_values(tmp_path):
    frame = scores_frame(3)
    run_batch(tmp_path, frame)
    table = pq.read_table(tmp_path / "customer_scores.parquet")
    schema = table.schema
    assert schema.field("as_of").type == pa.date32()
    assert "scored_at" not in schema.names  # wall-clock: SQL tables only, the files are reproducible
    assert schema.field("clv_decile").type == pa.int32()
    assert schema.field("churn_probability").type == pa.float64()
    assert schema.field("customer_id").type == pa.string()
    assert table.column_names == [c for c in frame.columns if c != "scored_at"]
    back = table.to_pandas()
    assert list(back["as_of"]) == [FIRST_AS_OF] * 3
    assert list(back["clv"]) == list(frame["clv"])
    assert list(back["horizon_days"]) == [181] * 3 and list(back["clv_interval"]) == [0.9] * 3


def test_row_count_mismatch_raises_and_commits_nothing(tmp_path, monkeypatch):
    run_batch(tmp_path, scores_frame(3))
    before = snapshot(tmp_path)
    original = ParquetSink.write
    monkeypatch.setattr(ParquetSink, "write", lambda self, table: original(self, table.slice(1)))
    with pytest.raises(RowCountMismatch, match="parquet: 3 customer_scores rows"):
        run_batch(tmp_path, scores_frame(4, start=20))
    assert_same(before, snapshot(tmp_path))
    assert leftovers(tmp_path) == []


def test_error_inside_the_block_rolls_everything_back(tmp_path):
    run_batch(tmp_path, scores_frame(3))
    before = snapshot(tmp_path)
    with pytest.raises(KeyboardInterrupt), ScoreSinks(tmp_path, LAYOUT, FIRST_AS_OF) as sinks:
        sinks.write(scores_frame(5, start=100))
        raise KeyboardInterrupt
    assert_same(before, snapshot(tmp_path))
    assert leftovers(tmp_path) == []


def test_leaving_without_finish_commits_nothing(tmp_path):
    run_batch(tmp_path, scores_frame(3))
    before = snapshot(tmp_path)
    with ScoreSinks(tmp_path, LAYOUT, FIRST_AS_OF) as sinks:
        sinks.write(scores_frame(5, start=100))
    assert_same(before, snapshot(tmp_path))
    assert leftovers(tmp_path) == []


def test_duplicate_customer_across_chunks_is_rejected(tmp_path):
    frame = scores_frame(3)
    with ScoreSinks(tmp_path, LAYOUT, FIRST_AS_OF) as sinks:
        sinks.write(frame)
        sinks.write(frame.iloc[[0]])
        with pytest.raises(ValueError, match="c0000000.*more than once"):
            sinks.finish(segment_summary(pd.concat([frame, frame.iloc[[0]]]), LAYOUT))
    assert not (tmp_path / "customer_scores.csv").exists()


def test_chunk_of_another_as_of_is_rejected(tmp_path):
    with ScoreSinks(tmp_path, LAYOUT, SECOND_AS_OF) as sinks, pytest.raises(ValueError, match="as_of.*2024-02-29"):
        sinks.write(scores_frame(2, FIRST_AS_OF))


def test_summary_must_add_up_to_the_rows_written(tmp_path):
    frame = scores_frame(4)
    with ScoreSinks(tmp_path, LAYOUT, FIRST_AS_OF) as sinks:
        sinks.write(frame)
        with pytest.raises(ValueError, match="customers add up to 2, 4 rows"):
            sinks.finish(segment_summary(frame.iloc[:2], LAYOUT))


def test_integer_out_of_range_names_the_column(tmp_path):
    frame = scores_frame(2)
    frame["rfm_r"] = [1, 2**40]
    with ScoreSinks(tmp_path, LAYOUT, FIRST_AS_OF) as sinks, pytest.raises(ValueError, match="rfm_r"):
        sinks.write(frame)


def test_existing_table_with_other_columns_is_an_error(tmp_path):
    with duckdb.connect(str(tmp_path / "warehouse.duckdb")) as con:
        con.execute("CREATE TABLE customer_scores (customer_id TEXT, as_of DATE, clv_6m DOUBLE)")
    with pytest.raises(SchemaMismatch, match="table customer_scores .*clv_6m are not in this release") as err:
        ScoreSinks(tmp_path, LAYOUT, FIRST_AS_OF)
    assert "\n" not in str(err.value) and "python -m pipelines.sinks.migrate" in str(err.value)
    assert leftovers(tmp_path) == []


def test_batches_with_different_horizons_share_the_tables(tmp_path):
    long, short = LAYOUT, replace(LAYOUT, horizon_days=90)
    run_batch(tmp_path, scores_frame(3, layout=long), layout=long)
    run_batch(tmp_path, scores_frame(2, start=10, layout=short), layout=short)
    run_batch(tmp_path, scores_frame(4, start=20, layout=short), layout=short)  # same key: replaces its batch
    with duckdb.connect(str(tmp_path / "warehouse.duckdb"), read_only=True) as con:
        rows = con.execute("SELECT horizon_days, clv_months, count(*), min(customer_id) FROM customer_scores "
                           "GROUP BY ALL ORDER BY 1").fetchall()
        summary = con.execute("SELECT horizon_days, sum(customers) FROM segment_summary GROUP BY 1 "
                              "ORDER BY 1").fetchall()
    assert rows == [(90, 12, 4, "c0000020"), (181, 12, 3, "c0000000")]
    assert summary == [(90, 4), (181, 3)]
    assert pq.read_table(tmp_path / "customer_scores.parquet").column("horizon_days").to_pylist() == [90] * 4


def test_chunk_with_another_horizon_than_the_batch_is_rejected(tmp_path):
    frame = scores_frame(2, layout=replace(LAYOUT, horizon_days=90))
    with ScoreSinks(tmp_path, LAYOUT, FIRST_AS_OF) as sinks:
        with pytest.raises(ValueError, match="'horizon_days': 90 is not"):
            sinks.write(frame)


def test_warehouse_of_the_previous_release_fails_in_one_line_and_migrate_moves_it_aside(tmp_path):
    old = "customer_id TEXT NOT NULL, as_of DATE NOT NULL, churn_probability DECIMAL(18,4) NOT NULL, " \
          "p_purchase_181d DECIMAL(18,4) NOT NULL, clv_12m DECIMAL(18,2)"
    with duckdb.connect(str(tmp_path / "warehouse.duckdb")) as con:
        con.execute(f"CREATE TABLE customer_scores ({old})")
        con.execute("INSERT INTO customer_scores VALUES ('a', DATE '2024-01-31', 0.5, 0.4, 3.0)")
    with pytest.raises(SchemaMismatch) as err:
        run_batch(tmp_path, scores_frame(2))
    message = str(err.value)
    assert "\n" not in message and "customer_scores" in message and "p_purchase_181d" in message
    assert f"python -m pipelines.sinks.migrate {tmp_path / 'warehouse.duckdb'}" in message
    assert migrate.main([str(tmp_path / "warehouse.duckdb")]) == 0
    run_batch(tmp_path, scores_frame(2))
    with duckdb.connect(str(tmp_path / "warehouse.duckdb"), read_only=True) as con:
        assert con.execute("SELECT count(*) FROM customer_scores_legacy_1").fetchone() == (1,)
        assert con.execute("SELECT count(*) FROM customer_scores").fetchone() == (2,)
    assert migrate.migrate(str(tmp_path / "warehouse.duckdb")) == []  # nothing left to move


def test_new_nullable_columns_are_added_to_an_existing_table(tmp_path):
    run_batch(tmp_path, scores_frame(3))
    with duckdb.connect(str(tmp_path / "warehouse.duckdb")) as con:  # a table of a release without these two
        con.execute("ALTER TABLE customer_scores DROP COLUMN clv_low")
        con.execute("ALTER TABLE customer_scores DROP COLUMN reason_3")
    run_batch(tmp_path, scores_frame(2, SECOND_AS_OF, start=5), SECOND_AS_OF)
    with duckdb.connect(str(tmp_path / "warehouse.duckdb"), read_only=True) as con:
        got = con.execute("SELECT as_of, count(clv_low), count(reason_3), sum(clv) FROM customer_scores "
                          "GROUP BY 1 ORDER BY 1").fetchall()
    assert [(a.isoformat(), lows, reasons) for a, lows, reasons, _ in got] == [("2024-01-31", 0, 0),
                                                                              ("2024-02-29", 2, 2)]
    assert float(got[1][3]) == pytest.approx(float(scores_frame(2, SECOND_AS_OF, start=5)["clv"].sum()), abs=0.011)


def test_fewer_reason_codes_leave_the_extra_reason_columns_null(tmp_path):
    run_batch(tmp_path, scores_frame(3))
    fewer = replace(LAYOUT, reason_codes=2)
    run_batch(tmp_path, scores_frame(2, SECOND_AS_OF, layout=fewer), SECOND_AS_OF, layout=fewer)
    with duckdb.connect(str(tmp_path / "warehouse.duckdb"), read_only=True) as con:
        got = con.execute("SELECT as_of, count(*), count(reason_3) FROM customer_scores "
                          "GROUP BY 1 ORDER BY 1").fetchall()
    assert [(n, reasons) for _, n, reasons in got] == [(3, 3), (2, 0)]


def test_changed_type_is_an_error(tmp_path):
    run_batch(tmp_path, scores_frame(3))
    with duckdb.connect(str(tmp_path / "warehouse.duckdb")) as con:
        con.execute("ALTER TABLE segment_summary ALTER COLUMN mean_clv TYPE DECIMAL(18,4)")
    with pytest.raises(SchemaMismatch, match=r"table segment_summary .*mean_clv is DECIMAL\(18,4\)"):
        run_batch(tmp_path, scores_frame(3))


def test_stale_temp_files_are_removed_by_the_next_run(tmp_path):
    stale = [tmp_path / ".customer_scores.csv.x1y2.tmp", tmp_path / ".customer_scores.parquet.abc.tmp"]
    for path in stale:
        path.write_text("half-written")
    run_batch(tmp_path, scores_frame(2))
    assert leftovers(tmp_path) == []


def test_sql_url_gets_both_tables_with_batch_semantics(tmp_path):
    url = f"sqlite:///{tmp_path / 'scores.sqlite'}"
    run_batch(tmp_path, scores_frame(3), sql_url=url)
    report = run_batch(tmp_path, scores_frame(2, start=5), sql_url=url)
    run_batch(tmp_path, scores_frame(4, SECOND_AS_OF), SECOND_AS_OF, sql_url=url)
    assert report["sinks"]["sql"] == {"url": url, "rows": 2, "summary_rows": 2}
    import sqlite3

    with sqlite3.connect(tmp_path / "scores.sqlite") as con:
        counts = dict(con.execute("SELECT as_of, count(*) FROM customer_scores GROUP BY as_of").fetchall())
        summary = dict(con.execute("SELECT as_of, count(*) FROM segment_summary GROUP BY as_of").fetchall())
    assert counts == {"2024-01-31": 2, "2024-02-29": 4}
    assert summary == {"2024-01-31": 2, "2024-02-29": 2}
    short = replace(LAYOUT, horizon_days=90, reason_codes=2)  # another horizon adds a batch; reason_3 stays NULL
    run_batch(tmp_path, scores_frame(3, layout=short), sql_url=url, layout=short)
    with sqlite3.connect(tmp_path / "scores.sqlite") as con:
        got = con.execute("SELECT as_of, horizon_days, count(*), count(reason_3) FROM customer_scores "
                          "GROUP BY 1, 2 ORDER BY 1, 2").fetchall()
    assert got == [("2024-01-31", 90, 3, 0), ("2024-01-31", 181, 2, 2), ("2024-02-29", 181, 4, 4)]


def test_output_schema_doc_is_generated_from_the_code():
    layout = output_schema.layout_from_params(load_params([]))
    committed = (ROOT / "docs" / "output_schema.md").read_text(encoding="utf-8")
    assert committed == output_schema.output_schema(layout), "run `python -m pipelines.output_schema`"


@pytest.mark.slow
def test_kill_mid_batch_leaves_the_previous_batch(tmp_path):
    reference = tmp_path / "reference"
    run_batch(reference, scores_frame(50))  # what the writer's first batch must leave
    before = snapshot(reference)
    outputs = tmp_path / "outputs"
    script = ROOT / "tests" / "sink_writer.py"
    proc = subprocess.Popen([sys.executable, str(script), str(outputs), "20000"], stdout=subprocess.PIPE, text=True)
    try:
        lines = []
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and "chunk 3" not in lines:
            line = proc.stdout.readline()
            if not line:
                break
            lines.append(line.strip())
        assert "chunk 3" in lines, f"writer output: {lines}"
        assert list(outputs.glob(".customer_scores.csv.*.tmp")), "no temporary CSV while writing"
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert_same(before, snapshot(outputs))
    assert warehouse_counts(outputs) == {"2024-01-31": 50}
    assert all(name.startswith(".") and name.endswith(".tmp") for name in leftovers(outputs))
    run_batch(outputs, scores_frame(7, SECOND_AS_OF), SECOND_AS_OF)
    assert leftovers(outputs) == []
    assert warehouse_counts(outputs) == {"2024-01-31": 50, "2024-02-29": 7}


def test_empty_batch_writes_header_only_csv_and_empty_tables(tmp_path):
    run_batch(tmp_path, scores_frame(3))
    with ScoreSinks(tmp_path, LAYOUT, FIRST_AS_OF) as sinks:
        report = sinks.finish(segment_summary(scores_frame(0), LAYOUT))
    assert report["rows"] == 0
    assert (tmp_path / "customer_scores.csv").read_text(encoding="utf-8").count("\n") == 1
    assert pq.read_metadata(tmp_path / "customer_scores.parquet").num_rows == 0
    assert warehouse_counts(tmp_path) == {}


def test_extra_tables_are_written_with_the_batch_and_keyed_like_it(tmp_path):
    cols = [Column("as_of", "date", "-", "batch"), Column("horizon_days", "integer", "days", "batch"),
            Column("clv_months", "integer", "months", "batch"), Column("step", "text", "-", "step"),
            Column("customers", "integer", "-", "count")]
    frame = pd.DataFrame({"as_of": [FIRST_AS_OF] * 2, "horizon_days": [181] * 2, "clv_months": [12] * 2,
                          "step": ["view", "buy"], "customers": [5, 2]})
    for _ in range(2):  # the same batch twice: replaced, not duplicated
        with ScoreSinks(tmp_path, LAYOUT, FIRST_AS_OF, extra_tables={"funnel": cols}) as sinks:
            sinks.write(scores_frame(3))
            sinks.finish(segment_summary(scores_frame(3), LAYOUT), extra={"funnel": frame})
    with duckdb.connect(str(tmp_path / "warehouse.duckdb"), read_only=True) as con:
        assert con.execute("SELECT step, customers FROM funnel ORDER BY 2").fetchall() == [("buy", 2), ("view", 5)]
    with ScoreSinks(tmp_path, LAYOUT, FIRST_AS_OF, extra_tables={"funnel": cols}) as sinks:
        sinks.write(scores_frame(3))
        with pytest.raises(ValueError, match="funnel column 'horizon_days'"):
            sinks.finish(segment_summary(scores_frame(3), LAYOUT), extra={"funnel": frame.assign(horizon_days=90)})
    assert warehouse_counts(tmp_path, "funnel") == {"2024-01-31": 2}  # the failed batch rolled back


def test_check_tables_names_the_mismatch_before_any_work(tmp_path):
    from pipelines.sinks.writer import check_tables

    check_tables(tmp_path, LAYOUT)  # no warehouse yet: nothing to check
    run_batch(tmp_path, scores_frame(2))
    check_tables(tmp_path, replace(LAYOUT, horizon_days=90))  # another horizon: same columns, fine
    with duckdb.connect(str(tmp_path / "warehouse.duckdb")) as con:
        con.execute("ALTER TABLE customer_scores RENAME COLUMN p_purchase TO p_purchase_181d")
    with pytest.raises(SchemaMismatch, match="table customer_scores .*p_purchase_181d"):
        check_tables(tmp_path, LAYOUT)
