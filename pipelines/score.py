"""Stage `score`: every customer at as_of -> outputs/customer_scores.{csv,parquet} and outputs/warehouse.duckdb.

Models, per the time design: churn as refit by train_churn with c_e as its latest training cutoff, CLV as refit
by train_clv on all history up to as_of (artifacts/). With `churn.model_uri=models:/churn-lightgbm/N` the stage
scores new data (data=files ...) with registered models instead: its own ingest and as_of features under
data/standalone/, no retraining. Customers stream through in chunks of scoring.chunk_rows (bounded memory).
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.dataset as pads
import pyarrow.parquet as pq

from features import privacy
from features.build import FeatureConfig
from models.churn.errors import ChurnInputError
from models.churn.features import PRIOR_COLUMN, feature_columns
from models.churn.prior import btyd_prior
from models.scoring.assemble import RFM, ClvSettings, assemble, clv_scores, decile_edges
from models.scoring.config import ScoringConfig
from models.scoring.schema import ScoreLayout
from models.scoring.summary import finish_summary
from pipelines import action_plan, insights, paths
from pipelines.config import load_params
from pipelines.io import check_not_locked, parquet_batches, write_behind
from pipelines.progress import Progress
from pipelines.runinfo import write_report
from pipelines.scoring_models import ScoringModels, from_artifacts, from_registry

ROW_COLUMNS = ["customer_id", "cutoff", "rfm_r", "rfm_f", "rfm_m", "rfm_segment", "tenure_days"]


def layout_of(params: dict[str, Any]) -> ScoreLayout:
    """The output layout (column names) from windows, clv and churn params."""
    clv, churn = params.get("clv") or {}, params.get("churn") or {}
    return ScoreLayout(int(params["windows"]["horizon_days"]), int(clv.get("horizon_months", 12)),
                       float(clv.get("interval", 0.9)), int(churn.get("reason_codes", 3)))


def standalone_features(params: dict[str, Any], root: Path) -> Path:
    """Ingest the configured data under data/standalone/ and build its as_of features; returns score.parquet."""
    from pipelines import features, ingest

    work = paths.rebase(paths.STANDALONE, root)
    data = dict(params["data"])
    for key in ("transactions", "events", "customers"):
        if data.get(key):
            data[key] = str(paths.input_file(data[key], root).resolve())
    ingest.run({**params, "data": data}, work)
    return features.run_score_only(params, work)


def default_clv_uri(model: str, root: Path) -> str:
    """models:/clv-<model>@champion; with clv.model=auto the model train_clv chose and registered (artifacts/clv)."""
    if model != "auto":
        return f"models:/clv-{model}@champion"
    record = paths.rebase(paths.ARTIFACTS, root) / "clv" / "mlflow.json"
    if not record.exists():
        raise ValueError(f"clv.model=auto and no {record} names the chosen model: set clv.model_uri "
                         "(e.g. models:/clv-bgnbd/1) or clv.model")
    return f"models:/{json.loads(record.read_text(encoding='utf-8'))['registered_model']}@champion"


def load_models(params: dict[str, Any], root: Path) -> ScoringModels:
    """Registered models when churn.model_uri is set (clv.model_uri defaults to clv-<model>@champion)."""
    churn_uri = (params.get("churn") or {}).get("model_uri")
    if not churn_uri:
        return from_artifacts(root)
    from pipelines import tracking

    clv = params.get("clv") or {}
    clv_uri = clv.get("model_uri") or default_clv_uri(clv.get("model", "auto"), root)
    return from_registry(str(churn_uri), str(clv_uri), tracking.tracking_uri(params.get("mlflow")))


def feature_schema(source: Path) -> pa.Schema:
    """The Arrow schema of a feature table: one Parquet file, or engine=spark's folder of parts."""
    return pads.dataset(source, format="parquet").schema


