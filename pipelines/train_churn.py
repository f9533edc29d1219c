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
from models.churn import ablation, baselines, champion, evaluate, explain, plots
from models.churn.base import ChurnScorer, save_scorer
from models.churn.candidates import (
    Candidate,
    candidate_list,
    fit_candidate,
    labels_and_groups,
    plan_validation,
    validation_predictions,
    with_prior,
)
from models.churn.config import ChurnConfig
from models.churn.errors import ChurnInputError
from models.churn.features import LABEL, PRIOR_COLUMN, FeatureSpec, ignored_columns
from models.churn.model import ChurnModel
from models.churn.prior import btyd_prior
from pipelines import cleanup, modelset, paths, progress, tracking
from pipelines.config import load_params
from pipelines.examples import synthetic_example
from pipelines.io import atomic_path, write_json, write_parquet
from pipelines.runinfo import write_report
from pipelines.scoring_models import MODEL_FILES


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


MODEL_NAME = "churn"  # one registered model; the champion's version carries the alias `champion`
MODEL = "lightgbm"
BASELINES = ("log_rfm", "recency_rule", *baselines.BTYD_MODELS)
TABLE_METRICS = ("roc_auc", "pr_auc", "log_loss", "brier", "ece", "lift_top10", "capture_top10", "lift_top20")
SHAP_SAMPLE = 5000
CHALLENGER_INTERVALS = ("roc_auc", "log_loss")  # bootstrapped for every candidate; all metrics for the champion


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
            f"prior {cfg.prior} at {role} cutoff {c}: {why} (training churn rate used)" for c, why in failures.items()
        ]
    return cfg


def btyd_probabilities(
    frames: dict[str, pd.DataFrame], cfg: ChurnConfig, horizon: int, unit: float, notes: list[str]
) -> tuple[dict[str, dict[str, np.ndarray]], list[str]]:
    """BTYD P(no purchase in H) per row of train, eval and score for every kind a candidate reads, one fit per
    cutoff (the scoring cutoff too, so a champion that reads a prior can always score at as_of).

    A kind whose fit fails at the latest training cutoff, the evaluation cutoff or as_of is skipped (with a
    note); an older, small training cutoff falls back to the training churn rate (with a note).
    """
    wanted = list(dict.fromkeys([*cfg.btyd_baselines, *cfg.offset_priors, *([cfg.prior] * (cfg.prior != "none"))]))
    out: dict[str, dict[str, np.ndarray]] = {"train": {}, "eval": {}, "score": {}}
    if wanted and not baselines.clv_available():
        notes.append("BTYD candidates skipped: models.clv is not available")
        return out, []
    latest = str(frames["train"]["cutoff"].max())
    usable = []
    for kind in wanted:
        values, failed = {}, {}
        for role in ("train", "eval", "score"):
            values[role], failures = btyd_prior(frames[role], kind, horizon, unit, cfg.seed)
            failed.update({c: why for c, why in failures.items() if role != "train" or c == latest})
            if failed:
                break
            if role == "train":
                notes += [
                    f"BTYD {kind} at training cutoff {c}: {why} (training churn rate used)"
                    for c, why in failures.items()
                ]
        if failed:
            cutoff, why = next(iter(failed.items()))
            notes.append(f"BTYD {kind} skipped: the fit failed at cutoff {cutoff} ({why})")
            continue
        for role in out:
            out[role][kind] = values[role]
        usable.append(kind)
    return out, usable


