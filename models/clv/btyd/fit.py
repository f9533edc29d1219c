"""Weighted maximum likelihood over log-parameters: bounded L-BFGS-B that finds and names boundary optima.

Each parameter is floor + scale * exp(u) (scale: the longest T for time-scale parameters, else 1; floor:
0, or 1 for Gamma-Gamma's q). u is bounded to [log 1e-10, log 1e10]: an optimum that runs off to 0 or
infinity stops near the bound and is reported (`at_low` / `at_high`), not rejected. The objective is the
mean negative log-likelihood per customer (plus penalizer * sum exp(u)^2 when asked), with exact gradients
from autograd. A warm start (optimum and inverse Hessian of a subsample) lets BFGS finish in a few steps.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import autograd.numpy as anp
import numpy as np
from autograd import hessian, value_and_grad
from scipy.optimize import minimize

LOG_BOUND = np.log(1e10)
NEAR_BOUND = np.log(1e4)  # |u| beyond this (10,000 times the scale, or 1/10,000) is a boundary optimum
GTOL = 1e-9  # projected gradient of the mean log-likelihood per customer
USABLE_GTOL = 1e-5  # a stop with "precision loss" is accepted when the gradient is this small
MAXITER = 5000

RowLoglik = Callable[[dict[str, Any]], Any]


@dataclass(frozen=True)
class Spec:
    """Parameter names and their parameterisation floor + scale * exp(u)."""

    names: tuple[str, ...]
    scales: np.ndarray
    floors: np.ndarray

    def values(self, u: Any) -> Any:
        """Parameter values at log-parameters u (autograd-traceable)."""
        return self.floors + self.scales * anp.exp(u)

    def params(self, u: np.ndarray) -> dict[str, float]:
        """Parameter dict at u."""
        return {n: float(v) for n, v in zip(self.names, self.values(np.asarray(u)), strict=True)}

    def to_u(self, params: dict[str, float]) -> np.ndarray:
        """Log-parameters of a parameter dict (inside the bounds)."""
        raw = (np.array([params[n] for n in self.names]) - self.floors) / self.scales
        return np.clip(np.log(np.maximum(raw, 1e-300)), -LOG_BOUND, LOG_BOUND)


@dataclass(frozen=True)
class Result:
    """An optimum: parameters, total weighted log-likelihood, where it sits and how the optimiser stopped."""

    params: dict[str, float]
    loglik: float
    u: np.ndarray
    at_low: set[str] = field(default_factory=set)
    at_high: set[str] = field(default_factory=set)
    ok: bool = True
    message: str = ""


def objective(spec: Spec, rowll: RowLoglik, weights: np.ndarray, penalizer: float) -> Callable[[Any], Any]:
    """Mean negative log-likelihood per customer (plus the penalty) as a function of u."""
    total = float(weights.sum())

    def f(u: Any) -> Any:
        """The objective at u."""
        values = spec.values(u)
        ll = rowll({n: values[i] for i, n in enumerate(spec.names)})
        return -anp.sum(weights * ll) / total + penalizer * anp.sum(anp.exp(u) ** 2)
    return f


def _safe(f: Callable[[Any], Any]) -> Callable[[np.ndarray], tuple[float, np.ndarray]]:
    """Value and gradient as floats, with a huge value (zero gradient) where either is not finite."""
    vg = value_and_grad(f)

    def g(u: np.ndarray) -> tuple[float, np.ndarray]:
        """(value, gradient) at u."""
        with np.errstate(all="ignore"):
            value, grad = vg(u)
        grad = np.asarray(grad, dtype=float)
        if not (np.isfinite(value) and np.isfinite(grad).all()):
            return 1e100, np.zeros_like(u)
        return float(value), grad
    return g


def inverse_hessian(f: Callable[[Any], Any], u: np.ndarray) -> np.ndarray | None:
    """Inverse of the exact Hessian of f at u when it is positive definite, else None."""
    with np.errstate(all="ignore"):
        h = np.asarray(hessian(f)(u), dtype=float)
    h = (h + h.T) / 2
    if not np.isfinite(h).all() or np.linalg.eigvalsh(h).min() <= 0:
        return None
    inv = np.linalg.inv(h)
    return (inv + inv.T) / 2


def _projected_gradient(grad: np.ndarray, u: np.ndarray, edge: float = LOG_BOUND - 1e-9) -> float:
    """Largest gradient component that could still move u inside the bounds; components beyond +-edge that push
    further out count as at the bound."""
    free = ~(((u <= -edge) & (grad > 0)) | ((u >= edge) & (grad < 0)))
    return float(np.abs(grad[free]).max()) if free.any() else 0.0


def maximise(spec: Spec, rowll: RowLoglik, weights: np.ndarray, penalizer: float = 0.0,
             start: np.ndarray | None = None, hess_inv: np.ndarray | None = None) -> Result:
    """Maximise the weighted log-likelihood: BFGS from a warm start when given, else (or then) L-BFGS-B."""
    f = objective(spec, rowll, weights, penalizer)
    fg = _safe(f)
    u0 = np.zeros(len(spec.names)) if start is None else np.clip(np.asarray(start, float), -LOG_BOUND, LOG_BOUND)
    out = None
    if hess_inv is not None:
        out = minimize(fg, u0, jac=True, method="BFGS", options={"gtol": GTOL, "hess_inv0": hess_inv,
                                                                  "maxiter": MAXITER})
        if not np.all(np.abs(out.x) <= LOG_BOUND) or out.fun >= 1e100 or np.abs(out.jac).max() > USABLE_GTOL:
            u0, out = (out.x if np.all(np.abs(out.x) <= LOG_BOUND) and out.fun < 1e100 else u0), None
    if out is None:
        out = minimize(fg, u0, jac=True, method="L-BFGS-B", bounds=[(-LOG_BOUND, LOG_BOUND)] * len(u0),
                       options={"ftol": 0.0, "gtol": GTOL, "maxiter": MAXITER, "maxcor": 20})
    pg = _projected_gradient(np.asarray(out.jac, dtype=float), out.x)
    # the objective is -sum(w ll) / sum(w) + penalty: the total log-likelihood follows without another pass
    ll = -(float(out.fun) - penalizer * float(np.sum(np.exp(out.x) ** 2))) * float(weights.sum())
    # a stop for lost precision is usable when the parameters still moving are those running off to 0 or infinity
    # (beyond NEAR_BOUND, where the likelihood is flat to rounding: how far they got depends on the CPU's libm)
    usable = _projected_gradient(np.asarray(out.jac, dtype=float), out.x, NEAR_BOUND) <= USABLE_GTOL
    ok = bool(out.fun < 1e100 and np.isfinite(ll) and (out.success or usable))
    message = "converged" if ok else ("non-finite log-likelihood" if out.fun >= 1e100 or not np.isfinite(ll)
                                      else f"optimiser stopped: {out.message} (gradient {pg:.2g})")
    low = {n for n, v in zip(spec.names, out.x, strict=True) if v <= -NEAR_BOUND}
    high = {n for n, v in zip(spec.names, out.x, strict=True) if v >= NEAR_BOUND}
    return Result(spec.params(out.x), ll, out.x, low, high, ok, message)
