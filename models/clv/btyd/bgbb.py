"""BG/BB for discrete transaction opportunities (Fader, Hardie & Shang 2010, "Customer-base analysis in a
discrete-time noncontractual setting", Marketing Science 29(6)).

Data, in whole periods (time_unit_days each): n = T opportunities after the first purchase, x = repeat
periods with a purchase, t_x = the last of them (0 when x = 0). Story: while alive a customer buys at each
opportunity with probability p ~ Beta(alpha, beta); before each opportunity it drops out with probability
theta ~ Beta(gamma, delta) (so it is alive at opportunity k with probability (1 - theta)^k):

  L = B(alpha+x, beta+n-x)/B(alpha, beta) * B(gamma, delta+n)/B(gamma, delta)
      + sum_{i=0}^{n-t_x-1} B(alpha+x, beta+t_x-x+i)/B(alpha, beta) * B(gamma+1, delta+t_x+i)/B(gamma, delta)  (eq. 5)
  P(alive at n+1 | x, t_x, n) = B(alpha+x, beta+n-x)/B(alpha, beta) * B(gamma, delta+n+1)/B(gamma, delta) / L  (eq. 11)
Given alive at n+1: p ~ Beta(alpha+x, beta+n-x), theta ~ Beta(gamma, delta+n+1), so over the next K = floor(t)
opportunities E[Y | alive] = (alpha+x)/(alpha+beta+n) * sum_{k<K} B(gamma, d+k)/B(gamma, d), d = delta+n+1
(eq. 13 divided by P(alive)), and P(Y = 0 | alive) = sum_j P(j opportunities alive) E[(1-p)^j].
Boundaries: gamma -> 0 or delta -> infinity (no dropout evidence: BG/BB reduces to the beta-binomial);
alpha, beta -> infinity (one purchase probability for everyone).
"""

from __future__ import annotations

from typing import Any, ClassVar

import autograd.numpy as anp
import numpy as np
from autograd.scipy.special import gammaln, logsumexp
from scipy.special import digamma
from scipy.special import gammaln as sp_gammaln

from models.clv.btyd.base import LOG_ZERO, Params, PurchaseModel, register

WHOLE = 1e-9  # tolerance when reading a horizon in periods as whole opportunities


def _lbeta(a: Any, b: Any) -> Any:
    """log B(a, b), autograd-traceable."""
    return gammaln(a) + gammaln(b) - gammaln(a + b)


def _periods(t: Any) -> Any:
    """Whole opportunities in a horizon of t periods."""
    return np.floor(np.asarray(t, dtype=float) + WHOLE)


