"""Stage `train_clv`: BTYD + Gamma-Gamma fitted at the evaluation cutoff and evaluated on its holdout.

With clv.model=auto (default) the purchase model is first chosen on the training period's own time-held-out
window (models/clv/selection.py: the latest training cutoff, never c_e); every candidate's figures go to the
`selection` section of reports/clv.json. The purchase model and Gamma-Gamma are fitted on the features at c_e
(history up to c_e) and predict (c_e, as_of] = windows.horizon_days, compared with the actual future_purchases /
future_revenue of eval.parquet (purchases only when the data has no amounts), side by side with a LightGBM
challenger trained on the training cutoffs. Outputs:
reports/clv.json (DVC metrics), reports/plots/clv_*.csv (DVC plots), artifacts/clv/ (parameters JSON,
per-customer eval predictions with intervals, challenger boosters) and one MLflow run with the model
registered as the pyfunc `clv-<model>`.

Then, per the time design, the same recipe is refit on all data up to as_of (score.parquet): that model and its
parameter draws (artifacts/clv/production.json, production_draws.json) are what the `score` stage uses, and it
is the version registered in MLflow (as train_churn registers its refit, not its backtest model).
"""

from __future__ import annotations

import json
import sys
import time
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from features.build import FeatureConfig
from models.clv import ClvModel, FitError, fit_clv
from models.clv import evaluation as ev
from models.clv.config import ClvConfig
from models.clv.holdout import check_holdout, cutoff_of, daily_counts, daily_sql, has_spend, run_backtest
from models.clv.inputs import RFM_COLUMNS
from models.clv.summary import clean, numeric_leaves, summary_lines
from models.clv.uncertainty import ParameterDraws, draws_to_dict
from pipelines import cleanup, modelset, paths, progress
from pipelines.catalog import CLV_PLOTS, ROLES, Catalog
from pipelines.config import load_params
from pipelines.examples import synthetic_example
from pipelines.io import atomic_path, write_json, write_parquet
from pipelines.runinfo import split_volatile, write_report

__all__ = ["ClvConfig", "actual_daily", "check_holdout", "main", "rfm_example", "run", "stage_files"]

CODE_DIR = Path(__file__).resolve().parents[1] / "models"  # logged with the pyfunc (models.clv importable)
REPORT = Catalog().path("clv_report")
CLV_DIR = Catalog().path("clv_artifacts")
ARTIFACT_FILES = {"params": CLV_DIR / "params.json", "production": CLV_DIR / "production.json",
                  "production_draws": CLV_DIR / "production_draws.json",
                  "predictions": CLV_DIR / "eval_predictions.parquet",
                  "challenger_revenue": CLV_DIR / "challenger_revenue.txt",
                  "challenger_purchases": CLV_DIR / "challenger_purchases.txt",
                  "challenger_features": CLV_DIR / "challenger_features.json", "mlflow": CLV_DIR / "mlflow.json"}
MODEL_SET = ("production", "production_draws", "mlflow")  # what score reads, with its MLflow registration
PLOT_FILES = {name: Catalog().path(name) for name in CLV_PLOTS}


def stage_files(root: Path | None = None) -> dict[str, Path]:
    """Every file the stage reads or writes, under a repository root (catalog datasets and the model files)."""
    cat = Catalog(root)
    art = cat.path("clv_artifacts")
    return {**{role: cat.path(f"features_{role}") for role in ROLES}, "transactions": cat.path("transactions"),
            "report": cat.path("clv_report"), **{key: art / path.name for key, path in ARTIFACT_FILES.items()},
            **{name: cat.path(name) for name in CLV_PLOTS}}




def actual_daily(transactions: Path, customer_ids: pd.Series, cutoff: date, horizon_days: int,
                 weekly: bool) -> np.ndarray:
    """Purchases (distinct periods, as the labels count them) per holdout day 0..H of the given customers."""
    from pipelines.features import connect, sql_path

    con = connect()
    con.register("_population", pd.DataFrame({"customer_id": customer_ids.astype(str).to_numpy()}))
    rows = con.execute(daily_sql(f"read_parquet({sql_path(transactions)})", weekly),
                       {"cutoff": cutoff, "h": horizon_days}).fetchall()
    con.close()
    return daily_counts(rows, horizon_days)


