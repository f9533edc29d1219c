"""Seeded draws of RFM summaries (and what follows) straight from the BTYD generative stories, vectorised."""

from __future__ import annotations

import numpy as np
import pandas as pd

from models.clv.formulas import Params


def _repeats_and_last(rng: np.random.Generator, lam: np.ndarray, active: np.ndarray,
                      cap: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Repeat purchases x (at most cap) of a rate-lam Poisson process on [0, active], and the x-th time."""
    n = rng.poisson(lam * active)
    x = np.minimum(n, cap)
    pos = x > 0
    tx = np.zeros_like(active)
    # the x-th of n uniform arrival times on [0, active] is active * Beta(x, n - x + 1)
    tx[pos] = active[pos] * rng.beta(x[pos], n[pos] - x[pos] + 1)
    return x.astype(float), tx


def simulate(model: str, params: Params, age: np.ndarray, horizon: float, seed: int,
             spend: Params | None = None) -> pd.DataFrame:
    """RFM at T = age per customer, and future_purchases in (T, T + horizon], drawn from the model."""
    rng = np.random.default_rng(seed)
    age = np.asarray(age, dtype=float)
    n = len(age)
    lam = rng.gamma(params["r"], 1.0 / params["alpha"], n)
    if model == "pareto_nbd":
        tau = rng.exponential(1.0 / rng.gamma(params["s"], 1.0 / params["beta"], n))
        x, tx = _repeats_and_last(rng, lam, np.minimum(tau, age), np.full(n, np.iinfo(np.int64).max))
        future = rng.poisson(lam * np.clip(tau - age, 0.0, horizon))
    else:
        p = rng.beta(params["a"], params["b"], n)
        # BG/NBD: death right after the K-th repeat purchase, K >= 1 (MBG/NBD: K >= 0, at the first too)
        k = rng.geometric(p) - (1 if model == "mbgnbd" else 0)
        x, tx = _repeats_and_last(rng, lam, age, k)
        # alive at T when fewer than K repeats so far; then it buys until its K-th repeat at most
        future = np.minimum(rng.poisson(lam * horizon), np.maximum(k - x, 0))
    out = pd.DataFrame({"customer_id": np.arange(n).astype(str), "frequency": x, "recency": tx,
                        "T": age, "future_purchases": future.astype(float)})
    out["monetary_value"] = 0.0
    if spend is not None:
        nu = rng.gamma(spend["q"], 1.0 / spend["gamma"], n)
        rep = x > 0
        out.loc[rep, "monetary_value"] = rng.gamma(spend["p"] * x[rep], 1.0 / nu[rep]) / x[rep]
    return out
