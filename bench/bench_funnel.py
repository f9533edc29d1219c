"""Benchmark the funnel (features/funnel.py) against one full scan of the events table, in the same run.

    python bench/bench_funnel.py                          # 1,000,000 synthetic customers (~37M events)
    python bench/bench_funnel.py --data /tmp/syn1m        # reuse a folder written by pipelines.generate
    python bench/bench_funnel.py --data /tmp/syn1m --time-ordered   # events/transactions rewritten in ts order

The reference is one full scan of the events table: `SELECT count(*), min(ts), max(ts) FROM events` over the
same Parquet file. As written, DuckDB answers that query from the Parquet footers (row counts and min/max
statistics) without reading a row, so the bench also runs it with `epoch_us(ts)` in the aggregates, which
forces every ts value to be read: that is the scan the target ratio uses (the footer-only time is printed too).
A third reference reads every value of the four columns the funnel reads (customer_id, ts, event_type, channel),
a fourth every value of every column of the events table (one scan of the table, the issue's reference).
Wall and process CPU seconds (all DuckDB threads) are both printed: on a shared machine CPU is the steadier. The funnel
reads events and transactions, joins an RFM segment per customer (a Parquet file of one pseudo-random slug
per customer, so the join is paid) and returns the whole table (all / channel / segment). Both are timed
`--repeat` times, interleaved; the medians and their ratio are printed (target: funnel <= 2x the scan).
"""

from __future__ import annotations

import argparse
import os
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
COLUMNS = ("SELECT count(*), min(epoch_us(ts)), max(epoch_us(ts)), sum(length(customer_id)), sum(length(event_type)), "
           "sum(length(channel)) FROM events")  # every value of the columns the funnel reads
TABLE = ("SELECT count(*), min(epoch_us(ts)), sum(length(customer_id)), sum(length(event_type)), sum(length(channel)), "
         "sum(length(session_id)), sum(value) FROM events")  # every value of every column: one scan of the table


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


def time_ordered(folder: Path) -> Path:
    """<folder>-by-ts: events and transactions rewritten in ts order (the same rows), segments shared."""
    target = folder.with_name(folder.name + "-by-ts")
    target.mkdir(exist_ok=True)
    con = duckdb.connect()
    con.execute("SET preserve_insertion_order = true")
    for name, rows in (("events", 1_048_576), ("transactions", 122_880)):
        if not (target / f"{name}.parquet").exists():
            con.execute(f"COPY (SELECT * FROM read_parquet('{folder / name}.parquet') ORDER BY ts) TO "
                        f"'{target / name}.parquet' (FORMAT parquet, COMPRESSION zstd, ROW_GROUP_SIZE {rows})")
    if not (target / "segments.parquet").exists():
        (target / "segments.parquet").symlink_to(folder / "segments.parquet")
    return target


def connection(folder: Path, threads: int | None) -> duckdb.DuckDBPyConnection:
    """DuckDB with views over the Parquet files (nothing cached between queries but the OS page cache)."""
    con = duckdb.connect()
    con.execute("SET preserve_insertion_order = false")  # as the score stage's funnel connection
    if threads:
        con.execute(f"SET threads = {threads}")
    for name in ("events", "transactions", "segments"):
        con.execute(f"CREATE VIEW {name} AS SELECT * FROM read_parquet('{folder / name}.parquet')")
    return con


def timed(action) -> tuple[float, object, float]:
    """Wall seconds taken by action(), its result and the process CPU seconds (all DuckDB threads)."""
    started, cpu = time.perf_counter(), time.process_time()
    result = action()
    return time.perf_counter() - started, result, time.process_time() - cpu


def main() -> None:
    """Time the scan and the funnel, interleaved; print medians, the ratio and the overall funnel."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--customers", type=int, default=1_000_000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--data", type=Path, default=ROOT / "bench" / "out" / "funnel")
    ap.add_argument("--as-of", default="2024-12-31")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--time-ordered", action="store_true", help="read copies of events/transactions sorted by ts")
    args = ap.parse_args()
    ensure_data(args.data, args.customers, args.seed)
    if args.time_ordered:
        args.data = time_ordered(args.data)
    con, as_of, cfg = connection(args.data, args.threads), date.fromisoformat(args.as_of), FunnelConfig()
    rows = con.sql(SCAN).fetchall()[0][0]
    print(f"data: {args.data} ({rows:,} events); funnel {' -> '.join(cfg.steps)}, window {cfg.window_days:g} d, "
          f"entries over {cfg.lookback_days} d before as_of {as_of}")
    timed(lambda: con.sql(SCAN).fetchall())  # warm the page cache for both
    literal, scans, funnels, wide, whole, table = [], [], [], [], [], None
    for _ in range(args.repeat):
        literal.append(timed(lambda: con.sql(LITERAL).to_arrow_table())[0])  # arrow: tz-aware, no pytz needed
        seconds, _, cpu = timed(lambda: con.sql(COLUMNS).fetchall())
        wide.append((seconds, cpu))
        seconds, _, cpu = timed(lambda: con.sql(TABLE).fetchall())
        whole.append((seconds, cpu))
        seconds, _, cpu = timed(lambda: con.sql(SCAN).fetchall())
        scans.append((seconds, cpu))
        seconds, table, cpu = timed(lambda: funnel(con, cfg, as_of, "events", "transactions", "segments"))
        funnels.append((seconds, cpu))
    (scan, scan_cpu), (fun, fun_cpu), (cols, cols_cpu), (every, every_cpu) = (
        [statistics.median(x) for x in zip(*runs, strict=True)] for runs in (scans, funnels, wide, whole))
    threads = con.sql("SELECT current_setting('threads')").fetchall()[0][0]
    print(f"load average at the end: {os.getloadavg()[0]:.1f} ({os.cpu_count()} cores); DuckDB threads {threads}")
    print(f"as written  {LITERAL}: median {statistics.median(literal):.3f} s (Parquet statistics, no scan)")
    print(f"full scan   {SCAN}: median {scan:.3f} s wall, {scan_cpu:.3f} s CPU ({[round(s, 3) for s, _ in scans]})")
    print(f"funnel (all + channel + segment): median {fun:.3f} s wall, {fun_cpu:.3f} s CPU "
          f"({[round(s, 3) for s, _ in funnels]})")
    print(f"4-column scan (customer_id, ts, event_type, channel): median {cols:.3f} s wall, {cols_cpu:.3f} s CPU")
    print(f"whole-table scan (every column): median {every:.3f} s wall, {every_cpu:.3f} s CPU")
    print(f"ratio funnel / whole-table scan: {fun / every:.2f}x wall, {fun_cpu / every_cpu:.2f}x CPU (target <= 2x)")
    print(f"ratio funnel / ts-only scan: {fun / scan:.2f}x wall, {fun_cpu / scan_cpu:.2f}x CPU")
    print(f"ratio funnel / 4-column scan: {fun / cols:.2f}x wall, {fun_cpu / cols_cpu:.2f}x CPU")
    print(table[table["dimension"] == "all"].to_string(index=False))


if __name__ == "__main__":
    main()
