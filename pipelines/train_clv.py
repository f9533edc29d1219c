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
import math
import sys
import time
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from features.build import PURCHASE, FeatureConfig
from models.clv import DEFAULT_PENALIZER_GRID, MODELS, ClvModel, FitError, fit_clv
from models.clv import evaluation as ev
from models.clv import selection as sel
from models.clv.backtest import NO_SPEND, purchases_evaluation, without_challenger
from models.clv.challenger import CHAMPION_METRICS, CHAMPIONS, ChallengerConfig, choose_champion, fit_challenger
from models.clv.inputs import RFM_COLUMNS, check_model
from models.clv.uncertainty import Horizon, ParameterDraws, draws_to_dict, intervals, laplace_draws
from pipelines import cleanup, modelset, paths, progress
from pipelines.config import load_params
from pipelines.examples import synthetic_example
from pipelines.io import atomic_path, write_json, write_parquet
from pipelines.runinfo import split_volatile, write_report

CODE_DIR = Path(__file__).resolve().parents[1] / "models"  # logged with the pyfunc (models.clv importable)
REPORT = paths.REPORTS / "clv.json"
CLV_DIR = paths.ARTIFACTS / "clv"
ARTIFACT_FILES = {"params": CLV_DIR / "params.json", "production": CLV_DIR / "production.json",
                  "production_draws": CLV_DIR / "production_draws.json",
                  "predictions": CLV_DIR / "eval_predictions.parquet",
                  "challenger_revenue": CLV_DIR / "challenger_revenue.txt",
                  "challenger_purchases": CLV_DIR / "challenger_purchases.txt",
                  "challenger_features": CLV_DIR / "challenger_features.json", "mlflow": CLV_DIR / "mlflow.json"}
MODEL_SET = ("production", "production_draws", "mlflow")  # what score reads, with its MLflow registration
PLOT_FILES = {name: paths.PLOTS / f"{name}.csv"
              for name in ("clv_calibration", "clv_tracking", "clv_p_alive", "clv_frequency_recency")}
COVERAGE_NOTE = ("parameter intervals bound the expected value only and are expected to under-cover individual "
                 "revenue; predictive intervals add each customer's own purchase and spend randomness")


@dataclass(frozen=True)
class ClvConfig:
    """The `clv:` block of params.yaml."""

    model: str = "auto"
    selection_metric: str = "no_purchase_log_loss"
    selection_tolerance: float = 1e-3
    horizon_months: int = 12
    discount_rate_monthly: float = 0.01
    days_per_month: float = 30.0
    penalizer_grid: tuple[float, ...] = DEFAULT_PENALIZER_GRID
    interval: float = 0.9
    n_draws: int = 200
    champion: str = "auto"
    champion_metric: str = "revenue_mae"
    challenger: ChallengerConfig = field(default_factory=ChallengerConfig)

    def __post_init__(self) -> None:
        if self.model != "auto":
            check_model(self.model)
        if self.selection_metric not in sel.METRICS:
            raise ValueError(f"clv.selection_metric must be one of {', '.join(sel.METRICS)}, "
                             f"got {self.selection_metric!r}")
        if not 0 <= self.selection_tolerance < 1:
            raise ValueError(f"clv.selection_tolerance must be in [0, 1), got {self.selection_tolerance}")
        if not 0 < self.interval < 1:
            raise ValueError(f"clv.interval must be in (0, 1), got {self.interval}")
        if int(self.n_draws) < 2:
            raise ValueError(f"clv.n_draws must be >= 2, got {self.n_draws}")
        if self.champion not in CHAMPIONS:
            raise ValueError(f"clv.champion must be one of {', '.join(CHAMPIONS)}, got {self.champion!r}")
        if self.champion_metric not in CHAMPION_METRICS:
            raise ValueError(f"clv.champion_metric must be one of {', '.join(CHAMPION_METRICS)}, "
                             f"got {self.champion_metric!r}")

    @classmethod
    def from_params(cls, block: dict[str, Any], seed: int = 42) -> ClvConfig:
        """Build from params['clv']."""
        extra = {k: v for k, v in block.items() if k in cls.__dataclass_fields__ and k != "challenger"}
        if "penalizer_grid" in extra:
            extra["penalizer_grid"] = tuple(float(p) for p in extra["penalizer_grid"])
        return cls(challenger=ChallengerConfig.from_params(block.get("challenger") or {}, seed), **extra)