def write_outputs(files: dict[str, Path], model: ClvModel, challenger: Any, report: dict[str, Any],
                  predictions: pd.DataFrame, tables: dict[str, pd.DataFrame],
                  production: tuple[ClvModel, ParameterDraws]) -> None:
    """Parameters JSON (backtest and production), predictions, challenger, plot CSVs and the metrics report."""
    write_json(split_volatile(model.to_dict())[0], files["params"])  # no fit seconds: same bytes every run
    write_json(split_volatile(production[0].to_dict())[0], files["production"])  # no fit seconds: reproducible
    write_json(draws_to_dict(production[1]), files["production_draws"])
    write_parquet(predictions, files["predictions"])
    if challenger is not None:
        for name, booster in challenger.boosters.items():
            with atomic_path(files[f"challenger_{name}"]) as tmp:
                tmp.write_text(booster.model_to_string(), encoding="utf-8")
        write_json(challenger.spec.to_dict(), files["challenger_features"])
    for name, table in tables.items():
        with atomic_path(files[name]) as tmp:
            table.to_csv(tmp, index=False, float_format="%.10g")
    write_report(clean(report), files["report"], "train_clv")  # wall-clock: reports/runs/


def rfm_example(frame: pd.DataFrame) -> pd.DataFrame:
    """A synthetic RFM input example (quantile rows, ids 'example-k'; pipelines/examples.py), made consistent:
    whole repeat periods, recency <= T, recency and spend 0 without repeats."""
    sample = synthetic_example(frame, list(RFM_COLUMNS), id_column="customer_id")
    sample["frequency"] = sample["frequency"].round()
    repeat = sample["frequency"] > 0
    sample["recency"] = sample["recency"].clip(upper=sample["T"]).where(repeat, 0.0)
    sample["monetary_value"] = sample["monetary_value"].where(repeat, 0.0)
    return sample