def check_schema(source: Path, columns: list[str], models: ScoringModels) -> None:
    """ChurnInputError naming the feature columns the model lacks (extra) and the file lacks (missing)."""
    spec = models.churn.spec
    empty = feature_schema(source).empty_table().to_pandas()
    present = set(feature_columns(empty))
    missing = [c for c in spec.features if c not in columns]
    extra = sorted(present - set(spec.expected_columns))
    absent = [c for c in ROW_COLUMNS + RFM if c not in columns]
    if missing or extra or absent:
        raise ChurnInputError(f"{source}: feature schema differs from the churn model's: missing {missing + absent}, "
                              f"extra {extra}")


def read_as_of(source: Path) -> tuple[date, pd.DataFrame]:
    """The single cutoff of a score feature table and its RFM columns (all rows, file order)."""
    rfm = pq.read_table(source, columns=["cutoff", *RFM]).to_pandas()
    cutoffs = pd.to_datetime(rfm["cutoff"]).dt.date.unique()
    if len(cutoffs) != 1:
        raise ValueError(f"{source}: expected one cutoff (as_of), found {sorted(map(str, cutoffs))}")
    if rfm["customer_id"].duplicated().any():
        raise ValueError(f"{source}: customer_id {rfm['customer_id'][rfm['customer_id'].duplicated()].iloc[0]!r} "
                         "appears twice")
    return cutoffs[0], rfm


def prior_column(models: ScoringModels, rfm: pd.DataFrame, horizon: int, unit: float, seed: int) -> np.ndarray | None:
    """The BTYD prior P(no purchase) per row when the churn model boosts from one, else None."""
    kind = models.churn.spec.prior
    if kind == "none":
        return None
    values, failures = btyd_prior(rfm.assign(cutoff=rfm["cutoff"].astype(str)), kind, horizon, unit, seed)
    if failures:
        raise ChurnInputError(f"churn prior {kind} could not be fitted at as_of: {next(iter(failures.values()))}")
    return values


def wanted_columns(models: ScoringModels, cfg: ScoringConfig, columns: list[str]) -> list[str]:
    """The feature columns a chunk is read with: row columns, the churn model's features, the rules' columns."""
    return list(dict.fromkeys([*ROW_COLUMNS, *models.churn.spec.features,
                               *[c for c in cfg.rule_columns() if c in columns]]))


def score_rows(frame: pd.DataFrame, clv: pd.DataFrame, prior: np.ndarray | None, edges: np.ndarray,
               models: ScoringModels, context: dict[str, Any]) -> pd.DataFrame:
    """customer_scores rows of one chunk (its features, CLV rows and prior in the same order), pseudonymised."""
    layout = context["layout"]
    if prior is not None:
        frame[PRIOR_COLUMN] = prior
    churn = models.churn.score_with_reasons(frame, layout.reason_codes)
    rows = assemble(frame, churn, clv, edges, context["cfg"], layout, context["locale"], context["stamp"],
                    unit_days=context["unit_days"])
    return context["pseudonymise"](rows)  # scoring.pseudonymise_ids: keyed-hash customer_id


def chunk_jobs(source: Path, wanted: list[str], clv: pd.DataFrame, prior: np.ndarray | None,
               rows: int) -> Iterator[tuple[pa.RecordBatch, pd.DataFrame, np.ndarray | None]]:
    """(features batch, its CLV rows, its prior) per chunk of the feature table, in file order."""
    start = 0
    for batch in parquet_batches(source, wanted, rows):
        stop = start + batch.num_rows
        yield batch, clv.iloc[start:stop], None if prior is None else prior[start:stop]
        start = stop


