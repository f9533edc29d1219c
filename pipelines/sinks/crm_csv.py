"""customer_scores.csv for a CRM: DuckDB formats each Arrow chunk, appended to one temporary file.

Format: UTF-8 without BOM, one header row, comma separated, LF line ends, RFC-4180 quoting (a cell is
quoted when it holds a comma, a quote, a line break or is the empty string; quotes are doubled),
decimals with `Column.decimals` places and `.` as separator, integers without decimals, dates
YYYY-MM-DD, timestamps YYYY-MM-DDTHH:MM:SSZ (UTC). Formula injection: a text cell whose first
character is `=`, `+`, `-`, `@`, a tab or a carriage return gets a leading `'`, so spreadsheets and
CRMs show it as text instead of evaluating it (`=SUM(A1)` is written `'=SUM(A1)`). This applies to
every text column, customer_id included; Parquet and the SQL tables keep the raw values.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import duckdb
import pyarrow as pa

from models.scoring.schema import Column
from pipelines.sinks.arrow import naive_utc
from pipelines.sinks.files import fsync_file, publish, temp_beside

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
CRM_TIMESTAMP = "%Y-%m-%dT%H:%M:%SZ"
DB_TIMESTAMP = "%Y-%m-%dT%H:%M:%S.%fZ"


def sql_string(text: str) -> str:
    """A SQL string literal (single quotes doubled; control characters through chr())."""
    parts = [f"chr({ord(ch)})" if ch in "\t\r\n" else "'" + ch.replace("'", "''") + "'" for ch in text]
    return " || ".join(parts) if parts else "''"


def cell_expr(col: Column, neutralise: bool, ts_format: str) -> str:
    """The SQL expression that renders one column as its CSV cell."""
    name = f'"{col.name}"'
    if col.kind == "text" and neutralise:
        starts = ", ".join(sql_string(ch) for ch in FORMULA_STARTS)
        return f"CASE WHEN left({name}, 1) IN ({starts}) THEN '''' || {name} ELSE {name} END AS {name}"
    if col.kind == "timestamp":
        return f"strftime({name}, '{ts_format}') AS {name}"
    if col.numeric:
        return f"CAST({name} AS {col.sql_type}) AS {name}"
    return name


def csv_select(columns: list[Column], relation: str, neutralise: bool = True, ts_format: str = CRM_TIMESTAMP) -> str:
    """SELECT rendering every contract column of `relation` in order (decimals fixed, text neutralised)."""
    return f"SELECT {', '.join(cell_expr(c, neutralise, ts_format) for c in columns)} FROM {relation}"


def header_line(columns: list[Column]) -> bytes:
    """The CSV header row (the contract's plain column names need no quoting)."""
    names = [c.name for c in columns]
    unsafe = [n for n in names if not n.replace("_", "").isalnum() or not n.isascii()]
    if unsafe:
        raise ValueError(f"CSV header: column names {unsafe} would need quoting")
    return (",".join(names) + "\n").encode("utf-8")


def formatter() -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB connection for rendering chunks in their row order (bounded memory, one thread: DuckDB
    2.0's parallel COPY TO csv writes 2,048-row vectors out of order despite preserve_insertion_order)."""
    return duckdb.connect(config={"memory_limit": "512MB", "preserve_insertion_order": True, "threads": 1})


def render_csv(con: duckdb.DuckDBPyConnection, table: pa.Table, columns: list[Column], target: Path,
               neutralise: bool = True, ts_format: str = CRM_TIMESTAMP) -> int:
    """Write one Arrow chunk to target as header-less CSV; returns the rows DuckDB wrote."""
    con.register("chunk", naive_utc(table))
    try:
        query = csv_select(columns, "chunk", neutralise, ts_format)
        path = str(target).replace("'", "''")
        written = con.execute(f"COPY ({query}) TO '{path}' (FORMAT csv, HEADER false, DELIMITER ',', QUOTE '\"', "
                              "ESCAPE '\"')").fetchall()
    finally:
        con.unregister("chunk")
    return int(written[0][0])


class CsvSink:
    """Streams chunks into a hidden temporary CSV beside `target`; renamed onto it by publish()."""

    name = "csv"

    def __init__(self, target: Path, columns: list[Column]) -> None:
        self.target, self.columns = Path(target), columns
        self.con = formatter()
        self.tmp = temp_beside(self.target)
        self.part = temp_beside(self.target, "part")
        self.out = open(self.tmp, "wb")  # closed in verify() / close()
        self.out.write(header_line(columns))
        self.rows = 0
        self.data_bytes = 0

    def temp_paths(self) -> set[Path]:
        """The temporary files this sink owns."""
        return {self.tmp, self.part}

    def write(self, table: pa.Table) -> None:
        """Render the chunk with DuckDB and append it (no header) to the temporary file."""
        self.rows += render_csv(self.con, table, self.columns, self.part)
        with open(self.part, "rb") as part:
            shutil.copyfileobj(part, self.out, 1 << 20)
        self.data_bytes += self.part.stat().st_size

    def verify(self) -> dict:
        """Close and fsync the file; rows DuckDB wrote (raises when the bytes on disk differ from those appended)."""
        self.out.close()
        self.part.unlink(missing_ok=True)
        expected_size = len(header_line(self.columns)) + self.data_bytes
        if self.tmp.stat().st_size != expected_size:
            raise RuntimeError(f"{self.target.name}: {self.tmp.stat().st_size} bytes on disk in {self.tmp}, "
                               f"{expected_size} appended")
        fsync_file(self.tmp)
        return {"path": str(self.target), "rows": self.rows}

    def commit(self) -> None:
        """Rename the temporary CSV onto the output."""
        publish(self.tmp, self.target)

    def close(self) -> None:
        """Release the file and connection; delete temporary files still there (all of them unless committed)."""
        self.out.close()
        self.con.close()
        for path in self.temp_paths():
            path.unlink(missing_ok=True)
