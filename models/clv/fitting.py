"""Fit a purchase model and Gamma-Gamma on compressed rows; boundary optima are accepted and reported."""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence

import numpy as np

from models.clv.btyd import SPEND_MODEL, get
from models.clv.btyd.fit import Result, Spec, inverse_hessian, maximise, objective
from models.clv.inputs import unique_rows
from models.clv.report import Attempt, FitReport

log = logging.getLogger(__name__)

DEFAULT_PENALIZER_GRID = (0.001, 0.01, 0.1)  # tried in order only when the unpenalised fit fails
CORR_WARN = 0.3
WARM_START_ROWS = 50_000
WARM_START_CUSTOMERS = 100_000


class FitError(RuntimeError):
    """The data cannot be fitted: no attempt, penalised or not, gave a finite optimum."""


def _fit(spec: Spec, rowll, weights: np.ndarray, grid: Sequence[float], name: str, messages: list[str],
         start: Result | None = None, hess_inv: np.ndarray | None = None) -> tuple[Result, float, list[Attempt]]:
    """The unpenalised optimum, else the first penalizer of the grid that gives one (FitError when none)."""
    attempts = []
    for penalizer in (0.0, *grid):
        u0 = None if start is None else start.u
        result = maximise(spec, rowll, weights, float(penalizer), u0, hess_inv if penalizer == 0 else None)
        attempts.append(Attempt(float(penalizer), "all", result.ok, result.message,
                                result.loglik if result.ok else None))
        if result.ok:
            if penalizer:
                messages.append(f"unpenalised fit failed ({attempts[0].reason}); penalizer {penalizer:g} used")
            return result, float(penalizer), attempts
    tried = "; ".join(f"penalizer {a.penalizer:g}: {a.reason}" for a in attempts)
    raise FitError(f"{name} cannot be fitted on these data ({tried})")


def _warm_start(spec: Spec, model, columns: tuple[np.ndarray, ...], weights: np.ndarray,
                seed: int) -> tuple[Result | None, np.ndarray | None, int]:
    """Optimum and inverse Hessian on a random subset of customers (None when the data is small)."""
    n = int(weights.sum())
    if len(weights) <= WARM_START_ROWS or n <= WARM_START_CUSTOMERS:
        return None, None, 0
    sub = np.random.default_rng([seed, 1]).binomial(weights, WARM_START_CUSTOMERS / n)
    keep = sub > 0
    data = model.prepare(*(c[keep] for c in columns), fast=True)
    rowll = lambda p: model.loglik(p, data)  # noqa: E731
    found = maximise(spec, rowll, sub[keep].astype(float))
    if not found.ok:
        return None, None, 0
    interior = not (found.at_low or found.at_high)
    hess_inv = inverse_hessian(objective(spec, rowll, sub[keep].astype(float), 0.0), found.u) if interior else None
    return found, hess_inv, int(sub.sum())


def purchase_spec(name: str, age: np.ndarray) -> Spec:
    """Log-parameterisation of a purchase model: time-scale parameters in units of the longest T."""
    model = get(name)
    span = float(age.max()) if age.size and age.max() > 0 else 1.0
    scales = np.array([span if n in model.time_params else 1.0 for n in model.param_names])
    return Spec(model.param_names, scales, np.zeros(len(scales)))


def fit_purchase_model(name: str, x: np.ndarray, tx: np.ndarray, age: np.ndarray, grid: Sequence[float],
                       seed: int) -> FitReport:
    """Fit the purchase model on unique (x, t_x, T) rows weighted by their customer counts."""
    get(name).validate(x, tx, age)
    (ux, utx, uage), _, counts = unique_rows(x, tx, age)
    return fit_purchase_rows(name, ux, utx, uage, counts, grid, seed)


