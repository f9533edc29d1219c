"""Benchmark the funnel (features/funnel.py) against one full scan of the events table, in the same run.

    python bench/bench_funnel.py                          # 1,000,000 synthetic customers (~37M events)
    python bench/bench_funnel.py --data /tmp/syn1m        # reuse a folder written by pipelines.generate

The reference is one full scan of the events table: `SELECT count(*), min(ts), max(ts) FROM events` over the
same Parquet file. As written, DuckDB answers that query from the Parquet footers (row counts and min/max
statistics) without reading a row, so the bench also runs it with `epoch_us(ts)` in the aggregates, which
forces every ts value to be read: that is the scan the ratio uses (the footer-only time is printed too). The funnel
reads events and transactions, joins an RFM segment per customer (a Parquet file of one pseudo-random slug
per customer, so the join is paid) and returns the whole table (all / channel / segment). Both are timed
`--repeat` times, interleaved; the medians and their ratio are printed (target: funnel <= 2x the scan).
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from datetime import date
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import duckdb  # noqa: E402

from features.funnel import FunnelConfig, funnel  # noqa: E402
from features.segments import SEGMENTS  # noqa: E402

LITERAL = "SELECT count(*), min(ts), max(ts) FROM events"  # answered from Parquet statistics
SCAN = "SELECT count(*), min(epoch_us(ts)), max(epoch_us(ts)) FROM events"  # reads every ts value


def ensure_data(folder: Path, customers: int, seed: int) -> None:
    """Write the synthetic tables with pipelines.generate unless the folder already holds them."""
    if not (folder / "events.parquet").exists():
        subprocess.run([sys.executable, "-m", "pipelines.generate", "--customers", str(customers), "--seed",
                        str(seed), "--out", str(folder)], cwd=ROOT, check=True)
    segments = folder / "segments.parquet"
    if not segments.exists():
        slugs = ", ".join(f"'{names[0]}'" for names in SEGMENTS.values())
        pick = "1 + CAST(hash(customer_id) % 8 AS BIGINT)"
        duckdb.execute(f"COPY (SELECT customer_id, ([{slugs}])[{pick}] AS rfm_segment "
                       f"FROM read_parquet('{folder / 'customers.parquet'}')) TO '{segments}' (FORMAT parquet)")


def connection(folder: Path, threads: int | None) -> duckdb.DuckDBPyConnection:
    """DuckDB with views over the Parquet files (nothing cached between queries but the OS page cache)."""
    con = duckdb.connect()
    if threads:
        con.execute(f"SET threads = {threads}")
    for name in ("events", "transactions", "segments"):
        con.execute(f"CREATE VIEW {name} AS SELECT * FROM read_parquet('{folder / name}.parquet')")
    return con


def timed(action) -> tuple[float, object]:
    """Seconds taken by action() and its result."""
    started = time.perf_counter()
    result = action()
    return time.perf_counter() - started, result


def main() -> None:
    """Time the scan and the funnel, interleaved; print medians, the ratio and the overall funnel."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--customers", type=int, default=1_000_000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--data", type=Path, default=ROOT / "bench" / "out" / "funnel")
    ap.add_argument("--as-of", default="2024-12-31")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--threads", type=int, default=None)
    args = ap.parse_args()
    ensure_data(args.data, args.customers, args.seed)
    con, as_of, cfg = connection(args.data, args.threads), date.fromisoformat(args.as_of), FunnelConfig()
    rows = con.sql(SCAN).fetchall()[0][0]
    print(f"data: {args.data} ({rows:,} events); funnel {' -> '.join(cfg.steps)}, window {cfg.window_days:g} d, "
          f"entries over {cfg.lookback_days} d before as_of {as_of}")
    timed(lambda: con.sql(SCAN).fetchall())  # warm the page cache for both
    literal, scans, funnels, table = [], [], [], None
    for _ in range(args.repeat):
        literal.append(timed(lambda: con.sql(LITERAL).to_arrow_table())[0])  # arrow: tz-aware, no pytz needed
        seconds, _ = timed(lambda: con.sql(SCAN).fetchall())
        scans.append(seconds)
        seconds, table = timed(lambda: funnel(con, cfg, as_of, "events", "transactions", "segments"))
        funnels.append(seconds)
    scan, fun = statistics.median(scans), statistics.median(funnels)
    print(f"as written  {LITERAL}: median {statistics.median(literal):.3f} s (Parquet statistics, no scan)")
    print(f"full scan   {SCAN}: median {scan:.3f} s of {[round(s, 3) for s in scans]}")
    print(f"funnel (all + channel + segment): median {fun:.3f} s of {[round(s, 3) for s in funnels]}")
    print(f"ratio funnel / scan: {fun / scan:.2f}x (target <= 2x)")
    print(table[table["dimension"] == "all"].to_string(index=False))


if __name__ == "__main__":
    main()
