"""Stage `train_churn`: out-of-time backtest of LightGBM vs baselines, refit for scoring, MLflow tracking.

* Backtest: fit on the training cutoffs (train.parquet; early stopping and calibration on the latest one,
  held out in time), score the evaluation cutoff (eval.parquet) with the model and every baseline fitted
  on the same training rows (BTYD baselines: fitted without labels on the evaluation cutoff's RFM).
* Refit: the same recipe one horizon later (training cutoffs + evaluation cutoff) gives the model saved to
  artifacts/churn/ and registered in MLflow; it scores customers at as_of (score.parquet).
"""

from __future__ import annotations

import dataclasses
import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from features.build import FeatureConfig
from models.churn import ablation, baselines, evaluate, explain, plots
from models.churn.config import ChurnConfig
from models.churn.errors import ChurnInputError
from models.churn.features import LABEL, PRIOR_COLUMN, FeatureSpec, ignored_columns
from models.churn.model import ChurnModel, fit_churn
from models.churn.prior import btyd_prior
from pipelines import paths, tracking
from pipelines.config import load_params
from pipelines.io import atomic_path, write_json, write_parquet


@dataclass(frozen=True)
class Locations:
    """Inputs and outputs of the stage under one repository root (paths.ROOT unless a test says otherwise)."""

    root: Path

    def features(self, role: str) -> Path:
        """data/features/<role>.parquet."""
        return paths.rebase(paths.FEATURE_FILES[role], self.root)

    @property
    def art(self) -> Path:
        """artifacts/churn: the refit model (model.txt, calibrator.json, features.json), scores, PNGs."""
        return paths.rebase(paths.ARTIFACTS, self.root) / "churn"

    @property
    def backtest(self) -> Path:
        """artifacts/churn/backtest: the model the report measures."""
        return self.art / "backtest"

    @property
    def plot_data(self) -> Path:
        """reports/plots/churn: DVC plot data."""
        return paths.rebase(paths.PLOTS, self.root) / "churn"

    def report(self, name: str) -> Path:
        """reports/<name>."""
        return paths.rebase(paths.REPORTS, self.root) / name


MODEL_NAME = "churn-lightgbm"
MODEL = "lightgbm"
BASELINES = ("log_rfm", "recency_rule", *baselines.BTYD_MODELS)
TABLE_METRICS = ("roc_auc", "pr_auc", "log_loss", "brier", "ece", "lift_top10", "capture_top10", "lift_top20")
SHAP_SAMPLE = 5000


def read_frames(where: Locations) -> dict[str, pd.DataFrame]:
    """train / eval / score feature tables, cutoff as ISO text; a clear error when one is missing."""
    frames = {}
    for role in ("train", "eval", "score"):
        path = where.features(role)
        if not path.exists():
            raise FileNotFoundError(f"{path}: missing; run the features stage first (dvc repro features)")
        frame = pd.read_parquet(path)
        frame["cutoff"] = frame["cutoff"].astype(str)
        frames[role] = frame
    if frames["eval"][LABEL].isna().any():
        raise ChurnInputError(f"{where.features('eval')}: evaluation rows without a `{LABEL}` label")
    return frames


def time_unit_days(features: dict[str, Any]) -> float:
    """Days per unit of frequency/recency/T in the feature tables (features.freq x freq_multiplier)."""
    return FeatureConfig.from_params(features).time_unit_days


def add_priors(
    frames: dict[str, pd.DataFrame], cfg: ChurnConfig, horizon: int, unit: float, notes: list[str]
) -> ChurnConfig:
    """Add the BTYD prior column to every frame (per cutoff); without models.clv fall back to no prior."""
    if cfg.prior == "none":
        return cfg
    if not baselines.clv_available():
        notes.append(f"churn.prior={cfg.prior} ignored: models.clv is not available")
        return dataclasses.replace(cfg, prior="none")
    for role, frame in frames.items():
        frame[PRIOR_COLUMN], failures = btyd_prior(frame, cfg.prior, horizon, unit, cfg.seed)
        if failures and role != "train":  # an old, small training cutoff may fall back; these may not
            cutoff, why = next(iter(failures.items()))
            raise ChurnInputError(
                f"churn.prior={cfg.prior}: the BTYD fit failed at the {role} cutoff {cutoff} "
                f"({why}); use another churn.prior (bgnbd, pareto_nbd, none)"
            )
        notes += [
            f"prior {cfg.prior} at {role} cutoff {c}: {why} (training churn rate used)"
            for c, why in failures.items()
        ]
    return cfg


