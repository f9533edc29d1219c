"""Choose the BTYD purchase model on the training period's own time-held-out window, never on c_e.

Rule. The validation window is the latest training cutoff c_t of train.parquet whose labels end on or before
the evaluation cutoff (c_t + H <= c_e): every candidate is fitted on the RFM at c_t (history up to c_t only)
and predicts, for each customer, P(no purchase in (c_t, c_t + H]) and the expected purchases in it, scored on
that cutoff's own labels `churned` / `future_purchases`. The chosen model has the best `metric` (default
`no_purchase_log_loss`: minus the mean Bernoulli holdout log-likelihood of "no purchase in the horizon", a
proper score); candidates within `tolerance` (relative) of the best count as tied and the simplest wins:
fewest parameters, then registry order (models.clv.MODELS). A candidate that cannot be fitted (FitError,
ValueError, FloatingPointError, non-finite predictions) is recorded as skipped with its reason.

Fallback, stated in the result: when no usable training window exists (no training cutoff, or every
candidate fails there because the window is too small), the candidates are ranked by BIC of their
in-sample fit on the evaluation-cutoff RFM (features up to c_e; no label of c_e is read).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Any

import numpy as np
import pandas as pd

from models.clv.fitting import FitError
from models.clv.inputs import PURCHASE_PARAMS

METRICS = {"no_purchase_log_loss": "min", "purchases_mae": "min", "purchases_rmse": "min",
           "purchases_abs_total_error_pct": "min"}
FIT_ERRORS = (FitError, ValueError, FloatingPointError, ZeroDivisionError, np.linalg.LinAlgError)
EPS = 1e-12

Fitter = Callable[[str, pd.DataFrame], Any]  # (model name, RFM frame) -> fitted ClvModel


@dataclass
class Candidate:
    """One purchase model's outcome: fitted or skipped, why, its validation figures and fit notes."""

    name: str
    status: str = "skipped"
    reason: str = ""
    metrics: dict[str, float] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """JSON-able record."""
        return {"status": self.status, "reason": self.reason, "validation": dict(self.metrics),
                "notes": list(self.notes)}


@dataclass
class Selection:
    """The ranking (best first), every candidate's record, the window used and the rule applied."""

    ranking: list[str]
    candidates: dict[str, Candidate]
    window: dict[str, Any]
    metric: str
    rule: str

    @property
    def chosen(self) -> str:
        """The best-ranked model."""
        return self.ranking[0]

    def to_dict(self) -> dict[str, Any]:
        """The `selection` section of reports/clv.json."""
        return {"setting": "auto", "chosen": self.chosen, "metric": self.metric, "rule": self.rule,
                "ranking": list(self.ranking), "window": dict(self.window),
                "candidates": {k: c.to_dict() for k, c in self.candidates.items()}}


def n_params(name: str) -> int:
    """Number of parameters of a purchase model (its complexity for tie-breaks)."""
    return len(PURCHASE_PARAMS.get(name, ())) or 99


def rank(scores: dict[str, float], order: Sequence[str], direction: str = "min",
         tolerance: float = 1e-3) -> list[str]:
    """Models best first: by score, those within `tolerance` (relative) of a better one ordered by simplicity."""
    sign = 1.0 if direction == "min" else -1.0
    finite = [m for m in order if m in scores and math.isfinite(scores[m])]
    position = {m: i for i, m in enumerate(order)}
    remaining = sorted(finite, key=lambda m: sign * scores[m])
    out: list[str] = []
    while remaining:
        best = sign * scores[remaining[0]]
        band = abs(best) * tolerance + 1e-15
        tied = [m for m in remaining if sign * scores[m] <= best + band]
        pick = min(tied, key=lambda m: (n_params(m), position[m]))
        out.append(pick)
        remaining.remove(pick)
    return out


