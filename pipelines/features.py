"""Stage `features`: point-in-time feature tables per cutoff role (train / eval / score)."""

from __future__ import annotations

import os
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from datetime import date
from functools import reduce
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

from features.build import (
    FeatureConfig,
    build_features,
    customer_range,
    drop_steps,
    final_sql,
    population_columns,
    prepare_inputs,
    range_filter,
    step_queries,
)
from features.engine import DuckRunner, Runner, SparkRunner, runner_for
from features.ingest import literal
from features.timeline import Cutoff, cutoffs, within_history
from pipelines import cleanup, paths, sources
from pipelines.catalog import ROLES, Catalog
from pipelines.cleanup import owner_tag
from pipelines.config import load_params
from pipelines.io import atomic_path, write_behind
from pipelines.progress import Progress
from pipelines.runinfo import write_report

INPUTS = ("transactions", "events", "customers")
RANGE_CUSTOMERS = 1_000_000  # customers per range of the single-cutoff build (bounds its memory)
ROW_GROUP = 122_880  # rows per Parquet row group, DuckDB's own size (readers stream the file by row group)


def sql_path(path: Path) -> str:
    """A file path as a SQL string literal (quotes doubled: a folder named "O'Brien" stays one string)."""
    return literal(Path(path).as_posix())


def connect(memory_limit: str | None = None) -> duckdb.DuckDBPyConnection:
    """A DuckDB connection in UTC that spills beyond its memory limit (sources.duckdb_memory: CHURN_CLV_DUCKDB_MEMORY,
    else engine.memory_limit; None: DuckDB's default) into
    a private folder under the temp dir (DuckDB creates it and removes it on close; a killed run's is swept)."""
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    spill = Path(tempfile.gettempdir()) / f"{owner_tag(cleanup.FEATURES_SPILL)}{os.urandom(6).hex()}"
    con.execute(f"SET temp_directory = {sql_path(spill)}")  # not DuckDB's default .tmp/ in the working directory
    limit = sources.duckdb_memory(memory_limit)
    if limit:
        con.execute(f"SET memory_limit = {literal(str(limit))}")
    con.execute("SET preserve_insertion_order = false")
    return con


def open_inputs(engine: Any, root: Path = paths.ROOT, catalog: Catalog | None = None) -> Runner:
    """Expose the interim tables as views on engine (a DuckDB connection or SparkSession); transactions required."""
    cat = catalog or Catalog(root)
    runner = runner_for(engine)
    for name in INPUTS:
        if name == "transactions" and not cat.exists(name):
            raise FileNotFoundError(f"{cat.location(name)}: missing; run the ingest stage first (dvc repro ingest)")
        if not cat.exists(name):
            continue  # build.ensure_inputs gives an empty contract-shaped view
        if runner.dialect == "spark":
            cat.spark_frame(name, spark=runner.spark).createOrReplaceTempView(name)
        else:
            runner.view(name, f"SELECT * FROM read_parquet({sql_path(cat.path(name))})")
    return runner


def observed_days(engine: Any) -> tuple[date, date]:
    """First and last transaction day in the data."""
    first, last = runner_for(engine).rows("SELECT MIN(CAST(ts AS DATE)), MAX(CAST(ts AS DATE)) FROM transactions")[0]
    if first is None:
        raise ValueError(f"{paths.TRANSACTIONS}: no transactions to build features from")
    return first, last


def resolve_as_of(windows: dict[str, Any], last_day: date) -> date:
    """windows.as_of as a date, defaulting to the last observed transaction day."""
    value = windows.get("as_of")
    return last_day if value in (None, "") else date.fromisoformat(str(value))