def baseline_scores(
    train: pd.DataFrame,
    evaluation: pd.DataFrame,
    cfg: ChurnConfig,
    horizon: int,
    unit: float,
    notes: list[str],
) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """P(churn) at the evaluation cutoff from each baseline, and their fitted coefficients."""
    scores, details = {}, {}
    for fit in (baselines.fit_log_rfm, baselines.fit_recency_rule):
        base = fit(train)
        scores[base.name], details[base.name] = base.predict_proba(evaluation), base.coefficients()
    if not baselines.clv_available():
        notes.append("BTYD baselines skipped: models.clv is not available")
        return scores, details
    for kind in cfg.btyd_baselines:
        if cfg.prior == kind and evaluation[PRIOR_COLUMN].notna().all():
            scores[kind] = evaluation[PRIOR_COLUMN].to_numpy(dtype=float)
            continue
        try:
            scores[kind] = baselines.btyd_p_no_purchase(evaluation, kind, horizon, unit, cfg.seed)
        except (ValueError, RuntimeError, FloatingPointError) as exc:
            notes.append(f"baseline {kind} skipped: {type(exc).__name__}: {exc}")
    return scores, details


def save_model(model: ChurnModel, folder: Path) -> dict[str, Path]:
    """Booster text, calibrator JSON, feature spec JSON and fit info JSON (no pickles)."""
    folder.mkdir(parents=True, exist_ok=True)
    files = {
        "model": folder / "model.txt",
        "calibrator": folder / "calibrator.json",
        "features": folder / "features.json",
        "info": folder / "info.json",
    }
    with atomic_path(files["model"]) as tmp:
        model.booster.save_model(str(tmp))
    write_json(model.calibrator.to_dict(), files["calibrator"])
    write_json(model.spec.to_dict(), files["features"])
    write_json(model.info, files["info"])
    return files


def write_csv(frame: pd.DataFrame, target: Path) -> None:
    """A CSV (no index, '.' decimals) written atomically."""
    with atomic_path(target) as tmp:
        frame.to_csv(tmp, index=False, float_format="%.6g")


def write_text(text: str, target: Path) -> None:
    """A UTF-8 text file written atomically."""
    with atomic_path(target) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_figures(
    curves: dict[str, pd.DataFrame],
    importance: pd.DataFrame,
    model: ChurnModel,
    sample: pd.DataFrame,
    seed: int,
    folder: Path,
) -> list[Path]:
    """The PNG figures (logged to MLflow) under artifacts/churn/plots/."""
    parts = explain.contributions(model, sample)
    figures = {
        "roc.png": plots.roc_figure(curves["roc"]),
        "pr.png": plots.pr_figure(curves["pr"]),
        "reliability.png": plots.reliability_figure(curves["reliability"]),
        "gains_lift.png": plots.gains_figure(curves["gains"], curves["lift"]),
        "importance.png": plots.importance_figure(importance),
        "shap_summary.png": plots.shap_summary_figure(parts.shap, parts.values, parts.names, seed=seed),
    }
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for name, fig in figures.items():
        with atomic_path(folder / name) as tmp:
            fig.savefig(tmp, format="png", dpi=110)
        written.append(folder / name)
    return written


def write_plot_data(curves: dict[str, pd.DataFrame], importance: pd.DataFrame, folder: Path) -> None:
    """DVC plot data: one CSV per curve under reports/plots/churn/ (declared in dvc.yaml `plots:`)."""
    for name, table in curves.items():
        keep = [c for c in table.columns if not c.endswith("_count")]
        missing = {b: np.nan for b in (MODEL, *BASELINES) if b not in keep}  # dvc.yaml names every column
        write_csv(table[keep].assign(**missing), folder / f"{name}.csv")
    write_csv(importance[["feature", "mean_abs_shap", "gain_share"]].head(30), folder / "importance.csv")