def stage_files(root: Path = paths.ROOT) -> dict[str, Path]:
    """Every file the stage reads or writes, under a repository root."""
    files = {"train": paths.FEATURE_FILES["train"], "eval": paths.FEATURE_FILES["eval"],
             "score": paths.FEATURE_FILES["score"], "transactions": paths.TRANSACTIONS, "report": REPORT,
             **ARTIFACT_FILES, **PLOT_FILES}
    return {name: paths.rebase(path, root) for name, path in files.items()}


def _cutoff(frame: pd.DataFrame, where: Path) -> date:
    """The single cutoff date of a feature table."""
    values = pd.to_datetime(frame["cutoff"]).dt.date.unique()
    if len(values) != 1:
        raise ValueError(f"{where}: expected one cutoff, found {sorted(map(str, values))}")
    return values[0]


def check_holdout(frame: pd.DataFrame, eval_cutoff: date, as_of: date, horizon_days: int,
                  time_unit_days: float, spend: bool = True) -> None:
    """ValueError when the eval table cannot be evaluated over windows.horizon_days (names the problem)."""
    if len(frame) == 0:
        raise ValueError("eval features are empty: no customer has a purchase on or before the evaluation cutoff")
    built = (as_of - eval_cutoff).days
    if built != horizon_days:
        raise ValueError(f"windows.horizon_days={horizon_days} but the feature tables hold a {built}-day holdout "
                         f"({eval_cutoff} to {as_of}): rerun the features stage with the same windows")
    history_days = float(frame["T"].max()) * time_unit_days
    if horizon_days > history_days:
        raise ValueError(f"horizon of {horizon_days} days is longer than the data: the oldest customer at the "
                         f"evaluation cutoff {eval_cutoff} has {history_days:g} days of history")
    labels = ("future_purchases", "future_revenue") if spend else ("future_purchases",)
    missing = [c for c in labels if frame[c].isna().any()]
    if missing:
        raise ValueError(f"eval features have missing labels in {missing}")


def actual_daily(transactions: Path, customer_ids: pd.Series, cutoff: date, horizon_days: int,
                 weekly: bool) -> np.ndarray:
    """Purchases (distinct periods, as the labels count them) per holdout day 0..H of the given customers."""
    from pipelines.features import connect, sql_path

    con = connect()
    con.register("_population", pd.DataFrame({"customer_id": customer_ids.astype(str).to_numpy()}))
    period = "CAST(date_trunc('week', CAST(ts AS DATE)) AS DATE)" if weekly else "CAST(ts AS DATE)"
    rows = con.execute(f"""
        WITH p AS (
            SELECT customer_id, {period} AS period, MIN(CAST(ts AS DATE)) AS day
            FROM read_parquet({sql_path(transactions)})
            SEMI JOIN _population USING (customer_id)
            WHERE {PURCHASE} AND CAST(ts AS DATE) > $cutoff AND CAST(ts AS DATE) <= $cutoff + $h
            GROUP BY 1, 2
        )
        SELECT date_diff('day', CAST($cutoff AS DATE), day) AS d, COUNT(*) FROM p GROUP BY 1""",
                       {"cutoff": cutoff, "h": horizon_days}).fetchall()
    con.close()
    out = np.zeros(horizon_days + 1)
    for day, count in rows:
        out[int(day)] = count
    return out


