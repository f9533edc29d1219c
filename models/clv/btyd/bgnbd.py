"""BG/NBD (Fader, Hardie & Lee 2005) and MBG/NBD (Batislam, Denizel & Filiztekin 2007).

Story: while alive a customer buys as a Poisson process with rate lambda ~ Gamma(r, alpha); after each
repeat purchase (MBG/NBD: also at the first purchase, time 0) it drops out with probability p ~ Beta(a, b).
With x repeat purchases, the last at t_x, observed over (0, T] (shift = 0 for BG/NBD, 1 for MBG/NBD):

  L = Gamma(r+x) alpha^r / Gamma(r) * B(a, b+x+shift) / B(a, b)
      * [ (alpha+T)^-(r+x) + 1{x > 0 or shift} * a / (b+x-1+shift) * (alpha+t_x)^-(r+x) ]          (FHL eq. 6)
  P(alive | x, t_x, T) = 1 / (1 + 1{x > 0 or shift} * a / (b+x-1+shift) * ((alpha+T) / (alpha+t_x))^(r+x))
  E[Y(t) | alive, x, T] = (a+b+x-1+shift) / (a-1)
      * [1 - ((alpha+T) / (alpha+T+t))^(r+x) 2F1(r+x, b+x+shift; a+b+x-1+shift; t / (alpha+T+t))]   (FHL eq. 10)
  P(Y(t) = 0 | alive, x, T) = ((alpha+T) / (alpha+T+t))^(r+x) (alive for the whole horizon until a purchase)

Given alive at T: lambda ~ Gamma(r+x, alpha+T), p ~ Beta(a, b+x+shift), independently.
Boundaries: a -> 0 or b -> infinity (p -> 0: no dropout evidence, the model reduces to the NBD);
r, alpha -> infinity with r/alpha fixed (one purchase rate for everyone: Poisson purchases).
"""

from __future__ import annotations

from typing import Any, ClassVar

import autograd.numpy as anp
import numpy as np
import pandas as pd
from autograd.scipy.special import gammaln
from scipy.special import expit, hyp2f1

from models.clv.btyd.base import LOG_ZERO, Params, PurchaseModel, alive_and_rate, one_rate_note, register

SMALLEST_P = 1e-12  # dropout probability floor in simulations (a geometric draw needs p > 0)


def log_hyp2f1(a: np.ndarray, b: np.ndarray, c: np.ndarray, z: np.ndarray) -> np.ndarray:
    """log 2F1(a, b; c; z) for 0 <= z < 1, through Euler's transformation where the direct value overflows."""
    with np.errstate(all="ignore"):
        direct = np.log(hyp2f1(a, b, c, z))
        euler = np.log(hyp2f1(c - a, c - b, c, z)) + (c - a - b) * np.log1p(-z)
    return np.where(np.isfinite(direct), direct, euler)