def write_role(con: duckdb.DuckDBPyConnection, cuts: list[Cutoff], cfg: FeatureConfig, cat: Catalog,
               name: str, per_range: int = RANGE_CUSTOMERS) -> list[dict]:
    """Build every cutoff of one role with DuckDB and write them, stacked, to one Parquet file at name."""
    target = cat.path(name)
    target.parent.mkdir(parents=True, exist_ok=True)
    if len(cuts) == 1:  # one cutoff (score role): built by customer range, written sorted straight to the target
        write_ranged(con, cuts[0], cfg, target, per_range)
        return [cutoff_stats(con, target, cuts[0])]
    stats = []
    with tempfile.TemporaryDirectory(dir=target.parent, prefix=owner_tag(".features-")) as tmp:
        parts = []
        for cut in cuts:
            part = Path(tmp) / f"{cut.cutoff}.parquet"
            build_features(con, cut, cfg).write_parquet(part.as_posix())
            drop_steps(con)
            parts.append(part.as_posix())
            stats.append(cutoff_stats(con, part, cut))
        files = "[" + ", ".join(map(literal, parts)) + "]"
        cat.write(name, con.sql(f"SELECT * FROM read_parquet({files}) ORDER BY cutoff, customer_id"))  # deterministic
    return stats


def range_bounds(con: duckdb.DuckDBPyConnection, per_range: int) -> list[str | None]:
    """Customer-id bounds cutting the customers of `transactions` into ranges of about per_range (None: open)."""
    customers = con.execute("SELECT approx_count_distinct(customer_id) FROM transactions").fetchall()[0][0]
    ranges = max(1, round(customers / per_range))
    if ranges <= 1:
        return [None, None]
    sample = "(SELECT customer_id FROM transactions USING SAMPLE reservoir(100000 ROWS) REPEATABLE (7))"
    levels = ", ".join(repr(i / ranges) for i in range(1, ranges))
    cuts = con.execute(f"SELECT quantile_disc(customer_id, [{levels}]) FROM {sample}").fetchall()[0][0]
    return [None, *sorted(set(cuts) - {None}), None]


@contextmanager
def ranged_inputs(con: duckdb.DuckDBPyConnection) -> Iterator[Callable[[str | None, str | None], None]]:
    """While open, the input views (INPUTS) show one customer-id range, chosen by the yielded function (low, high);
    the whole views come back on exit. The interim files are sorted by customer_id, so a range skips the other
    ranges' Parquet row groups by their min/max statistics."""
    for name in INPUTS:
        con.execute(f"ALTER VIEW {name} RENAME TO _all_{name}")

    def select(low: str | None, high: str | None) -> None:
        condition = range_filter(low, high)
        for name in INPUTS:
            where = f" WHERE {condition}" if condition else ""
            con.execute(f"CREATE OR REPLACE TEMP VIEW {name} AS SELECT * FROM _all_{name}{where}")

    try:
        select(None, None)
        yield select
    finally:
        for name in INPUTS:
            con.execute(f"DROP VIEW IF EXISTS {name}")
            con.execute(f"ALTER VIEW _all_{name} RENAME TO {name}")


def population_scores(runner: DuckRunner, queries: dict[str, str], ranges: list[tuple[str | None, str | None]],
                      select: Callable[[str | None, str | None], None]) -> None:
    """Temp table _scores for every customer: its ranks are over the whole population, so the few columns scores.sql
    reads from _orders and _rfm (build.population_columns) are gathered range by range first."""
    for i, (low, high) in enumerate(ranges):
        select(low, high)
        for table, columns in population_columns().items():
            narrow = f"SELECT {', '.join(columns)} FROM ({queries[table]})"
            if i:
                runner.con.execute(f"INSERT INTO {table} {narrow}")
            else:
                runner.materialise(table, narrow)
    runner.materialise("_scores", queries["_scores"])


def _file_schema(con: duckdb.DuckDBPyConnection, query: str, tmp: Path) -> pa.Schema:
    """The Parquet schema DuckDB writes for query (its NOT NULL columns from the plan), from the first customer."""
    first = con.execute("SELECT MIN(customer_id) FROM _orders").fetchall()[0][0] or ""
    probe = tmp.with_name(tmp.name + ".schema")
    try:
        con.execute(f"COPY ({customer_range(query, first, first + chr(1))}) TO {sql_path(probe)} (FORMAT parquet)")
        return pq.read_schema(probe)
    finally:
        probe.unlink(missing_ok=True)


