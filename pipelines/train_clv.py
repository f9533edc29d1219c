"""Stage `train_clv`: BTYD + Gamma-Gamma fitted at the evaluation cutoff and evaluated on its holdout.

The purchase model (clv.model) and Gamma-Gamma are fitted on the features at c_e (history up to c_e) and
predict (c_e, as_of] = windows.horizon_days, compared with the actual future_purchases / future_revenue of
eval.parquet, side by side with a LightGBM challenger trained on the training cutoffs. Outputs:
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

from features.build import FeatureConfig
from models.clv import DEFAULT_PENALIZER_GRID, ClvModel, fit_clv
from models.clv import evaluation as ev
from models.clv.challenger import CHAMPION_METRICS, CHAMPIONS, ChallengerConfig, choose_champion, fit_challenger
from models.clv.inputs import RFM_COLUMNS, check_model
from models.clv.uncertainty import Horizon, ParameterDraws, draws_to_dict, intervals, laplace_draws
from pipelines import paths
from pipelines.config import load_params
from pipelines.io import atomic_path, write_json, write_parquet

CODE_DIR = Path(__file__).resolve().parents[1] / "models"  # logged with the pyfunc (models.clv importable)
REPORT = paths.REPORTS / "clv.json"
CLV_DIR = paths.ARTIFACTS / "clv"
ARTIFACT_FILES = {"params": CLV_DIR / "params.json", "production": CLV_DIR / "production.json",
                  "production_draws": CLV_DIR / "production_draws.json",
                  "predictions": CLV_DIR / "eval_predictions.parquet",
                  "challenger_revenue": CLV_DIR / "challenger_revenue.txt",
                  "challenger_purchases": CLV_DIR / "challenger_purchases.txt",
                  "challenger_features": CLV_DIR / "challenger_features.json", "mlflow": CLV_DIR / "mlflow.json"}
PLOT_FILES = {name: paths.PLOTS / f"{name}.csv"
              for name in ("clv_calibration", "clv_tracking", "clv_p_alive", "clv_frequency_recency")}
COVERAGE_NOTE = ("parameter intervals bound the expected value only and are expected to under-cover individual "
                 "revenue; predictive intervals add each customer's own purchase and spend randomness")


@dataclass(frozen=True)
class ClvConfig:
    """The `clv:` block of params.yaml."""

    model: str = "bgnbd"
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
        check_model(self.model)
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
                  time_unit_days: float) -> None:
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
    missing = [c for c in ("future_purchases", "future_revenue") if frame[c].isna().any()]
    if missing:
        raise ValueError(f"eval features have missing labels in {missing}")


def actual_daily(transactions: Path, customer_ids: pd.Series, cutoff: date, horizon_days: int,
                 weekly: bool) -> np.ndarray:
    """Purchases (distinct periods, as the labels count them) per holdout day 0..H of the given customers."""
    from pipelines.features import connect

    con = connect()
    con.register("_population", pd.DataFrame({"customer_id": customer_ids.astype(str).to_numpy()}))
    period = "CAST(date_trunc('week', CAST(ts AS DATE)) AS DATE)" if weekly else "CAST(ts AS DATE)"
    rows = con.execute(f"""
        WITH p AS (
            SELECT customer_id, {period} AS period, MIN(CAST(ts AS DATE)) AS day
            FROM read_parquet('{transactions.as_posix()}')
            SEMI JOIN _population USING (customer_id)
            WHERE amount >= 0 AND CAST(ts AS DATE) > $cutoff AND CAST(ts AS DATE) <= $cutoff + $h
            GROUP BY 1, 2
        )
        SELECT date_diff('day', CAST($cutoff AS DATE), day) AS d, COUNT(*) FROM p GROUP BY 1""",
                       {"cutoff": cutoff, "h": horizon_days}).fetchall()
    con.close()
    out = np.zeros(horizon_days + 1)
    for day, count in rows:
        out[int(day)] = count
    return out


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
    """Fit report: parameters, log-likelihoods, penalizer attempts, warnings, standard errors."""
    section = {}
    for part, rep in (("purchases", model.purchases), ("spend", model.spend)):
        section[part] = {"model": rep.model, "params": rep.params, "log_likelihood": rep.log_likelihood,
                         "penalizer": rep.penalizer, "n_customers": rep.n_customers,
                         "n_unique_rows": rep.n_unique_rows, "seconds": rep.seconds,
                         "attempts": [a.__dict__ for a in rep.attempts], "warnings": list(rep.warnings),
                         "n_excluded": rep.n_excluded, **{k: v for k, v in rep.diagnostics.items()}}
    section["std_errors"] = draws_report["std_errors"]
    section["uncertainty_warnings"] = draws_report["warnings"]
    return section


def fit_production(score_frame: pd.DataFrame, cfg: ClvConfig, unit: float,
                   seed: int) -> tuple[ClvModel, ParameterDraws]:
    """The scoring model: the same recipe refit on all history up to as_of, with its parameter draws."""
    model = fit_clv(score_frame, cfg.model, time_unit_days=unit, penalizer_grid=cfg.penalizer_grid, seed=seed)
    return model, laplace_draws(model, score_frame, cfg.n_draws, seed)


def write_outputs(files: dict[str, Path], model: ClvModel, challenger: Any, report: dict[str, Any],
                  predictions: pd.DataFrame, tables: dict[str, pd.DataFrame],
                  production: tuple[ClvModel, ParameterDraws]) -> None:
    """Parameters JSON (backtest and production), predictions, challenger, plot CSVs and the metrics report."""
    write_json(model.to_dict(), files["params"])
    write_json(production[0].to_dict(), files["production"])
    write_json(draws_to_dict(production[1]), files["production_draws"])
    write_parquet(predictions, files["predictions"])
    for name, booster in challenger.boosters.items():
        with atomic_path(files[f"challenger_{name}"]) as tmp:
            tmp.write_text(booster.model_to_string(), encoding="utf-8")
    write_json(challenger.spec.to_dict(), files["challenger_features"])
    for name, table in tables.items():
        with atomic_path(files[name]) as tmp:
            table.to_csv(tmp, index=False, float_format="%.10g")
    write_json(clean(report), files["report"])


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
    name = f"clv-{cfg.model}"
    tags = tracking.run_tags(params, fingerprint, report["as_of"], stage="train_clv", clv_model=cfg.model,
                             eval_cutoff=report["eval_cutoff"], champion=report["champion"]["chosen"])
    settings = model_config(horizon_days, cfg.horizon_months, cfg.discount_rate_monthly, cfg.days_per_month)
    figures = ev.figures(tables["clv_calibration"], tables["clv_tracking"],
                         ev.p_alive_matrix(model, int(min(max(example["frequency"].quantile(0.99), 5), 60)),
                                           float(example["T"].max())),
                         tables["clv_frequency_recency"], time_unit=f"{model.time_unit_days:g}-day periods")
    logged = {"clv": params["clv"], "windows": params["windows"], "seed": params.get("seed"),
              "features": {k: params["features"][k] for k in ("freq", "freq_multiplier")}}
    with tracking.start_run(params.get("mlflow") or {}, f"train_clv-{cfg.model}", tags) as run:
        mlflow.log_params(tracking.flatten(logged))
        mlflow.log_metrics(numeric_leaves({k: v for k, v in report.items() if k != "fit"}))
        mlflow.log_metrics(numeric_leaves({"fit": {p: {"log_likelihood": report["fit"][p]["log_likelihood"],
                                                       **report["fit"][p]["params"]} for p in ("purchases", "spend")}}))
        for key, fig in figures.items():
            mlflow.log_figure(fig, f"plots/{key}.png")
            plt.close(fig)
        for key in (*PLOT_FILES, "report", "params", "production", "challenger_features"):
            mlflow.log_artifact(str(files[key]), "reports" if key in (*PLOT_FILES, "report") else "clv")
        for key in ("challenger_revenue", "challenger_purchases"):
            mlflow.log_artifact(str(files[key]), "challenger")
        sample = example[list(RFM_COLUMNS)].head(5).reset_index(drop=True)
        sample["customer_id"] = sample["customer_id"].astype(object)
        signature = infer_signature(sample, predict_with(production, sample, settings), params=settings)
        info = mlflow.pyfunc.log_model(name="clv_model", python_model=str(CODE_DIR / "clv" / "mlflow_entry.py"),
                                       artifacts={ARTIFACT_KEY: str(files["production"]),
                                                  DRAWS_KEY: str(files["production_draws"])},
                                       model_config=settings,
                                       code_paths=[str(CODE_DIR)], signature=signature, input_example=sample,
                                       registered_model_name=name)
    return {"tracking_uri": tracking.tracking_uri(params.get("mlflow")), "experiment_id": run.info.experiment_id,
            "run_id": run.info.run_id, "model_uri": info.model_uri, "registered_model": name,
            "registered_version": info.registered_model_version}


def run(params: dict[str, Any], root: Path = paths.ROOT, track: bool = True) -> dict[str, Any]:
    """Fit, evaluate and write every output of the stage; returns the report."""
    started = time.perf_counter()
    seed = int(params.get("seed", 42))
    cfg = ClvConfig.from_params(params["clv"], seed)
    features = FeatureConfig.from_params(params["features"])
    unit = features.time_unit_days
    h = int(params["windows"]["horizon_days"])
    files = stage_files(root)
    for key in ("train", "eval", "score", "transactions"):
        if not files[key].exists():
            raise FileNotFoundError(f"{files[key]}: missing; run the ingest and features stages first (dvc repro)")
    eval_frame = pd.read_parquet(files["eval"])
    eval_cutoff = _cutoff(eval_frame, files["eval"])
    as_of = _cutoff(pd.read_parquet(files["score"], columns=["cutoff"]), files["score"])
    check_holdout(eval_frame, eval_cutoff, as_of, h, unit)

    model = fit_clv(eval_frame, cfg.model, time_unit_days=unit, penalizer_grid=cfg.penalizer_grid, seed=seed)
    point = model.predict(eval_frame, h, cfg.horizon_months, cfg.discount_rate_monthly,
                          days_per_month=cfg.days_per_month)
    draws = laplace_draws(model, eval_frame, cfg.n_draws, seed)
    horizon = Horizon(h, cfg.horizon_months, cfg.discount_rate_monthly, cfg.days_per_month)
    bounds = intervals(model, eval_frame, draws, horizon, cfg.interval, seed)
    challenger = fit_challenger(pd.read_parquet(files["train"]), eval_cutoff, cfg.challenger)

    body, predictions = evaluate(eval_frame, point, bounds, challenger.predict(eval_frame), cfg, h)
    report = {"model": cfg.model, "eval_cutoff": str(eval_cutoff), "as_of": str(as_of), "horizon_days": h,
              "horizon_months": cfg.horizon_months, "time_unit_days": unit, "customers": len(eval_frame),
              "repeat_customers": int((eval_frame["frequency"] > 0).sum()), **body,
              "fit": fit_section(model, {"std_errors": draws.std_errors, "warnings": draws.warnings}),
              "challenger": challenger.report}
    daily = actual_daily(files["transactions"], eval_frame["customer_id"], eval_cutoff, h, features.freq == "W")
    tables = plot_tables(eval_frame, model, report, daily)
    score_frame = pd.read_parquet(files["score"], columns=list(RFM_COLUMNS))
    production = fit_production(score_frame, cfg, unit, seed)
    report["production"] = {"as_of": str(as_of), "customers": len(score_frame),
                            **fit_section(production[0], {"std_errors": production[1].std_errors,
                                                          "warnings": production[1].warnings})}
    end = tables["clv_tracking"].iloc[-1]
    report["tracking"] = {"actual": float(end["actual"]), "predicted_population": float(end["predicted_population"]),
                          "predicted_conditional": float(end["predicted_conditional"])}
    report["seconds"] = round(time.perf_counter() - started, 2)
    write_outputs(files, model, challenger, report, predictions, tables, production)
    if track:
        info = log_run(params, files, model, report, tables, score_frame, cfg, h, production[0])
        write_json(clean(info), files["mlflow"])
    return report


def main(argv: list[str] | None = None) -> int:
    """Entry point: `python -m pipelines.train_clv [hydra overrides]`."""
    try:
        report = run(load_params(argv))
    except (ValueError, FileNotFoundError) as exc:
        print(f"train_clv: error: {exc}", file=sys.stderr)
        return 2
    side = report["comparison"]
    for key in ("revenue_mae", "revenue_rmse", "revenue_spearman", "revenue_gini", "revenue_total_error_pct"):
        print(f"  {key:26s} btyd={side[key]['btyd']:.4g}  ml={side[key]['ml']:.4g}")
    print(f"  coverage {report['coverage']['level']:.0%}: parameter={report['coverage']['revenue_parameter']:.3f} "
          f"predictive={report['coverage']['revenue_predictive']:.3f}; champion: {report['champion']['chosen']}")
    print(json.dumps(clean({k: report[k] for k in ("model", "eval_cutoff", "horizon_days", "seconds")})))
    return 0


if __name__ == "__main__":
    sys.exit(main())
