"""Atomic writers (every output written to a temporary file and renamed into place) and a lock check."""

from __future__ import annotations

import json
import os
import re
import tempfile
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd
import pyarrow as pa
import pyarrow.dataset as pads
import pyarrow.parquet as pq

TEMP_SUFFIX = ".tmp"


def parquet_batches(source: Path, columns: list[str], rows: int) -> Iterator[pa.RecordBatch]:
    """Record batches of up to `rows` rows of a Parquet file or folder of parts, in order, one row group in memory
    at a time (pyarrow pre-buffers every requested column chunk of a file by default: memory grew with the file)."""
    if Path(source).is_dir():
        return pads.dataset(source, format="parquet").to_batches(
            columns=columns, batch_size=rows, use_threads=False, batch_readahead=0, fragment_readahead=0,
            fragment_scan_options=pads.ParquetFragmentScanOptions(pre_buffer=False))
    return pq.ParquetFile(source, pre_buffer=False).iter_batches(batch_size=rows, columns=columns)


def temp_files(target: Path) -> list[Path]:
    """Every temporary file of target that exists now (.<name>.<random>.tmp: ours or left by a killed run)."""
    return sorted(target.parent.glob(f".{target.name}.*{TEMP_SUFFIX}"))


def remove_stale(target: Path, keep: set[Path] | frozenset[Path] = frozenset()) -> list[Path]:
    """Delete target's temporary files except `keep`; returns the deleted paths."""
    removed = []
    for path in temp_files(target):
        if path not in keep:
            path.unlink(missing_ok=True)
            removed.append(path)
    return removed


@contextmanager
def atomic_path(target: Path) -> Iterator[Path]:
    """Yield a temporary path beside target; rename it onto target only on success."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp creates 0600; outputs get the usual permissions
        os.replace(tmp, target)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def write_parquet(frame: pd.DataFrame | pa.Table, target: Path) -> None:
    """Write a DataFrame or Arrow table to Parquet atomically."""
    table = frame if isinstance(frame, pa.Table) else pa.Table.from_pandas(frame, preserve_index=False)
    with atomic_path(target) as tmp:
        pq.write_table(table, tmp)


def write_json(payload: dict[str, Any], target: Path) -> None:
    """Write a JSON document (sorted keys, indented) atomically."""
    with atomic_path(target) as tmp:
        tmp.write_text(json.dumps(payload, indent=2, sort_keys=True, default=str) + "\n", encoding="utf-8")


def check_not_locked(path: Path) -> None:
    """ValueError (one line, naming the holder when DuckDB says) when another process holds a DuckDB file open,
    so a stage that will write it stops before its work instead of failing at the end."""
    if not Path(path).exists():
        return
    try:
        duckdb.connect(str(path)).close()
    except duckdb.IOException as exc:
        holder = re.search(r"held in (.+?) \(PID (\d+)\)", str(exc))
        who = f"process {holder.group(2)} ({holder.group(1)})" if holder else "another process"
        raise ValueError(f"{path}: open in {who}; close that connection (DuckDB shell, notebook, BI tool) and "
                         "run again") from exc


def write_behind(chunks: Iterable[tuple[pa.Table, Any]], write: Callable[[pa.Table], None]
                 ) -> Iterator[tuple[pa.Table, Any]]:
    """Each (table, part) of chunks once write(table) is handed to a writer thread, so the next chunk is made while
    this one is written (the Arrow, DuckDB and Parquet writers release the GIL). Writes run one at a time in chunk
    order; write k-1 has finished (its error raised here) before write k starts, and every write before the
    generator ends."""
    with ThreadPoolExecutor(1, thread_name_prefix="write-behind") as writer:
        pending: Future | None = None
        for table, part in chunks:
            if pending is not None:
                pending.result()
            pending = writer.submit(write, table)
            yield table, part
        if pending is not None:
            pending.result()