def log_run(params: dict[str, Any], files: dict[str, Path], model: ClvModel, report: dict[str, Any],
            tables: dict[str, pd.DataFrame], example: pd.DataFrame, cfg: ClvConfig,
            horizon_days: int, production: ClvModel) -> dict[str, Any]:
    """One MLflow run: params, tags, metrics, figures, reports; the as_of refit registered as clv-<model>."""
    import mlflow
    from matplotlib import pyplot as plt
    from mlflow.models import infer_signature

    from models.clv.pyfunc import ARTIFACT_KEY, DRAWS_KEY, model_config, predict_with
    from pipelines import tracking

    fingerprint = tracking.fingerprint([files["train"], files["eval"], files["transactions"]])
    name = f"clv-{model.model}"
    tags = tracking.run_tags(params, fingerprint, report["as_of"], stage="train_clv", clv_model=model.model,
                             eval_cutoff=report["eval_cutoff"], champion=report["champion"]["chosen"],
                             clv_selection=cfg.model)
    settings = model_config(horizon_days, cfg.horizon_months, cfg.discount_rate_monthly, cfg.days_per_month)
    figures = ev.figures(tables["clv_calibration"], tables["clv_tracking"],
                         ev.p_alive_matrix(model, int(min(max(example["frequency"].quantile(0.99), 5), 60)),
                                           float(example["T"].max())),
                         tables["clv_frequency_recency"], time_unit=f"{model.time_unit_days:g}-day periods")
    logged = {"clv": params["clv"], "windows": params["windows"], "seed": params.get("seed"),
              "features": {k: params["features"][k] for k in ("freq", "freq_multiplier")}}
    fitted = {p: {"log_likelihood": report["fit"][p]["log_likelihood"], **report["fit"][p]["params"]}
              for p in ("purchases", "spend") if report["fit"][p] is not None}
    run_name = tracking.run_name("train_clv", params, report["as_of"], model.model, settings=logged)
    settings_keys = ("fit", "production", "horizon_days", "horizon_months", "time_unit_days")  # params, not metrics
    with tracking.start_run(params.get("mlflow") or {}, run_name, tags) as run:
        tracking.log_datasets({f"features/{r}": files[r] for r in ("train", "eval", "score")}
                              | {"interim/transactions": files["transactions"]})
        mlflow.log_params(tracking.flatten(logged))
        mlflow.log_metrics(numeric_leaves({k: v for k, v in report.items() if k not in settings_keys}))
        mlflow.log_metrics(numeric_leaves({"fit": fitted}))
        for key, fig in figures.items():
            mlflow.log_figure(fig, f"plots/{key}.png")
            plt.close(fig)
        for key in (*PLOT_FILES, "report", "params", "production"):
            mlflow.log_artifact(str(files[key]), "reports" if key in (*PLOT_FILES, "report") else "clv")
        for key in ("challenger_revenue", "challenger_purchases", "challenger_features"):
            if files[key].exists() and report["challenger"].get("mode"):
                mlflow.log_artifact(str(files[key]), "challenger" if key != "challenger_features" else "clv")
        sample = rfm_example(example)
        signature = infer_signature(sample, predict_with(production, sample, settings), params=settings)
        info = mlflow.pyfunc.log_model(name="clv_model", python_model=str(CODE_DIR / "clv" / "mlflow_entry.py"),
                                       artifacts={ARTIFACT_KEY: str(files["production"]),
                                                  DRAWS_KEY: str(files["production_draws"])},
                                       model_config=settings,
                                       code_paths=[str(CODE_DIR)], signature=signature, input_example=sample,
                                       registered_model_name=name)
    version = info.registered_model_version
    model_files = [files["production"].name, files["production_draws"].name]
    model_sha256 = modelset.verify_logged(name, version, "artifacts",
                                          modelset.hashes(files["production"].parent, model_files))
    purchases = (report.get("btyd") or {}).get("purchases") or {}
    revenue = (report.get("btyd") or {}).get("revenue") or {}
    figures = {"purchases_mae": purchases.get("mae"), "purchases_total_error_pct": purchases.get("total_error_pct"),
               "revenue_mae": revenue.get("mae")}
    shown = ", ".join(f"{k} {v:.4g}" for k, v in figures.items() if isinstance(v, int | float))
    tracking.describe_version(
        params.get("mlflow"), name, version,
        f"{model.model} refit on all history to {report['as_of']} ({tags['data_source']} data); backtest fit at "
        f"{report['eval_cutoff']} over {horizon_days}d: {shown or 'no holdout figures'}. Run: {run_name}",
        {"data_fingerprint": fingerprint, "as_of": report["as_of"], "eval_cutoff": report["eval_cutoff"],
         "horizon_days": horizon_days, "horizon_months": cfg.horizon_months, "run_name": run_name,
         "model_sha256": model_sha256,
         **{k: f"{v:.6g}" for k, v in figures.items() if isinstance(v, int | float)}},
    )
    aliases = tracking.set_champion(params.get("mlflow"), name, version, model.model)
    return {"tracking_uri": tracking.tracking_uri(params.get("mlflow")), "experiment_id": run.info.experiment_id,
            "run_id": run.info.run_id, "model_uri": info.model_uri, "registered_model": name,
            "registered_version": version, "aliases": aliases, "model_sha256": model_sha256}



def read_inputs(files: dict[str, Path]) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """train, eval and score (RFM + cutoff) feature tables read with pandas; one line when one is missing."""
    for key in ("train", "eval", "score", "transactions"):
        if not files[key].exists():
            raise FileNotFoundError(f"{files[key]}: missing; run the ingest and features stages first (dvc repro)")
    eval_frame = pd.read_parquet(files["eval"])
    score_frame = pd.read_parquet(files["score"], columns=[*RFM_COLUMNS, "cutoff"])
    return pd.read_parquet(files["train"]), eval_frame, score_frame


