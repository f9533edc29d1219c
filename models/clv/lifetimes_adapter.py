"""The only module that touches lifetimes: fit on weighted rows, log-likelihoods in our time unit.

lifetimes (0.11.3, archived) rescales time so that max(T) == 1 before optimising and reports
`_negative_log_likelihood_` on that scale (a per-customer mean for BG/NBD, MBG/NBD and Gamma-Gamma,
a sum divided by mean(weights) for Pareto/NBD); we recompute log-likelihoods ourselves, as sums over
customers in the caller's time unit, from lifetimes' own per-row likelihood functions.

BG/NBD, MBG/NBD and Gamma-Gamma are optimised as lifetimes' `BaseFitter._fit` does (autograd value and
gradient of the fitter's `_negative_log_likelihood`, scipy BFGS, tol 1e-7, start 0.1 on the log scale), but
without the Hessian it then computes for standard errors (as costly as the fit itself on large data).
On large data the BFGS may start from a `Start`: the optimum and exact inverse Hessian of a subsample.
Pareto/NBD goes through `ParetoNBDFitter.fit` (Nelder-Mead, no Hessian).
"""

from __future__ import annotations

import contextlib
import io
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np
from autograd import hessian, value_and_grad
from scipy.optimize import minimize

from models.clv.inputs import PURCHASE_PARAMS

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from lifetimes import BetaGeoFitter, GammaGammaFitter, ModifiedBetaGeoFitter, ParetoNBDFitter
    from lifetimes.utils import ConvergenceError, _check_inputs

TIME_PARAMS = ("alpha", "beta")
_FITTERS = {"bgnbd": BetaGeoFitter, "mbgnbd": ModifiedBetaGeoFitter, "pareto_nbd": ParetoNBDFitter}
LIFETIMES_TOL = 1e-7
LIFETIMES_START = 0.1
PARETO_XATOL = 1e-9
PARETO_FATOL_PER_ROW = 1e-11
PARETO_MAXITER = 20_000

Nll = Callable[..., float]


@dataclass(frozen=True)
class Start:
    """Where to start an optimisation: parameters (caller's time unit) and, for BFGS, an inverse Hessian."""

    params: dict[str, float]
    hess_inv: np.ndarray | None = None


@contextlib.contextmanager
def quiet(messages: list[str]) -> Iterator[None]:
    """Silence lifetimes' prints and collect the warnings it raises into messages."""
    with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with np.errstate(all="ignore"):
            yield
    for w in caught:
        if not issubclass(w.category, (DeprecationWarning, FutureWarning)):
            text = f"{w.category.__name__}: {w.message}"
            if text not in messages:
                messages.append(text)


def _bfgs(nll: Nll, args: tuple, x0: np.ndarray, hess_inv: np.ndarray | None = None) -> np.ndarray:
    """Minimiser of a lifetimes negative log-likelihood over log-parameters, as lifetimes' BaseFitter._fit."""
    options = {"disp": False} if hess_inv is None else {"disp": False, "hess_inv0": hess_inv}
    out = minimize(value_and_grad(nll), jac=True, method=None, tol=LIFETIMES_TOL, x0=x0, args=args,
                   options=options)
    if not out.success:
        raise ConvergenceError(f"BFGS did not converge: {out.message}")
    return out.x


def _inverse_hessian(nll: Nll, args: tuple, at: np.ndarray) -> np.ndarray | None:
    """Inverse of the exact Hessian of nll at a point, when it is positive definite."""
    h = np.asarray(hessian(nll)(at, *args))
    h = (h + h.T) / 2
    if not np.isfinite(h).all() or np.linalg.eigvalsh(h).min() <= 0:
        return None
    inv = np.linalg.inv(h)
    return (inv + inv.T) / 2


def _to_internal(model: str, params: dict[str, float], scale: float) -> np.ndarray:
    """Parameters in lifetimes' optimisation space: time rescaled by scale, log for the BFGS fitters."""
    values = np.array([params[n] * (scale if n in TIME_PARAMS else 1.0) for n in PURCHASE_PARAMS[model]])
    return values if model == "pareto_nbd" else np.log(values)