def save_model(model: ChurnScorer, folder: Path) -> dict[str, Path]:
    """The model's own files (JSON / LightGBM text, no pickles) and the manifest naming its kind."""
    return save_scorer(model, folder)


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
    importance: pd.DataFrame | None,
    model: ChurnModel | None,
    sample: pd.DataFrame,
    seed: int,
    folder: Path,
) -> list[Path]:
    """The PNG figures (logged to MLflow) under artifacts/churn/plots/ (SHAP ones when LightGBM was fitted)."""
    figures = {
        "roc.png": plots.roc_figure(curves["roc"]),
        "pr.png": plots.pr_figure(curves["pr"]),
        "reliability.png": plots.reliability_figure(curves["reliability"]),
        "gains_lift.png": plots.gains_figure(curves["gains"], curves["lift"]),
    }
    if model is not None and importance is not None:
        parts = explain.contributions(model, sample)
        figures["importance.png"] = plots.importance_figure(importance)
        figures["shap_summary.png"] = plots.shap_summary_figure(parts.shap, parts.values, parts.names, seed=seed)
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for name, fig in figures.items():
        with atomic_path(folder / name) as tmp:
            fig.savefig(tmp, format="png", dpi=110)
        written.append(folder / name)
    return written


def write_plot_data(curves: dict[str, pd.DataFrame], importance: pd.DataFrame | None, folder: Path) -> None:
    """DVC plot data: one CSV per curve under reports/plots/churn/ (declared in dvc.yaml `plots:`)."""
    for name, table in curves.items():
        keep = [c for c in table.columns if not c.endswith("_count")]
        missing = {b: np.nan for b in ("champion", MODEL, *BASELINES) if b not in keep}  # dvc.yaml names columns
        write_csv(table[keep].assign(**missing), folder / f"{name}.csv")
    if importance is None:
        importance = pd.DataFrame(columns=["feature", "mean_abs_shap", "gain_share"])
    write_csv(importance[["feature", "mean_abs_shap", "gain_share"]].head(30), folder / "importance.csv")


def fit_candidates(
    frames: dict[str, pd.DataFrame],
    cfg: ChurnConfig,
    priors: dict[str, dict[str, np.ndarray]],
    usable: list[str],
    notes: list[str],
) -> dict[str, Any]:
    """Fit every candidate on the training cutoffs; its validation predictions and its scores at c_e."""
    train, evaluation = frames["train"], frames["eval"]
    plan = plan_validation(train, cfg)
    fitted: dict[str, tuple[Candidate, ChurnScorer]] = {}
    scores, validation = {}, {}
    candidates = candidate_list(cfg, usable)
    for i, cand in enumerate(candidates, 1):
        progress.note(f"candidate {i}/{len(candidates)}: {cand.name}")
        tr, ev = with_prior(train, priors["train"], cand.prior), with_prior(evaluation, priors["eval"], cand.prior)
        try:
            model = fit_candidate(cand, tr, cfg)
            if plan is not None:
                validation[cand.name] = validation_predictions(cand, model, tr, cfg, plan)
        except ChurnInputError as exc:
            notes.append(f"candidate {cand.name} skipped: {exc}")
            continue
        fitted[cand.name] = (cand, model)
        scores[cand.name] = model.predict_proba(ev)
    if not fitted:
        raise ChurnInputError("no churn candidate could be fitted on the training cutoffs (see the notes above)")
    return {"plan": plan, "fitted": fitted, "scores": scores, "validation": validation}


def choose_champion(train: pd.DataFrame, cfg: ChurnConfig, fits: dict[str, Any]) -> dict[str, Any]:
    """reports/churn.json `champion`: chosen on training-period validation only (models/churn/champion.py)."""
    plan, fitted = fits["plan"], fits["fitted"]
    order = list(fitted)
    pool = [n for n in order if fitted[n][0].baseline]
    if plan is None:
        name = "log_rfm" if "log_rfm" in fitted else order[0]
        return {
            "name": name,
            "selected_on": "no validation rows (too few customers per fold): simplest label-fitted baseline",
            "validation": {},
            "margin_vs_best_baseline": {},
            "steps": [],
        }
    y, groups = labels_and_groups(train, plan)
    choice = champion.choose(
        y,
        fits["validation"],
        order,
        pool,
        groups,
        min_evidence=cfg.min_evidence,
        n_boot=cfg.bootstrap,
        seed=cfg.seed,
        n_bins=cfg.ece_bins,
    )
    name, steps = choice.name, choice.steps
    if cfg.champion != "auto":
        if cfg.champion not in fitted:
            raise ChurnInputError(f"churn.champion={cfg.champion!r} is not among the fitted candidates {order}")
        name, steps = cfg.champion, [*steps, f"overridden by churn.champion={cfg.champion}"]
    return {
        "name": name,
        "kind": fitted[name][1].kind,
        "selected_on": plan.selected_on,
        "rule": "min_evidence" if cfg.min_evidence else "lowest log loss",
        "validation": choice.validation,
        "margin_vs_best_baseline": choice.margin_vs_best_baseline,
        "steps": steps,
    }


