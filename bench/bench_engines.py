"""Benchmark: DuckDB vs Spark (local[2] or local-cluster) on N synthetic customers, ingest -> features -> score.

    python bench/bench_engines.py --sizes 1000000,2000000            # both engines, the three steps
    python bench/bench_engines.py --sizes 1000000 --raw 1000000=/tmp/h3s15/score-1000000/data/raw/synthetic
    python bench/bench_engines.py --sizes 20000,200000 --spark-steps features,score   # Spark ingest skipped
    python bench/bench_engines.py --sizes 20000,200000 --spark-steps features,score \
        --spark-master 'local-cluster[2,1,1024]'         # executors in their own JVMs: driver measured apart

For each size, the synthetic data is generated once (bench_score's generate step, seed 7) and shared by one bench
root per engine (<base>/<engine>-<N>, laid out like the repo). Each step runs in its own child process through
bench_score's step runner (bench/bench_score.py --step ...), DuckDB then Spark for the same step, so both see
about the same machine load. engine=spark runs with `engine=spark engine.spark.master=<--spark-master>`.

Memory: a thread polls the whole process tree under this script every 0.25 s; "driver" is the step's Python
process plus its JVM, "tree" adds the Python workers of mapInPandas / UDFs. CPU is the sum of user + system time
of every process seen in the tree. With --spark-master local[N] (the default, local[2]) the executors run inside
the driver's JVM, so "driver" includes them. With --spark-master 'local-cluster[W,C,MB]' (W executor JVMs of C
cores and MB MiB, started by the driver as separate processes, as Spark's own tests do) the executor JVMs and
their Python workers are counted apart ("executors"), and the driver-memory check uses the driver alone. That
mode needs SPARK_HOME with bin/ and jars/ (the PyPI pyspark package has both): this script points SPARK_HOME at
a folder of links to the package under --base, so the worker's work/ folder is not written into the venv, and
puts the checkout on PYTHONPATH (the executors' Python workers start in that work/ folder).

A Spark step counts only when a JVM was seen in its tree: a stage without a Spark path yet (it would quietly run
DuckDB) is reported as not available and its number is dropped. When a Spark step is not available, the Spark
root takes that step's outputs from the DuckDB root so the next step can still be measured. The churn model
(bench_score's churn step) and the CLV refit (bench_score's clv step, on the DuckDB root's features) are
prerequisites of score, run once per size and copied into the Spark root: both engines score with the same models.
--spark-steps limits the steps Spark runs (the others are borrowed from DuckDB the same way), e.g. to measure
features and score at two sizes without Spark's ingest.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import threading
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_score  # noqa: E402  (the step runner: child processes, results, layout)

ENGINES = ("duckdb", "spark")
STEPS = ("ingest", "features", "score")
STAGE_OUTPUTS = {"ingest": ("data/interim",), "features": ("data/features",)}
TREE_KEYS = ("wall_s", "driver_peak_gib", "python_peak_gib", "executors_peak_gib", "tree_peak_gib", "driver_cpu_s",
             "tree_cpu_s", "jvm", "load_avg")
GB = 2**30
TICK = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")


# ------------------------------------------------------------------------------------------- process-tree poll

def _stat(pid: int) -> tuple[int, str, float, int] | None:
    """(parent pid, command name, CPU seconds, RSS bytes) of a process from /proc, None when gone."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as fh:
            raw = fh.read()
    except OSError:
        return None
    name = raw[raw.index("(") + 1:raw.rindex(")")]
    fields = raw[raw.rindex(")") + 2:].split()
    return int(fields[1]), name, (int(fields[11]) + int(fields[12])) / TICK, int(fields[21]) * PAGE


def tree(root: int) -> dict[int, tuple[int, str, float, int]]:
    """Every live descendant of root (not root itself) with its /proc stat."""
    stats = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit() and (st := _stat(int(entry))) is not None:
            stats[int(entry)] = st
    found, frontier = {}, [root]
    while frontier:
        parent = frontier.pop()
        for pid, st in stats.items():
            if st[0] == parent and pid not in found:
                found[pid] = st
                frontier.append(pid)
    return found


def roles(procs: dict[int, tuple[int, str, float, int]], me: int) -> dict[int, str]:
    """Each process's role: "step" (this script's child), "jvm" (a JVM the step started: the driver's),
    "executor" (a JVM started by a JVM, and everything under it), "worker" (any other descendant, e.g. the
    Python workers of local mode's JVM)."""
    out: dict[int, str] = {}

    def role(pid: int) -> str:
        if pid not in out:
            parent, name = procs[pid][0], procs[pid][1]
            up = role(parent) if parent in procs else None
            if parent == me:
                out[pid] = "step"
            elif up == "executor" or (name == "java" and up == "jvm"):
                out[pid] = "executor"
            elif name == "java" and up == "step":
                out[pid] = "jvm"
            else:
                out[pid] = "worker"
        return out[pid]

    for pid in procs:
        role(pid)
    return out


