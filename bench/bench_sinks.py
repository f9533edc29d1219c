"""Benchmark: N synthetic customer_scores rows through ScoreSinks (CSV + Parquet + DuckDB) in 500k chunks.

    .venv/bin/python bench/bench_sinks.py [--rows 2000000] [--chunk 500000] [--sql-url URL]

Prints seconds and rows/s per sink (time spent in its write, verify and commit), peak RSS, and the
CSV sink against plain DataFrame.to_csv of the same chunks in the same run.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import resource
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from models.scoring.schema import ScoreLayout, column_names  # noqa: E402
from models.scoring.summary import finish_summary, summary_parts  # noqa: E402
from pipelines.sinks import ScoreSinks  # noqa: E402

AS_OF = dt.date(2024, 12, 31)
LAYOUT = ScoreLayout()
BANDS, SEGMENTS = np.array(["low", "medium", "high"]), np.array(["champions", "loyal", "at_risk", "lost", "流失客户"])
REASONS = np.array(["days_since_last_purchase=143 raises risk", "orders_90d=0 raises risk", "",
                    "mean_basket=12.5, trend down raises risk", "=formula-looking text"])


def chunk_frame(lo: int, n: int, rng: np.random.Generator) -> pd.DataFrame:
    """n synthetic customers lo.. in the contract's columns and dtypes."""
    churn = rng.random(n)
    clv = rng.gamma(2.0, 80.0, n)
    frame = pd.DataFrame({
        "customer_id": pd.Series(np.char.add("cust-", np.arange(lo, lo + n).astype(str)), dtype=str),
        "as_of": pd.Series([AS_OF] * n, dtype=object),
        **{name: np.full(n, value) for name, value in LAYOUT.setting_values().items()},
        "churn_probability": churn,
        "churn_risk_band": BANDS[np.digitize(churn, [0.5, 0.8])],
        LAYOUT.p_purchase_column: rng.random(n),
        LAYOUT.purchases_column: rng.gamma(1.5, 1.0, n),
        "expected_aov": rng.gamma(3.0, 15.0, n),
        LAYOUT.clv_column: clv,
        "clv_low": clv * 0.6,
        "clv_high": clv * 1.7,
        LAYOUT.p_no_purchase_column: rng.random(n),
        "clv_decile": rng.integers(1, 11, n),
        "rfm_r": rng.integers(1, 6, n),
        "rfm_f": rng.integers(1, 6, n),
        "rfm_m": rng.integers(1, 6, n),
        "rfm_segment": SEGMENTS[rng.integers(0, len(SEGMENTS), n)],
    })
    frame["rfm_segment_code"] = frame["rfm_segment"]
    for r in range(1, LAYOUT.reason_codes + 1):
        frame[f"reason_{r}"] = REASONS[rng.integers(0, len(REASONS), n)]
        frame[f"reason_code_{r}"] = "days_since_last_purchase:raises"
    frame["recommended_action"] = "Retention offer"
    frame["recommended_action_code"] = "retention_offer"
    frame["model_version"] = "churn:3,clv:2"
    frame["scored_at"] = pd.Series([pd.Timestamp("2025-01-01T02:03:04Z")] * n, dtype="datetime64[us, UTC]")
    return frame[column_names(LAYOUT)]


def timed(sink, seconds: dict[str, float]) -> None:
    """Wrap a sink's write/write_summary/verify/commit to add their wall time to seconds[sink.name]."""
    for method in ("write", "write_summary", "verify", "commit"):
        inner = getattr(sink, method, None)
        if inner is None:
            continue

        def wrapper(*args, _inner=inner):
            start = time.perf_counter()
            try:
                return _inner(*args)
            finally:
                seconds[sink.name] += time.perf_counter() - start

        setattr(sink, method, wrapper)


def peak_rss_mb() -> float:
    """Peak resident set size of this process so far, in MB."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def current_rss_mb() -> float:
    """Resident set size of this process now, in MB (Linux)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def main() -> None:
    """Run the benchmark and print the figures (and one JSON line)."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=2_000_000)
    parser.add_argument("--chunk", type=int, default=500_000)
    parser.add_argument("--sql-url", default=None)
    parser.add_argument("--no-plain", action="store_true", help="skip the DataFrame.to_csv comparison")
    parser.add_argument("--trace-rss", action="store_true", help="print the resident set size after each chunk")
    args = parser.parse_args()
    rng = np.random.default_rng(7)
    seconds: dict[str, float] = defaultdict(float)
    generate = to_csv = 0.0
    with tempfile.TemporaryDirectory(prefix="bench-sinks-") as tmp:
        outputs, plain = Path(tmp) / "outputs", Path(tmp) / "plain.csv"
        start_all = time.perf_counter()
        with ScoreSinks(outputs, LAYOUT, AS_OF, args.sql_url) as sinks:
            for sink in sinks.sinks:
                timed(sink, seconds)
            parts = []
            for lo in range(0, args.rows, args.chunk):
                t0 = time.perf_counter()
                frame = chunk_frame(lo, min(args.chunk, args.rows - lo), rng)
                generate += time.perf_counter() - t0
                sinks.write(frame)
                parts.append(summary_parts(frame, LAYOUT))
                if args.trace_rss:
                    print(f"  after {lo + len(frame):,} rows: RSS {current_rss_mb():.0f} MB", flush=True)
                if not args.no_plain:
                    t0 = time.perf_counter()
                    frame.to_csv(plain, mode="a", header=lo == 0, index=False)
                    to_csv += time.perf_counter() - t0
            report = sinks.finish(finish_summary(parts, LAYOUT))
        total = time.perf_counter() - start_all - generate - to_csv
        sizes = {name: (outputs / Path(r["path"]).name).stat().st_size / 1e6
                 for name, r in report["sinks"].items() if "path" in r}
    rows = report["rows"]
    print(f"rows {rows:,} in chunks of {args.chunk:,}; synthetic generation {generate:.1f} s (excluded)")
    for name, secs in seconds.items():
        size = f", {sizes[name]:.0f} MB" if name in sizes else ""
        print(f"  {name:8s} {secs:7.2f} s  {rows / secs:12,.0f} rows/s{size}")
    print(f"  ScoreSinks total (validation + all sinks) {total:.2f} s  {rows / total:,.0f} rows/s")
    if to_csv:
        print(f"  plain DataFrame.to_csv {to_csv:.2f} s  {rows / to_csv:,.0f} rows/s; "
              f"CSV sink is {to_csv / seconds['csv']:.1f}x faster")
    print(f"  peak RSS {peak_rss_mb():.0f} MB")
    print(json.dumps({"rows": rows, "chunk": args.chunk, "seconds": dict(seconds), "total_s": round(total, 2),
                      "to_csv_s": round(to_csv, 2), "peak_rss_mb": round(peak_rss_mb())}))


if __name__ == "__main__":
    main()
