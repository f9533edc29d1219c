"""The SQL sinks: the DuckDB warehouse and any SQLAlchemy URL, one batch per key, one transaction per run.

A batch is keyed by (as_of, horizon_days, clv_months). Each run opens one transaction, creates the tables when
missing (strict types and NOT NULL from the contract), migrates additive changes (evolve.py), deletes its
batch, inserts the chunks and commits only at commit(); close() without commit rolls back, so a crash or
kill leaves the previous batches untouched.
"""

from __future__ import annotations

from pathlib import Path

import duckdb
import pyarrow as pa
import sqlalchemy as sa
from sqlalchemy.pool import NullPool

from models.scoring.schema import Column, table_ddl
from pipelines.sinks.arrow import naive_utc
from pipelines.sinks.crm_csv import DB_TIMESTAMP, formatter, render_csv
from pipelines.sinks.evolve import evolve, insert_order, key_sql

SCORES, SUMMARY = "customer_scores", "segment_summary"
BULK_LOAD = {"threads": 1, "memory_limit": "64MB"}  # DuckDB reading Parquet itself: flat memory at any row count
SA_TYPES = {"text": sa.Text, "date": sa.Date, "timestamp": sa.DateTime, "integer": sa.Integer}


def typed_list(columns: list[Column]) -> str:
    """Every contract column cast to its SQL type (decimals rounded by the cast), as a select list."""
    return ", ".join(f"CAST({c.name} AS {c.sql_type}) AS {c.name}" for c in columns)


def ordered_list(order: list[tuple[str, Column | None]]) -> str:
    """A select list in the table's column order: contract columns cast, the table's extra columns NULL."""
    return ", ".join(f"CAST({c.name} AS {c.sql_type}) AS {c.name}" if c else f"NULL AS {name}" for name, c in order)


def typed_select(columns: list[Column], relation: str) -> str:
    """SELECT every contract column of `relation` cast to its SQL type."""
    return f"SELECT {typed_list(columns)} FROM {relation}"


class DuckDBSink:
    """customer_scores and segment_summary in an embedded DuckDB file, written in one open transaction."""

    name = "duckdb"

    def __init__(self, path: Path, tables: dict[str, list[Column]], key: dict[str, object]) -> None:
        self.path, self.tables, self.key = Path(path), tables, key
        self.as_of = key["as_of"]
        self.where, self.args = key_sql(key, "?")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.con = duckdb.connect(str(self.path), config={"memory_limit": "1GB"})  # locks the file
        self.committed, self.order = False, {}
        try:
            self.con.execute("BEGIN TRANSACTION")
            for table, columns in tables.items():
                self.con.execute(table_ddl(table, columns))
                found = [(r[1], r[2], not r[3]) for r in self.con.execute(f"PRAGMA table_info('{table}')").fetchall()]
                for statement in evolve(table, found, columns, str(self.path)):
                    self.con.execute(statement)
                self.order[table] = insert_order(found, columns)
                self.con.execute(f"DELETE FROM {table} WHERE {self.where}", self.args)
        except BaseException:
            self.close()
            raise

    def insert(self, table: str, chunk: pa.Table) -> None:
        """Append an Arrow chunk to one table in the table's column order (relation API: register() would pin
        every chunk until commit)."""
        self.con.from_arrow(naive_utc(chunk)).project(ordered_list(self.order[table])).insert_into(table)

    def write(self, chunk: pa.Table) -> None:
        """Append a customer_scores chunk."""
        self.insert(SCORES, chunk)

    def load_parquet(self, table: str, files: list[Path], constants: dict[str, object]) -> None:
        """Insert Parquet files holding the table's contract columns but `constants` (one value for every row, e.g.
        scored_at) by one INSERT ... SELECT FROM read_parquet, in the open transaction.

        DuckDB writes the rows of a big insert to the database file as it goes, and with BULK_LOAD (one thread, a
        64 MB buffer pool; kept for the rest of the connection) its memory stays flat at any row count, where
        chunks appended from Python hold every uncommitted row until the commit."""
        columns = {c.name: c for c in self.tables[table]}
        names = ", ".join(name for name in columns if name not in constants)
        given = ", ".join(f"CAST(? AS {columns[name].sql_type}) AS {name}" for name in constants)
        for setting, value in BULK_LOAD.items():
            self.con.execute(f"SET {setting} = '{value}'")
        self.con.execute(f"INSERT INTO {table} SELECT {ordered_list(self.order[table])} FROM "
                         f"(SELECT {names}, {given} FROM read_parquet(?))",
                         [*constants.values(), [str(f) for f in files]])

    def write_summary(self, summary: pa.Table) -> None:
        """Insert the segment_summary of the batch."""
        self.insert(SUMMARY, summary)

    def verify(self) -> dict:
        """Rows of this as_of in each table (seen inside the open transaction); raises on duplicate customers."""
        [(rows, distinct)] = self.con.execute(f"SELECT count(*), count(DISTINCT customer_id) FROM {SCORES} "
                                              f"WHERE {self.where}", self.args).fetchall()
        if rows != distinct:
            dupe = self.con.execute(f"SELECT customer_id FROM {SCORES} WHERE {self.where} GROUP BY customer_id "
                                    "HAVING count(*) > 1 LIMIT 1", self.args).fetchall()
            raise ValueError(f"{self.path.name}: customer_id {dupe[0][0]!r} appears more than once in the batch "
                             f"{self.as_of.isoformat()} (chunks overlap)")
        [(summary,)] = self.con.execute(f"SELECT count(*) FROM {SUMMARY} WHERE {self.where}", self.args).fetchall()
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

    def __init__(self, url: str, tables: dict[str, list[Column]], key: dict[str, object], scratch: Path) -> None:
        self.tables, self.key, self.scratch = tables, key, Path(scratch)
        self.as_of = key["as_of"]
        self.where, _ = key_sql(key, ":{name}")
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
        """Create missing tables, migrate additive changes (else fail) and delete this batch."""
        for table, columns in self.tables.items():
            self.conn.execute(sa.text(table_ddl(table, columns)))
        if self.conn.dialect.name == "postgresql":  # one writer at a time; readers keep reading
            self.conn.execute(sa.text(f"LOCK TABLE {', '.join(self.tables)} IN SHARE ROW EXCLUSIVE MODE"))
        inspector = sa.inspect(self.conn)
        for table, columns in self.tables.items():
            found = [(c["name"], c["type"], c["nullable"]) for c in inspector.get_columns(table)]
            for statement in evolve(table, found, columns, self.url):
                self.conn.execute(sa.text(statement))
            self.conn.execute(sa.text(f"DELETE FROM {table} WHERE {self.where}"), self.key)

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
        """Rows of this batch in a table, inside the open transaction."""
        query = sa.text(f"SELECT count(*) FROM {table} WHERE {self.where}")
        return int(self.conn.execute(query, self.key).scalar_one())

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
