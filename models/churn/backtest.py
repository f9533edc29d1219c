"""The churn backtest, pure: BTYD probabilities, candidates, champion on training-period validation, the
evaluation-cutoff table, ablation and the champion's refit (stage train_churn only reads, writes and tracks)."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from models.churn import ablation, baselines, champion, evaluate, explain
from models.churn.base import ChurnScorer
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
from models.churn.features import LABEL, PRIOR_COLUMN, ignored_columns
from models.churn.model import ChurnModel
from models.churn.prior import btyd_prior

Note = Callable[[str], None]
Stats = Mapping[str, Any]  # cutoff (ISO text) -> models.clv.stats.RfmStats
MODEL = "lightgbm"
BASELINES = ("log_rfm", "recency_rule", *baselines.BTYD_MODELS)
SHAP_SAMPLE = 5000
CHALLENGER_INTERVALS = ("roc_auc", "log_loss")  # bootstrapped for every candidate; all metrics for the champion


def _silent(text: str) -> None:
    """No progress output."""


def add_priors(
    frames: dict[str, pd.DataFrame],
    cfg: ChurnConfig,
    horizon: int,
    unit: float,
    notes: list[str],
    stats: Stats | None = None,
) -> ChurnConfig:
    """Add the BTYD prior column to every frame (per cutoff); without models.clv fall back to no prior."""
    if cfg.prior == "none":
        return cfg
    if not baselines.clv_available():
        notes.append(f"churn.prior={cfg.prior} ignored: models.clv is not available")
        return dataclasses.replace(cfg, prior="none")
    for role, frame in frames.items():
        frame[PRIOR_COLUMN], failures = btyd_prior(frame, cfg.prior, horizon, unit, cfg.seed, stats)
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
    frames: dict[str, pd.DataFrame],
    cfg: ChurnConfig,
    horizon: int,
    unit: float,
    notes: list[str],
    stats: Stats | None = None,
) -> tuple[dict[str, dict[str, np.ndarray]], list[str]]:
    """BTYD P(no purchase in H) per row of train, eval and score for every kind a candidate reads, one fit per
    cutoff (the scoring cutoff too, so a champion that reads a prior can always score at as_of).

    stats: compressed BTYD statistics per cutoff (models.clv.stats) to fit on instead of the frames' rows.
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
            values[role], failures = btyd_prior(frames[role], kind, horizon, unit, cfg.seed, stats)
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


def fit_candidates(
    frames: dict[str, pd.DataFrame],
    cfg: ChurnConfig,
    priors: dict[str, dict[str, np.ndarray]],
    usable: list[str],
    notes: list[str],
    note: Note = _silent,
) -> dict[str, Any]:
    """Fit every candidate on the training cutoffs; its validation predictions and its scores at c_e."""
    train, evaluation = frames["train"], frames["eval"]
    plan = plan_validation(train, cfg)
    fitted: dict[str, tuple[Candidate, ChurnScorer]] = {}
    scores, validation = {}, {}
    candidates = candidate_list(cfg, usable)
    for i, cand in enumerate(candidates, 1):
        note(f"candidate {i}/{len(candidates)}: {cand.name}")
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


def score_at_as_of(model: ChurnScorer, score: pd.DataFrame, k: int) -> pd.DataFrame:
    """The refit model's calibrated P(churn) and top-k reason codes per customer at as_of."""
    return pd.concat([score[["customer_id", "cutoff"]], model.score_with_reasons(score, k)], axis=1)


class Clock:
    """Seconds per named step (reports/churn.json `timings`), each lap announced through note."""

    def __init__(self, note: Note = _silent) -> None:
        self.laps: dict[str, float] = {}
        self.note = note
        self._last = time.perf_counter()

    def lap(self, name: str) -> None:
        """Record the seconds since the previous lap under name."""
        now = time.perf_counter()
        self.laps[name] = round(now - self._last, 2)
        self._last = now
        self.note(f"{name} done in {self.laps[name]:.1f}s")


@dataclass
class Backtest:
    """Everything the stage writes: the report body, the refit model, scores, curves, table and figures' inputs."""

    report: dict[str, Any]
    production: ChurnScorer
    fitted: dict[str, tuple[Candidate, ChurnScorer]]
    scores: dict[str, np.ndarray]
    curves: dict[str, pd.DataFrame]
    table: pd.DataFrame
    importance: pd.DataFrame | None
    lgb_model: ChurnModel | None
    sample: pd.DataFrame
    scored: pd.DataFrame


def run_backtest(
    frames: dict[str, pd.DataFrame],
    cfg: ChurnConfig,
    horizon: int,
    unit: float,
    note: Note = _silent,
    stats: Stats | None = None,
    extra: Mapping[str, Any] | None = None,
) -> Backtest:
    """Candidates, champion on training-period validation, backtest at c_e, champion refit, scores at as_of.

    extra: report entries placed before `notes` (e.g. the engine and the training sample).
    """
    notes: list[str] = []
    clock = Clock(note)
    note(f"BTYD P(no purchase) at each cutoff: {', '.join(cfg.btyd_baselines) or 'none'}")
    priors, usable = btyd_probabilities(frames, cfg, horizon, unit, notes, stats)
    clock.lap("btyd")
    fits = fit_candidates(frames, cfg, priors, usable, notes, note)
    clock.lap("candidates")
    champ = choose_champion(frames["train"], cfg, fits)
    clock.lap("champion")
    name = champ["name"]
    cand, model = fits["fitted"][name]
    evaluation = frames["eval"]
    y = evaluation[LABEL].to_numpy(dtype=float)
    note(f"backtest at c_e: every candidate with {cfg.bootstrap} paired-bootstrap resamples")
    table_data = backtest_table(y, fits, name, cfg)
    clock.lap("backtest_table")
    results = table_data["results"]
    scores = {**fits["scores"], "champion": fits["scores"][name]}
    curves = evaluate.curve_tables(y, scores, cfg.ece_bins)
    table = evaluate.metrics_table(results)

    note("importance (TreeSHAP) and the RFM-only ablation")
    lgb_model = fits["fitted"].get(MODEL, (None, None))[1]
    sample = evaluation.sample(min(SHAP_SAMPLE, len(evaluation)), random_state=cfg.seed)
    importance = explain.global_importance(lgb_model, sample) if lgb_model is not None else None
    ablation_rows = run_ablation(frames, cfg, lgb_model) if cfg.ablation and lgb_model is not None else []
    clock.lap("importance_ablation")

    both = pd.concat([frames["train"], evaluation], ignore_index=True)
    if cand.prior != "none":
        both[PRIOR_COLUMN] = np.concatenate([priors["train"][cand.prior], priors["eval"][cand.prior]])
    note(f"refit of the champion {name} on training + evaluation cutoffs")
    production = fit_candidate(cand, both, cfg)
    clock.lap("refit")
    scored = score_at_as_of(production, with_prior(frames["score"], priors["score"], cand.prior), cfg.reason_codes)

    report = {
        "as_of": str(frames["score"]["cutoff"].iloc[0]),
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
        **(extra or {}),
        "notes": notes,
        "timings": clock.laps,
    }
    return Backtest(report, production, fits["fitted"], scores, curves, table, importance, lgb_model, sample, scored)