def has_spend(frame: pd.DataFrame) -> bool:
    """False when the features carry no amounts (monetary_value entirely null: amount column not mapped)."""
    return bool(frame["monetary_value"].notna().any())


def evaluate(eval_frame: pd.DataFrame, point: pd.DataFrame, bounds: pd.DataFrame, ml: dict[str, np.ndarray],
             cfg: ClvConfig, horizon_days: int) -> tuple[dict[str, Any], pd.DataFrame]:
    """Holdout report sections (with the champion) and the per-customer prediction table."""
    body, predictions = ev.holdout_evaluation(eval_frame, point, bounds, ml, horizon_days, cfg.horizon_months)
    chosen, reason = choose_champion(cfg.champion, cfg.champion_metric, body.pop("scores"))
    body["champion"] = {"setting": cfg.champion, "metric": cfg.champion_metric, "chosen": chosen, "reason": reason}
    body["coverage"] = {"level": cfg.interval, **body["coverage"], "note": COVERAGE_NOTE}
    return body, predictions


def plot_tables(eval_frame: pd.DataFrame, model: ClvModel, report: dict[str, Any],
                daily: np.ndarray) -> dict[str, pd.DataFrame]:
    """DVC plot data: calibration table, tracking curve, P(alive) curves, frequency/recency counts."""
    calibration = pd.DataFrame([{"frequency": int(label.rstrip("+")), "label": label, **values}
                                for label, values in report["conditional_expectation"].items()])
    age = float(eval_frame["T"].max())
    return {
        "clv_calibration": calibration,
        "clv_tracking": ev.tracking_table(model, eval_frame, daily),
        "clv_p_alive": ev.p_alive_curves(model, age),
        "clv_frequency_recency": ev.frequency_recency_counts(eval_frame["frequency"],
                                                             eval_frame["recency"] * model.time_unit_days),
    }


