"""The SQL sinks: the DuckDB warehouse and any SQLAlchemy URL, one batch per as_of, one transaction per run.

Each run opens one transaction, creates the tables when missing (strict types and NOT NULL from the
contract), deletes the batch of its as_of, inserts the chunks and commits only at commit(); close()
without commit rolls back, so a crash or kill leaves the previous batches untouched.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import duckdb
import pyarrow as pa
import sqlalchemy as sa
from sqlalchemy.pool import NullPool

from models.scoring.schema import Column, table_ddl
from pipelines.sinks.arrow import naive_utc
from pipelines.sinks.crm_csv import DB_TIMESTAMP, formatter, render_csv

SCORES, SUMMARY = "customer_scores", "segment_summary"
SA_TYPES = {"text": sa.Text, "date": sa.Date, "timestamp": sa.DateTime, "integer": sa.Integer}


def typed_list(columns: list[Column]) -> str:
    """Every contract column cast to its SQL type (decimals rounded by the cast), as a select list."""
    return ", ".join(f"CAST({c.name} AS {c.sql_type}) AS {c.name}" for c in columns)


def typed_select(columns: list[Column], relation: str) -> str:
    """SELECT every contract column of `relation` cast to its SQL type."""
    return f"SELECT {typed_list(columns)} FROM {relation}"


def check_columns(table: str, found: list[str], columns: list[Column], where: str) -> None:
    """Raise when an existing table's columns differ from the contract (no silent migration)."""
    expected = [c.name for c in columns]
    if found != expected:
        raise ValueError(f"{where}: existing table {table} has columns {found}, the contract has {expected}; "
                         "rename or drop the old table (e.g. after changing a horizon)")


class DuckDBSink:
    """customer_scores and segment_summary in an embedded DuckDB file, written in one open transaction."""

    name = "duckdb"

    def __init__(self, path: Path, tables: dict[str, list[Column]], as_of: dt.date) -> None:
        self.path, self.tables, self.as_of = Path(path), tables, as_of
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.con = duckdb.connect(str(self.path), config={"memory_limit": "1GB"})  # locks the file
        self.committed = False
        try:
            self.con.execute("BEGIN TRANSACTION")
            for table, columns in tables.items():
                self.con.execute(table_ddl(table, columns))
                found = [row[1] for row in self.con.execute(f"PRAGMA table_info('{table}')").fetchall()]
                check_columns(table, found, columns, str(self.path))
                self.con.execute(f"DELETE FROM {table} WHERE as_of = ?", [as_of])
        except BaseException:
            self.close()
            raise

    def insert(self, table: str, chunk: pa.Table) -> None:
        """Append an Arrow chunk to one table (relation API: register() would pin every chunk until commit)."""
        self.con.from_arrow(naive_utc(chunk)).project(typed_list(self.tables[table])).insert_into(table)

    def write(self, chunk: pa.Table) -> None:
        """Append a customer_scores chunk."""
        self.insert(SCORES, chunk)

    def write_summary(self, summary: pa.Table) -> None:
        """Insert the segment_summary of the batch."""
        self.insert(SUMMARY, summary)

    def verify(self) -> dict:
        """Rows of this as_of in each table (seen inside the open transaction); raises on duplicate customers."""
        [(rows, distinct)] = self.con.execute(f"SELECT count(*), count(DISTINCT customer_id) FROM {SCORES} "
                                              "WHERE as_of = ?", [self.as_of]).fetchall()
        if rows != distinct:
            dupe = self.con.execute(f"SELECT customer_id FROM {SCORES} WHERE as_of = ? GROUP BY customer_id "
                                    "HAVING count(*) > 1 LIMIT 1", [self.as_of]).fetchall()
            raise ValueError(f"{self.path.name}: customer_id {dupe[0][0]!r} appears more than once in the batch "
                             f"{self.as_of.isoformat()} (chunks overlap)")
        [(summary,)] = self.con.execute(f"SELECT count(*) FROM {SUMMARY} WHERE as_of = ?", [self.as_of]).fetchall()
        return {"path": str(self.path), "rows": int(rows), "summary_rows": int(summary)}

    def commit(self) -> None:
        """Commit the batch."""
        self.con.execute("COMMIT")
        self.committed = True

    def close(self) -> None:
        """Roll back unless committed; release the file."""
        try:
            if not self.committed:
                self.con.execute("ROLLBACK")
        finally:
            self.con.close()