def backtest_table(y: np.ndarray, fits: dict[str, Any], name: str, cfg: ChurnConfig) -> dict[str, Any]:
    """Every candidate at c_e; each non-baseline (and the champion) against the best baseline with CIs.

    The champion gets intervals on every bootstrapped metric; a challenger on ROC AUC and log loss only.
    """
    scores, fitted = fits["scores"], fits["fitted"]
    results = evaluate.score_all(y, scores, cfg.top_fractions, cfg.ece_bins)
    pool = [n for n in scores if fitted[n][0].baseline]
    against = {}
    for cand in [n for n in scores if n not in pool or n == name]:
        others = [b for b in pool if b != cand]
        if others:
            rows = evaluate.comparison(results, cand, others)
            keep = [r for r in rows if cand == name or r["metric"] in CHALLENGER_INTERVALS]
            rest = [r for r in rows if r not in keep]
            against[cand] = evaluate.add_intervals(keep, y, scores, cand, cfg.bootstrap, cfg.seed) + rest
    return {"results": results, "against": against}


def run_ablation(frames: dict[str, pd.DataFrame], cfg: ChurnConfig, model: ChurnModel) -> list[dict]:
    """RFM-only vs all features, same LightGBM recipe (plain LightGBM, no prior)."""
    table = ablation.run_ablation(frames["train"], frames["eval"], cfg, fitted={"all": model})
    table.insert(1, "prior", model.spec.prior)
    return table.to_dict(orient="records")


def _ci(row: dict[str, Any]) -> str:
    """'[lo, hi]' of a comparison row's delta interval, or ''."""
    return f"[{row['delta_ci95_low']:+.4f}, {row['delta_ci95_high']:+.4f}]" if "delta_ci95_low" in row else ""