def validation_window(train: pd.DataFrame, eval_cutoff: date, horizon_days: int) -> tuple[pd.DataFrame | None, str]:
    """The rows of the latest training cutoff whose labels end by eval_cutoff, or None and why not."""
    if len(train) == 0 or "cutoff" not in train.columns:
        return None, "train.parquet holds no training cutoff"
    cutoffs = pd.to_datetime(train["cutoff"]).dt.date
    usable = sorted({c for c in cutoffs.unique() if (c + pd.Timedelta(days=horizon_days)) <= eval_cutoff})
    if not usable:
        return None, f"no training cutoff has labels ending on or before {eval_cutoff}"
    frame = train.loc[(cutoffs == usable[-1]).to_numpy()].reset_index(drop=True)
    missing = [c for c in ("churned", "future_purchases") if c not in frame.columns or frame[c].isna().any()]
    if missing:
        return None, f"training cutoff {usable[-1]} lacks labels {missing}"
    end = usable[-1] + pd.Timedelta(days=horizon_days)
    return frame, f"latest training cutoff {usable[-1]}: labels over ({usable[-1]}, {end}]"


def validation_metrics(point: pd.DataFrame, frame: pd.DataFrame, horizon_days: int) -> dict[str, float]:
    """Holdout figures of one candidate's predictions on the window's labels (row-aligned frames)."""
    p0 = point[f"p_no_purchase_{horizon_days}d"].to_numpy(dtype=float)
    expected = point[f"expected_purchases_{horizon_days}d"].to_numpy(dtype=float)
    if not (np.isfinite(p0).all() and np.isfinite(expected).all()):
        raise FloatingPointError("non-finite predictions on the validation window")
    churned = frame["churned"].to_numpy(dtype=float)
    actual = frame["future_purchases"].to_numpy(dtype=float)
    p = np.clip(p0, EPS, 1.0 - EPS)
    loss = -np.mean(churned * np.log(p) + (1.0 - churned) * np.log1p(-p))
    total = actual.sum()
    return {"no_purchase_log_loss": float(loss),
            "no_purchase_brier": float(np.mean((p0 - churned) ** 2)),
            "purchases_mae": float(np.mean(np.abs(expected - actual))),
            "purchases_rmse": float(np.sqrt(np.mean((expected - actual) ** 2))),
            "purchases_abs_total_error_pct": float(abs(expected.sum() - total) / total * 100) if total else math.nan,
            "customers": int(len(frame)), "repeat_customers": int((frame["frequency"] > 0).sum())}


def fit_notes(model: Any) -> list[str]:
    """Warnings of a fitted model's purchase fit (e.g. boundary solutions, penalizer chosen)."""
    return [str(w) for w in getattr(model.purchases, "warnings", [])]


