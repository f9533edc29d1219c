"""Benchmark the synthetic generator: in-memory `generate` and (with --stream N) the streaming CLI.

    python bench/bench_generate.py                       # generate(1,000,000) in memory
    python bench/bench_generate.py --stream 10000000     # also the CLI for 10M customers (subprocess)

The CLI runs first, in a child process, so that its peak RSS (RUSAGE_CHILDREN ru_maxrss) is measured on
its own (Linux carries a forked child's high-water mark over from the parent, so the parent must be small).
"""

from __future__ import annotations

import argparse
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from features.synthetic import generate  # noqa: E402

START, END = "2023-01-01", "2024-12-31"


def _mib(kib: int) -> float:
    """ru_maxrss (KiB on Linux) in MiB."""
    return kib / 1024


def bench_generate(n_customers: int, seed: int) -> dict[str, str]:
    """Time generate() in this process; report rows and peak RSS."""
    started, cpu_started = time.perf_counter(), time.process_time()
    data = generate(n_customers, seed, START, END)
    seconds, cpu = time.perf_counter() - started, time.process_time() - cpu_started
    rows = f"{len(data.transactions):,} tx / {len(data.events):,} ev"
    peak = _mib(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
    return {"case": f"generate({n_customers:,})", "seconds": f"{seconds:.1f}", "cpu_s": f"{cpu:.1f}", "rows": rows,
            "peak_rss_mib": f"{peak:,.0f}"}


def _folder_mib(folder: Path) -> float:
    """Total size of the files in folder, MiB."""
    return sum(path.stat().st_size for path in folder.iterdir()) / 2**20


def bench_stream(n_customers: int, seed: int, out: Path | None, chunk_size: int,
                 keep: bool) -> dict[str, str]:
    """Run the CLI for n_customers in a child process; report wall time, peak RSS and output size."""
    folder = out or Path(tempfile.mkdtemp(prefix="bench_generate_"))
    command = [sys.executable, "-m", "pipelines.generate", "--customers", str(n_customers),
               "--seed", str(seed), "--start", START, "--end", END, "--out", str(folder),
               "--chunk-size", str(chunk_size)]
    started = time.perf_counter()
    try:
        subprocess.run(command, cwd=ROOT, check=True)
        seconds = time.perf_counter() - started
        size = _folder_mib(folder)
    finally:
        if not keep and folder.exists():
            shutil.rmtree(folder)
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    peak, cpu = _mib(usage.ru_maxrss), usage.ru_utime + usage.ru_stime
    return {"case": f"CLI stream {n_customers:,} (chunk {chunk_size:,})", "seconds": f"{seconds:.1f}",
            "cpu_s": f"{cpu:.1f}",
            "rows": f"{size:,.0f} MiB parquet", "peak_rss_mib": f"{peak:,.0f}"}


def _print_table(results: list[dict[str, str]]) -> None:
    """Print the results as an aligned text table."""
    columns = ["case", "seconds", "cpu_s", "rows", "peak_rss_mib"]
    widths = {c: max(len(c), *(len(r[c]) for r in results)) for c in columns}
    print("  ".join(c.ljust(widths[c]) for c in columns))
    print("  ".join("-" * widths[c] for c in columns))
    for result in results:
        print("  ".join(result[c].ljust(widths[c]) for c in columns))


def main(argv: list[str] | None = None) -> int:
    """Run the requested benchmarks and print a table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=1_000_000, help="customers for in-memory generate")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--skip-generate", action="store_true", help="only run the --stream case")
    parser.add_argument("--stream", type=int, default=0, help="also run the CLI for this many customers")
    parser.add_argument("--chunk-size", type=int, default=250_000)
    parser.add_argument("--out", type=Path, default=None, help="CLI output folder (default: a temp folder)")
    parser.add_argument("--keep", action="store_true", help="keep the CLI output instead of deleting it")
    args = parser.parse_args(argv)
    results = []
    if args.stream:  # first: a forked child starts from the parent's peak RSS, so keep the parent small
        results.append(bench_stream(args.stream, args.seed, args.out, args.chunk_size, args.keep))
    if not args.skip_generate:
        results.append(bench_generate(args.customers, args.seed))
    _print_table(results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
