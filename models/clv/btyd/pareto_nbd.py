"""Pareto/NBD (Schmittlein, Morrison & Colombo 1987; Fader & Hardie, note 009 "Deriving the conditional PMF").

Story: while alive a customer buys as a Poisson process with rate lambda ~ Gamma(r, alpha); its lifetime is
exponential with rate mu ~ Gamma(s, beta), independent of lambda. With x repeat purchases, the last at t_x,
over (0, T], integrating the unobserved dropout time y over (t_x, T] (note 009, eq. 19 in integral form):

  L = Gamma(r+x) alpha^r beta^s / Gamma(r) * [ (alpha+T)^-(r+x) (beta+T)^-s + s * (F(t_x) - F(T)) ]
  F(t) = int_t^inf (alpha+y)^-(r+x) (beta+y)^-(s+1) dy
       = (m+t)^-(r+s+x) int_0^1 u^(r+s+x-1) (1 - z_a u)^-(r+x) (1 - z_b u)^-(s+1) du,
         m = max(alpha, beta), z_a = (m-alpha)/(m+t), z_b = (m-beta)/(m+t)  (one of them is 0)

The closed form is F(t) = 2F1(r+s+x, .; r+s+x+1; |alpha-beta|/(m+t)) / ((r+s+x) (m+t)^(r+s+x)); in that
form A_0 overflows for long histories (lifetimes issue #25). Here everything stays in log space: log F by
tanh-sinh quadrature of the u-integral after u = v^(1/(r+s+x)) (the integrand becomes bounded and smooth),
log(F(t_x) - F(T)) = log F(t_x) + log(-expm1(log F(T) - log F(t_x))), and a log-sum-exp with the alive term.
The fit evaluates F once per unique (x, t) pair, t in {t_x, T}.

  P(alive | x, t_x, T) = alive term / (alive term + s (F(t_x) - F(T)))                      (note 009, eq. 36)
Given alive at T: lambda ~ Gamma(r+x, alpha+T), mu ~ Gamma(s, beta+T), independently, so
  E[Y(t) | alive] = (r+x)(beta+T) / ((alpha+T)(s-1)) * [1 - ((beta+T)/(beta+T+t))^(s-1)]        (note 009, eq. 41)
  P(Y(t) = 0 | alive) = P(dropout before the next purchase within t) + P(neither by t).
Boundaries: s -> 0 or beta -> infinity (no dropout evidence: the model reduces to the NBD);
r, alpha -> infinity (one purchase rate for everyone).
"""

from __future__ import annotations

from typing import Any, ClassVar

import autograd.numpy as anp
import numpy as np
import pandas as pd
from autograd.scipy.special import gammaln
from scipy.special import expit, hyp2f1

from models.clv.btyd.base import LOG_ZERO, Params, PurchaseModel, alive_and_rate, one_rate_note, register

TANH_SINH_HALF_WIDTH = 3.2  # nodes at k h for |k h| <= 3.2: the weights beyond are below 1e-30
FINE_STEP = 1.0 / 12.0  # 77 nodes: log F to ~1e-9 (worst case seen, alpha/beta ratio 1e4 at t = 0)
COARSE_STEP = 1.0 / 6.0  # 37 nodes, ~1e-4 in the worst case: only for warm starts (fast=True)


def _tanh_sinh_nodes(step: float) -> tuple[np.ndarray, np.ndarray]:
    """log v and log weight of tanh-sinh quadrature nodes on (0, 1)."""
    t = np.arange(-TANH_SINH_HALF_WIDTH, TANH_SINH_HALF_WIDTH + 1e-12, step)
    u = np.pi / 2 * np.sinh(t)
    log_v = -np.logaddexp(0.0, -2.0 * u)  # v = (1 + tanh u) / 2 = 1 / (1 + exp(-2u))
    log_1mv = -np.logaddexp(0.0, 2.0 * u)
    log_w = np.log(step * np.pi / 2 * np.cosh(t)) + log_v + log_1mv + np.log(2.0)  # dv = 2 v (1-v) du
    return log_v, log_w


NODES = {False: _tanh_sinh_nodes(FINE_STEP), True: _tanh_sinh_nodes(COARSE_STEP)}


def _raw(v: Any) -> Any:
    """The value inside (nested) autograd boxes, or the value itself."""
    while hasattr(v, "_value"):
        v = v._value
    return v


def _value(v: Any) -> float:
    """The float inside (nested) autograd boxes, or the float itself."""
    return float(_raw(v))


