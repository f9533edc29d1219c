"""Look for canary personal data in every file a pipeline run wrote, decoding Parquet, DuckDB, SQLite and gzip.

Raw bytes are not enough: Parquet pages are compressed and DuckDB compresses strings, so each file is read through
its format (values, column names and metadata) and searched as text, case-insensitively.
"""

from __future__ import annotations

import gzip
import sqlite3
import zipfile
from collections.abc import Iterable, Iterator
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

from features import synthetic

# What a run writes (relative to its root): data, reports, outputs, models, MLflow, the DVC cache, logs.
PRODUCED = ("data", "reports", "outputs", "artifacts", "mlflow.db", "mlartifacts", "mlruns", ".dvc/cache",
            ".dvc/tmp", "logs", "dvc.lock")
SKIPPED = ("data/raw",)  # the user's raw input files (e.g. `python -m pipelines.generate --out data/raw/...`)
MARKERS = synthetic.CANARY_MARKERS


def _parquet_text(path: Path) -> str:
    """Every value, column name and metadata entry of a Parquet file, as text."""
    schema = pq.read_schema(path)  # numbers cannot hold a canary: only text-like columns are read
    text = [f.name for f in schema if not (pa.types.is_integer(f.type) or pa.types.is_floating(f.type)
                                           or pa.types.is_boolean(f.type) or pa.types.is_temporal(f.type))]
    parts = [str(schema), str(schema.metadata or "")]
    if text:
        parts += [" ".join(map(str, column.to_pylist())) for column in pq.read_table(path, columns=text).columns]
    return "\n".join(parts)


def _duckdb_text(path: Path) -> str:
    """Every table of a DuckDB file, as text."""
    con = duckdb.connect(str(path), read_only=True)
    try:
        tables = con.execute("SELECT schema_name, table_name FROM duckdb_tables()").fetchall()
        return "\n".join(str(con.execute(f'SELECT * FROM "{s}"."{t}"').fetchall()) for s, t in tables)
    finally:
        con.close()


def _sqlite_text(path: Path) -> str:
    """An SQL dump of an SQLite file (mlflow.db)."""
    con = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return "\n".join(con.iterdump())
    finally:
        con.close()


def _zip_text(path: Path) -> str:
    """The members of a zip archive, as text."""
    with zipfile.ZipFile(path) as archive:
        return "\n".join(archive.read(name).decode("utf-8", "ignore") for name in archive.namelist())


def file_text(path: Path) -> str:
    """A file's content as searchable text, decoded by format (the raw bytes are always included)."""
    raw = path.read_bytes()
    text = [raw.decode("utf-8", "ignore")]
    if raw[:4] == b"PAR1":
        text.append(_parquet_text(path))
    elif raw[8:12] == b"DUCK":
        text.append(_duckdb_text(path))
    elif raw[:16] == b"SQLite format 3\0":
        text.append(_sqlite_text(path))
    elif raw[:2] == b"\x1f\x8b":
        text.append(gzip.decompress(raw).decode("utf-8", "ignore"))
    elif raw[:4] == b"PK\x03\x04":
        text.append(_zip_text(path))
    return "\n".join(text)


def produced_files(root: Path, produced: Iterable[str] = PRODUCED) -> Iterator[Path]:
    """Every file under the produced locations of a run root."""
    for rel in produced:
        path = Path(root) / rel
        if path.is_file():
            yield path
        elif path.is_dir():
            yield from (p for p in sorted(path.rglob("*")) if p.is_file() and not p.is_symlink()
                        and not p.relative_to(root).as_posix().startswith(SKIPPED))


def find_canaries(root: Path, markers: Iterable[str] = MARKERS, produced: Iterable[str] = PRODUCED
                  ) -> list[tuple[str, str]]:
    """(file relative to root, marker) for every canary marker found in a produced file; [] when clean."""
    wanted = [m.lower() for m in markers]
    hits = []
    for path in produced_files(root, produced):
        text = file_text(path).lower()
        hits += [(path.relative_to(root).as_posix(), m) for m in wanted if m in text]
    return hits


def assert_no_canaries(root: Path, markers: Iterable[str] = MARKERS, produced: Iterable[str] = PRODUCED) -> int:
    """Fail naming the files when any canary personal data reached a produced file; returns the files scanned."""
    files = list(produced_files(root, produced))
    assert files, f"no produced files under {root}"
    hits = find_canaries(root, markers, produced)
    assert not hits, f"personal data (canaries) found in {len(hits)} place(s): {hits[:10]}"
    return len(files)
