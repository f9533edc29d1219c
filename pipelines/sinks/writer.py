"""ScoreSinks: stream customer_scores chunks into every output sink and commit them together at finish()."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from types import TracebackType
from typing import Any

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import sqlalchemy as sa
from sqlalchemy.pool import NullPool

from models.scoring.schema import BATCH_KEY, Column, ScoreLayout, check_scores, file_columns, output_columns
from models.scoring.summary import summary_columns
from pipelines.sinks.arrow import ARROW_TYPES, arrow_schema, check_batch, to_arrow
from pipelines.sinks.crm_csv import CsvSink
from pipelines.sinks.evolve import evolve
from pipelines.sinks.files import remove_stale, temp_beside
from pipelines.sinks.parquet import ParquetSink
from pipelines.sinks.tables import SCORES, SUMMARY, DuckDBSink, SqlSink

CSV_NAME, PARQUET_NAME, WAREHOUSE_NAME = "customer_scores.csv", "customer_scores.parquet", "warehouse.duckdb"
TABLE_SINKS = ("sql", "duckdb")  # hold every contract column; the files leave out TABLE_ONLY (scored_at)
COMMIT_ORDER = ("sql", "duckdb", "parquet", "csv")  # the sink most likely to fail a commit goes first
_ACTIVE: set[Path] = set()  # outputs folders with an open ScoreSinks in this process


def check_tables(outputs_dir: Path, layout: ScoreLayout, sql_url: str | None = None,
                 extra_tables: dict[str, list[Column]] | None = None) -> None:
    """Raise SchemaMismatch (one line) now, before any scoring, when an existing table cannot take this batch."""
    tables = {SCORES: output_columns(layout), SUMMARY: summary_columns(layout), **(extra_tables or {})}
    warehouse = Path(outputs_dir) / WAREHOUSE_NAME
    if warehouse.exists():
        with duckdb.connect(str(warehouse), read_only=True) as con:
            names = {r[0] for r in con.execute("SELECT table_name FROM information_schema.tables").fetchall()}
            for table in names & set(tables):
                found = [(r[1], r[2], not r[3]) for r in con.execute(f"PRAGMA table_info('{table}')").fetchall()]
                evolve(table, found, tables[table], str(warehouse))
    if sql_url:
        engine = sa.create_engine(sql_url, poolclass=NullPool)
        where = sa.engine.make_url(sql_url).render_as_string(hide_password=True)
        try:
            with engine.connect() as conn:
                inspector = sa.inspect(conn)
                for table in set(inspector.get_table_names()) & set(tables):
                    found = [(c["name"], c["type"], c["nullable"]) for c in inspector.get_columns(table)]
                    evolve(table, found, tables[table], where)
        finally:
            engine.dispose()


def checked_table(chunk: pd.DataFrame, layout: ScoreLayout, as_of: dt.date) -> pa.Table:
    """A customer_scores chunk checked against the contract and the batch (as_of, settings), as Arrow."""
    columns = output_columns(layout)
    check_scores(chunk, layout)
    check_batch(chunk, columns, as_of, SCORES)
    for name, value in layout.setting_values().items():
        wrong = (chunk[name] != value).to_numpy()
        if wrong.any():
            at = int(wrong.argmax())
            raise ValueError(f"{SCORES} column {name!r}: {chunk[name].iloc[at]} is not this batch's {name} "
                             f"{value!r} (first at customer {chunk['customer_id'].iloc[at]!r})")
    return to_arrow(chunk, columns, SCORES)


class RowCountMismatch(RuntimeError):
    """A sink holds a different number of rows for the batch than were passed to write()."""


class ScoreSinks:
    """Context manager writing one batch (as_of, horizon_days, clv_months) to CSV, Parquet, the warehouse, SQL URL.

    write() validates each chunk against the contract and appends it to every sink; finish() writes
    segment_summary, checks every sink's row count against the rows passed in, then commits (DB
    transactions, then renames of the temporary files). Leaving the block by an exception, or without
    finish(), deletes the temporary files and rolls back, so the previous outputs stay as they were.
    """

    def __init__(self, outputs_dir: Path, layout: ScoreLayout, as_of: dt.date, sql_url: str | None = None,
                 extra_tables: dict[str, list[Column]] | None = None) -> None:
        if isinstance(as_of, dt.datetime) or not isinstance(as_of, dt.date):
            raise TypeError(f"ScoreSinks: as_of must be a datetime.date, got {as_of!r}")
        self.outputs = Path(outputs_dir).resolve()
        if self.outputs in _ACTIVE:
            raise RuntimeError(f"ScoreSinks: {self.outputs} is already being written in this process")
        self.layout, self.as_of = layout, as_of
        self.columns, self.summary_cols = output_columns(layout), summary_columns(layout)
        self.file_cols = file_columns(layout)  # no scored_at: the files are reproducible byte for byte
        self.csv_path, self.parquet_path = self.outputs / CSV_NAME, self.outputs / PARQUET_NAME
        self.rows, self.state = 0, "open"  # open -> finished | failed -> closed
        self.sinks: list[Any] = []
        _ACTIVE.add(self.outputs)
        key = {"as_of": as_of, **{k: v for k, v in layout.setting_values().items() if k in BATCH_KEY}}
        self.extra_cols = dict(extra_tables or {})  # more tables of the batch (funnel, ...): same key, same commit
        clash = set(self.extra_cols) & {SCORES, SUMMARY}
        try:
            if clash or any(not set(BATCH_KEY) <= {c.name for c in cols} for cols in self.extra_cols.values()):
                raise ValueError(f"ScoreSinks: extra tables must not be named {sorted(clash)} and must hold the batch "
                                 f"key columns {list(BATCH_KEY)}")
            tables = {SCORES: self.columns, SUMMARY: self.summary_cols, **self.extra_cols}
            self.sinks.append(DuckDBSink(self.outputs / WAREHOUSE_NAME, tables, key))  # its lock: one writer
            self.clean_stale()
            self.sinks.append(CsvSink(self.csv_path, self.file_cols))
            self.sinks.append(ParquetSink(self.parquet_path, self.file_cols))
            if sql_url:
                self.sinks.append(SqlSink(sql_url, tables, key, temp_beside(self.csv_path, "sql")))
        except BaseException:
            self.close()
            raise

    def __enter__(self) -> ScoreSinks:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def clean_stale(self) -> list[Path]:
        """Delete temporary files of the outputs that are not this run's (left by a killed run)."""
        ours = set().union(*(s.temp_paths() for s in self.sinks if hasattr(s, "temp_paths")))
        return [*remove_stale(self.csv_path, ours), *remove_stale(self.parquet_path, ours)]

    def write(self, chunk: pd.DataFrame) -> None:
        """Validate a customer_scores chunk against the contract and append it to every sink."""
        if self.state != "open":
            raise RuntimeError(f"ScoreSinks.write: the writer is {self.state}")
        self.write_checked(checked_table(chunk, self.layout, self.as_of))

    def write_files_table(self, files: pa.Table, scored_at: pd.Timestamp, warehouse: bool = True) -> None:
        """Append a chunk already checked by checked_table (engine=spark: on the executors), given in the file
        columns (no scored_at, e.g. read back from Spark's Parquet parts); scored_at is added for the tables.
        warehouse=False leaves the warehouse out (it takes the rows from the same Parquet files: load_warehouse)."""
        if self.state != "open":
            raise RuntimeError(f"ScoreSinks.write_files_table: the writer is {self.state}")
        self.check_file_columns(files.column_names, "columns")
        naive = pd.Timestamp(scored_at).tz_convert("UTC").tz_localize(None).as_unit("us").to_datetime64()
        stamp = pa.array(np.full(files.num_rows, naive)).cast(ARROW_TYPES["timestamp"])
        arrays = {name: files.column(name) for name in files.column_names} | {"scored_at": stamp}
        schema = arrow_schema(self.columns)
        self.write_checked(pa.Table.from_arrays([arrays[c.name].cast(schema.field(c.name).type)
                                                 for c in self.columns], schema=schema),
                           skip=() if warehouse else ("duckdb",))

    def check_file_columns(self, names: list[str], what: str) -> None:
        """ValueError (one line) unless `names` are the file contract's columns in order."""
        wanted = [c.name for c in self.file_cols]
        if names != wanted:
            raise ValueError(f"{SCORES}: {what} {names} differ from the file contract {wanted}")

    def load_warehouse(self, files: list[Path], scored_at: pd.Timestamp) -> None:
        """The warehouse's customer_scores rows of the batch read by DuckDB itself from Parquet files in the file
        columns (engine=spark: its parts, already fed to the other sinks by write_files_table(warehouse=False)), in
        one INSERT; its memory stays flat at any row count. finish() checks its row count like every sink's."""
        if self.state != "open":
            raise RuntimeError(f"ScoreSinks.load_warehouse: the writer is {self.state}")
        for path in files:
            self.check_file_columns(pq.read_schema(path).names, f"columns of {Path(path).name}")
        naive = pd.Timestamp(scored_at).tz_convert("UTC").tz_localize(None).to_pydatetime()
        if not files:
            return
        try:
            for sink in self.sinks:
                if sink.name == "duckdb":
                    sink.load_parquet(SCORES, list(files), {"scored_at": naive})
        except BaseException:
            self.state = "failed"
            raise

    def write_checked(self, table: pa.Table, skip: tuple[str, ...] = ()) -> None:
        """Append a chunk made by checked_table (contract-typed Arrow) to every sink but those named in `skip` (the
        files get it without the TABLE_ONLY columns)."""
        if self.state != "open":
            raise RuntimeError(f"ScoreSinks.write_checked: the writer is {self.state}")
        if not table.schema.equals(arrow_schema(self.columns)):
            raise ValueError(f"{SCORES}: chunk schema differs from the contract: {table.schema}")
        files = table.select([c.name for c in self.file_cols])
        try:
            for sink in self.sinks:
                if sink.name not in skip:
                    sink.write(table if sink.name in TABLE_SINKS else files)
        except BaseException:
            self.state = "failed"  # some sinks may hold the chunk, others not
            raise
        self.rows += table.num_rows

    def finish(self, summary: pd.DataFrame, extra: dict[str, pd.DataFrame] | None = None) -> dict:
        """Write segment_summary (and the extra tables' frames), check row counts in == out for every sink, commit
        all; a report per sink."""
        if self.state != "open":
            raise RuntimeError(f"ScoreSinks.finish: the writer is {self.state}")
        try:
            extra = dict(extra or {})
            if set(extra) != set(self.extra_cols):
                raise ValueError(f"ScoreSinks.finish: extra frames {sorted(extra)} differ from the extra tables "
                                 f"{sorted(self.extra_cols)} given when opening")
            self.write_extra(extra)
            check_batch(summary, self.summary_cols, self.as_of, SUMMARY)
            customers = int(summary["customers"].sum())
            if customers != self.rows:
                raise ValueError(f"{SUMMARY}: customers add up to {customers}, {self.rows} rows were written")
            table = to_arrow(summary, self.summary_cols, SUMMARY)
            for sink in self.sinks:
                if hasattr(sink, "write_summary"):
                    sink.write_summary(table)
            reports = {sink.name: sink.verify() for sink in self.sinks}
            self.check_counts(reports, len(summary))
            for name in COMMIT_ORDER:
                for sink in self.sinks:
                    if sink.name == name:
                        sink.commit()
            self.state = "finished"
        except BaseException:
            self.state = "failed"
            self.close()
            raise
        self.close()
        return {"as_of": self.as_of.isoformat(), "rows": self.rows, "summary_rows": len(summary), "sinks": reports}

    def write_extra(self, extra: dict[str, pd.DataFrame]) -> None:
        """Check each extra frame (contract columns, as_of, batch settings) and insert it into the SQL sinks."""
        for name, frame in extra.items():
            columns = self.extra_cols[name]
            check_batch(frame, columns, self.as_of, name)
            for key in BATCH_KEY[1:]:
                value = self.layout.setting_values()[key]
                if len(frame) and (frame[key] != value).any():
                    raise ValueError(f"{name} column {key!r}: values other than this batch's {key} {value!r}")
            table = to_arrow(frame, columns, name)
            for sink in self.sinks:
                if sink.name in TABLE_SINKS:
                    sink.insert(name, table)

    def check_counts(self, reports: dict[str, dict], summary_rows: int) -> None:
        """Raise RowCountMismatch naming every sink whose batch differs from the rows passed in."""
        wrong = [f"{name}: {r['rows']} customer_scores rows" for name, r in reports.items() if r["rows"] != self.rows]
        wrong += [f"{name}: {r['summary_rows']} segment_summary rows" for name, r in reports.items()
                  if r.get("summary_rows", summary_rows) != summary_rows]
        if wrong:
            raise RowCountMismatch(f"as_of {self.as_of.isoformat()}: {self.rows} customer_scores and {summary_rows} "
                                   f"segment_summary rows were passed in, but {'; '.join(wrong)}; nothing committed")

    def close(self) -> None:
        """Release every sink: roll back and delete temporary files unless finished (idempotent)."""
        if self.state == "closed":
            return
        errors = []
        for sink in reversed(self.sinks):
            try:
                sink.close()
            except Exception as exc:  # keep closing the others, then raise the first
                errors.append(exc)
        if self.state == "finished":
            self.clean_stale()
        self.state = "closed"
        _ACTIVE.discard(self.outputs)
        if errors:
            raise errors[0]