def _log_sum_exp_rows(z: Any) -> Any:
    """log sum_j exp(z_ij) per row, shifted by the row maximum (held constant: the gradient is unchanged)."""
    top = np.max(_raw(z), axis=1, keepdims=True)
    return anp.log(anp.sum(anp.exp(z - top), axis=1)) + top[:, 0]


def log_f(r: Any, alpha: Any, s: Any, beta: Any, x: np.ndarray, t: np.ndarray, fast: bool = False) -> Any:
    """log F(t) of the module docstring for 1-d rows (autograd-traceable in the parameters)."""
    log_v, log_w = NODES[fast]
    # only the smaller of alpha, beta has z > 0: the other factor of the integrand is 1
    alpha_is_max = _value(alpha) >= _value(beta)
    m, rate, power = (alpha, beta, s + 1.0) if alpha_is_max else (beta, alpha, (r + x)[:, None])
    a = r + s + x
    mt = m + t
    one_minus_u = -anp.expm1(log_v[None, :] / a[:, None])  # 1 - u, u = v^(1/a)
    z = (m - rate) / mt
    # 1 - z u = (rate + t)/(m + t) + z (1 - u): both parts exact, so no cancellation near z -> 1
    inner = anp.log(((rate + t) / mt)[:, None] + z[:, None] * one_minus_u)
    return -a * anp.log(mt) - anp.log(a) + _log_sum_exp_rows(log_w[None, :] - power * inner)


def log_parts(p: Params, data: dict[str, Any]) -> tuple[Any, Any]:
    """(head + log alive term, head + log s (F(t_x) - F(T))) per row of prepared data."""
    r, alpha, s, beta = p["r"], p["alpha"], p["s"], p["beta"]
    f = log_f(r, alpha, s, beta, data["pair_x"], data["pair_t"], data["fast"])
    f_tx, f_age = f[data["i_tx"]], f[data["i_age"]]
    head = (gammaln(r + data["x_unique"]) - gammaln(r))[data["x_index"]] + r * anp.log(alpha) + s * anp.log(beta)
    ages = data["age_unique"]
    alive = -(r + data["x"]) * anp.log(alpha + ages)[data["age_index"]] - s * anp.log(beta + ages)[data["age_index"]]
    before = data["tx"] < data["age"]
    # log(F(t_x) - F(T)) is log 0 when t_x = T: a harmless stand-in there keeps every derivative finite
    gap = anp.minimum(anp.where(before, f_age - f_tx, -1.0), -1e-300)
    dead = anp.log(s) + f_tx + anp.log(-anp.expm1(gap))
    return head + alive, head + anp.where(before, dead, LOG_ZERO)


def _share_dying_first(r: np.ndarray, a1: np.ndarray, s: float, b1: np.ndarray) -> np.ndarray:
    """P(dropout before next purchase) = E[mu / (lambda + mu)], lambda ~ Gamma(r, a1), mu ~ Gamma(s, b1)."""
    base = s / (r + s)
    over = base * hyp2f1(1.0, r, r + s + 1, 1.0 - b1 / np.maximum(a1, b1))
    under = a1 / b1 * base * hyp2f1(1.0, s + 1, r + s + 1, 1.0 - a1 / np.maximum(a1, b1))
    return np.where(a1 >= b1, over, under)


