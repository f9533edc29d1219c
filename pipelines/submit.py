"""Run a pipeline stage under spark-submit or a Databricks Python task, with the master and conf they set.

    spark-submit --master yarn --py-files dist/churn_clv.whl pipelines/submit.py features engine=spark
    spark-submit ... pipelines/submit.py ingest,features,train_clv,train_churn,score engine=spark  # in order
    python -m pipelines.submit features engine=spark        # no spark-submit: engine.spark.master decides

`python -m` cannot be given to spark-submit, which takes a file: this file is that entry. It makes the checkout
importable, runs from the workspace (the folder holding dvc.yaml: the current directory or one above it, else the
checkout holding this file, or --workspace DIR), and then runs `python -m pipelines.<stage> [overrides]` for each
stage of a comma-separated list, in order, stopping at the first that fails.
When spark-submit or a Databricks cluster already configured Spark, the SparkSession is started from THAT
configuration first (their master and deploy settings win; engine.spark.conf fills only keys they left unset), so
the stage's own session() reuses it instead of applying engine.spark.master (default local[*]).
"""

from __future__ import annotations

import os
import runpy
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

CHECKOUT = Path(__file__).resolve().parents[1]


def workspace(cwd: Path, explicit: str | None = None) -> Path:
    """The folder the stage runs in: --workspace, else the nearest with dvc.yaml from cwd up, else the checkout."""
    if explicit:
        return Path(explicit).resolve()
    for folder in (cwd, *cwd.parents):
        if (folder / "dvc.yaml").exists():
            return folder
    return CHECKOUT


def parse(argv: list[str]) -> tuple[str | None, list[str], list[str]]:
    """(--workspace value, stages, Hydra overrides) from the command line; ValueError (one line) when unusable."""
    explicit = None
    if argv[:1] == ["--workspace"] and len(argv) > 1:
        explicit, argv = argv[1], argv[2:]
    elif argv[:1] and argv[0].startswith("--workspace="):
        explicit, argv = argv[0].split("=", 1)[1], argv[1:]
    stages = argv[0].split(",") if argv else []
    if not stages or not all(stage.isidentifier() for stage in stages):
        raise ValueError("usage: submit.py [--workspace DIR] <stage>[,<stage>...] [hydra overrides], "
                         "e.g. `features engine=spark`")
    return explicit, stages, argv[1:]


def missing_conf(wanted: Mapping[str, Any], present: Mapping[str, str]) -> dict[str, str]:
    """engine.spark.conf entries that spark-submit / the cluster did not set (theirs win), as Spark strings."""
    return {str(k): str(v).lower() if isinstance(v, bool) else str(v)
            for k, v in wanted.items() if str(k) not in present}


def preset_spark() -> Any | None:
    """The Spark conf spark-submit or the cluster set (a SparkConf), None when this is a plain Python process."""
    from pyspark.sql import SparkSession

    active = SparkSession.getActiveSession()
    if active is None and os.environ.get("DATABRICKS_RUNTIME_VERSION"):  # a Databricks cluster's own session
        active = SparkSession.builder.getOrCreate()
    if active is not None:
        return active.sparkContext.getConf()
    if not os.environ.get("PYSPARK_GATEWAY_PORT"):  # set by spark-submit for the Python driver it launches
        return None
    from pyspark import SparkConf, SparkContext

    SparkContext._ensure_initialized()  # connect to spark-submit's JVM so SparkConf sees --master, --conf, ...
    return SparkConf()


def start_session(engine: Mapping[str, Any]) -> str:
    """Start the SparkSession the stage will reuse; a line saying where its master came from."""
    from pyspark.sql import SparkSession

    from pipelines import spark

    preset = preset_spark()
    if preset is None:
        return f"master {spark.session(engine).sparkContext.master} (engine.spark.master)"
    settings = engine.get("spark") or {}
    builder = SparkSession.builder
    if preset.get("spark.app.name", "submit.py") == "submit.py" and settings.get("app_name"):  # no --name given
        builder = builder.appName(str(settings["app_name"]))
    filled = missing_conf(settings.get("conf") or {}, dict(preset.getAll()))
    for key, value in filled.items():
        builder = builder.config(key, value)
    session = builder.getOrCreate()
    session.sparkContext.setLogLevel("ERROR")
    return (f"master {session.sparkContext.master} from spark-submit / the cluster (engine.spark.master not used); "
            f"from engine.spark.conf: {', '.join(f'{k}={v}' for k, v in filled.items()) or 'nothing'}")


def main(argv: list[str] | None = None) -> int:
    """Parse, check engine=spark, start Spark from the submitted conf, run each stage as `python -m` would."""
    try:
        explicit, stages, overrides = parse(list(sys.argv[1:] if argv is None else argv))
    except ValueError as exc:
        print(f"submit: {exc}", file=sys.stderr)
        return 2
    root = workspace(Path.cwd(), explicit)
    if str(CHECKOUT) not in sys.path:
        sys.path.insert(0, str(CHECKOUT))
    os.chdir(root)  # before importing pipelines: paths.ROOT is the working directory's workspace
    import importlib.util

    for stage in stages:
        if importlib.util.find_spec(f"pipelines.{stage}") is None:
            print(f"submit: no stage module pipelines.{stage} (e.g. ingest, features, train_churn, train_clv, score)",
                  file=sys.stderr)
            return 2
    from pipelines.config import load_params

    params = load_params(overrides)  # exits 2 with one line on a bad override
    if (params.get("engine") or {}).get("name") != "spark":
        print(f"submit: engine is {params['engine']['name']!r}; add the override engine=spark", file=sys.stderr)
        return 2
    print(f"submit: {', '.join(stages)} in {root}; {start_session(params['engine'])}", flush=True)
    for stage in stages:
        status = run_stage(stage, overrides)
        if status != 0:
            print(f"submit: pipelines.{stage} exited with {status}; later stages not run", file=sys.stderr)
            return status
    return 0


def run_stage(stage: str, overrides: list[str]) -> int:
    """`python -m pipelines.<stage> <overrides>` in this process; its exit status."""
    sys.argv = [f"pipelines.{stage}", *overrides]
    try:
        runpy.run_module(f"pipelines.{stage}", run_name="__main__", alter_sys=True)
    except SystemExit as done:  # the stage's own exit status (and message, if it exits with one)
        if isinstance(done.code, str):
            print(done.code, file=sys.stderr)
        return done.code if isinstance(done.code, int) else (0 if done.code is None else 1)
    return 0


if __name__ == "__main__":
    if sys.path and Path(sys.path[0] or ".").resolve() == Path(__file__).resolve().parent:
        sys.path[0] = str(CHECKOUT)  # run as a file: pipelines/ itself must not shadow top-level modules
    sys.exit(main())
