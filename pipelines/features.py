"""Stage `features`: point-in-time feature tables per cutoff role (train / eval / score)."""

from __future__ import annotations

import os
import sys
import tempfile
import time
from datetime import date
from pathlib import Path
from typing import Any

import duckdb

from features.build import FeatureConfig, build_features, drop_steps
from features.ingest import literal
from features.timeline import Cutoff, cutoffs, within_history
from pipelines import cleanup, paths
from pipelines.cleanup import owner_tag
from pipelines.config import load_params
from pipelines.progress import Progress
from pipelines.runinfo import write_report


def sql_path(path: Path) -> str:
    """A file path as a SQL string literal (quotes doubled: a folder named "O'Brien" stays one string)."""
    return literal(Path(path).as_posix())


def connect(memory_limit: str | None = None) -> duckdb.DuckDBPyConnection:
    """A DuckDB connection in UTC with bounded memory (spills to a temp directory)."""
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    con.execute(f"SET memory_limit = '{memory_limit or os.environ.get('CHURN_CLV_DUCKDB_MEMORY', '6GB')}'")
    con.execute("SET preserve_insertion_order = false")
    return con


def open_inputs(con: duckdb.DuckDBPyConnection, root: Path = paths.ROOT) -> None:
    """Expose the interim tables under root as views; transactions are required, events/customers optional."""
    for name, interim in paths.INTERIM_FILES.items():
        path = paths.rebase(interim, root)
        if not path.exists() and name == "transactions":
            raise FileNotFoundError(f"{path}: missing; run the ingest stage first (dvc repro ingest)")
        if not path.exists():
            continue  # build.ensure_inputs gives an empty contract-shaped view
        con.execute(f"CREATE OR REPLACE VIEW {name} AS SELECT * FROM read_parquet({sql_path(path)})")


def observed_days(con: duckdb.DuckDBPyConnection) -> tuple[date, date]:
    """First and last transaction day in the data."""
    first, last = con.execute("SELECT MIN(CAST(ts AS DATE)), MAX(CAST(ts AS DATE)) FROM transactions").fetchall()[0]
    if first is None:
        raise ValueError(f"{paths.TRANSACTIONS}: no transactions to build features from")
    return first, last


def resolve_as_of(windows: dict[str, Any], last_day: date) -> date:
    """windows.as_of as a date, defaulting to the last observed transaction day."""
    value = windows.get("as_of")
    return last_day if value in (None, "") else date.fromisoformat(str(value))


def write_role(con: duckdb.DuckDBPyConnection, cuts: list[Cutoff], cfg: FeatureConfig, target: Path) -> list[dict]:
    """Build every cutoff of one role and write them, stacked, to one Parquet file atomically."""
    target.parent.mkdir(parents=True, exist_ok=True)
    stats = []
    with tempfile.TemporaryDirectory(dir=target.parent, prefix=owner_tag(".features-")) as tmp:
        parts = []
        for cut in cuts:
            part = Path(tmp) / f"{cut.cutoff}.parquet"
            build_features(con, cut, cfg).write_parquet(part.as_posix())
            drop_steps(con)
            parts.append(part.as_posix())
            stats.append(cutoff_stats(con, part, cut))
        staged = Path(tmp) / "all.parquet"
        files = "[" + ", ".join(map(literal, parts)) + "]"
        stacked = f"SELECT * FROM read_parquet({files}) ORDER BY cutoff, customer_id"  # deterministic order
        con.execute(f"COPY ({stacked}) TO {sql_path(staged)} (FORMAT parquet)")
        os.replace(staged, target)
    return stats


def cutoff_stats(con: duckdb.DuckDBPyConnection, part: Path, cut: Cutoff) -> dict[str, Any]:
    """Row count and label summary of one written cutoff."""
    rows, churn_rate, revenue = con.execute(
        f"SELECT COUNT(*), AVG(churned), SUM(future_revenue) FROM read_parquet({sql_path(part)})"
    ).fetchall()[0]
    return {"role": cut.role, "cutoff": str(cut.cutoff), "label_end": str(cut.label_end or ""),
            "customers": rows, "churn_rate": churn_rate, "future_revenue": revenue}


def run(params: dict[str, Any], root: Path = paths.ROOT) -> dict[str, Any]:
    """Build and write the train / eval / score feature tables and reports/features.json under root."""
    started = time.perf_counter()
    cfg = FeatureConfig.from_params(params["features"])
    windows = params["windows"]
    cleanup.before_stage("features", Path(root))  # part folders and temp files of a killed earlier run
    con = connect()
    open_inputs(con, root)
    first_day, last_day = observed_days(con)
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
    for role, default in paths.FEATURE_FILES.items():
        role_cuts = [c for c in cuts if c.role == role]
        target = paths.rebase(default, root)
        report["cutoffs"] += write_role(con, role_cuts, cfg, target)
        progress.step(f"{role}: {', '.join(str(c.cutoff) for c in role_cuts)} -> {target}")
    score = paths.rebase(paths.FEATURE_FILES["score"], root)
    report["n_columns"] = len(con.execute(f"DESCRIBE SELECT * FROM read_parquet({sql_path(score)})").fetchall())
    report["seconds"] = round(time.perf_counter() - started, 2)
    con.close()
    write_report(report, paths.rebase(paths.FEATURES_REPORT, root), "features")  # seconds: reports/runs/
    return report


def run_score_only(params: dict[str, Any], root: Path) -> Path:
    """Only the score role (features at as_of, no labels) under root: standalone scoring of new data."""
    cfg = FeatureConfig.from_params(params["features"])
    con = connect()
    try:
        open_inputs(con, root)
        _, last_day = observed_days(con)
        as_of = resolve_as_of(params["windows"], last_day)
        target = paths.rebase(paths.FEATURE_FILES["score"], root)
        write_role(con, [Cutoff("score", as_of, None)], cfg, target)
    finally:
        con.close()
    return target


def main(argv: list[str] | None = None) -> int:
    """Entry point: `python -m pipelines.features [hydra overrides]`."""
    try:
        report = run(load_params(argv))
    except (ValueError, FileNotFoundError) as exc:
        print(f"features: error: {exc}", file=sys.stderr)
        return 2
    for row in report["cutoffs"]:
        print(f"  {row['role']:5s} {row['cutoff']}  customers={row['customers']:>9,}  churn_rate={row['churn_rate']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