@register
class ParetoNBD(PurchaseModel):
    """Pareto/NBD: Poisson purchases and an exponential lifetime, both rates Gamma (see the module docstring)."""

    name: ClassVar[str] = "pareto_nbd"
    title: ClassVar[str] = "Pareto/NBD"
    param_names: ClassVar[tuple[str, ...]] = ("r", "alpha", "s", "beta")
    time_params: ClassVar[tuple[str, ...]] = ("alpha", "beta")

    def prepare(self, x: np.ndarray, tx: np.ndarray, age: np.ndarray, fast: bool = False) -> dict[str, Any]:
        """Rows plus the unique (x, t) pairs over t in {t_x, T}, where F is evaluated once each."""
        x_codes, x_unique = pd.factorize(x, sort=False)
        age_codes, age_unique = pd.factorize(age, sort=False)
        t_codes, t_unique = pd.factorize(np.concatenate([tx, age]), sort=False)
        key = np.concatenate([x_codes, x_codes]).astype(np.int64) * len(t_unique) + t_codes
        codes, keys = pd.factorize(key, sort=False)
        x_unique, t_unique = np.asarray(x_unique, dtype=float), np.asarray(t_unique, dtype=float)
        return {"x": x, "tx": tx, "age": age, "pair_x": x_unique[keys // len(t_unique)],
                "pair_t": t_unique[keys % len(t_unique)], "i_tx": codes[: x.size], "i_age": codes[x.size:],
                "fast": fast,
                "x_unique": x_unique, "x_index": x_codes,
                "age_unique": np.asarray(age_unique, dtype=float), "age_index": age_codes}

    def loglik(self, p: Params, data: dict[str, Any]) -> Any:
        """Per-row log-likelihood: head + log-sum-exp(alive term, s (F(t_x) - F(T)))."""
        if "pair_x" not in data:
            data = self.prepare(data["x"], data["tx"], data["age"])
        return anp.logaddexp(*log_parts(p, data))

    def p_alive(self, p: Params, x: np.ndarray, tx: np.ndarray, age: np.ndarray) -> np.ndarray:
        """P(alive at T | x, t_x, T) = alive term / total, in log space (any array shape)."""
        x, tx, age = np.broadcast_arrays(*(np.asarray(v, dtype=float) for v in (x, tx, age)))
        alive, dead = log_parts(p, self.prepare(x.ravel(), tx.ravel(), age.ravel()))
        return expit(alive - dead).reshape(x.shape)

    def alive_expected(self, p: Params, x: np.ndarray, age: np.ndarray, t: Any) -> np.ndarray:
        """E[purchases in (T, T+t] | alive at T] (note 009, eq. 41 without P(alive))."""
        r, alpha, s, beta = p["r"], p["alpha"], p["s"], p["beta"]
        horizon = np.log1p(t / (beta + age))
        k = s - 1.0
        tail = horizon if abs(k) < 1e-12 else -np.expm1(-k * horizon) / k
        return (r + x) * (beta + age) / (alpha + age) * tail

    def alive_log_p_zero(self, p: Params, x: np.ndarray, age: np.ndarray, t: float) -> np.ndarray:
        """log P(no purchase in (T, T+t] | alive at T): the purchase clock stops at dropout."""
        r, alpha, s, beta = p["r"] + x, p["alpha"] + age, p["s"], p["beta"] + age
        both_survive = np.exp(-r * np.log1p(t / alpha) - s * np.log1p(t / beta))
        later = 1.0 - _share_dying_first(r, alpha + t, s, beta + t)
        p0 = _share_dying_first(r, alpha, s, beta) + both_survive * later
        with np.errstate(divide="ignore"):
            return np.log(np.clip(p0, 0.0, 1.0))

    def simulate(self, rng: np.random.Generator, p: Params, age: np.ndarray,
                 horizon: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Lifetime tau ~ Exp(mu); purchases on (0, min(tau, T)], then on (T, min(tau, T + horizon)]."""
        from models.clv.btyd.bgnbd import repeats_and_last

        n = len(age)
        lam = rng.gamma(p["r"], 1.0 / p["alpha"], n)
        tau = rng.exponential(1.0 / np.maximum(rng.gamma(p["s"], 1.0 / p["beta"], n), 1e-300))
        x, tx = repeats_and_last(rng, lam, np.minimum(tau, age), np.full(n, np.iinfo(np.int64).max))
        future = rng.poisson(lam * np.clip(tau - age, 0.0, horizon))
        return x, tx, future

    def simulate_future(self, rng: np.random.Generator, p: Params, x: np.ndarray, tx: np.ndarray,
                        age: np.ndarray, ends: np.ndarray) -> np.ndarray:
        """Alive ~ P(alive); lambda ~ Gamma(r+x, alpha+T), mu ~ Gamma(s, beta+T); remaining life ~ Exp(mu)."""
        alive, lam = alive_and_rate(self, rng, p, x, tx, age)
        mu = np.maximum(rng.gamma(p["s"], 1.0 / (p["beta"] + age)), 1e-300)
        tau = rng.exponential(1.0 / mu)
        widths = np.diff(ends, prepend=0.0)
        active = np.clip(tau[:, None] - (ends - widths)[None, :], 0.0, widths[None, :])
        return np.where(alive[:, None], rng.poisson(lam[:, None] * active), 0)

    def boundary_notes(self, p: Params, at_low: set[str], at_high: set[str]) -> list[str]:
        """No dropout evidence (s -> 0 or beta -> infinity), one purchase rate for all (r, alpha -> infinity)."""
        notes, low, high = [], set(at_low), set(at_high)
        if "s" in low or "beta" in high:
            notes.append("no dropout evidence: Pareto/NBD reduces to NBD (mean dropout rate s/beta -> 0)")
            low, high = low - {"s"}, high - {"beta"}
        rate, high = one_rate_note(p, high)
        return notes + rate + super().boundary_notes(p, low, high)
