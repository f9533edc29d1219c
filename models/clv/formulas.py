"""Closed-form BTYD quantities, vectorised over customers (time in the model's unit).

Every purchase model is written as P(alive | x, t_x, T) times quantities that hold *given alive at T*,
which depend on (x, T, t) only: conditional on being alive, the purchase rate is
Gamma(r + x, alpha + T) and (Pareto/NBD) the dropout rate Gamma(s, beta + T), independently.
"""

from __future__ import annotations

import numpy as np
from scipy.special import expit, hyp2f1

Params = dict[str, float]


def _log_hyp2f1(a: np.ndarray, b: np.ndarray, c: np.ndarray, z: np.ndarray) -> np.ndarray:
    """log 2F1(a, b; c; z) for 0 <= z < 1, through Euler's transformation where the direct value overflows."""
    with np.errstate(all="ignore"):
        direct = np.log(hyp2f1(a, b, c, z))
        euler = np.log(hyp2f1(c - a, c - b, c, z)) + (c - a - b) * np.log1p(-z)
    return np.where(np.isfinite(direct), direct, euler)


def _bg_alive_expected(params: Params, x: np.ndarray, age: np.ndarray, t: float,
                       modified: bool) -> np.ndarray:
    """E[purchases in (T, T+t] | alive at T] for BG/NBD (or MBG/NBD when modified)."""
    r, alpha, a, b = params["r"], params["alpha"], params["a"], params["b"]
    shift = 1.0 if modified else 0.0
    c = a + b + x - 1 + shift
    z = t / (alpha + age + t)
    log_tail = _log_hyp2f1(r + x, b + x + shift, c, z) + (r + x) * np.log1p(-z)
    return c / (a - 1) * -np.expm1(log_tail)


def _bg_p_alive(params: Params, x: np.ndarray, tx: np.ndarray, age: np.ndarray, modified: bool) -> np.ndarray:
    """P(alive at T | x, t_x, T) for BG/NBD (or MBG/NBD when modified)."""
    r, alpha, a, b = params["r"], params["alpha"], params["a"], params["b"]
    denom = b + x if modified else b + np.maximum(x, 1) - 1
    log_odds_dead = (r + x) * (np.log(alpha + age) - np.log(alpha + tx)) + np.log(a / denom)
    alive = expit(-log_odds_dead)
    return alive if modified else np.where(x == 0, 1.0, alive)


def _log_p_zero_gamma(params: Params, x: np.ndarray, age: np.ndarray, t: float) -> np.ndarray:
    """log P(no purchase in (T, T+t] | alive throughout) = log ((alpha+T)/(alpha+T+t))^(r+x)."""
    return -(params["r"] + x) * np.log1p(t / (params["alpha"] + age))


def _pareto_log_a0(params: Params, x: np.ndarray, tx: np.ndarray, age: np.ndarray) -> np.ndarray:
    """log A_0 of Fader & Hardie's Pareto/NBD note 009, eq. (19)-(20); -inf when t_x == T."""
    r, alpha, s, beta = params["r"], params["alpha"], params["s"], params["beta"]
    rsx = r + s + x
    high, gap = max(alpha, beta), abs(alpha - beta)
    second = r + x if alpha < beta else np.full_like(x, s + 1.0)
    h1 = hyp2f1(rsx, second, rsx + 1, gap / (high + tx))
    h2 = hyp2f1(rsx, second, rsx + 1, gap / (high + age))
    ratio = np.exp(rsx * (np.log(high + tx) - np.log(high + age)))
    with np.errstate(divide="ignore"):
        return -rsx * np.log(high + tx) + np.log(np.maximum(h1 - h2 * ratio, 0.0))


def _pareto_p_alive(params: Params, x: np.ndarray, tx: np.ndarray, age: np.ndarray) -> np.ndarray:
    """P(alive at T | x, t_x, T) for Pareto/NBD (note 009, eq. 36-37)."""
    r, alpha, s, beta = params["r"], params["alpha"], params["s"], params["beta"]
    log_odds_dead = (np.log(s) - np.log(r + s + x) + (r + x) * np.log(alpha + age) + s * np.log(beta + age)
                     + _pareto_log_a0(params, x, tx, age))
    return expit(-log_odds_dead)


def _pareto_alive_expected(params: Params, x: np.ndarray, age: np.ndarray, t: float) -> np.ndarray:
    """E[purchases in (T, T+t] | alive at T] for Pareto/NBD (note 009, eq. 41 without P(alive))."""
    r, alpha, s, beta = params["r"], params["alpha"], params["s"], params["beta"]
    horizon = np.log1p(t / (beta + age))
    k = s - 1.0
    tail = horizon if abs(k) < 1e-12 else -np.expm1(-k * horizon) / k
    return (r + x) * (beta + age) / (alpha + age) * tail


def _share_dying_first(r: np.ndarray, a1: np.ndarray, s: float, b1: np.ndarray) -> np.ndarray:
    """P(dropout before next purchase) = E[mu / (lambda + mu)], lambda ~ Gamma(r, a1), mu ~ Gamma(s, b1)."""
    base = s / (r + s)
    over = base * hyp2f1(1.0, r, r + s + 1, 1.0 - b1 / np.maximum(a1, b1))
    under = a1 / b1 * base * hyp2f1(1.0, s + 1, r + s + 1, 1.0 - a1 / np.maximum(a1, b1))
    return np.where(a1 >= b1, over, under)


def _pareto_log_p_zero(params: Params, x: np.ndarray, age: np.ndarray, t: float) -> np.ndarray:
    """log P(no purchase in (T, T+t] | alive at T) for Pareto/NBD (purchase clock stops at dropout)."""
    r, alpha, s, beta = params["r"] + x, params["alpha"] + age, params["s"], params["beta"] + age
    both_survive = np.exp(-r * np.log1p(t / alpha) - s * np.log1p(t / beta))
    later = 1.0 - _share_dying_first(r, alpha + t, s, beta + t)
    p0 = _share_dying_first(r, alpha, s, beta) + both_survive * later
    return np.log(np.clip(p0, 0.0, 1.0))


def p_alive(model: str, params: Params, x: np.ndarray, tx: np.ndarray, age: np.ndarray) -> np.ndarray:
    """P(customer alive at T | x, t_x, T)."""
    if model == "pareto_nbd":
        return _pareto_p_alive(params, x, tx, age)
    return _bg_p_alive(params, x, tx, age, modified=model == "mbgnbd")


def alive_expected(model: str, params: Params, x: np.ndarray, age: np.ndarray, t: float) -> np.ndarray:
    """Expected purchases in (T, T+t] for a customer alive at T with x repeat purchases."""
    if model == "pareto_nbd":
        return _pareto_alive_expected(params, x, age, t)
    return _bg_alive_expected(params, x, age, t, modified=model == "mbgnbd")


def alive_log_p_zero(model: str, params: Params, x: np.ndarray, age: np.ndarray, t: float) -> np.ndarray:
    """log P(zero purchases in (T, T+t]) for a customer alive at T with x repeat purchases."""
    if model == "pareto_nbd":
        return _pareto_log_p_zero(params, x, age, t)
    return _log_p_zero_gamma(params, x, age, t)


def expected_spend(params: Params, x: np.ndarray, m: np.ndarray) -> np.ndarray:
    """Gamma-Gamma E[mean spend | x, m]; the population mean p*gamma/(q-1) when x == 0 (m <= 0 read as 0)."""
    p, q, gamma = params["p"], params["q"], params["gamma"]
    return p * (gamma + x * np.maximum(m, 0.0)) / (p * x + q - 1.0)
