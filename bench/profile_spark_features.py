"""Profile the score role's features on Spark: CPU s of the process tree per step table and for the final write,
and the JVM's CPU by thread kind (executor tasks, JIT compilers, GC) from /proc.

    .venv/bin/python bench/profile_spark_features.py --root <root with data/interim> --out /tmp/x/score.parquet \
        [--views] [--master 'local[2]']

By default each step table is written once as Parquet (under <out>.steps, deleted at the end) so its cost shows
apart; --views keeps them as views (what pipelines/features.py does), timing only the whole final write.
"""

from __future__ import annotations

import argparse
import collections
import os
import re
import resource
import shutil
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from features.build import FeatureConfig, final_sql, prepare_inputs, step_queries  # noqa: E402
from features.engine import SparkRunner  # noqa: E402
from features.timeline import Cutoff  # noqa: E402
from pipelines import config  # noqa: E402
from pipelines import features as stage  # noqa: E402
from pipelines.catalog import Catalog  # noqa: E402

TICK = os.sysconf("SC_CLK_TCK")


def _children() -> list[int]:
    """Process ids whose parent is this process (the JVM of a local Spark session)."""
    kids = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == os.getpid():
            kids.append(int(pid))
    return kids


def tree_cpu() -> float:
    """CPU s of this process plus its live children."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    total = own.ru_utime + own.ru_stime
    for pid in _children():
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / TICK
    return total


def thread_cpu() -> dict[str, float]:
    """CPU s of the children's threads by name without its number (e.g. 'C2 CompilerThre', 'Executor task i')."""
    kinds: collections.Counter[str] = collections.Counter()
    for pid in _children():
        for task in Path(f"/proc/{pid}/task").iterdir():
            try:
                raw = (task / "stat").read_text()
            except OSError:
                continue
            name = re.sub(r"[0-9 #-]+$", "", raw[raw.index("(") + 1:raw.rindex(")")])
            fields = raw.rsplit(")", 1)[1].split()
            kinds[name] += (int(fields[11]) + int(fields[12])) / TICK
    return {k: round(v, 1) for k, v in kinds.most_common(8)}


def main() -> int:
    """Build and write the score role once, printing wall and tree CPU per phase."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--root", type=Path, required=True)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--master", default="local[2]")
    ap.add_argument("--views", action="store_true", help="step tables as views, as the features stage builds them")
    args = ap.parse_args()
    params = config.compose(["engine=spark", f"engine.spark.master='{args.master}'",
                             "+engine.spark.conf={spark.ui.showConsoleProgress: 'false'}"])
    cat = Catalog.from_params(params, args.root)
    cfg = FeatureConfig.from_params(params["features"])
    wall, cpu = time.time(), tree_cpu()
    start = (wall, cpu)

    def phase(label: str) -> None:
        nonlocal wall, cpu
        print(f"{label:>14s}: wall {time.time() - wall:6.1f} s  tree CPU {tree_cpu() - cpu:6.1f} s", flush=True)
        wall, cpu = time.time(), tree_cpu()

    session = cat.spark()
    stage.open_inputs(session, args.root, cat)
    _, last = stage.observed_days(session)
    cut = Cutoff("score", stage.resolve_as_of(params["windows"], last), None)
    phase("start + inputs")
    runner, scratch = SparkRunner(session), args.out.with_name(args.out.name + ".steps")
    try:
        prepare_inputs(runner, cfg)
        for table, query in step_queries(runner, cut, cfg).items():
            if args.views:
                runner.materialise(table, query)
                continue
            runner.sql(query).write.mode("overwrite").parquet(str(scratch / table.lstrip("_")))
            session.read.parquet(str(scratch / table.lstrip("_"))).createOrReplaceTempView(table)
            phase(table)
        frame = runner.sql(final_sql(cut, cfg)).orderBy("cutoff", "customer_id")
        shutil.rmtree(args.out, ignore_errors=True)
        frame.write.parquet(str(args.out))
        phase("final write" if not args.views else "steps + final")
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    print(f"{'total':>14s}: wall {time.time() - start[0]:6.1f} s  tree CPU {tree_cpu() - start[1]:6.1f} s")
    print("JVM CPU s by thread kind:", thread_cpu(), "load", [round(x, 1) for x in os.getloadavg()])
    return 0


if __name__ == "__main__":
    sys.exit(main())