class TreePoll:
    """Peak RSS (driver = step process + its JVM; executors = executor JVMs + their workers; whole tree) and
    CPU of this process's descendants."""

    def __init__(self, interval: float = 0.25) -> None:
        self.interval, self.stop = interval, threading.Event()
        self.peak_driver = self.peak_tree = self.peak_python = self.peak_executors = 0
        self.cpu: dict[int, tuple[str, float]] = {}
        self.jvm_seen = False
        self.thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> TreePoll:
        self.thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop.set()
        self.thread.join()

    def _run(self) -> None:
        me = os.getpid()
        while not self.stop.is_set():
            procs = tree(me)
            role = roles(procs, me)
            rss = {r: sum(procs[pid][3] for pid in procs if role[pid] == r) for r in ("step", "jvm", "executor")}
            self.jvm_seen = self.jvm_seen or any(st[1] == "java" for st in procs.values())
            self.peak_driver = max(self.peak_driver, rss["step"] + rss["jvm"])
            self.peak_python = max(self.peak_python, rss["step"])
            self.peak_executors = max(self.peak_executors, rss["executor"])
            self.peak_tree = max(self.peak_tree, sum(st[3] for st in procs.values()))
            for pid, st in procs.items():
                self.cpu[pid] = (role[pid], st[2])
            self.stop.wait(self.interval)

    def result(self) -> dict[str, Any]:
        """Peaks in GiB and CPU seconds (executors_peak_gib None when no executor ran outside the driver)."""
        separate = any(r == "executor" for r, _ in self.cpu.values())
        return {"driver_peak_gib": round(self.peak_driver / GB, 2), "tree_peak_gib": round(self.peak_tree / GB, 2),
                "python_peak_gib": round(self.peak_python / GB, 2),
                "executors_peak_gib": round(self.peak_executors / GB, 2) if separate else None,
                "driver_cpu_s": round(sum(c for r, c in self.cpu.values() if r in ("step", "jvm")), 1),
                "tree_cpu_s": round(sum(c for _, c in self.cpu.values()), 1), "jvm": self.jvm_seen}


def spark_home(base: Path) -> Path:
    """A SPARK_HOME of links to the pyspark package's entries (bin/, jars/, ...) with its own work/ folder."""
    import pyspark

    package, home = Path(pyspark.__file__).parent, base / "spark-home"
    home.mkdir(parents=True, exist_ok=True)
    for entry in package.iterdir():
        if entry.name != "work" and not (home / entry.name).exists():
            (home / entry.name).symlink_to(entry, target_is_directory=entry.is_dir())
    return home


# ------------------------------------------------------------------------------------------------- runner

def step_args(args: argparse.Namespace, n: int, root: Path, engine: str) -> argparse.Namespace:
    """The namespace bench_score.spawn expects, for one size, root and engine."""
    spark = ["engine=spark", f"engine.spark.master='{args.spark_master}'"]  # Hydra needs brackets quoted
    extra = list(args.override) + (spark if engine == "spark" else [])
    return argparse.Namespace(customers=n, seed=args.seed, root=root, churn_root=args.churn_root,
                              churn_customers=args.churn_customers, intervals_sample=0, override=extra)


def spark_path(step: str) -> str | None:
    """Why `step` has no Spark path yet (its stage module never mentions Spark), None when it may have one."""
    module = {"ingest": "ingest", "features": "features", "score": "score"}[step]
    source = (bench_score.ROOT / "pipelines" / f"{module}.py").read_text(encoding="utf-8")
    return None if "spark" in source.lower() else f"pipelines/{module}.py has no engine=spark path yet"


def run_step(step: str, args: argparse.Namespace, n: int, root: Path, engine: str) -> dict[str, Any]:
    """One step in a child process under the tree poll; the child's result plus the tree figures."""
    with TreePoll() as poll:
        result = bench_score.spawn(step, step_args(args, n, root, engine))
    return result | poll.result()


def borrow(step: str, source: Path, target: Path) -> None:
    """Give target the outputs `step` wrote under source (a symlinked folder), for the next step."""
    for rel in STAGE_OUTPUTS.get(step, ()):
        dest = target / rel
        if dest.is_symlink() or dest.is_file():
            dest.unlink()
        elif dest.exists():
            shutil.rmtree(dest)
        dest.symlink_to(source / rel, target_is_directory=True)


