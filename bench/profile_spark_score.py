"""Where the score step's Python driver holds memory: RSS per phase of pipelines.score.run, sampled 5x a second.

    python bench/profile_spark_score.py ROOT [--tracemalloc] [-- HYDRA_OVERRIDES...]
    python bench/profile_spark_score.py /tmp/h5/engines/spark-200000 -- engine=spark "engine.spark.master='local[2]'"

ROOT is a bench root laid out by bench/bench_score.py (data/raw/synthetic, data/interim, data/features/score.parquet,
artifacts/churn, artifacts/clv). Runs pipelines.score.run(params, ROOT) in this process with each phase of
pipelines/score_spark.py (and insights.tables, action_plan.run) wrapped: a thread samples this process's RSS
(/proc/self/statm) every 0.2 s and charges it to the innermost running phase; at every phase change the exact peak
since the last change (VmHWM, then reset through /proc/self/clear_refs) is charged the same way, so short spikes
count. Prints, per phase, the RSS when it started, its peak, the RSS when it ended, its wall time and the CPU
seconds of the process tree (this process, the JVM, Python workers); with --tracemalloc also the Python heap's peak per
phase (tracemalloc: Python objects only, not DuckDB's or Arrow's native buffers) and the top allocation sites.
"""

from __future__ import annotations

import argparse
import functools
import os
import resource
import sys
import threading
import time
import tracemalloc
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_score  # noqa: E402  (bench layout, composed params)

MIB = 2**20
PAGE = os.sysconf("SC_PAGE_SIZE")
TICK = os.sysconf("SC_CLK_TCK")
WRAPPED = {"pipelines.score_spark": ("read_features", "check_input", "in_input_order", "cached_edges",
                                     "spark_decile_edges", "prior_model", "score_parts", "check_rows", "spark_summary",
                                     "write_csv_parts", "stream_local"),
           "pipelines.insights": ("funnel_frame", "tables"), "pipelines.action_plan": ("run",),
           "pipelines.score": ("load_models",), "pipelines.sinks.writer:ScoreSinks": ("load_warehouse", "finish")}


def rss() -> int:
    """This process's resident set size in bytes."""
    with open("/proc/self/statm", encoding="ascii") as fh:
        return int(fh.read().split()[1]) * PAGE


SEEN: dict[int, float] = {}  # CPU seconds last seen per descendant (Python workers exit unreaped by us)


def tree_cpu() -> float:
    """CPU seconds of this process and of every descendant seen so far (JVM, Python workers; a finished one counts
    with its last reading, so call this often: the sampler does, 5x a second)."""
    parents, cpu = {}, {}
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                with open(f"/proc/{entry.name}/stat", encoding="ascii") as fh:
                    fields = fh.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            parents[int(entry.name)] = int(fields[1])
            cpu[int(entry.name)] = (int(fields[11]) + int(fields[12])) / TICK
    mine = {os.getpid()}
    grew = True
    while grew:
        new = {pid for pid, parent in parents.items() if parent in mine} - mine
        mine |= new
        grew = bool(new)
    for pid in mine - {os.getpid()}:
        SEEN[pid] = max(SEEN.get(pid, 0.0), cpu[pid])
    own = resource.getrusage(resource.RUSAGE_SELF)
    return own.ru_utime + own.ru_stime + sum(SEEN.values())


def high_water(reset: bool) -> int | None:
    """This process's peak RSS (VmHWM) in bytes since the last reset, then reset it (/proc/self/clear_refs 5);
    None where the kernel does not allow it."""
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            peak = next(int(line.split()[1]) * 1024 for line in fh if line.startswith("VmHWM:"))
        if reset:
            with open("/proc/self/clear_refs", "w", encoding="ascii") as fh:
                fh.write("5")
        return peak
    except (OSError, StopIteration):
        return None


