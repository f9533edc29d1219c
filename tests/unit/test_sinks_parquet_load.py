"""ScoreSinks.load_warehouse: the warehouse read from Parquet files equals the appended chunks; still all or nothing."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pandas as pd
import pyarrow.parquet as pq
import pytest

from models.scoring.schema import file_columns
from models.scoring.summary import segment_summary
from pipelines.sinks import RowCountMismatch, ScoreSinks
from pipelines.sinks.writer import checked_table
from tests.sink_writer import FIRST_AS_OF, LAYOUT, SCORED_AT, scores_frame


def table(outputs: Path) -> pd.DataFrame:
    """The warehouse's customer_scores, every column, by customer."""
    with duckdb.connect(str(outputs / "warehouse.duckdb"), read_only=True) as con:
        return con.execute("SELECT * FROM customer_scores ORDER BY as_of, customer_id").fetchdf()


def parquet_parts(frame: pd.DataFrame, folder: Path, rows: int) -> list[Path]:
    """The frame in the file columns as Parquet files of `rows` rows each (like Spark's parts)."""
    folder.mkdir()
    files = checked_table(frame, LAYOUT, FIRST_AS_OF).select([c.name for c in file_columns(LAYOUT)])
    parts = []
    for i, start in enumerate(range(0, len(frame), rows)):
        parts.append(folder / f"part-{i:05d}.parquet")
        pq.write_table(files.slice(start, rows), parts[-1])
    return parts


def load_batch(outputs: Path, frame: pd.DataFrame, parts: list[Path], load: list[Path] | None = None) -> dict:
    """The batch written as engine=spark does: files streamed to the other sinks, the warehouse loaded from `load`."""
    with ScoreSinks(outputs, LAYOUT, FIRST_AS_OF) as sinks:
        for part in parts:
            sinks.write_files_table(pq.read_table(part), SCORED_AT, warehouse=False)
        sinks.load_warehouse(parts if load is None else load, SCORED_AT)
        return sinks.finish(segment_summary(frame, LAYOUT))


def test_loaded_warehouse_equals_appended_chunks(tmp_path):
    frame = scores_frame(7)
    with ScoreSinks(tmp_path / "appended", LAYOUT, FIRST_AS_OF) as sinks:
        sinks.write(frame)
        sinks.finish(segment_summary(frame, LAYOUT))
    report = load_batch(tmp_path / "loaded", frame, parquet_parts(frame, tmp_path / "parts", 3))
    assert report["sinks"]["duckdb"]["rows"] == 7
    appended, loaded = table(tmp_path / "appended"), table(tmp_path / "loaded")
    pd.testing.assert_frame_equal(loaded, appended)
    assert (loaded["scored_at"] == SCORED_AT.tz_localize(None)).all()
    csv = "customer_scores.csv"
    assert (tmp_path / "loaded" / csv).read_bytes() == (tmp_path / "appended" / csv).read_bytes()
    assert pq.read_table(tmp_path / "loaded" / "customer_scores.parquet").equals(
        pq.read_table(tmp_path / "appended" / "customer_scores.parquet"))


def test_failure_after_the_load_leaves_the_previous_batch(tmp_path):
    first = scores_frame(3)
    load_batch(tmp_path, first, parquet_parts(first, tmp_path / "first", 2))
    before = table(tmp_path)
    second = scores_frame(5, start=10)
    parts = parquet_parts(second, tmp_path / "second", 2)
    with pytest.raises(RuntimeError, match="boom"), ScoreSinks(tmp_path, LAYOUT, FIRST_AS_OF) as sinks:
        sinks.load_warehouse(parts, SCORED_AT)
        raise RuntimeError("boom")
    pd.testing.assert_frame_equal(table(tmp_path), before)
    with pytest.raises(RowCountMismatch, match="duckdb: 2 customer_scores rows"):  # loaded 1 part of 3
        load_batch(tmp_path, second, parts, load=parts[:1])
    pd.testing.assert_frame_equal(table(tmp_path), before)


def test_files_with_other_columns_are_refused_in_one_line(tmp_path):
    frame = scores_frame(2)
    [part] = parquet_parts(frame, tmp_path / "parts", 2)
    pq.write_table(pq.read_table(part).drop_columns(["clv_decile"]), part)
    with ScoreSinks(tmp_path, LAYOUT, FIRST_AS_OF) as sinks, \
            pytest.raises(ValueError, match=r"customer_scores: columns of part-00000.parquet \[.*\] differ from the "
                                            r"file contract"):
        sinks.load_warehouse([part], SCORED_AT)
