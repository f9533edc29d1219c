"""Profile engine=spark ingest per phase: wall, JVM CPU, Python CPU, Spark jobs and JVM GC seconds.

    python bench/profile_spark_ingest.py <data/raw/synthetic folder> [--root DIR] [--reps 2] [Hydra overrides...]

Runs pipelines.ingest_spark.run (data=files on the folder's Parquet files, as bench_score's ingest step) in one
local[2] JVM; each phase (source load, stage build and stats per table, privacy, each write and content digest)
runs under its own Spark job group, so the jobs it starts are counted (a kept table's write includes its
content digest, observed while writing). Each run's line ends with the load average and peak RSS (JVM VmHWM,
Python ru_maxrss). --reps 2 runs the ingest twice in the same
JVM: the second run shows the cost without JVM start, class loading and JIT warm-up.
"""

from __future__ import annotations

import argparse
import functools
import os
import resource
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "bench")]


def peak_kib(pid: int) -> int:
    """A process's peak resident set (VmHWM) in KiB."""
    line = next(x for x in Path(f"/proc/{pid}/status").read_text().splitlines() if x.startswith("VmHWM:"))
    return int(line.split()[1])


def main(argv: list[str] | None = None) -> int:
    """Run the ingest under the phase wrappers and print one line per phase and a total per run."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("raw", type=Path, help="a data/raw/synthetic folder (transactions/events/customers.parquet)")
    ap.add_argument("--root", type=Path, default=Path("/tmp/profile-spark-ingest"))
    ap.add_argument("--reps", type=int, default=1)
    ap.add_argument("override", nargs="*")
    args = ap.parse_args(argv)
    import bench_score

    bench_score.prepare_root(args.root)
    params = bench_score._params(args.root, ["engine=spark", "engine.spark.master='local[2]'",
                                             "+engine.spark.conf={spark.ui.showConsoleProgress: false}",
                                             *args.override])
    for table in ("transactions", "events", "customers"):
        params["data"][table] = str(args.raw / f"{table}.parquet")
    from features import ingest as checks
    from features import ingest_spark as engine
    from pipelines import ingest_spark
    from pipelines import spark as sessions

    started = time.time()
    spark = sessions.session(params["engine"])
    sc = spark.sparkContext
    print(f"session start {time.time() - started:.1f} s", flush=True)
    jvm = int(sc._jvm.java.lang.ProcessHandle.current().pid())
    beans = sc._jvm.java.lang.management.ManagementFactory.getGarbageCollectorMXBeans()

    def jvm_cpu() -> float:
        fields = Path(f"/proc/{jvm}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def gc_s() -> float:
        return sum(b.getCollectionTime() for b in beans) / 1000

    def wrap(owner: Any, name: str, label: Any) -> None:
        fn = getattr(owner, name)

        @functools.wraps(fn)
        def inner(*a: Any, **k: Any) -> Any:
            group = label(*a, **k) if callable(label) else label
            sc.setJobGroup(group, group)
            before = set(sc.statusTracker().getJobIdsForGroup(group))
            t, c, p, g = time.time(), jvm_cpu(), time.process_time(), gc_s()
            try:
                return fn(*a, **k)
            finally:
                jobs = len(set(sc.statusTracker().getJobIdsForGroup(group)) - before)
                print(f"  {group:<32} wall {time.time() - t:6.1f} s  JVM CPU {jvm_cpu() - c:6.1f} s  Python CPU "
                      f"{time.process_time() - p:5.1f} s  jobs {jobs:3d}  GC {gc_s() - g:5.1f} s", flush=True)

        setattr(owner, name, inner)

    wrap(ingest_spark.sources_spark, "load", "load sources")
    wrap(engine.SparkEngine, "build_stage", lambda self, stage, select, key, spec: f"build_stage {spec.table}")
    wrap(checks, "_stats", lambda eng, spec, *a: f"stats {spec.table}")
    wrap(ingest_spark, "_protect", "privacy")
    wrap(ingest_spark, "_write", lambda cat, sp, name, frame: f"write {name}")
    for rep in range(args.reps):
        t, c, p = time.time(), jvm_cpu(), time.process_time()
        report = ingest_spark.run(params, args.root)
        print(f"run {rep + 1}: wall {time.time() - t:.1f} s, JVM CPU {jvm_cpu() - c:.1f} s, Python CPU "
              f"{time.process_time() - p:.1f} s, kept {[report[n]['rows_kept'] for n in ('transactions', 'events')]}"
              f", load average {os.getloadavg()[0]:.1f}, peak RSS JVM {peak_kib(jvm) / 2**20:.2f} GiB + Python "
              f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20:.2f} GiB", flush=True)
    spark.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
