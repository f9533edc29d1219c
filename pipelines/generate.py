"""Write a seeded synthetic data set (transactions, events, customers, truth) as Parquet, chunk by chunk.

    python -m pipelines.generate --customers 1000000 --seed 7 [--start 2023-01-01 --end 2024-12-31]
                                 [--out data/raw/synthetic --chunk-size 250000 --regime default]

Only one chunk is held in memory: each chunk is appended to one ParquetWriter per table, under temporary
names that are renamed into place when every chunk has been written (nothing is left behind on failure).
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from features import synthetic
from pipelines import paths
from pipelines.io import atomic_path, write_json

DEFAULT_OUT = paths.ROOT / "data" / "raw" / "synthetic"
DEFAULT_START = "2023-01-01"
DEFAULT_END = "2024-12-31"
DEFAULT_CHUNK_SIZE = 250_000
COMPRESSION = "zstd"


def _parser() -> argparse.ArgumentParser:
    """The command-line interface."""
    parser = argparse.ArgumentParser(prog="python -m pipelines.generate", description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, required=True, help="number of customers (>= 1)")
    parser.add_argument("--seed", type=int, required=True, help="random seed (>= 0)")
    parser.add_argument("--start", default=DEFAULT_START, help="first observed day (YYYY-MM-DD)")
    parser.add_argument("--end", default=DEFAULT_END, help="last observed day (YYYY-MM-DD), inclusive")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="output folder")
    parser.add_argument("--regime", default="default", choices=list(synthetic.REGIMES),
                        help="generator regime (features/synthetic.py REGIMES); `small` fixes 300 customers")
    parser.add_argument("--chunk-size", type=int, default=DEFAULT_CHUNK_SIZE,
                        help=f"customers per chunk, a multiple of {synthetic.BLOCK_SIZE}")
    return parser


def _cast(table: pa.Table, name: str) -> pa.Table:
    """The table in its canonical schema (contract.SCHEMAS, or synthetic.TRUTH for truth)."""
    schema = synthetic.TABLE_SCHEMAS[name]
    return table.select(schema.names).cast(schema)


def _progress(index: int, total: int, rows: dict[str, int], started: float) -> str:
    """One progress line for a written chunk."""
    counts = ", ".join(f"{rows[name]:,} {name}" for name in synthetic.TABLE_NAMES)
    return f"chunk {index}/{total}: {counts} ({time.perf_counter() - started:.1f}s elapsed)"


def _open_writer(stack: ExitStack, out: Path, name: str) -> pq.ParquetWriter:
    """A ParquetWriter on a temporary file renamed to <out>/<name>.parquet when the stack closes cleanly."""
    temp = stack.enter_context(atomic_path(out / f"{name}.parquet"))
    writer = pq.ParquetWriter(temp, synthetic.TABLE_SCHEMAS[name], compression=COMPRESSION)
    return stack.enter_context(writer)


def write_synthetic(out: Path, n_customers: int, seed: int, start: str = DEFAULT_START,
                    end: str = DEFAULT_END, chunk_size: int = DEFAULT_CHUNK_SIZE,
                    params: synthetic.TrueParams = synthetic.DEFAULT_PARAMS,
                    log: Callable[[str], Any] = print, regime: str | None = None) -> dict[str, int]:
    """Stream the generated chunks into <out>/<table>.parquet plus true_params.json; return row counts."""
    chunks = synthetic.iter_tables(n_customers, seed, start, end, chunk_size=chunk_size, params=params)
    total = synthetic.n_chunks(n_customers, chunk_size)
    out = Path(out)
    rows = dict.fromkeys(synthetic.TABLE_NAMES, 0)
    started = time.perf_counter()
    with ExitStack() as stack:
        writers = {name: _open_writer(stack, out, name) for name in synthetic.TABLE_NAMES}
        for index, tables in enumerate(chunks, start=1):
            chunk_rows = {}
            for name in synthetic.TABLE_NAMES:
                writers[name].write_table(_cast(tables[name], name))
                chunk_rows[name] = tables[name].num_rows
                rows[name] += tables[name].num_rows
            del tables
            log(_progress(index, total, chunk_rows, started))
    generation = {"n_customers": n_customers, "seed": seed, "start": start, "end": end, "regime": regime,
                  "block_size": synthetic.BLOCK_SIZE, "rows": rows}
    write_json({**synthetic.true_params_dict(params), "generation": generation}, out / "true_params.json")
    summary = ", ".join(f"{count:,} {name}" for name, count in rows.items())
    log(f"wrote {out} in {time.perf_counter() - started:.1f}s: {summary}")
    return rows


def main(argv: list[str] | None = None) -> int:
    """Parse arguments, check them, and write the data set."""
    parser = _parser()
    args = parser.parse_args(argv)
    chosen = synthetic.regime(args.regime)
    customers = chosen.customers(args.customers)
    try:
        synthetic.iter_tables(args.customers, args.seed, args.start, args.end, chunk_size=args.chunk_size)
    except ValueError as exc:
        parser.error(str(exc))
    write_synthetic(args.out, customers, args.seed, args.start, args.end, args.chunk_size,
                    params=chosen.params(), log=lambda line: print(line, flush=True), regime=chosen.name)
    return 0


if __name__ == "__main__":
    sys.exit(main())