def prepare(args: argparse.Namespace, n: int) -> dict[str, Path]:
    """Generated data for size n (made once, or --raw) and one bench root per engine linked to it."""
    raw = args.raw.get(n)
    if raw is None:
        gen_root = args.base / f"raw-{n}"
        raw = gen_root / "data" / "raw" / "synthetic"
        if not (raw / "true_params.json").exists():
            bench_score.prepare_root(gen_root)
            bench_score.spawn("generate", step_args(args, n, gen_root, "duckdb"))
    roots = {}
    for engine in args.engines:
        root = args.base / f"{engine}-{n}"
        bench_score.prepare_root(root)
        link = root / "data" / "raw" / "synthetic"
        if not link.exists():
            link.symlink_to(Path(raw).resolve(), target_is_directory=True)
        roots[engine] = root
    return roots


def models(args: argparse.Namespace, n: int, roots: dict[str, Path]) -> dict[str, Any]:
    """The bench churn model and the CLV refit in the first engine's root, copied to the other roots."""
    first = roots[args.engines[0]]
    out = {step: bench_score.spawn(step, step_args(args, n, first, args.engines[0])) for step in ("churn", "clv")}
    for engine in args.engines[1:]:
        for sub in ("churn", "clv"):
            shutil.copytree(first / "artifacts" / sub, roots[engine] / "artifacts" / sub, dirs_exist_ok=True)
    return out


def bench_size(args: argparse.Namespace, n: int) -> dict[str, Any]:
    """Every requested step on both engines for n customers: {step: {engine: result}}."""
    roots = prepare(args, n)
    out: dict[str, Any] = {"roots": {e: str(r) for e, r in roots.items()}}
    for step in args.steps:
        if step == "score":
            out["models"] = models(args, n, roots)
        out[step] = {}
        for engine in args.engines:
            missing = spark_path(step) if engine == "spark" else None
            if engine == "spark" and step not in args.spark_steps:
                missing = "not run (--spark-steps)"
            if missing is None:
                try:
                    res = run_step(step, args, n, roots[engine], engine)
                except SystemExit as failed:  # bench_score.spawn: the step's child exited non-zero
                    if engine == "duckdb":
                        raise
                    res, missing = {"jvm": False}, f"FAILED: {failed}"
                if missing is None and engine == "spark" and not res["jvm"]:
                    missing = "the stage ran without starting a JVM (no Spark path for this step yet)"
                if missing is None:
                    out[step][engine] = res
                    print(f"    {step} on {engine}: {json.dumps({k: res[k] for k in TREE_KEYS})}", flush=True)
            if missing is not None:
                print(f"    {step} on spark: NOT AVAILABLE ({missing}); using DuckDB's outputs for the next step",
                      flush=True)
                out[step][engine] = {"not_available": missing}
                borrow(step, roots["duckdb"], roots[engine])
            if args.json:  # after every engine's step: an interrupted run keeps what it measured
                args.results[str(n)] = out
                args.json.write_text(json.dumps(args.results, indent=1, default=str), encoding="utf-8")
    return out


# ------------------------------------------------------------------------------------------------- report