def markdown_report(report: dict[str, Any], table: pd.DataFrame) -> str:
    """reports/churn.md: the champion and its validation, the c_e table, deltas to the best baseline, ablation."""
    champ = report["champion"]
    lines = [
        f"# Churn backtest at {report['eval_cutoff']} (labels to {report['as_of']}, "
        f"horizon {report['horizon_days']} days)",
        "",
        f"{report['eval_rows']:,} customers, churn rate {report['eval_churn_rate']:.4f}.",
        "",
        f"## Champion: {champ['name']}",
        "",
        f"Chosen on {champ['selected_on']} (training period only; the evaluation cutoff is never read for the "
        f"choice). Rule: {champ.get('rule', '-')}.",
        "",
    ]
    if champ["validation"]:
        val = pd.DataFrame(champ["validation"]).T.rename_axis("model").reset_index()
        lines += [evaluate.markdown_table(val, ["auc", "log_loss", "ece", "n"]), ""]
    for metric, margin in champ["margin_vs_best_baseline"].items():
        ci = margin.get("delta_ci95")
        lines.append(
            f"- validation {metric}: {margin['champion_value']:.4f} vs best baseline {margin['best_baseline']} "
            f"{margin['best_baseline_value']:.4f} (delta {margin['delta']:+.4f}"
            + (f", 95% CI [{ci[0]:+.4f}, {ci[1]:+.4f}])" if ci else ")")
        )
    lines += [f"- {step}" for step in champ.get("steps", [])]
    lines += [
        "",
        f"## Every candidate at the evaluation cutoff {report['eval_cutoff']}",
        "",
        evaluate.markdown_table(table, [c for c in TABLE_METRICS if c in table.columns]),
        "",
        "| candidate | metric | value | best baseline | value | delta | 95% CI | better |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for cand, rows in report["candidates_vs_best_baseline"].items():
        for row in rows:
            if row["metric"] not in ("roc_auc", "log_loss", "brier", "ece"):
                continue
            lines.append(
                f"| {cand}{' (champion)' if cand == champ['name'] else ''} | {row['metric']} | {row['model']:.4f} | "
                f"{row['best_baseline']} | {row['best_baseline_value']:.4f} | {row['delta']:+.4f} | {_ci(row)} | "
                f"{row['model_better']} |"
            )
    if report.get("ablation"):
        abl = pd.DataFrame(report["ablation"])
        abl["model"] = abl["feature_set"] + " / prior " + abl["prior"]
        lines += [
            "",
            "## Ablation (LightGBM)",
            "",
            evaluate.markdown_table(abl, ["n_features", "roc_auc", "log_loss", "brier", "ece", "lift_top10"]),
        ]
    if report["notes"]:
        lines += ["", "## Notes", "", *[f"- {n}" for n in report["notes"]]]
    return "\n".join(lines) + "\n"


def score_at_as_of(model: ChurnScorer, score: pd.DataFrame, k: int) -> pd.DataFrame:
    """The refit model's calibrated P(churn) and top-k reason codes per customer at as_of."""
    return pd.concat([score[["customer_id", "cutoff"]], model.score_with_reasons(score, k)], axis=1)


def _column_type(dtype: Any) -> str:
    """MLflow column type of a numeric pandas dtype."""
    if pd.api.types.is_bool_dtype(dtype):
        return "boolean"
    if pd.api.types.is_integer_dtype(dtype):
        return "integer" if np.dtype(dtype).itemsize <= 4 else "long"
    return "double"


def model_inputs(spec: FeatureSpec, frame: pd.DataFrame) -> tuple[Any, pd.DataFrame]:
    """The pyfunc's input signature (categoricals as optional strings) and a synthetic input example (column
    quantiles and model levels, pipelines/examples.py: no customer's row is logged)."""
    from mlflow.models import ModelSignature
    from mlflow.types import ColSpec, Schema

    columns = [*spec.features, *([PRIOR_COLUMN] if spec.prior != "none" else [])]
    example = synthetic_example(frame, columns, spec.categories)
    specs = []
    for col in columns:
        if col in spec.categories:
            specs.append(ColSpec("string", col, required=False))
        else:
            specs.append(ColSpec(_column_type(frame[col].dtype), col))
    return ModelSignature(Schema(specs), Schema([ColSpec("double", "p_churn")])), example


def _metrics(report: dict[str, Any]) -> dict[str, float]:
    """Flat MLflow metrics: the champion, every candidate at c_e and on validation, deltas, diagnostics."""
    champ = report["champion"]
    out = {f"champion.{k}": v for k, v in report["model"].items()}
    for name, values in report["candidates"].items():
        out.update({f"candidate.{name}.{k}": v for k, v in values.items()})
    for name, values in champ["validation"].items():
        out.update({f"validation.{name}.{k}": v for k, v in values.items()})
    out.update({f"delta_vs_best_baseline.{r['metric']}": r["delta"] for r in report["comparison"]})
    out.update({f"validation_margin.{m}": v["delta"] for m, v in champ["margin_vs_best_baseline"].items()})
    for prefix, info in (("backtest", report["protocol"]), ("refit", report["refit"])):
        out.update({f"{prefix}.holdout.{k}": v for k, v in (info.get("holdout") or {}).items()})
        if info.get("best_iteration"):
            out[f"{prefix}.best_iteration"] = info["best_iteration"]
    for row in report["ablation"]:
        tag = f"ablation.{row['feature_set']}.prior_{row['prior']}"
        out.update({f"{tag}.{k}": row[k] for k in ("roc_auc", "log_loss", "pr_auc", "ece")})
    out["seconds"] = report["seconds"]
    return {k: float(v) for k, v in out.items() if isinstance(v, (int, float)) and np.isfinite(v)}


def log_training_run(
    params: dict[str, Any],
    report: dict[str, Any],
    production: ChurnScorer,
    folder: Path,
    score: pd.DataFrame,
    pngs: list[Path],
    where: Locations,
) -> dict[str, Any]:
    """One MLflow run: params, tags, metrics, plots, reports, challengers' backtest models; the champion's
    refit registered as `churn` with alias `champion` (the previous champion version becomes `challenger`)."""
    import mlflow

    progress.note("MLflow run: params, metrics, plots, models; registering the champion")
    data_hash = tracking.fingerprint([where.features(r) for r in ("train", "eval", "score")])
    champ = report["champion"]
    tags = tracking.run_tags(
        params,
        data_hash,
        report["as_of"],
        eval_cutoff=report["eval_cutoff"],
        champion=champ["name"],
        champion_kind=production.kind,
        selected_on=champ["selected_on"],
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
    signature, example = model_inputs(production.spec, score.assign(**{PRIOR_COLUMN: 0.5}))
    root = Path(__file__).resolve().parents[1]
    name = tracking.run_name("train_churn", params, report["as_of"], champ["name"], settings=logged)
    with tracking.start_run(params.get("mlflow") or {}, name, tags) as run:
        tracking.log_datasets({f"features/{r}": where.features(r) for r in ("train", "eval", "score")})
        mlflow.log_params(tracking.flatten(logged))
        mlflow.log_metrics(_metrics(report))
        mlflow.log_dict(production.spec.to_dict(), "features.json")
        for png in pngs:
            mlflow.log_artifact(str(png), "plots")
        for path in (where.report("churn.md"), where.report("churn_table.csv")):
            mlflow.log_artifact(str(path), "reports")
        mlflow.log_dict(report, "reports/churn.json")
        for path in sorted(where.backtest.rglob("*")):
            if path.is_file():
                mlflow.log_artifact(str(path), str(Path("backtest") / path.parent.relative_to(where.backtest)))
        info = mlflow.pyfunc.log_model(
            name="model",
            python_model=str(root / "models/churn/mlflow_entry.py"),
            artifacts={"churn": str(folder)},
            code_paths=[str(root / "models")],
            signature=signature,
            input_example=example,
            registered_model_name=MODEL_NAME,
        )
    version = info.registered_model_version
    model_sha256 = modelset.verify_logged(MODEL_NAME, version, "artifacts/churn", modelset.hashes(folder))
    model = report["model"]
    tracking.describe_version(
        params.get("mlflow"), MODEL_NAME, version,
        f"{champ['name']} ({production.kind}), refit at {report['eval_cutoff']} for scoring at {report['as_of']} "
        f"on {tags['data_source']} data; chosen on {champ['selected_on']}; backtest at {report['eval_cutoff']}: "
        f"AUC {model['roc_auc']:.4f}, log loss {model['log_loss']:.4f}, ECE {model['ece']:.4f}. Run: {name}",
        {"data_fingerprint": data_hash, "as_of": report["as_of"], "eval_cutoff": report["eval_cutoff"],
         "horizon_days": report["horizon_days"], "roc_auc": f"{model['roc_auc']:.4f}",
         "log_loss": f"{model['log_loss']:.4f}", "ece": f"{model['ece']:.4f}", "run_name": name,
         "model_sha256": model_sha256},
    )
    aliases = tracking.set_champion(params.get("mlflow"), MODEL_NAME, version, champ["name"])
    return {
        "tracking_uri": tracking.tracking_uri(params.get("mlflow")),
        "run_id": run.info.run_id,
        "experiment_id": run.info.experiment_id,
        "model_uri": info.model_uri,
        "registered_model": MODEL_NAME,
        "registered_version": version,
        "aliases": aliases,
        "data_fingerprint": data_hash,
        "model_sha256": model_sha256,
    }


class Clock:
    """Seconds per named step of the stage (reports/churn.json `timings`)."""

    def __init__(self) -> None:
        self.laps: dict[str, float] = {}
        self._last = time.perf_counter()

    def lap(self, name: str) -> None:
        """Record the seconds since the previous lap under name."""
        now = time.perf_counter()
        self.laps[name] = round(now - self._last, 2)
        self._last = now
        progress.note(f"{name} done in {self.laps[name]:.1f}s")


def run(params: dict[str, Any], track: bool = True, root: Path | None = None) -> dict[str, Any]:
    """Candidates, champion on training-period validation, backtest at c_e, champion refit, reports, MLflow."""
    started = time.perf_counter()
    where = Locations(Path(root) if root is not None else paths.ROOT)
    cleanup.before_stage("train_churn", where.root)  # temp files of a killed earlier run
    horizon, unit = int(params["windows"]["horizon_days"]), time_unit_days(params["features"])
    cfg = ChurnConfig.from_params(params.get("churn") or {}, seed=int(params.get("seed", 42)))
    cfg = dataclasses.replace(cfg, horizon_days=horizon)
    notes: list[str] = []
    frames = read_frames(where)
    clock = Clock()
    progress.note(f"BTYD P(no purchase) at each cutoff: {', '.join(cfg.btyd_baselines) or 'none'}")
    priors, usable = btyd_probabilities(frames, cfg, horizon, unit, notes)
    clock.lap("btyd")
    fits = fit_candidates(frames, cfg, priors, usable, notes)
    clock.lap("candidates")
    champ = choose_champion(frames["train"], cfg, fits)
    clock.lap("champion")
    name = champ["name"]
    cand, model = fits["fitted"][name]
    evaluation = frames["eval"]
    y = evaluation[LABEL].to_numpy(dtype=float)
    progress.note(f"backtest at c_e: every candidate with {cfg.bootstrap} paired-bootstrap resamples")
    table_data = backtest_table(y, fits, name, cfg)
    clock.lap("backtest_table")
    results = table_data["results"]
    scores = {**fits["scores"], "champion": fits["scores"][name]}
    curves = evaluate.curve_tables(y, scores, cfg.ece_bins)
    table = evaluate.metrics_table(results)

    progress.note("importance (TreeSHAP) and the RFM-only ablation")
    lgb_model = fits["fitted"].get(MODEL, (None, None))[1]
    sample = evaluation.sample(min(SHAP_SAMPLE, len(evaluation)), random_state=cfg.seed)
    importance = explain.global_importance(lgb_model, sample) if lgb_model is not None else None
    ablation_rows = run_ablation(frames, cfg, lgb_model) if cfg.ablation and lgb_model is not None else []
    clock.lap("importance_ablation")

    both = pd.concat([frames["train"], evaluation], ignore_index=True)
    if cand.prior != "none":
        both[PRIOR_COLUMN] = np.concatenate([priors["train"][cand.prior], priors["eval"][cand.prior]])
    progress.note(f"refit of the champion {name} on training + evaluation cutoffs")
    production = fit_candidate(cand, both, cfg)
    clock.lap("refit")
    scored = score_at_as_of(production, with_prior(frames["score"], priors["score"], cand.prior), cfg.reason_codes)

    as_of = str(frames["score"]["cutoff"].iloc[0])
    report = {
        "as_of": as_of,
        "eval_cutoff": str(evaluation["cutoff"].iloc[0]),
        "horizon_days": horizon,
        "train_cutoffs": sorted(frames["train"]["cutoff"].unique().tolist()),
        "eval_rows": len(evaluation),
        "eval_churn_rate": float(y.mean()),
        "champion": champ,
        "protocol": {k: v for k, v in model.info.items() if k != "seconds"},
        "model": results[name],
        "candidates": results,
        "baselines": {k: v for k, v in results.items() if fits["fitted"][k][0].baseline},
        "comparison": table_data["against"].get(name, []),
        "candidates_vs_best_baseline": table_data["against"],
        "ablation": ablation_rows,
        "refit": {k: v for k, v in production.info.items() if k != "seconds"},
        "features": {"n": len(model.spec.features), "ignored": ignored_columns(frames["train"])},
        "top_features": []
        if importance is None
        else importance.head(10)[["feature", "mean_abs_shap", "gain_share"]].to_dict("records"),
        "notes": notes,
        "timings": clock.laps,
    }
    progress.note("writing models, predictions, figures and reports")
    staging = modelset.stage(where.art)  # the model set: files + provenance, moved into place together at the end
    save_model(production, staging)
    for other, (_, fitted_model) in fits["fitted"].items():
        save_model(fitted_model, where.backtest if other == name else where.backtest / "challengers" / other)
    write_parquet(
        # 12 decimals: BLAS threads leave ~1e-17 noise in some baselines; the file must be the same bytes each run
        evaluation[["customer_id", "cutoff", LABEL]].assign(**{f"p_{n}": np.round(p, 12) for n, p in scores.items()}),
        where.art / "eval_predictions.parquet",
    )
    write_parquet(scored, where.art / "scores.parquet")
    pngs = write_figures(curves, importance, lgb_model, sample, cfg.seed, where.art / "plots")
    write_plot_data(curves, importance, where.plot_data)
    write_csv(table, where.report("churn_table.csv"))
    write_text(markdown_report(report, table), where.report("churn.md"))
    report["seconds"] = round(time.perf_counter() - started, 2)
    write_report(report, where.report("churn.json"), "train_churn")  # wall-clock: reports/runs/
    if track:
        report["mlflow"] = log_training_run(params, report, production, staging, frames["score"], pngs, where)
        write_json(report["mlflow"], staging / "mlflow_run.json")
    modelset.commit(staging, where.art, report.get("mlflow"), replaces=(*MODEL_FILES, "mlflow_run.json"))
    return report


def main(argv: list[str] | None = None) -> int:
    """Entry point: `python -m pipelines.train_churn [hydra overrides]`.

    Files are read and written under the workspace holding the stage (paths.ROOT, not DVC_ROOT, which
    `dvc exp run --queue` points at the parent repository); only the MLflow store is anchored on DVC_ROOT.
    """
    try:
        report = run(load_params(argv), root=paths.ROOT)
    except (ValueError, FileNotFoundError) as exc:
        print(f"train_churn: error: {' '.join(str(exc).split())}", file=sys.stderr)  # one line
        return 2
    model, protocol, champ = report["model"], report["protocol"], report["champion"]
    how = f"{protocol['mode']} ({protocol['reason']})" if "mode" in protocol else champ.get("kind", champ["name"])
    print(
        f"train_churn: champion {champ['name']}, {how}; eval {report['eval_cutoff']}: "
        f"auc={model['roc_auc']:.4f} log_loss={model['log_loss']:.4f} ece={model['ece']:.4f}"
    )
    for row in report["comparison"]:
        print(
            f"  {row['metric']:14s} champion={row['model']:.4f}  best baseline {row['best_baseline']}="
            f"{row['best_baseline_value']:.4f}  delta={row['delta']:+.4f}"
        )
    print(json.dumps(report.get("mlflow", {})))
    return 0


if __name__ == "__main__":
    sys.exit(main())