def write_ranged(con: duckdb.DuckDBPyConnection, cut: Cutoff, cfg: FeatureConfig, target: Path,
                 per_range: int = RANGE_CUSTOMERS) -> None:
    """The features at cut, ordered by customer_id, to one Parquet file, built one customer-id range at a time.

    Each range's step tables come from its own customers' input rows and its final join is sorted alone, so
    memory holds one range (10M customers do not fit a modest engine.memory_limit at once); pyarrow appends the
    ranges in order, each on a writer thread beside the next range's build. Only _scores (population ranks) is
    built for every customer, from narrow tables.
    """
    runner = prepare_inputs(con, cfg)
    queries = step_queries(runner, cut, cfg)  # rfm's period slots start at the first purchase of every customer
    final = final_sql(cut, cfg)
    bounds = range_bounds(con, per_range)
    ranges = list(zip(bounds, bounds[1:], strict=False))
    with ranged_inputs(con) as select, atomic_path(target) as tmp, ExitStack() as files:
        if len(ranges) > 1:
            population_scores(runner, queries, ranges, select)
            del queries["_scores"]
        sink: dict[str, Any] = {}

        def built() -> Iterator[tuple[pa.Table, None]]:
            """Each range's rows, sorted, as one Arrow table (the Parquet writer opened at the first)."""
            for low, high in ranges:
                select(low, high)
                for table, query in queries.items():
                    runner.materialise(table, query)
                if not sink:
                    sink["schema"] = _file_schema(con, final, tmp)
                    sink["writer"] = files.enter_context(pq.ParquetWriter(tmp, sink["schema"]))
                # every step table but the population-wide _scores holds this range only, and the final's inner
                # joins keep the rows of _orders: no range filter needed (one costs 2x the final's CPU)
                yield con.sql(f"{final} ORDER BY customer_id").to_arrow_table().cast(sink["schema"]), None

        for _ in write_behind(built(), lambda rows: sink["writer"].write_table(rows, row_group_size=ROW_GROUP)):
            pass  # range k is written on a thread while range k+1 is built
    drop_steps(con)


def write_role_spark(runner: SparkRunner, cuts: list[Cutoff], cfg: FeatureConfig, cat: Catalog,
                     name: str) -> list[dict]:
    """Build every cutoff of one role on Spark and write them, stacked and sorted, as Parquet parts at name."""
    frames = [build_features(runner, cut, cfg) for cut in cuts]  # analysed now: later view swaps do not touch them
    drop_steps(runner)
    stacked = reduce(lambda a, b: a.unionByName(b), frames).orderBy("cutoff", "customer_id")
    cat.write(name, stacked)
    runner.spark.read.parquet(cat.location(name)).createOrReplaceTempView("_written")
    rows = runner.rows("SELECT cutoff, COUNT(*), AVG(churned), SUM(future_revenue) FROM _written GROUP BY cutoff")
    runner.spark.catalog.dropTempView("_written")
    by_cutoff = {row[0]: row[1:] for row in rows}
    return [_stats(cut, *by_cutoff.get(cut.cutoff, (0, None, None))) for cut in cuts]


def _stats(cut: Cutoff, rows: int, churn_rate: float | None, revenue: float | None) -> dict[str, Any]:
    """The report entry of one written cutoff."""
    return {"role": cut.role, "cutoff": str(cut.cutoff), "label_end": str(cut.label_end or ""),
            "customers": rows, "churn_rate": churn_rate, "future_revenue": revenue}


def cutoff_stats(con: duckdb.DuckDBPyConnection, part: Path, cut: Cutoff) -> dict[str, Any]:
    """Row count and label summary of one written cutoff."""
    rows, churn_rate, revenue = con.execute(
        f"SELECT COUNT(*), AVG(churned), SUM(future_revenue) FROM read_parquet({sql_path(part)})"
    ).fetchall()[0]
    return _stats(cut, rows, churn_rate, revenue)


def engine_runner(params: dict[str, Any], cat: Catalog) -> Runner:
    """A runner on params["engine"]: a new DuckDB connection, or the engine's SparkSession."""
    engine = params.get("engine") or {"name": "duckdb"}
    if engine.get("name") == "spark":
        return SparkRunner(cat.spark())
    return DuckRunner(connect(engine.get("memory_limit")))


def close(runner: Runner) -> None:
    """Close a DuckDB connection this stage opened (a SparkSession stays up for the process)."""
    if isinstance(runner, DuckRunner):
        runner.con.close()