@register
class BGBB(PurchaseModel):
    """BG/BB: Bernoulli purchases per opportunity, geometric dropout, both probabilities Beta (module docstring)."""

    name: ClassVar[str] = "bgbb"
    title: ClassVar[str] = "BG/BB"
    param_names: ClassVar[tuple[str, ...]] = ("alpha", "beta", "gamma", "delta")
    discrete: ClassVar[bool] = True

    def validate(self, x: np.ndarray, tx: np.ndarray, age: np.ndarray) -> None:
        """Whole periods with x <= t_x <= n (one purchase per period at most)."""
        for name, values in (("frequency", x), ("recency", tx), ("T", age)):
            if (values != np.round(values)).any():
                raise ValueError(f"bgbb needs whole periods: rfm column {name!r} has "
                                 f"{int((values != np.round(values)).sum())} non-integer value(s)")
        if (x > tx).any():
            raise ValueError(f"bgbb: frequency exceeds recency for {int((x > tx).sum())} customer(s) "
                             "(at most one purchase per period)")

    def loglik(self, p: Params, data: dict[str, Any]) -> Any:
        """Per-row log-likelihood: log-sum-exp of the alive term and the n - t_x dropout terms (eq. 5)."""
        alpha, beta, gamma, delta = p["alpha"], p["beta"], p["gamma"], p["delta"]
        x, tx, n = data["x"], data["tx"], data["age"]
        base = _lbeta(alpha, beta) + _lbeta(gamma, delta)
        alive = _lbeta(alpha + x, beta + n - x) + _lbeta(gamma, delta + n) - base
        k = int((n - tx).max()) if n.size else 0
        if k == 0:
            return alive
        i = np.arange(k)[None, :]
        terms = (_lbeta(alpha + x[:, None], beta + (tx - x)[:, None] + i)
                 + _lbeta(gamma + 1.0, delta + tx[:, None] + i) - base)
        terms = anp.where(i < (n - tx)[:, None], terms, LOG_ZERO)
        return logsumexp(anp.concatenate([alive[:, None], terms], axis=1), axis=1)

    def p_alive(self, p: Params, x: np.ndarray, tx: np.ndarray, age: np.ndarray) -> np.ndarray:
        """P(alive at opportunity n+1 | x, t_x, n) (eq. 11)."""
        alpha, beta, gamma, delta = p["alpha"], p["beta"], p["gamma"], p["delta"]
        ll = self.loglik(p, {"x": x, "tx": tx, "age": age})
        alive = (sp_gammaln(alpha + x) + sp_gammaln(beta + age - x) - sp_gammaln(alpha + beta + age)
                 - (sp_gammaln(alpha) + sp_gammaln(beta) - sp_gammaln(alpha + beta))
                 + sp_gammaln(delta + age + 1) - sp_gammaln(gamma + delta + age + 1)
                 - sp_gammaln(delta) + sp_gammaln(gamma + delta))
        return np.exp(np.minimum(alive - ll, 0.0))

    def alive_expected(self, p: Params, x: np.ndarray, age: np.ndarray, t: Any) -> np.ndarray:
        """E[purchases in the next floor(t) opportunities | alive at n+1]."""
        alpha, beta, gamma, delta = p["alpha"], p["beta"], p["gamma"], p["delta"]
        k = _periods(t)
        d = delta + age + 1.0
        rate = (alpha + x) / (alpha + beta + age)
        if abs(gamma - 1.0) < 1e-9:
            alive_periods = d * (digamma(d + k) - digamma(d))
        else:
            ratio = np.exp(sp_gammaln(d + k) - sp_gammaln(gamma + d + k - 1) - sp_gammaln(d)
                           + sp_gammaln(gamma + d - 1))
            alive_periods = (gamma + d - 1) / (gamma - 1) * (1.0 - ratio)
        return rate * alive_periods

    def alive_log_p_zero(self, p: Params, x: np.ndarray, age: np.ndarray, t: float) -> np.ndarray:
        """log P(no purchase in the next floor(t) opportunities | alive at n+1)."""
        alpha, beta, gamma, delta = p["alpha"], p["beta"], p["gamma"], p["delta"]
        k = int(_periods(t))
        if k == 0:
            return np.zeros(np.broadcast(x, age).shape)
        j = np.arange(1, k + 1)[None, :]
        x, age = np.asarray(x, dtype=float)[:, None], np.asarray(age, dtype=float)[:, None]
        d = delta + age + 1.0
        log_beta = sp_gammaln(gamma) + sp_gammaln(d) - sp_gammaln(gamma + d)
        # P(exactly j opportunities alive): dropout before opportunity j+1, or alive through all k
        log_dies = sp_gammaln(gamma + 1) + sp_gammaln(d + j - 1) - sp_gammaln(gamma + d + j) - log_beta
        log_lasts = sp_gammaln(gamma) + sp_gammaln(d + k - 1) - sp_gammaln(gamma + d + k - 1) - log_beta
        log_alive = np.where(j < k, log_dies, log_lasts)
        b = beta + age - x
        log_none = (sp_gammaln(b + j) - sp_gammaln(alpha + x + b + j)
                    - sp_gammaln(b) + sp_gammaln(alpha + x + b))  # E[(1-p)^j]
        top = (log_alive + log_none).max(axis=1, keepdims=True)
        return (top + np.log(np.exp(log_alive + log_none - top).sum(axis=1, keepdims=True)))[:, 0]

    def simulate(self, rng: np.random.Generator, p: Params, age: np.ndarray,
                 horizon: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Alive for L ~ Geometric(theta) - 1 opportunities; a purchase at each with probability p."""
        n_cust = len(age)
        n = _periods(age)
        prob = rng.beta(p["alpha"], p["beta"], n_cust)
        theta = np.clip(rng.beta(p["gamma"], p["delta"], n_cust), 1e-12, 1.0)
        life = rng.geometric(theta) - 1.0
        seen = np.minimum(life, n)
        # the last purchase: count failures back from the last opportunity alive
        gap = rng.geometric(np.clip(prob, 1e-12, 1.0)) - 1.0
        bought = gap < seen
        tx = np.where(bought, seen - gap, 0.0)
        x = np.where(bought, 1.0 + rng.binomial(np.maximum(tx - 1, 0).astype(np.int64), prob), 0.0)
        future = rng.binomial(np.clip(life - n, 0, _periods(horizon)).astype(np.int64), prob)
        return x, tx, future.astype(float)

    def simulate_future(self, rng: np.random.Generator, p: Params, x: np.ndarray, tx: np.ndarray,
                        age: np.ndarray, ends: np.ndarray) -> np.ndarray:
        """Alive ~ P(alive); p ~ Beta(alpha+x, beta+n-x), theta ~ Beta(gamma, delta+n+1); J opportunities left."""
        n_rows = x.size
        alive = rng.random(n_rows) < self.p_alive(p, x, tx, age)
        prob = rng.beta(p["alpha"] + x, p["beta"] + age - x)
        theta = np.clip(rng.beta(p["gamma"], p["delta"] + age + 1.0), 1e-12, 1.0)
        left = rng.geometric(theta).astype(float)  # opportunities n+1 .. n+J are alive
        stops = _periods(ends)
        starts = np.concatenate([[0.0], stops[:-1]])
        active = np.clip(left[:, None] - starts[None, :], 0.0, (stops - starts)[None, :])
        return np.where(alive[:, None], rng.binomial(active.astype(np.int64), prob[:, None]), 0)

    def boundary_notes(self, p: Params, at_low: set[str], at_high: set[str]) -> list[str]:
        """No dropout evidence (gamma -> 0 or delta -> infinity), one purchase probability for all."""
        notes, low, high = [], set(at_low), set(at_high)
        if "gamma" in low or "delta" in high:
            notes.append("no dropout evidence: BG/BB reduces to the beta-binomial (gamma/(gamma+delta) -> 0)")
            low, high = low - {"gamma"}, high - {"delta"}
        if {"alpha", "beta"} <= high:
            notes.append(f"no heterogeneity in the purchase probability: p = "
                         f"{p['alpha'] / (p['alpha'] + p['beta']):.4g} for everyone (alpha, beta -> infinity)")
            high -= {"alpha", "beta"}
        return notes + super().boundary_notes(p, low, high)
