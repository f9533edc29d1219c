"""Fit a BTYD sub-model with a reliable outcome: unpenalised first, else a penalizer chosen on held-out LL."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from models.clv import lifetimes_adapter as lt
from models.clv.inputs import split_weights, unique_rows
from models.clv.report import Attempt, FitReport

log = logging.getLogger(__name__)

DEFAULT_PENALIZER_GRID = (0.001, 0.01, 0.1)
PARAM_RANGE = (1e-6, 1e6)
HOLDOUT_FRAC = 0.3
CORR_WARN = 0.3
WARM_START_ROWS = 50_000
WARM_START_CUSTOMERS = 100_000

Columns = tuple[np.ndarray, ...]
FitFn = Callable[[Columns, np.ndarray, float, list[str]], dict[str, float]]
LoglikFn = Callable[[dict[str, float], Columns, np.ndarray], float]
CheckFn = Callable[[dict[str, float]], str | None]


class FitError(RuntimeError):
    """No attempt, penalised or not, produced usable parameters."""


@dataclass(frozen=True)
class Problem:
    """A weighted data set and how to fit, score and sanity-check parameters on it."""

    columns: Columns
    weights: np.ndarray
    fit: FitFn
    loglik: LoglikFn
    check: CheckFn


def _try(problem: Problem, weights: np.ndarray, penalizer: float, messages: list[str]) -> tuple[dict, str]:
    """Parameters from one fit on the rows with weight > 0, and '' or the reason they are unusable."""
    keep = weights > 0
    cols = tuple(c[keep] for c in problem.columns)
    try:
        params = problem.fit(cols, weights[keep], penalizer, messages)
    except Exception as exc:  # lifetimes raises ConvergenceError, LinAlgError, ValueError, ...
        return {}, f"{type(exc).__name__}: {str(exc).strip().splitlines()[0] if str(exc).strip() else ''}"
    if not all(np.isfinite(v) for v in params.values()):
        return params, "non-finite parameters"
    return params, problem.check(params) or ""


def _score(problem: Problem, params: dict, weights: np.ndarray) -> float:
    """Log-likelihood of the rows with weight > 0 (NaN when it cannot be computed)."""
    keep = weights > 0
    try:
        return problem.loglik(params, tuple(c[keep] for c in problem.columns), weights[keep])
    except (ValueError, FloatingPointError, ZeroDivisionError):
        return float("nan")


def _on_all(problem: Problem, penalizer: float, messages: list[str]) -> tuple[dict, float, Attempt]:
    """Fit on every row with a penalizer: parameters, log-likelihood and the attempt record."""
    params, reason = _try(problem, problem.weights, penalizer, messages)
    ll = _score(problem, params, problem.weights) if not reason else float("nan")
    if not reason and not np.isfinite(ll):
        reason = "non-finite log-likelihood"
    return params, ll, Attempt(penalizer, "all", not reason, reason or "converged", None if reason else ll)


def _on_split(problem: Problem, penalizer: float, train: np.ndarray, held: np.ndarray,
              messages: list[str]) -> Attempt:
    """Fit on the training customers with a penalizer and score the held-out ones."""
    params, reason = _try(problem, train, penalizer, messages)
    ll = _score(problem, params, held) if not reason else float("nan")
    if not reason and not np.isfinite(ll):
        reason = "non-finite held-out log-likelihood"
    return Attempt(penalizer, "train", not reason, reason or "converged", None if reason else ll)


def fit_with_fallback(problem: Problem, grid: Sequence[float], seed: int,
                      messages: list[str]) -> tuple[dict, float, float, list[Attempt]]:
    """(params, penalizer, log-likelihood, attempts): unpenalised if usable, else best of grid on held-out."""
    params, ll, first = _on_all(problem, 0.0, messages)
    if first.ok:
        return params, 0.0, ll, [first]
    log.warning("unpenalised fit unusable (%s); choosing a penalizer from %s", first.reason, list(grid))
    train, held = split_weights(problem.weights, HOLDOUT_FRAC, seed)
    attempts = [first, *(_on_split(problem, float(pen), train, held, messages) for pen in grid)]
    ranked = sorted((a for a in attempts if a.sample == "train" and a.ok), key=lambda a: -a.log_likelihood)
    for candidate in ranked:
        params, ll, final = _on_all(problem, candidate.penalizer, messages)
        attempts.append(final)
        if final.ok:
            messages.append(f"unpenalised fit unusable ({first.reason}); penalizer {final.penalizer:g} "
                            f"chosen by held-out log-likelihood ({HOLDOUT_FRAC:.0%} of customers held out)")
            return params, final.penalizer, ll, attempts
    tried = "; ".join(f"penalizer={a.penalizer:g} on {a.sample}: {a.reason}" for a in attempts)
    raise FitError(f"no usable fit; attempts: {tried}")


def _range_check(scaled: dict[str, float]) -> str | None:
    """Reason when a scale-free parameter sits at an absurd value, else None."""
    lo, hi = PARAM_RANGE
    bad = {k: v for k, v in scaled.items() if not lo <= v <= hi}
    return f"parameters at absurd values {bad} (scale-free range {lo:g}..{hi:g})" if bad else None


def _warm_start(model: str, columns: Columns, weights: np.ndarray, check: CheckFn, seed: int,
                messages: list[str]) -> tuple[lt.Start | None, int]:
    """Unpenalised fit on a random subset of customers (None when the data is small or it fails)."""
    n = int(weights.sum())
    if len(weights) <= WARM_START_ROWS or n <= WARM_START_CUSTOMERS:
        return None, 0
    sub = np.random.default_rng([seed, 1]).binomial(weights, WARM_START_CUSTOMERS / n)
    keep = sub > 0
    cols = tuple(c[keep] for c in columns)
    try:
        start = lt.warm_start(model, *cols, sub[keep], seed, messages)
    except Exception:  # a failed warm start only costs time: fall back to lifetimes' default start
        return None, 0
    usable = all(np.isfinite(v) for v in start.params.values()) and check(start.params) is None
    return (start, int(sub.sum())) if usable else (None, 0)


def fit_purchase_model(model: str, x: np.ndarray, tx: np.ndarray, age: np.ndarray, grid: Sequence[float],
                       seed: int) -> FitReport:
    """Fit the purchase model on unique (x, t_x, T) rows weighted by their customer counts."""
    start_time, messages = time.perf_counter(), []
    (ux, utx, uage), _, counts = unique_rows(x, tx, age)
    span = float(age.max()) or 1.0

    def check(params: dict[str, float]) -> str | None:
        """Absurd-value check on time-free parameters (rates in units of max(T), as lifetimes fits them)."""
        return _range_check({k: v / span if k in ("alpha", "beta") else v for k, v in params.items()})

    start, n_start = _warm_start(model, (ux, utx, uage), counts, check, seed, messages)
    problem = Problem(
        (ux, utx, uage), counts,
        fit=lambda c, w, pen, msg: lt.fit_purchases(model, *c, w, pen, seed, msg, start),
        loglik=lambda p, c, w: lt.purchase_loglik(model, p, *c, w), check=check)
    params, pen, ll, attempts = fit_with_fallback(problem, grid, seed, messages)
    return FitReport(model, params, ll, pen, attempts, len(x), len(ux), time.perf_counter() - start_time,
                     messages, diagnostics={"warm_start_customers": n_start})


def _spend_check(scale: float) -> CheckFn:
    """Gamma-Gamma sanity: scale-free values in range and q > 1 (else the population mean is undefined)."""
    def check(params: dict[str, float]) -> str | None:
        """Reason the Gamma-Gamma parameters are unusable, or None."""
        if params["q"] <= 1.0:
            return f"q = {params['q']:.4g} <= 1: population mean spend is undefined"
        return _range_check({**params, "gamma": params["gamma"] / scale})
    return check


def fit_spend_model(x: np.ndarray, m: np.ndarray, grid: Sequence[float], seed: int) -> FitReport:
    """Fit Gamma-Gamma on repeat buyers with positive mean spend (others excluded and counted)."""
    start, messages = time.perf_counter(), []
    repeat = x > 0
    used = repeat & (m > 0)
    n_excluded = int((repeat & ~used).sum())
    if n_excluded:
        messages.append(f"{n_excluded} repeat buyer(s) with monetary_value <= 0 excluded from the spend fit")
    xs, ms = x[used], m[used]
    corr = float(np.corrcoef(xs, ms)[0, 1]) if xs.std() > 0 and ms.std() > 0 else float("nan")
    if np.isfinite(corr) and abs(corr) > CORR_WARN:
        text = (f"frequency and monetary_value are correlated among repeat buyers (r = {corr:.3f}); "
                "Gamma-Gamma assumes independence")
        log.warning(text)
        messages.append(text)
    (ux, um), _, counts = unique_rows(xs, ms)
    problem = Problem((ux, um), counts, fit=lambda c, w, pen, msg: lt.fit_spend(*c, w, pen, msg),
                      loglik=lambda p, c, w: lt.spend_loglik(p, *c, w), check=_spend_check(float(ms.mean())))
    params, pen, ll, attempts = fit_with_fallback(problem, grid, seed, messages)
    return FitReport("gamma_gamma", params, ll, pen, attempts, len(xs), len(ux), time.perf_counter() - start,
                     messages, n_excluded,
                     {"frequency_spend_corr": corr if np.isfinite(corr) else None})