def describe(exc: BaseException) -> str:
    """One line naming an exception."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {text}"


def _try_fit(fit: Fitter, name: str, frame: pd.DataFrame) -> tuple[Any, str]:
    """(model, '') or (None, reason)."""
    try:
        return fit(name, frame), ""
    except FIT_ERRORS as exc:
        return None, describe(exc)


def bic(model: Any, n_customers: int) -> float:
    """BIC of the purchase fit: -2 LL + k log n (NaN when the log-likelihood is unknown)."""
    ll = model.purchases.log_likelihood
    if ll is None or not math.isfinite(ll):
        return math.nan
    return -2.0 * float(ll) + n_params(model.model) * math.log(max(n_customers, 1))


def select_model(candidates: Sequence[str], fit: Fitter, predict: Callable[[Any, pd.DataFrame], pd.DataFrame],
                 window: pd.DataFrame | None, window_note: str, eval_rfm: pd.DataFrame, horizon_days: int,
                 metric: str = "no_purchase_log_loss", tolerance: float = 1e-3) -> Selection:
    """Fit every candidate, rank them (module rule); ValueError naming each failure when none can be fitted."""
    if metric not in METRICS:
        raise ValueError(f"clv.selection_metric must be one of {', '.join(METRICS)}, got {metric!r}")
    records = {name: Candidate(name) for name in candidates}
    if window is not None:
        for name, rec in records.items():
            model, reason = _try_fit(fit, name, window)
            if model is None:
                rec.reason = f"not fitted on the validation window: {reason}"
                continue
            try:
                rec.metrics = validation_metrics(predict(model, window), window, horizon_days)
            except FIT_ERRORS as exc:
                rec.reason = f"predictions unusable on the validation window: {describe(exc)}"
                continue
            rec.status, rec.reason, rec.notes = "fitted", "fitted on the validation window", fit_notes(model)
        scores = {n: r.metrics[metric] for n, r in records.items() if r.status == "fitted"}
        order = rank(scores, list(candidates), METRICS[metric], tolerance)
        if order:
            rule = (f"{metric} on the validation window ({'lower' if METRICS[metric] == 'min' else 'higher'} is "
                    f"better); values within {tolerance:.1%} count as tied and the simpler model wins "
                    "(fewer parameters, then registry order)")
            return Selection(order, records, {"source": "training_cutoff", "note": window_note,
                                              "customers": int(len(window))}, metric, rule)
        window_note += "; no candidate could be fitted there"
    n = len(eval_rfm)
    scores = {}
    for name, rec in records.items():
        model, reason = _try_fit(fit, name, eval_rfm)
        rec.metrics = {**rec.metrics, "in_sample_bic": bic(model, n) if model is not None else math.nan}
        if model is None:
            rec.status, rec.reason = "skipped", f"{rec.reason + '; ' if rec.reason else ''}not fitted at c_e: {reason}"
            continue
        rec.status, rec.notes = "fitted", fit_notes(model)
        rec.reason = f"{rec.reason + '; ' if rec.reason else ''}fitted at c_e (in-sample BIC, no labels)"
        scores[name] = rec.metrics["in_sample_bic"]
    order = rank(scores, list(candidates), "min", tolerance)
    if not order:
        why = "; ".join(f"{n}: {r.reason}" for n, r in records.items())
        raise ValueError(f"no CLV purchase model could be fitted ({why})")
    rule = (f"fallback ({window_note}): in-sample BIC of each fit on the evaluation-cutoff RFM, which reads no "
            "label; lower is better, ties within tolerance go to the simpler model")
    return Selection(order, records, {"source": "eval_cutoff_in_sample", "note": window_note, "customers": n},
                     "in_sample_bic", rule)


@dataclass
class Chosen:
    """The model used: its backtest fit at c_e, its production refit at as_of, and why earlier ranks failed."""

    name: str
    backtest: Any
    production: Any
    passed_over: dict[str, str]


def fit_chosen(ranking: Sequence[str], fit: Fitter, eval_rfm: pd.DataFrame, score_rfm: pd.DataFrame) -> Chosen:
    """The best-ranked model that fits both at c_e and at as_of; ValueError naming every failure otherwise."""
    passed_over: dict[str, str] = {}
    for name in ranking:
        backtest, reason = _try_fit(fit, name, eval_rfm)
        if backtest is None:
            passed_over[name] = f"not fitted at the evaluation cutoff: {reason}"
            continue
        production, reason = _try_fit(fit, name, score_rfm)
        if production is None:
            passed_over[name] = f"not fitted at as_of: {reason}"
            continue
        return Chosen(name, backtest, production, passed_over)
    why = "; ".join(f"{n}: {r}" for n, r in passed_over.items())
    raise ValueError(f"no CLV purchase model could be fitted ({why})")


def choose(setting: str, candidates: Sequence[str], fit: Fitter, predict: Callable[[Any, pd.DataFrame], pd.DataFrame],
           train: pd.DataFrame, eval_rfm: pd.DataFrame, score_rfm: pd.DataFrame, eval_cutoff: date,
           horizon_days: int, metric: str = "no_purchase_log_loss",
           tolerance: float = 1e-3) -> tuple[Chosen, dict[str, Any]]:
    """The model used (chosen on the window when setting is 'auto'), its c_e and as_of fits, the report section."""
    if setting != "auto":
        return fit_chosen([setting], fit, eval_rfm, score_rfm), {
            "setting": setting, "chosen": setting, "rule": f"configured (clv.model={setting}); no selection"}
    window, note = validation_window(train, eval_cutoff, horizon_days)
    labelled = None if window is None else window[[*eval_rfm.columns, "churned", "future_purchases"]]
    selection = select_model(candidates, fit, predict, labelled, note, eval_rfm, horizon_days, metric, tolerance)
    chosen = fit_chosen(selection.ranking, fit, eval_rfm, score_rfm)
    section = selection.to_dict()
    section["chosen"] = chosen.name
    for name, reason in chosen.passed_over.items():
        section["candidates"][name]["reason"] += f"; ranked above {chosen.name} but passed over: {reason}"
    return chosen, section