def table(n: int, res: dict[str, Any]) -> str:
    """Markdown: per step, wall and memory of each engine and the Spark/DuckDB ratio."""
    lines = [f"**{n:,} customers**", "",
             "| step | DuckDB wall s | Spark wall s | Spark / DuckDB | DuckDB peak RSS GiB | Spark driver peak GiB "
             "(Python + JVM) | Spark Python GiB | Spark executors GiB | CPU s DuckDB / Spark (driver) | "
             "load avg (start) DuckDB / Spark |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for step in STEPS:
        if step not in res:
            continue
        d, s = res[step].get("duckdb", {}), res[step].get("spark", {})
        if "not_available" in s or not s:
            spark = (f"n/a ({s['not_available']})" if s else "not run", "", "", "", "", "")
        else:
            ratio = f"{s['wall_s'] / d['wall_s']:.2f}x" if "wall_s" in d else ""
            apart = s.get("executors_peak_gib")
            executors = "in the driver's JVM" if apart is None else f"{apart:.2f}"
            spark = (f"{s['wall_s']:.1f}", ratio, f"{s['driver_peak_gib']:.2f}", f"{s['python_peak_gib']:.2f}",
                     executors, f"{s['tree_cpu_s']:.0f} ({s.get('driver_cpu_s', '-')})")
        duck = (f"{d['wall_s']:.1f}", f"{d['driver_peak_gib']:.2f}", f"{d['tree_cpu_s']:.0f}") if "wall_s" in d \
            else ("", "", "")
        load = f"{d.get('load_avg', ['-'])[0]} / {s.get('load_avg', ['-'])[0]}"
        lines.append(f"| {step} | {duck[0]} | {spark[0]} | {spark[1]} | {duck[1]} | {spark[2]} | {spark[3]} | "
                     f"{spark[4]} | {duck[2]} / {spark[5]} | {load} |")
    return "\n".join(lines)


def growth(results: dict[str, Any], margin: float) -> list[str]:
    """Spark's driver peak for features and score at the smallest vs largest size measured: flat within margin?
    The driver is the step's Python process + its JVM; with local[N] that JVM also holds the executors."""
    lines = []
    for step in ("features", "score"):
        sizes = sorted((int(n), r[step]["spark"]) for n, r in results.items()
                       if step in r and "driver_peak_gib" in r[step].get("spark", {}))
        if len(sizes) < 2:
            lines.append(f"{step}: driver-memory growth not checked (Spark measured at {len(sizes)} size(s))")
            continue
        (n0, a), (n1, b) = sizes[0], sizes[-1]
        change = b["driver_peak_gib"] / a["driver_peak_gib"] - 1
        py = b["python_peak_gib"] / a["python_peak_gib"] - 1
        apart = a.get("executors_peak_gib") is not None and b.get("executors_peak_gib") is not None
        where = (f"executors apart: {a['executors_peak_gib']:.2f} -> {b['executors_peak_gib']:.2f} GiB" if apart
                 else "executors inside the driver's JVM (local mode): the JVM's share is not the driver's alone")
        verdict = "flat" if change <= margin else "GROWS"
        lines.append(f"{step}: Spark driver peak {a['driver_peak_gib']:.2f} GiB at {n0:,} -> "
                     f"{b['driver_peak_gib']:.2f} GiB at {n1:,} ({change:+.0%}; Python process {py:+.0%}; {where}): "
                     f"{verdict} (margin {margin:.0%})")
    return lines


def main(argv: list[str] | None = None) -> int:
    """Run every size, print the tables and the driver-memory check."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="1000000,2000000,5000000,10000000", help="comma-separated customer counts")
    ap.add_argument("--engines", default=",".join(ENGINES))
    ap.add_argument("--steps", default=",".join(STEPS), help=f"comma-separated subset of {','.join(STEPS)}")
    ap.add_argument("--base", type=Path, default=Path("/tmp/bench-engines"), help="bench roots go here")
    ap.add_argument("--raw", action="append", default=[], metavar="N=DIR",
                    help="already generated data for size N (a data/raw/synthetic folder, seed 7); repeatable")
    ap.add_argument("--spark-steps", default=None,
                    help="the steps Spark runs (default: all of --steps); the others take DuckDB's outputs")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--churn-customers", type=int, default=200_000)
    ap.add_argument("--churn-root", type=Path, default=None,
                    help="bench_score's churn training root (default /work/bench-data/score-churn-<M>)")
    ap.add_argument("--override", action="append", default=[], help="extra Hydra override for both engines")
    ap.add_argument("--spark-master", default="local[2]",
                    help="engine.spark.master for Spark's steps: local[N], or local-cluster[W,C,MB] for W executor "
                         "JVMs (C cores, MB MiB each) apart from the driver")
    ap.add_argument("--margin", type=float, default=0.15, help="allowed growth of Spark's driver peak")
    ap.add_argument("--json", type=Path, default=None, help="also write the results here")
    args = ap.parse_args(argv)
    args.engines = [e for e in args.engines.split(",") if e]
    args.steps = [s for s in args.steps.split(",") if s]
    args.spark_steps = args.steps if args.spark_steps is None else [s for s in args.spark_steps.split(",") if s]
    if args.engines[0] != "duckdb" or not set(args.engines) <= set(ENGINES) or not set(args.steps) <= set(STEPS):
        ap.error(f"--engines: duckdb first, then spark; --steps: a subset of {','.join(STEPS)}")
    args.raw = {int(k): Path(v) for k, v in (item.split("=", 1) for item in args.raw)}
    args.churn_root = args.churn_root or Path(f"/work/bench-data/score-churn-{args.churn_customers}")
    if args.spark_master.startswith("local-cluster"):  # the executors' JVMs: a work/ folder outside the venv,
        os.environ["SPARK_HOME"] = str(spark_home(args.base.resolve()))  # and the checkout for their Python
        os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(bench_score.ROOT), os.environ.get("PYTHONPATH")]))
    args.results = {}
    for n in (int(s) for s in args.sizes.split(",")):
        args.results[str(n)] = bench_size(args, n)
    for n, res in args.results.items():
        print("\n" + table(int(n), res))
    if "spark" in args.engines:
        print("\n" + "\n".join(growth(args.results, args.margin)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
