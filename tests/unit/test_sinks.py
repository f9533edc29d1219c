"""ScoreSinks: batch history in the warehouse, Parquet types, all-or-nothing commits, row counts, kill safety."""

from __future__ import annotations

import datetime as dt
import signal
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from models.scoring.summary import segment_summary
from pipelines import output_schema
from pipelines.config import load_params
from pipelines.sinks import RowCountMismatch, ScoreSinks
from pipelines.sinks.parquet import ParquetSink
from tests.sink_writer import FIRST_AS_OF, LAYOUT, SECOND_AS_OF, scores_frame

ROOT = Path(__file__).resolve().parents[2]
OUTPUT_NAMES = {"customer_scores.csv", "customer_scores.parquet", "warehouse.duckdb"}


def run_batch(outputs: Path, frame: pd.DataFrame, as_of: dt.date = FIRST_AS_OF, sql_url: str | None = None) -> dict:
    """Write one frame as a whole batch; the finish() report."""
    with ScoreSinks(outputs, LAYOUT, as_of, sql_url) as sinks:
        sinks.write(frame)
        return sinks.finish(segment_summary(frame, LAYOUT))


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
    frame["clv_12m"] = [3.0, 1.2567]
    run_batch(tmp_path, frame)
    with duckdb.connect(str(tmp_path / "warehouse.duckdb"), read_only=True) as con:
        info = {r[1]: (r[2], r[3]) for r in con.execute("PRAGMA table_info('customer_scores')").fetchall()}
        value = con.execute("SELECT clv_12m FROM customer_scores WHERE customer_id = 'c0000001'").fetchone()[0]
    assert info["as_of"] == ("DATE", True)
    assert info["churn_probability"] == ("DECIMAL(18,4)", True)
    assert info["clv_decile"] == ("INTEGER", False)  # spend columns are nullable (null only without amounts)
    assert info["clv_12m"] == ("DECIMAL(18,2)", False) and info["p_purchase_181d"] == ("DECIMAL(18,4)", True)
    assert info["scored_at"] == ("TIMESTAMP", True)
    assert str(value) == "1.26"  # rounded to 2 places


def test_parquet_types_and_values(tmp_path):
    frame = scores_frame(3)
    run_batch(tmp_path, frame)
    table = pq.read_table(tmp_path / "customer_scores.parquet")
    schema = table.schema
    assert schema.field("as_of").type == pa.date32()
    assert schema.field("scored_at").type == pa.timestamp("us", tz="UTC")
    assert schema.field("clv_decile").type == pa.int32()
    assert schema.field("churn_probability").type == pa.float64()
    assert schema.field("customer_id").type == pa.string()
    assert table.column_names == list(frame.columns)
    back = table.to_pandas()
    assert list(back["as_of"]) == [FIRST_AS_OF] * 3
    assert list(back["clv_12m"]) == list(frame["clv_12m"])
    assert (back["scored_at"] == frame["scored_at"]).all()


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
    with pytest.raises(ValueError, match="existing table customer_scores has columns"):
        ScoreSinks(tmp_path, LAYOUT, FIRST_AS_OF)
    assert leftovers(tmp_path) == []


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
