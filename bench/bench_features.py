"""Benchmark: RFM and full feature build vs lifetimes' summary_data_from_transaction_data, same file."""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
import warnings
from datetime import date
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from features import contract  # noqa: E402
from features.build import FeatureConfig, build_features, rfm  # noqa: E402
from features.timeline import Cutoff  # noqa: E402
from pipelines.config import compose  # noqa: E402
from pipelines.sources import duckdb_memory  # noqa: E402

START, DAYS = pd.Timestamp("2023-01-01", tz="UTC"), 730
AS_OF = date(2024, 12, 31)
CHANNELS, CATEGORIES = np.array(["web", "app", "store"]), np.array(["books", "music", "video", "games"])


def make_transactions(n_customers: int, per_customer: float, seed: int, chunk: int = 500_000):
    """Yield Arrow chunks of ~per_customer transactions per customer over two years."""
    rng = np.random.default_rng(seed)
    for lo in range(0, n_customers, chunk):
        n = min(chunk, n_customers - lo)
        counts = rng.poisson(per_customer - 1, n) + 1
        cust = np.repeat(np.arange(lo, lo + n), counts)
        born = rng.integers(0, DAYS, n)
        day = np.repeat(born, counts) + (rng.random(len(cust)) * (DAYS - np.repeat(born, counts))).astype(int)
        micros = (day * 86_400 + rng.integers(0, 86_400, len(cust))).astype(np.int64) * 1_000_000
        amount = np.round(rng.gamma(6.25, 35 / 6.25, len(cust)) * np.where(rng.random(len(cust)) < 0.03, -1, 1), 2)
        yield pa.table({
            "customer_id": pa.array(np.char.add("C", np.char.zfill(cust.astype(str), 8))),
            "ts": pa.array(micros + START.value // 1000, type=contract.TS),
            "amount": amount, "order_id": pa.nulls(len(cust), pa.string()),
            "quantity": np.ones(len(cust)), "channel": CHANNELS[rng.integers(0, 3, len(cust))],
            "category": CATEGORIES[rng.integers(0, 4, len(cust))],
        }).cast(contract.TRANSACTIONS)


def make_events(n_customers: int, per_customer: float, seed: int, chunk: int = 500_000):
    """Yield Arrow chunks of ~per_customer behavioural events per customer."""
    rng = np.random.default_rng(seed + 1)
    types = np.array(contract.EVENT_TYPES)
    for lo in range(0, n_customers, chunk):
        n = min(chunk, n_customers - lo)
        cust = np.repeat(np.arange(lo, lo + n), rng.poisson(per_customer, n))
        micros = rng.integers(0, DAYS * 86_400, len(cust)).astype(np.int64) * 1_000_000
        yield pa.table({
            "customer_id": pa.array(np.char.add("C", np.char.zfill(cust.astype(str), 8))),
            "ts": pa.array(micros + START.value // 1000, type=contract.TS),
            "event_type": types[rng.integers(0, len(types), len(cust))],
            "channel": pa.nulls(len(cust), pa.string()), "session_id": pa.nulls(len(cust), pa.string()),
            "value": rng.integers(1, 6, len(cust)).astype(float),
        }).cast(contract.EVENTS)


def write(chunks, target: Path, schema: pa.Schema) -> int:
    """Stream chunks into one Parquet file; return the row count."""
    rows = 0
    with pq.ParquetWriter(target, schema) as writer:
        for table in chunks:
            writer.write_table(table)
            rows += table.num_rows
    return rows


def connection(out: Path) -> duckdb.DuckDBPyConnection:
    """DuckDB with the bench files as the contract tables."""
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    con.execute(f"SET memory_limit = '{duckdb_memory(compose([])['engine']['memory_limit'])}'")  # as the stage
    for name in ("transactions", "events"):
        con.execute(f"CREATE VIEW {name} AS SELECT * FROM read_parquet('{out / name}.parquet')")
    return con


def time_reference(out: Path) -> tuple[float, pd.DataFrame]:
    """lifetimes on pandas (the naive reference): seconds for the summary call, and its result."""
    from lifetimes.utils import summary_data_from_transaction_data

    df = pd.read_parquet(out / "transactions.parquet", columns=["customer_id", "ts", "amount"])
    df = df[df["amount"] >= 0]
    df["ts"] = df["ts"].dt.tz_localize(None)
    started = time.perf_counter()
    result = summary_data_from_transaction_data(df, "customer_id", "ts", "amount",
                                                observation_period_end=pd.Timestamp(AS_OF), freq="D")
    return time.perf_counter() - started, result


def time_ours(out: Path) -> tuple[float, pd.DataFrame]:
    """Our RFM SQL straight from the Parquet file: seconds (read included), and the result."""
    con = connection(out)
    started = time.perf_counter()
    table = rfm(con, AS_OF, FeatureConfig()).to_arrow_table()
    return time.perf_counter() - started, table.to_pandas().set_index("customer_id")


def full_features(out: Path) -> dict:
    """Full feature table (behaviour included) at AS_OF written to Parquet: seconds and peak RSS."""
    con = connection(out)
    started = time.perf_counter()
    build_features(con, Cutoff("score", AS_OF, None), FeatureConfig()).write_parquet(str(out / "features.parquet"))
    seconds = time.perf_counter() - started
    rows = con.execute(f"SELECT COUNT(*) FROM '{out / 'features.parquet'}'").fetchall()[0][0]
    return {"seconds": seconds, "rows": rows, "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def _cpu() -> float:
    """CPU seconds of this process so far."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def step_profile(data: Path, out: Path) -> dict:
    """Wall / CPU seconds of each step table and of the final table written to out, on a folder holding
    transactions / events / customers Parquet files (e.g. pipelines.generate's output), cutoff = last day."""
    from features.engine import DuckRunner

    con = duckdb.connect()
    con.execute(f"SET memory_limit = '{duckdb_memory(compose([])['engine']['memory_limit'])}'")  # as the stage
    con.execute("SET preserve_insertion_order = false")
    for name in ("transactions", "events", "customers"):
        if (data / f"{name}.parquet").exists():
            con.execute(f"CREATE VIEW {name} AS SELECT * FROM read_parquet('{data / name}.parquet')")
    runner, steps = DuckRunner(con), {}
    materialise = runner.materialise

    def timed(name: str, query: str) -> None:
        wall, cpu = time.perf_counter(), _cpu()
        materialise(name, query)
        steps[name] = (round(time.perf_counter() - wall, 2), round(_cpu() - cpu, 2))

    runner.materialise = timed  # type: ignore[method-assign]
    as_of = con.execute("SELECT MAX(CAST(ts AS DATE)) FROM transactions").fetchall()[0][0]
    wall, cpu = time.perf_counter(), _cpu()
    rel = build_features(runner, Cutoff("score", as_of, None), FeatureConfig())
    final = time.perf_counter(), _cpu()
    rel.write_parquet(str(out))
    steps["final + write"] = (round(time.perf_counter() - final[0], 2), round(_cpu() - final[1], 2))
    return {"as_of": str(as_of), "steps (wall s, cpu s)": steps, "wall_s": round(time.perf_counter() - wall, 2),
            "cpu_s": round(_cpu() - cpu, 2), "peak_rss_gib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
                                                                 / 2**20, 2), "load_avg": os.getloadavg()}


def main() -> None:
    """Generate, time reference vs ours on the same file, check equality, print the ratio."""
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--customers", type=int, default=2_000_000)
    ap.add_argument("--tx-per-customer", type=float, default=11.0)
    ap.add_argument("--events-per-customer", type=float, default=10.0)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "out")
    ap.add_argument("--full-only", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--steps", type=Path, default=None,
                    help="only profile each feature step (DuckDB) on this folder of contract Parquet files")
    args = ap.parse_args()
    if args.steps is not None:
        print(json.dumps(step_profile(args.steps, args.out / "features_steps.parquet")))
        return
    args.out.mkdir(parents=True, exist_ok=True)
    if args.full_only:
        print(json.dumps(full_features(args.out)))
        return
    n_tx = write(make_transactions(args.customers, args.tx_per_customer, args.seed),
                 args.out / "transactions.parquet", contract.TRANSACTIONS)
    n_ev = write(make_events(args.customers, args.events_per_customer, args.seed),
                 args.out / "events.parquet", contract.EVENTS)
    print(f"data: {args.customers:,} customers, {n_tx:,} transactions, {n_ev:,} events")
    ours_s, ours = time_ours(args.out)
    warnings.filterwarnings("ignore")
    ref_s, ref = time_reference(args.out)
    ours = ours.loc[ref.index]
    for col in ("frequency", "recency", "T", "monetary_value"):
        np.testing.assert_allclose(ours[col].to_numpy(float), ref[col].to_numpy(float), rtol=1e-9, err_msg=col)
    full = json.loads(subprocess.run([sys.executable, __file__, "--full-only", "--out", str(args.out)],
                                     check=True, capture_output=True, text=True).stdout.strip().splitlines()[-1])
    print(f"reference  lifetimes summary_data_from_transaction_data : {ref_s:8.2f} s")
    print(f"ours       RFM SQL (DuckDB, from Parquet)                : {ours_s:8.2f} s   identical results")
    print(f"ratio      reference / ours                              : {ref_s / ours_s:8.1f}x")
    print(f"full       all features incl. behaviour ({full['rows']:,} rows)   : {full['seconds']:8.2f} s,"
          f" peak RSS {full['peak_rss_mb']:,.0f} MB")


if __name__ == "__main__":
    main()