def clean(value: Any) -> Any:
    """JSON-safe copy: NaN/inf become null, numpy scalars become Python numbers."""
    if isinstance(value, dict):
        return {str(k): clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [clean(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def numeric_leaves(tree: dict[str, Any], prefix: str = "") -> dict[str, float]:
    """Finite numeric leaves of a nested dict as MLflow-safe dotted metric names ('+' spelled 'plus')."""
    out: dict[str, float] = {}
    for key, value in tree.items():
        name = f"{prefix}{str(key).replace('+', 'plus')}"
        if isinstance(value, dict):
            out.update(numeric_leaves(value, f"{name}."))
        elif isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
            out[name] = float(value)
    return out


def fit_section(model: ClvModel, draws_report: dict[str, Any]) -> dict[str, Any]:
    """Fit report: parameters, log-likelihoods, penalizer attempts, warnings, standard errors (spend None if absent)."""
    section: dict[str, Any] = {}
    for part, rep in (("purchases", model.purchases), ("spend", model.spend)):
        section[part] = None if rep is None else {
            "model": rep.model, "params": rep.params, "log_likelihood": rep.log_likelihood,
            "penalizer": rep.penalizer, "n_customers": rep.n_customers, "n_unique_rows": rep.n_unique_rows,
            "seconds": rep.seconds, "attempts": [a.__dict__ for a in rep.attempts], "warnings": list(rep.warnings),
            "n_excluded": rep.n_excluded, **{k: v for k, v in rep.diagnostics.items()}}
    section["std_errors"] = draws_report["std_errors"]
    section["uncertainty_warnings"] = draws_report["warnings"]
    return section


def choose_model(cfg: ClvConfig, train: pd.DataFrame, eval_frame: pd.DataFrame, score_frame: pd.DataFrame,
                 fit: sel.Fitter, h: int) -> tuple[sel.Chosen, dict[str, Any]]:
    """The purchase model (selected on the training window when clv.model=auto), fitted at c_e and as_of."""
    def predict(model: ClvModel, frame: pd.DataFrame) -> pd.DataFrame:
        """Purchase predictions over the horizon (the CLV columns are not scored)."""
        return model.predict(frame, h, cfg.horizon_months, cfg.discount_rate_monthly, days_per_month=cfg.days_per_month)

    return sel.choose(cfg.model, MODELS, fit, predict, train, eval_frame[list(RFM_COLUMNS)], score_frame,
                      _cutoff(eval_frame, Path("eval.parquet")), h, cfg.selection_metric, cfg.selection_tolerance)


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


def backtest(eval_frame: pd.DataFrame, train: pd.DataFrame, model: ClvModel, cfg: ClvConfig, h: int,
             seed: int) -> tuple[dict[str, Any], pd.DataFrame, Any, ParameterDraws]:
    """Holdout sections, predictions, the ML challenger (or why none was fitted) and the c_e parameter draws."""
    point = model.predict(eval_frame, h, cfg.horizon_months, cfg.discount_rate_monthly,
                          days_per_month=cfg.days_per_month)
    draws = laplace_draws(model, eval_frame, cfg.n_draws, seed)
    if model.spend is None:
        body, predictions = purchases_evaluation(eval_frame, point, h)
        body["champion"] = {"setting": cfg.champion, "chosen": "btyd", "reason": f"no ML challenger: {NO_SPEND}"}
        return body, predictions, f"ML challenger not fitted: {NO_SPEND}", draws
    horizon = Horizon(h, cfg.horizon_months, cfg.discount_rate_monthly, cfg.days_per_month)
    bounds = intervals(model, eval_frame, draws, horizon, cfg.interval, seed)
    try:
        challenger = fit_challenger(train, _cutoff(eval_frame, Path("eval.parquet")), cfg.challenger)
    except ValueError as exc:  # e.g. too few training customers: reported, the BTYD backtest still runs
        body, predictions = without_challenger(eval_frame, point, bounds, h, cfg.horizon_months)
        body["champion"] = {"setting": cfg.champion, "chosen": "btyd", "reason": f"no ML challenger: {exc}"}
        body["coverage"] = {"level": cfg.interval, **body["coverage"], "note": COVERAGE_NOTE}
        return body, predictions, f"ML challenger not fitted: {exc}", draws
    body, predictions = evaluate(eval_frame, point, bounds, challenger.predict(eval_frame), cfg, h)
    return body, predictions, challenger, draws


def run(params: dict[str, Any], root: Path = paths.ROOT, track: bool = True) -> dict[str, Any]:
    """Select (clv.model=auto), fit, evaluate and write every output of the stage; returns the report."""
    started = time.perf_counter()
    seed = int(params.get("seed", 42))
    cfg = ClvConfig.from_params(params["clv"], seed)
    unit = FeatureConfig.from_params(params["features"]).time_unit_days
    weekly = FeatureConfig.from_params(params["features"]).freq == "W"
    h = int(params["windows"]["horizon_days"])
    cleanup.before_stage("train_clv", Path(root))  # temp files of a killed earlier run
    files = stage_files(root)
    for key in ("train", "eval", "score", "transactions"):
        if not files[key].exists():
            raise FileNotFoundError(f"{files[key]}: missing; run the ingest and features stages first (dvc repro)")
    eval_frame = pd.read_parquet(files["eval"])
    eval_cutoff = _cutoff(eval_frame, files["eval"])
    as_of = _cutoff(pd.read_parquet(files["score"], columns=["cutoff"]), files["score"])
    spend = has_spend(eval_frame)
    check_holdout(eval_frame, eval_cutoff, as_of, h, unit, spend)
    train = pd.read_parquet(files["train"])
    score_frame = pd.read_parquet(files["score"], columns=list(RFM_COLUMNS))

    def fit(name: str, frame: pd.DataFrame) -> ClvModel:
        """One candidate's fit on an RFM frame."""
        progress.note(f"fitting {name} on {len(frame):,} customers")
        return fit_clv(frame, name, time_unit_days=unit, penalizer_grid=cfg.penalizer_grid, seed=seed)

    chosen, selection = choose_model(cfg, train, eval_frame, score_frame, fit, h)
    model = chosen.backtest
    progress.note(f"backtest of {model.model} at {eval_cutoff}: {cfg.n_draws} parameter draws, intervals, challenger")
    body, predictions, challenger, draws = backtest(eval_frame, train, model, cfg, h, seed)
    report = {"model": model.model, "selection": selection, "eval_cutoff": str(eval_cutoff), "as_of": str(as_of),
              "horizon_days": h, "horizon_months": cfg.horizon_months, "time_unit_days": unit,
              "customers": len(eval_frame), "repeat_customers": int((eval_frame["frequency"] > 0).sum()),
              "spend": {"available": spend, "reason": None if spend else NO_SPEND}, **body,
              "fit": fit_section(model, {"std_errors": draws.std_errors, "warnings": draws.warnings}),
              "challenger": {"skipped": challenger} if isinstance(challenger, str) else challenger.report}
    challenger = None if isinstance(challenger, str) else challenger
    daily = actual_daily(files["transactions"], eval_frame["customer_id"], eval_cutoff, h, weekly)
    tables = plot_tables(eval_frame, model, report, daily)
    progress.note(f"parameter draws of the as_of refit for {len(score_frame):,} customers")
    production = (chosen.production, laplace_draws(chosen.production, score_frame, cfg.n_draws, seed))
    report["production"] = {"as_of": str(as_of), "customers": len(score_frame),
                            **fit_section(production[0], {"std_errors": production[1].std_errors,
                                                          "warnings": production[1].warnings})}
    end = tables["clv_tracking"].iloc[-1]
    report["tracking"] = {"actual": float(end["actual"]), "predicted_population": float(end["predicted_population"]),
                          "predicted_conditional": float(end["predicted_conditional"])}
    report["seconds"] = round(time.perf_counter() - started, 2)
    final = {key: files[key] for key in MODEL_SET}  # production model + provenance: one set, moved at the end
    staging = modelset.stage(final["production"].parent)
    files = {**files, **{key: staging / path.name for key, path in final.items()}}
    write_outputs(files, model, challenger, report, predictions, tables, production)
    info = None
    if track:
        progress.note("logging the MLflow run and registering the model")
        info = clean(log_run(params, files, model, report, tables, score_frame, cfg, h, production[0]))
        write_json(info, files["mlflow"])
    modelset.commit(staging, final["production"].parent, info, replaces=[path.name for path in final.values()])
    return report


def summary_lines(report: dict[str, Any]) -> list[str]:
    """What main() prints: the selection, the holdout comparison (when spend exists) and the champion."""
    sel_ = report["selection"]
    lines = [f"  clv model: {report['model']} ({sel_.get('rule', '')})"]
    for name, cand in (sel_.get("candidates") or {}).items():
        value = cand["validation"].get(sel_.get("metric", ""))
        shown = "-" if value is None else f"{value:.6g}"
        lines.append(f"    {name:12s} {cand['status']:8s} {sel_.get('metric')}={shown}"
                     f"  {'' if cand['status'] == 'fitted' else cand['reason']}")
    side = report.get("comparison")
    if side:
        for key in ("revenue_mae", "revenue_rmse", "revenue_spearman", "revenue_gini", "revenue_total_error_pct"):
            btyd, ml = (side[key][k] for k in ("btyd", "ml"))
            lines.append(f"  {key:26s} btyd={btyd:.4g}  ml={'-' if ml is None else f'{ml:.4g}'}")
        cov = report["coverage"]
        lines.append(f"  coverage {cov['level']:.0%}: parameter={cov['revenue_parameter']:.3f} "
                     f"predictive={cov['revenue_predictive']:.3f}; champion: {report['champion']['chosen']}")
    else:
        lines.append(f"  {report['spend']['reason']}")
    return lines


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
