"""Benchmark: DuckDB vs Spark local[2] on N synthetic customers, ingest -> features -> score, per step.

    python bench/bench_engines.py --sizes 1000000,2000000            # both engines, the three steps
    python bench/bench_engines.py --sizes 1000000 --raw 1000000=/tmp/h3s15/score-1000000/data/raw/synthetic
    python bench/bench_engines.py --sizes 20000,200000 --spark-steps features,score   # Spark ingest skipped

For each size, the synthetic data is generated once (bench_score's generate step, seed 7) and shared by one bench
root per engine (<base>/<engine>-<N>, laid out like the repo). Each step runs in its own child process through
bench_score's step runner (bench/bench_score.py --step ...), DuckDB then Spark for the same step, so both see
about the same machine load. engine=spark runs with `engine=spark engine.spark.master=local[2]`.

Memory: a thread polls the whole process tree under this script every 0.25 s; "driver" is the step's Python
process plus its JVM (Spark's local mode runs the executors inside that JVM), "tree" adds the Python workers of
mapInPandas / UDFs. CPU is the sum of user + system time of every process seen in the tree.

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
SPARK_OVERRIDES = ["engine=spark", "engine.spark.master='local[2]'"]  # Hydra needs the brackets quoted
TREE_KEYS = ("wall_s", "driver_peak_gib", "python_peak_gib", "tree_peak_gib", "tree_cpu_s", "jvm", "load_avg")
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


class TreePoll:
    """Peak RSS (driver = step process + JVM; whole tree) and summed CPU of this process's descendants."""

    def __init__(self, interval: float = 0.25) -> None:
        self.interval, self.stop = interval, threading.Event()
        self.peak_driver = self.peak_tree = self.peak_python = 0
        self.cpu: dict[int, float] = {}
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
            step = [pid for pid, st in procs.items() if st[0] == me]  # the bench_score child
            driver = sum(st[3] for pid, st in procs.items() if pid in step or st[1] == "java")
            python = sum(procs[pid][3] for pid in step)
            self.jvm_seen = self.jvm_seen or any(st[1] == "java" for st in procs.values())
            self.peak_driver = max(self.peak_driver, driver)
            self.peak_python = max(self.peak_python, python)
            self.peak_tree = max(self.peak_tree, sum(st[3] for st in procs.values()))
            for pid, st in procs.items():
                self.cpu[pid] = st[2]
            self.stop.wait(self.interval)

    def result(self) -> dict[str, Any]:
        """Peaks in GiB and CPU seconds."""
        return {"driver_peak_gib": round(self.peak_driver / GB, 2), "tree_peak_gib": round(self.peak_tree / GB, 2),
                "python_peak_gib": round(self.peak_python / GB, 2), "tree_cpu_s": round(sum(self.cpu.values()), 1),
                "jvm": self.jvm_seen}


# ------------------------------------------------------------------------------------------------- runner

def step_args(args: argparse.Namespace, n: int, root: Path, engine: str) -> argparse.Namespace:
    """The namespace bench_score.spawn expects, for one size, root and engine."""
    extra = list(args.override) + (SPARK_OVERRIDES if engine == "spark" else [])
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
             "(Python + JVM) | Spark Python GiB | CPU s DuckDB / Spark | load avg (start) DuckDB / Spark |",
             "|---|---|---|---|---|---|---|---|---|"]
    for step in STEPS:
        if step not in res:
            continue
        d, s = res[step].get("duckdb", {}), res[step].get("spark", {})
        if "not_available" in s or not s:
            spark = (f"n/a ({s['not_available']})" if s else "not run", "", "", "", "")
        else:
            ratio = f"{s['wall_s'] / d['wall_s']:.2f}x" if "wall_s" in d else ""
            spark = (f"{s['wall_s']:.1f}", ratio, f"{s['driver_peak_gib']:.2f}", f"{s['python_peak_gib']:.2f}",
                     f"{s['tree_cpu_s']:.0f}")
        duck = (f"{d['wall_s']:.1f}", f"{d['driver_peak_gib']:.2f}", f"{d['tree_cpu_s']:.0f}") if "wall_s" in d \
            else ("", "", "")
        load = f"{d.get('load_avg', ['-'])[0]} / {s.get('load_avg', ['-'])[0]}"
        lines.append(f"| {step} | {duck[0]} | {spark[0]} | {spark[1]} | {duck[1]} | {spark[2]} | {spark[3]} | "
                     f"{duck[2]} / {spark[4]} | {load} |")
    return "\n".join(lines)


def growth(results: dict[str, Any], margin: float) -> list[str]:
    """Spark's driver peak for features and score at the smallest vs largest size measured: flat within margin?"""
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
        verdict = "flat" if change <= margin else "GROWS"
        lines.append(f"{step}: Spark driver peak {a['driver_peak_gib']:.2f} GiB at {n0:,} -> "
                     f"{b['driver_peak_gib']:.2f} GiB at {n1:,} ({change:+.0%}; Python process {py:+.0%}): "
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