def repeats_and_last(rng: np.random.Generator, lam: np.ndarray, active: np.ndarray,
                     cap: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Repeat purchases x (at most cap) of a rate-lam Poisson process on [0, active], and the x-th time."""
    n = rng.poisson(lam * active)
    x = np.minimum(n, cap)
    pos = x > 0
    tx = np.zeros_like(active)
    # the x-th of n uniform arrival times on [0, active] is active * Beta(x, n - x + 1)
    tx[pos] = active[pos] * rng.beta(x[pos], n[pos] - x[pos] + 1)
    return x.astype(float), tx


@register
class BGNBD(PurchaseModel):
    """BG/NBD: dropout after a repeat purchase with probability p ~ Beta(a, b) (see the module docstring)."""

    name: ClassVar[str] = "bgnbd"
    title: ClassVar[str] = "BG/NBD"
    param_names: ClassVar[tuple[str, ...]] = ("r", "alpha", "a", "b")
    time_params: ClassVar[tuple[str, ...]] = ("alpha",)
    shift: ClassVar[float] = 0.0

    def _dropout_chance(self, x: Any) -> Any:
        """1 where a dropout opportunity has happened (x > 0, or always for MBG/NBD), else 0."""
        return 1.0 if self.shift else (x > 0).astype(float)

    def prepare(self, x: np.ndarray, tx: np.ndarray, age: np.ndarray, fast: bool = False) -> dict[str, Any]:
        """Rows, and each column's unique values with the rows' index into them (terms are computed per value)."""
        data = {"x": x, "tx": tx, "age": age}
        for name, values in data.copy().items():
            codes, uniques = pd.factorize(values, sort=False)
            data[f"{name}_unique"], data[f"{name}_index"] = np.asarray(uniques, dtype=float), codes
        return data

    def loglik(self, p: Params, data: dict[str, Any]) -> Any:
        """Per-row log-likelihood, FHL eq. 6 in log space (log-sum-exp of the alive and dropped-out terms)."""
        r, alpha, a, b = p["r"], p["alpha"], p["a"], p["b"]
        if "x_unique" not in data:
            data = self.prepare(data["x"], data["tx"], data["age"])
        xu, k = data["x_unique"], self.shift
        head = (gammaln(r + xu) - gammaln(r) + r * anp.log(alpha) + gammaln(a + b) + gammaln(b + xu + k)
                - gammaln(b) - gammaln(a + b + xu + k))[data["x_index"]]
        odds = anp.where(self._dropout_chance(xu) > 0,
                         anp.log(a) - anp.log(anp.maximum(b + xu - 1 + k, 1e-300)), LOG_ZERO)[data["x_index"]]
        power = r + data["x"]
        alive = -power * anp.log(alpha + data["age_unique"])[data["age_index"]]
        dropped = odds - power * anp.log(alpha + data["tx_unique"])[data["tx_index"]]
        return head + anp.logaddexp(alive, dropped)

    def p_alive(self, p: Params, x: np.ndarray, tx: np.ndarray, age: np.ndarray) -> np.ndarray:
        """P(alive at T | x, t_x, T) (BG/NBD: 1 without a repeat purchase)."""
        r, alpha, a, b = p["r"], p["alpha"], p["a"], p["b"]
        denom = np.maximum(b + x - 1 + self.shift, 1e-300)
        log_odds_dead = (r + x) * (np.log(alpha + age) - np.log(alpha + tx)) + np.log(a / denom)
        return np.where(self._dropout_chance(x) > 0, expit(-log_odds_dead), 1.0)

    def alive_expected(self, p: Params, x: np.ndarray, age: np.ndarray, t: Any) -> np.ndarray:
        """E[purchases in (T, T+t] | alive at T] (FHL eq. 10 without P(alive))."""
        r, alpha, a, b = p["r"], p["alpha"], p["a"], p["b"]
        c = a + b + x - 1 + self.shift
        z = t / (alpha + age + t)
        log_tail = log_hyp2f1(r + x, b + x + self.shift, c, z) + (r + x) * np.log1p(-z)
        with np.errstate(divide="ignore", invalid="ignore"):
            out = c / (a - 1) * -np.expm1(log_tail)
        # a -> 1 or a tail equal to 1 (t = 0) give 0/0; there E[Y] is the limit (r+x)/(alpha+T) * t at small t
        return np.where(np.isfinite(out), out, (r + x) / (alpha + age) * t)

    def alive_log_p_zero(self, p: Params, x: np.ndarray, age: np.ndarray, t: float) -> np.ndarray:
        """log ((alpha+T)/(alpha+T+t))^(r+x): no purchase, hence no dropout opportunity, in the horizon."""
        return -(p["r"] + x) * np.log1p(t / (p["alpha"] + age))

    def _dropout_draw(self, rng: np.random.Generator, a: float, b: Any, n: int) -> np.ndarray:
        """Dropout probabilities p ~ Beta(a, b), floored so geometric draws stay defined."""
        return np.clip(rng.beta(a, b, n), SMALLEST_P, 1.0)

    def simulate(self, rng: np.random.Generator, p: Params, age: np.ndarray,
                 horizon: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Death right after the K-th repeat purchase, K ~ Geometric(p) >= 1 (MBG/NBD: K >= 0, at the first too)."""
        n = len(age)
        lam = rng.gamma(p["r"], 1.0 / p["alpha"], n)
        drop = self._dropout_draw(rng, p["a"], p["b"], n)
        k = rng.geometric(drop) - int(self.shift)
        x, tx = repeats_and_last(rng, lam, age, k)
        # alive at T when fewer than K repeats so far; then it buys until its K-th repeat at most
        future = np.minimum(rng.poisson(lam * horizon), np.maximum(k - x, 0))
        return x, tx, future

    def simulate_future(self, rng: np.random.Generator, p: Params, x: np.ndarray, tx: np.ndarray,
                        age: np.ndarray, ends: np.ndarray) -> np.ndarray:
        """Alive ~ P(alive); lambda ~ Gamma(r+x, alpha+T); the K-th future purchase (K ~ Geometric(p)) is the last."""
        alive, lam = alive_and_rate(self, rng, p, x, tx, age)
        widths = np.diff(ends, prepend=0.0)
        last = rng.geometric(self._dropout_draw(rng, p["a"], p["b"] + x + self.shift, x.size))
        total = np.minimum(np.cumsum(rng.poisson(lam[:, None] * widths[None, :]), axis=1), last[:, None])
        return np.where(alive[:, None], np.diff(total, axis=1, prepend=0), 0)

    def boundary_notes(self, p: Params, at_low: set[str], at_high: set[str]) -> list[str]:
        """No dropout evidence (a -> 0 or b -> infinity), certain-or-never dropout (a, b -> 0), one rate for all."""
        notes, low, high = [], set(at_low), set(at_high)
        if {"a", "b"} <= low:
            share = p["a"] / (p["a"] + p["b"])
            notes.append(f"{self.title}: dropout probability p degenerates to 0 or 1 (a, b -> 0): a share "
                         f"{share:.3g} of customers drops out at a purchase, the others never")
            low -= {"a", "b"}
        elif "a" in low or "b" in high:
            notes.append(f"no dropout evidence: {self.title} reduces to NBD (a/(a+b) -> 0)")
            low, high = low - {"a"}, high - {"b"}
        rate, high = one_rate_note(p, high)
        return notes + rate + super().boundary_notes(p, low, high)


@register
class MBGNBD(BGNBD):
    """MBG/NBD: as BG/NBD, with a dropout chance at the first purchase too (see the module docstring)."""

    name: ClassVar[str] = "mbgnbd"
    title: ClassVar[str] = "MBG/NBD"
    shift: ClassVar[float] = 1.0