def _fit_pareto(x: np.ndarray, tx: np.ndarray, age: np.ndarray, weights: np.ndarray, penalizer: float,
                seed: int, start: Start | None) -> Start:
    """ParetoNBDFitter.fit with a seeded start and a stop rule that does not depend on the row count."""
    scale = 1.0 / float(age.max())  # lifetimes' _scale_time
    # lifetimes draws the start from the global numpy RNG; its objective is -sum(w * ll) / mean(w), so an
    # absolute fatol must grow with the number of rows to mean the same per customer
    x0 = (np.random.default_rng(seed).normal(1.0, 0.05, 4) if start is None
          else _to_internal("pareto_nbd", start.params, scale))
    fitter = ParetoNBDFitter(penalizer_coef=penalizer).fit(
        x, tx, age, weights=weights, initial_params=x0, maxiter=PARETO_MAXITER,
        xatol=PARETO_XATOL, fatol=PARETO_FATOL_PER_ROW * len(x))
    return Start({n: float(fitter.params_[n]) for n in PURCHASE_PARAMS["pareto_nbd"]})


def _fit_beta_geo(model: str, x: np.ndarray, tx: np.ndarray, age: np.ndarray, weights: np.ndarray,
                  penalizer: float, start: Start | None, curvature: bool) -> Start:
    """BG/NBD or MBG/NBD by BFGS on lifetimes' likelihood; with the inverse Hessian when curvature."""
    scale = 1.0 / float(age.max())  # lifetimes' _scale_time
    freq = np.asarray(x).astype(int)
    _check_inputs(freq, tx, age)
    x0 = np.full(4, LIFETIMES_START) if start is None else _to_internal(model, start.params, scale)
    args = (freq, tx * scale, age * scale, weights, penalizer)
    nll = _FITTERS[model]._negative_log_likelihood
    found = _bfgs(nll, args, x0, None if start is None else start.hess_inv)
    values = np.exp(found)
    params = {n: float(v / scale if n in TIME_PARAMS else v)
              for n, v in zip(PURCHASE_PARAMS[model], values, strict=True)}
    return Start(params, _inverse_hessian(nll, args, found) if curvature else None)


def fit_purchases(model: str, x: np.ndarray, tx: np.ndarray, age: np.ndarray, weights: np.ndarray,
                  penalizer: float, seed: int, messages: list[str],
                  start: Start | None = None) -> dict[str, float]:
    """Fitted purchase-model parameters (caller's time unit) for weighted (x, t_x, T) rows."""
    with quiet(messages):
        if model == "pareto_nbd":
            return _fit_pareto(x, tx, age, weights, penalizer, seed, start).params
        return _fit_beta_geo(model, x, tx, age, weights, penalizer, start, curvature=False).params


def warm_start(model: str, x: np.ndarray, tx: np.ndarray, age: np.ndarray, weights: np.ndarray, seed: int,
               messages: list[str]) -> Start:
    """Unpenalised fit on a sample of rows, with its curvature, to start the full fit near the optimum."""
    with quiet(messages):
        if model == "pareto_nbd":
            return _fit_pareto(x, tx, age, weights, 0.0, seed, None)
        return _fit_beta_geo(model, x, tx, age, weights, 0.0, None, curvature=True)


def purchase_loglik(model: str, params: dict[str, float], x: np.ndarray, tx: np.ndarray, age: np.ndarray,
                    weights: np.ndarray) -> float:
    """Sum over customers of the purchase-model log-likelihood, time in the caller's unit."""
    values = np.array([params[n] for n in PURCHASE_PARAMS[model]])
    with np.errstate(all="ignore"):
        if model == "pareto_nbd":
            return float((weights * ParetoNBDFitter._conditional_log_likelihood(values, x, tx, age)).sum())
        nll = _FITTERS[model]._negative_log_likelihood(np.log(values), x, tx, age, weights, 0.0)
    return float(-nll * weights.sum())


def fit_spend(x: np.ndarray, m: np.ndarray, weights: np.ndarray, penalizer: float,
              messages: list[str]) -> dict[str, float]:
    """Fitted Gamma-Gamma parameters for weighted (x, m) rows of repeat buyers with m > 0."""
    with quiet(messages):
        _check_inputs(x, monetary_value=m)
        args = (x.astype(float), m.astype(float), weights, penalizer)
        found = np.exp(_bfgs(GammaGammaFitter._negative_log_likelihood, args, np.full(3, LIFETIMES_START)))
    return {"p": float(found[0]), "q": float(found[1]), "gamma": float(found[2])}


def spend_loglik(params: dict[str, float], x: np.ndarray, m: np.ndarray, weights: np.ndarray) -> float:
    """Sum over customers of the Gamma-Gamma log-likelihood of their mean spend."""
    values = np.log([params["p"], params["q"], params["gamma"]])
    with np.errstate(all="ignore"):
        nll = GammaGammaFitter._negative_log_likelihood(values, x, m, weights, 0.0)
    return float(-nll * weights.sum())