class Phases:
    """A stack of running phases; a sampler thread charges the RSS it sees to the innermost one."""

    def __init__(self, trace: bool) -> None:
        self.stack: list[str] = ["setup"]
        self.rows: dict[str, dict[str, float]] = {}
        self.trace, self.stop = trace, threading.Event()
        self.process_peak = high_water(reset=True) or 0
        self.open("setup")
        self.thread = threading.Thread(target=self._sample, daemon=True)
        self.thread.start()

    def open(self, name: str) -> None:
        """Record a phase's start (a phase run twice keeps its first start and its overall peak)."""
        now = rss()
        row = self.rows.setdefault(name, {"start_mib": now / MIB, "peak_mib": now / MIB, "wall_s": 0.0, "calls": 0,
                                          "cpu_s": 0.0})
        row["t0"], row["c0"] = time.perf_counter(), tree_cpu()
        if self.trace:
            tracemalloc.reset_peak()
            row["heap0_mib"] = tracemalloc.get_traced_memory()[0] / MIB

    def close(self, name: str) -> None:
        """Record a phase's end."""
        row = self.rows[name]
        row.update(end_mib=rss() / MIB, wall_s=row["wall_s"] + time.perf_counter() - row.pop("t0"),
                   cpu_s=row["cpu_s"] + tree_cpu() - row.pop("c0"), calls=row["calls"] + 1)
        row["peak_mib"] = max(row["peak_mib"], row["end_mib"])
        if self.trace:
            row["heap_peak_mib"] = max(row.get("heap_peak_mib", 0.0), tracemalloc.get_traced_memory()[1] / MIB)

    def charge(self) -> None:
        """Charge the exact peak RSS since the last phase change (VmHWM) to the innermost phase, and reset it."""
        peak = high_water(reset=True)
        if peak is not None:
            row = self.rows[self.stack[-1]]
            row["peak_mib"] = max(row["peak_mib"], peak / MIB)
            self.process_peak = max(self.process_peak, peak)

    def _sample(self) -> None:
        while not self.stop.wait(0.2):
            tree_cpu()  # keeps the last reading of workers that exit
            row = self.rows[self.stack[-1]]
            row["peak_mib"] = max(row["peak_mib"], rss() / MIB)

    def wrap(self, name: str, fn: Any) -> Any:
        """fn run as phase `name`."""
        @functools.wraps(fn)
        def run(*args: Any, **kwargs: Any) -> Any:
            self.charge()
            self.stack.append(name)
            self.open(name)
            try:
                return fn(*args, **kwargs)
            finally:
                self.charge()
                self.close(name)
                self.stack.pop()
        return run


def main(argv: list[str] | None = None) -> int:
    """Run the score stage on ROOT with the phases wrapped; print the table."""
    import importlib

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("root", type=Path)
    ap.add_argument("--tracemalloc", action="store_true", help="also the Python heap per phase (slower)")
    args, rest = ap.parse_known_args(argv)  # everything else (after --): Hydra overrides, e.g. engine=spark
    args.overrides = [o for o in rest if o != "--"]
    if args.tracemalloc:
        tracemalloc.start(12)
    phases = Phases(args.tracemalloc)
    for where, names in WRAPPED.items():
        module, _, cls = where.partition(":")
        mod = importlib.import_module(module)
        owner = getattr(mod, cls) if cls else mod
        for name in names:
            setattr(owner, name, phases.wrap(f"{cls or module.rsplit('.', 1)[1]}.{name}", getattr(owner, name)))
    from pipelines import score

    started = time.perf_counter()
    report = score.run(bench_score._params(args.root, args.overrides), args.root)
    phases.charge()
    phases.close("setup")
    phases.stop.set()
    peak = max(phases.process_peak, high_water(reset=False) or 0) / MIB
    print(f"score: {report['rows_in']:,} customers in {time.perf_counter() - started:.1f} s; "
          f"process peak (VmHWM, reset at each phase change: ru_maxrss cannot be used) {peak:.0f} MiB")
    print("| phase | calls | wall s | CPU s (tree) | RSS at start MiB | peak MiB | at end MiB |"
          + (" Python heap peak MiB (start) |" if args.tracemalloc else ""))
    print("|---|---|---|---|---|---|---|" + ("---|" if args.tracemalloc else ""))
    for name, row in phases.rows.items():
        heap = f" {row['heap_peak_mib']:.0f} ({row['heap0_mib']:.0f}) |" if "heap_peak_mib" in row else ""
        print(f"| {name} | {row['calls']} | {row['wall_s']:.1f} | {row['cpu_s']:.1f} | {row['start_mib']:.0f} | "
              f"{row['peak_mib']:.0f} | "
              f"{row.get('end_mib', 0):.0f} |{heap}")
    if args.tracemalloc:
        print("\ntop Python allocation sites still alive at the end:")
        for stat in tracemalloc.take_snapshot().statistics("traceback")[:8]:
            print(f"  {stat.size / MIB:.1f} MiB in {stat.count} blocks: {stat.traceback.format()[-1].strip()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