def spark_inputs(params: dict[str, Any], root: Path, cfg: ClvConfig, unit: float, weekly: bool, h: int,
                 seed: int) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame, Any, Any]:
    """engine=spark: the tables read by Spark (then on the driver for the per-customer backtest), every fit on the
    cutoff's compressed statistics aggregated on Spark, the holdout's daily purchases counted on Spark."""
    from models.clv.driver import to_pandas
    from models.clv.model import fit_clv_stats
    from models.clv.spark_stats import spark_daily, spark_stats
    from pipelines.catalog import Catalog

    catalog = Catalog.from_params(params, root)
    tables = {role: catalog.spark_frame(f"features_{role}") for role in ("train", "eval", "score")}
    transactions = catalog.spark_frame("transactions")
    progress.note("engine=spark: BTYD statistics per cutoff")
    stats: dict[str, Any] = {}
    for role, table in tables.items():
        stats.update(spark_stats(table, catalog.location(f"features_{role}")))
    frames = {role: to_pandas(table) for role, table in tables.items()}

    def fit(name: str, frame: pd.DataFrame) -> ClvModel:
        """One candidate's fit on the statistics of the frame's cutoff (aggregated over every customer on Spark)."""
        cutoffs = frame["cutoff"].astype(str).unique()
        if len(cutoffs) != 1 or cutoffs[0] not in stats:
            raise ValueError(f"no Spark BTYD statistics for cutoff(s) {sorted(cutoffs)}")
        progress.note(f"fitting {name} on {stats[cutoffs[0]].n_customers:,} customers "
                      f"({len(stats[cutoffs[0]].x):,} unique rows)")
        return fit_clv_stats(stats[cutoffs[0]], name, time_unit_days=unit, penalizer_grid=cfg.penalizer_grid,
                             seed=seed)

    def daily(customer_ids: pd.Series, cutoff: date) -> np.ndarray:
        """Actual purchases per holdout day of the eval customers, counted on Spark."""
        return spark_daily(transactions, tables["eval"], cutoff, h, weekly)

    score = frames["score"][[*RFM_COLUMNS, "cutoff"]]
    return frames["train"], frames["eval"], score, fit, daily


def run(params: dict[str, Any], root: Path = paths.ROOT, track: bool = True) -> dict[str, Any]:
    """Read the feature tables, run the backtest (models/clv/holdout.py), write every output, track in MLflow."""
    started = time.perf_counter()
    seed = int(params.get("seed", 42))
    cfg = ClvConfig.from_params(params["clv"], seed)
    unit = FeatureConfig.from_params(params["features"]).time_unit_days
    weekly = FeatureConfig.from_params(params["features"]).freq == "W"
    h = int(params["windows"]["horizon_days"])
    cleanup.before_stage("train_clv", Path(root))  # temp files of a killed earlier run
    files = stage_files(root)
    if (params.get("engine") or {}).get("name") == "spark":
        train, eval_frame, score_frame, fit, daily = spark_inputs(params, Path(root), cfg, unit, weekly, h, seed)
    else:
        train, eval_frame, score_frame = read_inputs(files)

        def fit(name: str, frame: pd.DataFrame) -> ClvModel:
            """One candidate's fit on an RFM frame."""
            progress.note(f"fitting {name} on {len(frame):,} customers")
            return fit_clv(frame, name, time_unit_days=unit, penalizer_grid=cfg.penalizer_grid, seed=seed)

        def daily(customer_ids: pd.Series, cutoff: date) -> np.ndarray:
            """Actual purchases per holdout day from the transactions file."""
            return actual_daily(files["transactions"], customer_ids, cutoff, h, weekly)

    check_holdout(eval_frame, cutoff_of(eval_frame, files["eval"]), cutoff_of(score_frame, files["score"]), h, unit,
                  has_spend(eval_frame))
    report, model, challenger, predictions, tables, production = run_backtest(
        cfg, train, eval_frame, score_frame, fit, daily, h, unit, seed, progress.note)
    report["seconds"] = round(time.perf_counter() - started, 2)
    final = {key: files[key] for key in MODEL_SET}  # production model + provenance: one set, moved at the end
    staging = modelset.stage(final["production"].parent)
    files = {**files, **{key: staging / path.name for key, path in final.items()}}
    write_outputs(files, model, challenger, report, predictions, tables, production)
    info = None
    if track:
        progress.note("logging the MLflow run and registering the model")
        info = clean(log_run(params, files, model, report, tables, score_frame[list(RFM_COLUMNS)], cfg, h,
                             production[0]))
        write_json(info, files["mlflow"])
    modelset.commit(staging, final["production"].parent, info, replaces=[path.name for path in final.values()])
    return report


def main(argv: list[str] | None = None) -> int:
    """Entry point: `python -m pipelines.train_clv [hydra overrides]`."""
    try:
        report = run(load_params(argv))
    except (ValueError, FileNotFoundError, FitError, FloatingPointError) as exc:
        print(f"train_clv: error: {' '.join(str(exc).split())}", file=sys.stderr)  # one line
        return 2
    print("\n".join(summary_lines(report)))
    print(json.dumps(clean({k: report[k] for k in ("model", "eval_cutoff", "horizon_days", "seconds")})))
    return 0


if __name__ == "__main__":
    sys.exit(main())