def score_chunks(source: Path, models: ScoringModels, clv: pd.DataFrame, prior: np.ndarray | None,
                 context: dict[str, Any], sinks: Any, progress: Progress,
                 params: dict[str, Any] | None = None) -> list[pd.DataFrame]:
    """Stream the feature table in chunks: churn with reasons, assemble (on scoring.threads threads, or in
    scoring.workers processes), write in order on a writer thread (chunk k is written while chunk k+1 is scored);
    returns the summary parts."""
    from pipelines import score_pool

    cfg, layout = context["cfg"], context["layout"]
    edges, parts = decile_edges(clv[layout.clv_column].to_numpy()), []
    jobs = chunk_jobs(source, wanted_columns(models, cfg, context["columns"]), clv, prior, cfg.chunk_rows)
    workers = score_pool.worker_count(params or {}, -(-len(clv) // cfg.chunk_rows), len(clv))
    threads = score_pool.thread_count(params or {}, len(clv)) if workers <= 1 else 1
    scored = score_pool.scored(jobs, models, edges, context, params or {}, workers, threads)
    for table, part in write_behind(scored, sinks.write_checked):
        parts.append(part)
        progress.update(table.num_rows)
    return parts


def relative(tree: Any, root: Path) -> Any:
    """A report with absolute paths under root written relative to it (reports are committed)."""
    if isinstance(tree, dict):
        return {k: relative(v, root) for k, v in tree.items()}
    if isinstance(tree, str) and tree.startswith(str(root.resolve()) + "/"):
        return Path(tree).relative_to(root.resolve()).as_posix()
    return tree


def clv_settings(params: dict[str, Any], cfg: ScoringConfig, layout: ScoreLayout) -> ClvSettings:
    """Discounting, month length, interval level, grid, seed and draws of the CLV scores."""
    clv_cfg = params.get("clv") or {}
    return ClvSettings(float(clv_cfg.get("discount_rate_monthly", 0.01)), float(clv_cfg.get("days_per_month", 30)),
                       layout.interval, cfg.interval_grid_days, int(params.get("seed", 42)), cfg.interval_draws)


def score_local(params: dict[str, Any], root: Path, source: Path, models: ScoringModels,
                context: dict[str, Any]) -> dict[str, Any]:
    """engine=duckdb: CLV for everyone, then chunks streamed through churn + assemble into every sink."""
    from pipelines.sinks import ScoreSinks

    cfg, layout, unit = context["cfg"], context["layout"], context["unit_days"]
    as_of, rfm = read_as_of(source)
    context["stamp"] = (as_of, *context["stamp"][1:])
    progress = Progress("score", len(rfm), "customers")
    settings = clv_settings(params, cfg, layout)
    with ThreadPoolExecutor(1, thread_name_prefix="score-funnel") as side:  # DuckDB releases the GIL
        funnel = side.submit(insights.funnel_table, params, context["work"], source, layout, as_of)
        clv = clv_scores(models.clv, models.draws, rfm, layout, settings)
        progress.step(f"CLV and intervals for {len(rfm):,} customers ({min(cfg.interval_draws, models.draws.n_draws)}"
                      " draws)")
        prior = prior_column(models, rfm, layout.horizon_days, unit, settings.seed)
        rows_in = len(rfm)
        del rfm  # not needed while the chunks stream
        funnel_rows = funnel.result()
    outputs = paths.rebase(paths.OUTPUTS, root)
    extra = insights.tables(params, context["work"], source, clv, layout, as_of, outputs, funnel_rows)  # + migration
    with ScoreSinks(outputs, layout, as_of, cfg.sink, extra_tables=insights.table_columns()) as sinks:
        parts = score_chunks(source, models, clv, prior, context, sinks, progress, params)
        summary = finish_summary(parts, layout)
        written = sinks.finish(summary, extra=extra)
    progress.close()
    rows_out = int(summary["customers"].sum()) if len(summary) else 0
    if rows_out != rows_in:
        raise RuntimeError(f"row count in {rows_in:,} != row count out {rows_out:,}")
    return {"as_of": as_of, "rows_in": rows_in, "rows_out": rows_out, "chunks": progress.chunks,
            "sinks": written, "summary": summary}


def run(params: dict[str, Any], root: Path = paths.ROOT) -> dict[str, Any]:
    """Score every customer at as_of and write all sinks; returns the report (also reports/score.json).

    engine=spark scores on the executors (pipelines/score_spark.py) and streams the same local outputs."""
    from pipelines.sinks import check_tables

    started = time.perf_counter()
    cfg, layout = ScoringConfig.from_params(params.get("scoring") or {}), layout_of(params)
    check_not_locked(paths.rebase(paths.OUTPUTS, root) / "warehouse.duckdb")  # an open reader: stop before work
    check_tables(paths.rebase(paths.OUTPUTS, root), layout, cfg.sink,  # a table this batch cannot go into: stop now
                 extra_tables=insights.table_columns())
    standalone = bool((params.get("churn") or {}).get("model_uri"))
    source = standalone_features(params, root) if standalone else paths.rebase(paths.FEATURE_FILES["score"], root)
    if not source.exists():
        raise FileNotFoundError(f"{source}: missing; run the features stage first (dvc repro features)")
    models = load_models(params, root)
    layout = replace(layout, has_spend=models.clv.spend is not None)  # no amounts: spend columns are null
    unit = FeatureConfig.from_params(params["features"]).time_unit_days
    if abs(models.clv.time_unit_days - unit) > 1e-9:
        raise ValueError(f"CLV model time unit is {models.clv.time_unit_days:g} days but the features use {unit:g} "
                         "(features.freq x features.freq_multiplier)")
    columns = feature_schema(source).names
    check_schema(source, columns, models)
    scored_at = pd.Timestamp.now(tz="UTC").floor("s")
    context = {"cfg": cfg, "layout": layout, "columns": columns, "stamp": (None, models.version, scored_at),
               "locale": params["features"].get("segment_locale", "en"), "unit_days": unit,
               "pseudonymise": privacy.pseudonymiser(params),
               "work": paths.rebase(paths.STANDALONE, root) if standalone else root}  # where data/interim is
    engine = str((params.get("engine") or {}).get("name", "duckdb"))
    if engine == "spark":
        from pipelines import score_spark

        done = score_spark.score(params, root, source, models, context)
    else:
        done = score_local(params, root, source, models, context)
    as_of, summary, rows_out, written = done["as_of"], done["summary"], done["rows_out"], done["sinks"]
    report = {"as_of": str(as_of), "scored_at": scored_at.isoformat(), "model_version": models.version,
              "engine": engine, "standalone": standalone, "source": str(source.resolve()), "rows_in": done["rows_in"],
              "spend": {"available": layout.has_spend,
                        "null_columns": [] if layout.has_spend else list(layout.spend_columns())},
              "rows_out": rows_out, "chunks": done["chunks"], "sinks": written, **done.get("spark", {}),
              "risk_bands": summary.groupby("churn_risk_band")["customers"].sum().astype(int).to_dict(),
              "segments": summary.groupby("rfm_segment")["customers"].sum().astype(int).to_dict(),
              "seconds": round(time.perf_counter() - started, 2)}
    report["action_plan"] = action_plan.run(params, root, features=source)  # the whole batch at once (budget)
    report = relative(report, Path(root))
    write_report(report, paths.rebase(paths.SCORE_REPORT, root), "score")  # scored_at, seconds: reports/runs/
    return report


def main(argv: list[str] | None = None) -> int:
    """Entry point: `python -m pipelines.score [hydra overrides]`."""
    try:
        report = run(load_params(argv), paths.ROOT)
    except (ValueError, FileNotFoundError) as exc:
        print(f"score: error: {exc}", file=sys.stderr)
        return 2
    print(f"score: {report['rows_out']:,} customers at {report['as_of']} ({report['model_version']}) in "
          f"{report['seconds']:.1f}s; rows in {report['rows_in']:,} = rows out {report['rows_out']:,}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