def backtest(
    frames: dict[str, pd.DataFrame], cfg: ChurnConfig, horizon: int, unit: float, notes: list[str]
) -> dict[str, Any]:
    """Fit on the training cutoffs, score model and baselines at the evaluation cutoff."""
    train, evaluation = frames["train"], frames["eval"]
    model = fit_churn(train, cfg)
    y = evaluation[LABEL].to_numpy(dtype=float)
    scores = {MODEL: model.predict_proba(evaluation)}
    base_scores, coefficients = baseline_scores(train, evaluation, cfg, horizon, unit, notes)
    scores.update(base_scores)
    uncalibrated = model.predict_raw(evaluation)
    results = evaluate.score_all(y, scores, cfg.top_fractions, cfg.ece_bins)
    raw_result = evaluate.score_all(y, {"raw": uncalibrated}, cfg.top_fractions, cfg.ece_bins)["raw"]
    rows = evaluate.comparison(results, MODEL, [b for b in BASELINES if b in scores])
    rows = evaluate.add_intervals(rows, y, scores, MODEL, cfg.bootstrap, cfg.seed)
    return {
        "model": model,
        "y": y,
        "scores": scores,
        "uncalibrated": uncalibrated,
        "results": results,
        "raw_result": raw_result,
        "comparison": rows,
        "coefficients": coefficients,
    }


def run_ablation(frames: dict[str, pd.DataFrame], cfg: ChurnConfig, model: ChurnModel) -> list[dict]:
    """RFM-only vs all features, same recipe (plus all features without the prior, if one is used)."""
    table = ablation.run_ablation(frames["train"], frames["eval"], cfg, fitted={"all": model})
    table.insert(1, "prior", cfg.prior)
    if cfg.prior != "none":
        plain = dataclasses.replace(cfg, prior="none")
        extra = ablation.run_ablation(frames["train"], frames["eval"], plain)
        extra.insert(1, "prior", "none")
        table = pd.concat([table, extra], ignore_index=True)
    return table.to_dict(orient="records")


