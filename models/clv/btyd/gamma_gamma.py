"""Gamma-Gamma spend model (Fader & Hardie 2013, "The Gamma-Gamma model of monetary value"; Colombo & Jiang 1999).

Story: each transaction's value is Gamma(p, nu); the customer's scale nu ~ Gamma(q, gamma), independent of
the purchase process. For a repeat buyer with x transactions of mean value m (z_bar):

  L(p, q, gamma | x, m) = Gamma(p x + q) / (Gamma(p x) Gamma(q)) * gamma^q m^(p x - 1) x^(p x)
                          / (gamma + m x)^(p x + q)                                         (F&H 2013, eq. 4)
  E[mean value | x, m] = p (gamma + m x) / (p x + q - 1)     (the population mean p gamma / (q - 1) at x = 0)
Given (x, m): nu ~ Gamma(q + p x, gamma + m x). q > 1 keeps the population mean finite: q is fitted as
1 + exp(u), and q -> 1 is a boundary (population mean spend unbounded).
"""

from __future__ import annotations

from typing import Any, ClassVar

import autograd.numpy as anp
import numpy as np
import pandas as pd
from autograd.scipy.special import gammaln

from models.clv.btyd.base import Params


class GammaGamma:
    """Gamma-Gamma: transaction values Gamma(p, nu), nu ~ Gamma(q, gamma) per customer (module docstring)."""

    name: ClassVar[str] = "gamma_gamma"
    param_names: ClassVar[tuple[str, ...]] = ("p", "q", "gamma")
    floors: ClassVar[dict[str, float]] = {"q": 1.0}  # q = 1 + exp(u)

    def prepare(self, x: np.ndarray, m: np.ndarray) -> dict[str, Any]:
        """The two columns (repeat buyers with m > 0), log m, and the unique x with each row's index."""
        codes, uniques = pd.factorize(x, sort=False)
        return {"x": x, "m": m, "log_m": np.log(m), "x_unique": np.asarray(uniques, dtype=float), "x_index": codes}

    def loglik(self, p: Params, data: dict[str, Any]) -> Any:
        """Per-row log-likelihood of a customer's mean transaction value (eq. 4 in log space)."""
        pp, q, gamma = p["p"], p["q"], p["gamma"]
        if "x_unique" not in data:
            data = self.prepare(data["x"], data["m"])
        xu, x = data["x_unique"], data["x"]
        per_x = (gammaln(pp * xu + q) - gammaln(pp * xu) + pp * xu * anp.log(xu))[data["x_index"]]
        px = pp * x
        return (per_x - gammaln(q) + q * anp.log(gamma) + (px - 1) * data["log_m"]
                - (px + q) * anp.log(gamma + data["m"] * x))

    def expected_spend(self, p: Params, x: np.ndarray, m: np.ndarray) -> np.ndarray:
        """E[mean spend | x, m]; the population mean p gamma / (q - 1) when x == 0 (m <= 0 read as 0)."""
        return p["p"] * (p["gamma"] + x * np.maximum(m, 0.0)) / (p["p"] * x + p["q"] - 1.0)

    def simulate(self, rng: np.random.Generator, p: Params, x: np.ndarray) -> np.ndarray:
        """Generative mean spend of each customer's x repeat purchases (0 where x == 0)."""
        nu = rng.gamma(p["q"], 1.0 / p["gamma"], x.size)
        out = np.zeros(x.size)
        rep = x > 0
        out[rep] = rng.gamma(p["p"] * x[rep], 1.0 / nu[rep]) / x[rep]
        return out

    def simulate_future(self, rng: np.random.Generator, p: Params, x: np.ndarray, m: np.ndarray,
                        counts: np.ndarray) -> np.ndarray:
        """Spend per segment: Gamma(p n, nu) with nu drawn from its posterior Gamma(q + p x, gamma + x m)."""
        nu = rng.gamma(p["q"] + p["p"] * x, 1.0 / (p["gamma"] + x * np.maximum(m, 0.0)))
        return rng.gamma(p["p"] * counts, 1.0 / nu[:, None])  # shape 0 gives 0

    def boundary_notes(self, p: Params, at_low: set[str], at_high: set[str]) -> list[str]:
        """q -> 1 (unbounded population mean), p or gamma at a bound."""
        notes = []
        if "q" in at_low:
            notes.append("Gamma-Gamma: q -> 1: the population mean spend p gamma / (q - 1) is unbounded; "
                         "customers without repeat purchases get very large expected order values")
        rest = [f"{n} -> 0" for n in sorted(at_low - {"q"})] + [f"{n} -> infinity" for n in sorted(at_high)]
        if rest:
            notes.append(f"Gamma-Gamma: boundary solution ({', '.join(rest)})")
        return notes


SPEND_MODEL = GammaGamma()