def write_features(runner: Runner, cuts: list[Cutoff], cfg: FeatureConfig, cat: Catalog, role: str) -> list[dict]:
    """Build and write one role's cutoffs on the runner's engine."""
    name = f"features_{role}"
    if isinstance(runner, SparkRunner):
        return write_role_spark(runner, cuts, cfg, cat, name)
    return write_role(runner.con, cuts, cfg, cat, name)


def run(params: dict[str, Any], root: Path = paths.ROOT) -> dict[str, Any]:
    """Build and write the train / eval / score feature tables and reports/features.json under root."""
    started = time.perf_counter()
    cfg = FeatureConfig.from_params(params["features"])
    windows = params["windows"]
    cleanup.before_stage("features", Path(root))  # part folders and temp files of a killed earlier run
    cat = Catalog.from_params(params, root)
    runner = engine_runner(params, cat)
    try:
        open_inputs(runner, root, cat)
        first_day, last_day = observed_days(runner)
        as_of = resolve_as_of(windows, last_day)
        step = windows.get("train_step_days")
        cuts, skipped = within_history(
            cutoffs(as_of, int(windows["horizon_days"]), int(windows["n_train_cutoffs"]),
                    None if step is None else int(step)),
            first_day,
        )
        for cut in skipped:
            print(f"features: note: skipping train cutoff {cut.cutoff}, before the first transaction day {first_day}")
        report: dict[str, Any] = {"as_of": str(as_of), "horizon_days": int(windows["horizon_days"]),
                                  "train_step_days": int(step or windows["horizon_days"]),
                                  "skipped_cutoffs": [{"role": c.role, "cutoff": str(c.cutoff),
                                                       "reason": f"before the first transaction day {first_day}"}
                                                      for c in skipped],
                                  "cutoffs": []}
        progress = Progress("features", len(cuts), "cutoffs", stream=sys.stdout)
        for role in ROLES:
            role_cuts = [c for c in cuts if c.role == role]
            report["cutoffs"] += write_features(runner, role_cuts, cfg, cat, role)
            days = ", ".join(str(c.cutoff) for c in role_cuts)
            progress.step(f"{role}: {days} -> {cat.location(f'features_{role}')}")
        report["n_columns"] = len(_written_columns(runner, cat))
    finally:
        close(runner)
    report["seconds"] = round(time.perf_counter() - started, 2)
    write_report(report, cat.path("features_report"), "features")  # seconds: reports/runs/
    return report


def _written_columns(runner: Runner, cat: Catalog) -> list[str]:
    """Column names of the written score-role table."""
    if isinstance(runner, SparkRunner):
        return runner.spark.read.parquet(cat.location("features_score")).columns
    described = runner.rows(f"DESCRIBE SELECT * FROM read_parquet({sql_path(cat.path('features_score'))})")
    return [row[0] for row in described]


def run_score_only(params: dict[str, Any], root: Path) -> Path:
    """Only the score role (features at as_of, no labels) under root: standalone scoring of new data."""
    cfg = FeatureConfig.from_params(params["features"])
    cat = Catalog.from_params(params, root)
    runner = engine_runner(params, cat)
    try:
        open_inputs(runner, root, cat)
        _, last_day = observed_days(runner)
        as_of = resolve_as_of(params["windows"], last_day)
        write_features(runner, [Cutoff("score", as_of, None)], cfg, cat, "score")
    finally:
        close(runner)
    return cat.path("features_score")


def main(argv: list[str] | None = None) -> int:
    """Entry point: `python -m pipelines.features [hydra overrides]`."""
    try:
        report = run(load_params(argv))
    except (ValueError, FileNotFoundError) as exc:
        print(f"features: error: {exc}", file=sys.stderr)
        return 2
    except duckdb.OutOfMemoryException as exc:
        print(f"features: error: DuckDB ran out of memory ({str(exc).splitlines()[0]}): raise engine.memory_limit "
              "(conf/engine/duckdb.yaml) or free memory on this machine", file=sys.stderr)
        return 2
    for row in report["cutoffs"]:
        print(f"  {row['role']:5s} {row['cutoff']}  customers={row['customers']:>9,}  churn_rate={row['churn_rate']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