class SqlSink:
    """The same two tables in any SQLAlchemy database; PostgreSQL (psycopg) loads through COPY."""

    name = "sql"

    def __init__(self, url: str, tables: dict[str, list[Column]], as_of: dt.date, scratch: Path) -> None:
        self.tables, self.as_of, self.scratch = tables, as_of, Path(scratch)
        self.url = sa.engine.make_url(url).render_as_string(hide_password=True)
        self.engine = sa.create_engine(url, poolclass=NullPool)
        self.committed = False
        self.duck = formatter()
        try:
            self.conn = self.engine.connect()
        except BaseException:
            self.duck.close()
            self.engine.dispose()
            raise
        try:
            self.trans = self.conn.begin()
            self.copy = self.conn.dialect.name == "postgresql" and self.conn.dialect.driver == "psycopg"
            self.begin_batch()
        except BaseException:
            self.close()
            raise

    def begin_batch(self) -> None:
        """Create missing tables, check existing ones against the contract and delete this as_of's batch."""
        for table, columns in self.tables.items():
            self.conn.execute(sa.text(table_ddl(table, columns)))
        if self.conn.dialect.name == "postgresql":  # one writer at a time; readers keep reading
            self.conn.execute(sa.text(f"LOCK TABLE {', '.join(self.tables)} IN SHARE ROW EXCLUSIVE MODE"))
        inspector = sa.inspect(self.conn)
        for table, columns in self.tables.items():
            check_columns(table, [c["name"] for c in inspector.get_columns(table)], columns, self.url)
            self.conn.execute(sa.text(f"DELETE FROM {table} WHERE as_of = :as_of"), {"as_of": self.as_of})

    def sa_table(self, table: str) -> sa.Table:
        """A SQLAlchemy Table of the contract columns, for typed inserts."""
        cols = [sa.Column(c.name, sa.Numeric(18, c.decimals) if c.kind == "decimal" else SA_TYPES[c.kind]())
                for c in self.tables[table]]
        return sa.Table(table, sa.MetaData(), *cols)

    def insert(self, table: str, chunk: pa.Table) -> None:
        """Append an Arrow chunk: COPY FROM STDIN on PostgreSQL, executemany elsewhere."""
        columns = self.tables[table]
        if self.copy:
            render_csv(self.duck, chunk, columns, self.scratch, neutralise=False, ts_format=DB_TIMESTAMP)
            raw = self.conn.connection.dbapi_connection
            names = ", ".join(c.name for c in columns)
            with raw.cursor() as cur, cur.copy(f"COPY {table} ({names}) FROM STDIN (FORMAT csv)") as copy:
                with open(self.scratch, "rb") as part:
                    while block := part.read(1 << 20):
                        copy.write(block)
            return
        self.duck.register("chunk", naive_utc(chunk))
        try:
            rows = self.duck.execute(typed_select(columns, "chunk")).fetchall()
        finally:
            self.duck.unregister("chunk")
        names = [c.name for c in columns]
        self.conn.execute(self.sa_table(table).insert(), [dict(zip(names, row, strict=True)) for row in rows])

    def write(self, chunk: pa.Table) -> None:
        """Append a customer_scores chunk."""
        self.insert(SCORES, chunk)

    def write_summary(self, summary: pa.Table) -> None:
        """Insert the segment_summary of the batch."""
        self.insert(SUMMARY, summary)

    def count(self, table: str) -> int:
        """Rows of this as_of in a table, inside the open transaction."""
        query = sa.text(f"SELECT count(*) FROM {table} WHERE as_of = :as_of")
        return int(self.conn.execute(query, {"as_of": self.as_of}).scalar_one())

    def verify(self) -> dict:
        """Rows of this as_of in each table."""
        self.scratch.unlink(missing_ok=True)
        return {"url": self.url, "rows": self.count(SCORES), "summary_rows": self.count(SUMMARY)}

    def commit(self) -> None:
        """Commit the batch."""
        self.trans.commit()
        self.committed = True

    def close(self) -> None:
        """Roll back unless committed; release the connection and the scratch file."""
        try:
            trans = getattr(self, "trans", None)
            if not self.committed and trans is not None and trans.is_active:
                trans.rollback()
        finally:
            self.conn.close()
            self.engine.dispose()
            self.duck.close()
            self.scratch.unlink(missing_ok=True)