def markdown_report(report: dict[str, Any], table: pd.DataFrame) -> str:
    """reports/churn.md: the metrics table, deltas to the best baseline, the protocol and the ablation."""
    lines = [
        f"# Churn backtest at {report['eval_cutoff']} (labels to {report['as_of']}, "
        f"horizon {report['horizon_days']} days)",
        "",
        f"{report['eval_rows']:,} customers, churn rate {report['eval_churn_rate']:.4f}. "
        f"Protocol: {report['protocol']['mode']} ({report['protocol']['reason']}).",
        "",
        evaluate.markdown_table(table, [c for c in TABLE_METRICS if c in table.columns]),
        "",
        "| metric | lightgbm | best baseline | value | delta | 95% CI | lightgbm better |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in report["comparison"]:
        ci = (
            f"[{row['delta_ci95_low']:+.4f}, {row['delta_ci95_high']:+.4f}]"
            if "delta_ci95_low" in row
            else ""
        )
        lines.append(
            f"| {row['metric']} | {row['model']:.4f} | {row['best_baseline']} | "
            f"{row['best_baseline_value']:.4f} | {row['delta']:+.4f} | {ci} | {row['model_better']} |"
        )
    if report.get("ablation"):
        abl = pd.DataFrame(report["ablation"])
        abl["model"] = abl["feature_set"] + " / prior " + abl["prior"]
        lines += [
            "",
            "## Ablation",
            "",
            evaluate.markdown_table(abl, ["n_features", "roc_auc", "log_loss", "brier", "ece", "lift_top10"]),
        ]
    if report["notes"]:
        lines += ["", "## Notes", "", *[f"- {n}" for n in report["notes"]]]
    return "\n".join(lines) + "\n"


def score_at_as_of(model: ChurnModel, score: pd.DataFrame, k: int) -> pd.DataFrame:
    """The refit model's calibrated P(churn) and top-k reason codes per customer at as_of."""
    return pd.concat([score[["customer_id", "cutoff"]], explain.score_with_reasons(model, score, k)], axis=1)


def _column_type(dtype: Any) -> str:
    """MLflow column type of a numeric pandas dtype."""
    if pd.api.types.is_bool_dtype(dtype):
        return "boolean"
    if pd.api.types.is_integer_dtype(dtype):
        return "integer" if np.dtype(dtype).itemsize <= 4 else "long"
    return "double"


def model_inputs(spec: FeatureSpec, frame: pd.DataFrame) -> tuple[Any, pd.DataFrame]:
    """The pyfunc's input signature (categoricals as optional strings) and a 5-row input example."""
    from mlflow.models import ModelSignature
    from mlflow.types import ColSpec, Schema

    columns = [*spec.features, *([PRIOR_COLUMN] if spec.prior != "none" else [])]
    example = frame[columns].head(5).copy()
    specs = []
    for col in columns:
        if col in spec.categories:
            example[col] = example[col].astype(object).where(example[col].notna(), None)
            specs.append(ColSpec("string", col, required=False))
        else:
            specs.append(ColSpec(_column_type(frame[col].dtype), col))
    return ModelSignature(Schema(specs), Schema([ColSpec("double", "p_churn")])), example


def _metrics(report: dict[str, Any]) -> dict[str, float]:
    """Flat MLflow metrics: the model, each baseline, deltas to the best baseline, holdout diagnostics."""
    out = {f"{MODEL}.{k}": v for k, v in report["model"].items()}
    out.update({f"{MODEL}_uncalibrated.{k}": v for k, v in report["model_uncalibrated"].items()})
    for name, values in report["baselines"].items():
        out.update({f"baseline.{name}.{k}": v for k, v in values.items()})
    out.update({f"delta_vs_best_baseline.{r['metric']}": r["delta"] for r in report["comparison"]})
    for prefix, info in (("backtest", report["protocol"]), ("refit", report["refit"])):
        out.update({f"{prefix}.holdout.{k}": v for k, v in (info.get("holdout") or {}).items()})
        if info.get("best_iteration"):
            out[f"{prefix}.best_iteration"] = info["best_iteration"]
    for row in report["ablation"]:
        tag = f"ablation.{row['feature_set']}.prior_{row['prior']}"
        out.update({f"{tag}.{k}": row[k] for k in ("roc_auc", "log_loss", "pr_auc", "ece")})
    out["seconds"] = report["seconds"]
    return {k: float(v) for k, v in out.items() if v is not None and np.isfinite(v)}


def log_training_run(
    params: dict[str, Any],
    report: dict[str, Any],
    production: ChurnModel,
    files: dict[str, Path],
    score: pd.DataFrame,
    pngs: list[Path],
    where: Locations,
) -> dict[str, Any]:
    """One MLflow run: params, tags, metrics, plots, reports; the refit model logged and registered."""
    import mlflow

    data_hash = tracking.fingerprint([where.features(r) for r in ("train", "eval", "score")])
    tags = tracking.run_tags(
        params,
        data_hash,
        report["as_of"],
        eval_cutoff=report["eval_cutoff"],
        protocol=report["protocol"]["mode"],
        prior=production.spec.prior,
        n_features=len(production.spec.features),
    )
    logged = {
        "churn": params.get("churn", {}),
        "windows": params["windows"],
        "seed": params.get("seed"),
        "features": {k: params["features"].get(k) for k in ("freq", "freq_multiplier")},
        "data": {"source": params.get("data", {}).get("source")},
    }
    signature, example = model_inputs(production.spec, score)
    with tracking.start_run(params.get("mlflow") or {}, "train_churn", tags) as run:
        mlflow.log_params(tracking.flatten(logged))
        mlflow.log_metrics(_metrics(report))
        mlflow.log_dict(production.spec.to_dict(), "features.json")
        for png in pngs:
            mlflow.log_artifact(str(png), "plots")
        for path in (where.report("churn.md"), where.report("churn_table.csv")):
            mlflow.log_artifact(str(path), "reports")
        mlflow.log_dict(report, "reports/churn.json")
        for path in sorted(where.backtest.glob("*")):
            mlflow.log_artifact(str(path), "backtest")
        info = mlflow.pyfunc.log_model(
            name="model",
            python_model=str(Path(__file__).resolve().parents[1] / "models/churn/mlflow_entry.py"),
            artifacts={k: str(files[k]) for k in ("model", "calibrator", "features")},
            code_paths=[str(Path(__file__).resolve().parents[1] / "models")],
            signature=signature,
            input_example=example,
            registered_model_name=MODEL_NAME,
        )
    return {
        "tracking_uri": tracking.tracking_uri(params.get("mlflow")),
        "run_id": run.info.run_id,
        "experiment_id": run.info.experiment_id,
        "model_uri": info.model_uri,
        "registered_model": MODEL_NAME,
        "registered_version": info.registered_model_version,
        "data_fingerprint": data_hash,
    }


def run(params: dict[str, Any], track: bool = True, root: Path | None = None) -> dict[str, Any]:
    """Backtest, refit, write artifacts / reports / plot data, and log the run to MLflow."""
    started = time.perf_counter()
    where = Locations(Path(root) if root is not None else paths.ROOT)
    cfg = ChurnConfig.from_params(params.get("churn") or {}, seed=int(params.get("seed", 42)))
    horizon, unit = int(params["windows"]["horizon_days"]), time_unit_days(params["features"])
    notes: list[str] = []
    frames = read_frames(where)
    cfg = add_priors(frames, cfg, horizon, unit, notes)
    result = backtest(frames, cfg, horizon, unit, notes)
    model: ChurnModel = result["model"]
    evaluation, y = frames["eval"], result["y"]

    sample = evaluation.sample(min(SHAP_SAMPLE, len(evaluation)), random_state=cfg.seed)
    importance = explain.global_importance(model, sample)
    curves = evaluate.curve_tables(y, result["scores"], cfg.ece_bins)
    table = evaluate.metrics_table({**result["results"], f"{MODEL}_uncalibrated": result["raw_result"]})
    ablation_rows = run_ablation(frames, cfg, model) if cfg.ablation else []

    production = fit_churn(pd.concat([frames["train"], evaluation], ignore_index=True), cfg)
    scored = score_at_as_of(production, frames["score"], cfg.reason_codes)

    as_of = str(frames["score"]["cutoff"].iloc[0])
    report = {
        "as_of": as_of,
        "eval_cutoff": str(evaluation["cutoff"].iloc[0]),
        "horizon_days": horizon,
        "train_cutoffs": sorted(frames["train"]["cutoff"].unique().tolist()),
        "eval_rows": len(evaluation),
        "eval_churn_rate": float(y.mean()),
        "protocol": {k: v for k, v in model.info.items() if k != "seconds"},
        "model": result["results"][MODEL],
        "model_uncalibrated": result["raw_result"],
        "baselines": {k: v for k, v in result["results"].items() if k != MODEL},
        "comparison": result["comparison"],
        "baseline_coefficients": result["coefficients"],
        "ablation": ablation_rows,
        "refit": {k: v for k, v in production.info.items() if k != "seconds"},
        "features": {"n": len(model.spec.features), "ignored": ignored_columns(frames["train"])},
        "top_features": importance.head(10)[["feature", "mean_abs_shap", "gain_share"]].to_dict("records"),
        "notes": notes,
    }
    files = save_model(production, where.art)
    save_model(model, where.backtest)
    eval_out = evaluation[["customer_id", "cutoff", LABEL]].assign(
        **{f"p_{name}": p for name, p in result["scores"].items()},
        p_lightgbm_uncalibrated=result["uncalibrated"],
    )
    write_parquet(eval_out, where.art / "eval_predictions.parquet")
    write_parquet(scored, where.art / "scores.parquet")
    pngs = write_figures(curves, importance, model, sample, cfg.seed, where.art / "plots")
    write_plot_data(curves, importance, where.plot_data)
    write_csv(table, where.report("churn_table.csv"))
    write_text(markdown_report(report, table), where.report("churn.md"))
    report["seconds"] = round(time.perf_counter() - started, 2)
    write_json(report, where.report("churn.json"))
    if track:
        report["mlflow"] = log_training_run(params, report, production, files, frames["score"], pngs, where)
        write_json(report["mlflow"], where.art / "mlflow_run.json")
    return report


def main(argv: list[str] | None = None) -> int:
    """Entry point: `python -m pipelines.train_churn [hydra overrides]`.

    Files are read and written under the workspace holding the stage (paths.ROOT, not DVC_ROOT, which
    `dvc exp run --queue` points at the parent repository); only the MLflow store is anchored on DVC_ROOT.
    """
    try:
        report = run(load_params(argv), root=paths.ROOT)
    except (ValueError, FileNotFoundError) as exc:
        print(f"train_churn: error: {exc}", file=sys.stderr)
        return 2
    model, protocol = report["model"], report["protocol"]
    print(
        f"train_churn: {protocol['mode']} ({protocol['reason']}); eval {report['eval_cutoff']}: "
        f"auc={model['roc_auc']:.4f} log_loss={model['log_loss']:.4f} ece={model['ece']:.4f}"
    )
    for row in report["comparison"]:
        print(
            f"  {row['metric']:14s} lightgbm={row['model']:.4f}  best baseline {row['best_baseline']}="
            f"{row['best_baseline_value']:.4f}  delta={row['delta']:+.4f}"
        )
    print(json.dumps(report.get("mlflow", {})))
    return 0


if __name__ == "__main__":
    sys.exit(main())