def fit_purchase_rows(name: str, ux: np.ndarray, utx: np.ndarray, uage: np.ndarray, counts: np.ndarray,
                      grid: Sequence[float], seed: int) -> FitReport:
    """Fit the purchase model on compressed rows: unique (x, t_x, T) and how many customers share each."""
    start_time, messages = time.perf_counter(), []
    model = get(name)
    model.validate(ux, utx, uage)
    spec = purchase_spec(name, uage)
    start, hess_inv, n_start = _warm_start(spec, model, (ux, utx, uage), counts, seed)
    data = model.prepare(ux, utx, uage)
    result, penalizer, attempts = _fit(spec, lambda p: model.loglik(p, data), counts.astype(float), grid, name,
                                       messages, start, hess_inv)
    boundary = model.boundary_notes(result.params, result.at_low, result.at_high)
    for note in boundary:
        log.warning("%s", note)
    return FitReport(name, result.params, result.loglik, penalizer, attempts, int(counts.sum()), len(ux),
                     time.perf_counter() - start_time, messages + boundary,
                     diagnostics={"warm_start_customers": n_start}, boundary=boundary)


def spend_spec(m: np.ndarray, counts: np.ndarray | None = None) -> Spec:
    """Log-parameterisation of Gamma-Gamma: gamma in units of the mean spend, q = 1 + exp(u)."""
    names = SPEND_MODEL.param_names
    mean = float(m.mean()) if counts is None else float(np.dot(m, counts) / counts.sum())
    scales = np.array([mean if n == "gamma" else 1.0 for n in names])
    return Spec(names, scales, np.array([SPEND_MODEL.floors.get(n, 0.0) for n in names]))


def weighted_corr(x: np.ndarray, m: np.ndarray, counts: np.ndarray) -> float:
    """Pearson correlation of x and m over the customers behind compressed rows (NaN when either is constant)."""
    w = counts / counts.sum()
    dx, dm = x - np.dot(w, x), m - np.dot(w, m)
    vx, vm = np.dot(w, dx * dx), np.dot(w, dm * dm)
    return float(np.dot(w, dx * dm) / np.sqrt(vx * vm)) if vx > 0 and vm > 0 else float("nan")


def fit_spend_model(x: np.ndarray, m: np.ndarray, grid: Sequence[float], seed: int) -> FitReport:
    """Fit Gamma-Gamma on repeat buyers with positive mean spend (others excluded and counted)."""
    repeat = x > 0
    used = repeat & (m > 0)
    (ux, um), _, counts = unique_rows(x[used], m[used])
    return fit_spend_rows(ux, um, counts, int((repeat & ~used).sum()), grid, seed)


def fit_spend_rows(ux: np.ndarray, um: np.ndarray, counts: np.ndarray, n_excluded: int, grid: Sequence[float],
                   seed: int) -> FitReport:
    """Fit Gamma-Gamma on compressed rows: unique (x, m) of repeat buyers with m > 0 and their customer counts."""
    start, messages = time.perf_counter(), []
    if n_excluded:
        messages.append(f"{n_excluded} repeat buyer(s) with monetary_value <= 0 excluded from the spend fit")
    corr = weighted_corr(ux, um, counts) if len(ux) else float("nan")
    if np.isfinite(corr) and abs(corr) > CORR_WARN:
        text = (f"frequency and monetary_value are correlated among repeat buyers (r = {corr:.3f}); "
                "Gamma-Gamma assumes independence")
        log.warning(text)
        messages.append(text)
    data = SPEND_MODEL.prepare(ux, um)
    result, penalizer, attempts = _fit(spend_spec(um, counts), lambda p: SPEND_MODEL.loglik(p, data),
                                       counts.astype(float), grid, "gamma_gamma", messages)
    boundary = SPEND_MODEL.boundary_notes(result.params, result.at_low, result.at_high)
    return FitReport("gamma_gamma", result.params, result.loglik, penalizer, attempts, int(counts.sum()), len(ux),
                     time.perf_counter() - start, messages + boundary, n_excluded,
                     {"frequency_spend_corr": corr if np.isfinite(corr) else None}, boundary)
