"""The BTYD model interface and registry: each purchase model is one registered PurchaseModel subclass.

A model owns its per-row log-likelihood (written with autograd.numpy so the fitter gets exact gradients),
its closed forms, written as P(alive) times quantities that hold given alive, and its two simulators: the
generative story (fresh customers) and the posterior one (a known customer's latent state, then the future).
Fitting, validation and (de)serialisation are shared (models.clv.btyd.fit, models.clv.model).
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

Params = dict[str, float]
LOG_ZERO = -1e300  # log of an absent term: finite, so second derivatives (Laplace, warm starts) stay finite
REGISTRY: dict[str, PurchaseModel] = {}


class PurchaseModel:
    """A purchase (transaction-count and dropout) model on (x, t_x, T) sufficient statistics."""

    name: ClassVar[str]
    param_names: ClassVar[tuple[str, ...]]
    time_params: ClassVar[tuple[str, ...]] = ()  # rates' scale parameters: they scale with the time unit
    discrete: ClassVar[bool] = False  # True: x, t_x, T count whole periods (BG/BB)
    title: ClassVar[str] = ""

    def validate(self, x: np.ndarray, tx: np.ndarray, age: np.ndarray) -> None:
        """ValueError (one line) when the rows do not fit the model's data shape; continuous models accept all."""

    def prepare(self, x: np.ndarray, tx: np.ndarray, age: np.ndarray, fast: bool = False) -> dict[str, Any]:
        """Precomputed data the log-likelihood reads (default: the three columns).

        fast: a cheaper, slightly less exact likelihood is acceptable (warm starts on a subsample).
        """
        return {"x": x, "tx": tx, "age": age}

    def loglik(self, p: Params, data: dict[str, Any]) -> Any:
        """Per-row log-likelihood (autograd-traceable in the parameter values)."""
        raise NotImplementedError

    def p_alive(self, p: Params, x: np.ndarray, tx: np.ndarray, age: np.ndarray) -> np.ndarray:
        """P(alive at T | x, t_x, T)."""
        raise NotImplementedError

    def alive_expected(self, p: Params, x: np.ndarray, age: np.ndarray, t: Any) -> np.ndarray:
        """E[purchases in (T, T+t] | alive at T, x]."""
        raise NotImplementedError

    def alive_log_p_zero(self, p: Params, x: np.ndarray, age: np.ndarray, t: float) -> np.ndarray:
        """log P(no purchase in (T, T+t] | alive at T, x)."""
        raise NotImplementedError

    def simulate(self, rng: np.random.Generator, p: Params, age: np.ndarray,
                 horizon: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Generative draws: (x, t_x) at T = age per new customer, and purchases in (T, T + horizon]."""
        raise NotImplementedError

    def simulate_future(self, rng: np.random.Generator, p: Params, x: np.ndarray, tx: np.ndarray,
                        age: np.ndarray, ends: np.ndarray) -> np.ndarray:
        """Purchases per segment (rows x segments ending at T + ends), latent state drawn from its posterior."""
        raise NotImplementedError

    def boundary_notes(self, p: Params, at_low: set[str], at_high: set[str]) -> list[str]:
        """What a fit on a parameter bound means for this model (at_low / at_high: names at a bound)."""
        notes = [f"{n} -> 0" for n in sorted(at_low)] + [f"{n} -> infinity" for n in sorted(at_high)]
        return [f"{self.name}: boundary solution ({', '.join(notes)})"] if notes else []


def alive_and_rate(model: PurchaseModel, rng: np.random.Generator, p: Params, x: np.ndarray, tx: np.ndarray,
                   age: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Posterior draws of alive-at-T (Bernoulli P(alive)) and of the purchase rate Gamma(r + x, alpha + T)."""
    alive = rng.random(x.size) < model.p_alive(p, x, tx, age)
    return alive, rng.gamma(p["r"] + x, 1.0 / (p["alpha"] + age))


def one_rate_note(p: Params, high: set[str]) -> tuple[list[str], set[str]]:
    """The note for a Gamma(r, alpha) purchase rate degenerating to one rate (r, alpha -> infinity), if so."""
    if not {"r", "alpha"} <= high:
        return [], high
    return [f"no purchase-rate heterogeneity: Gamma(r, alpha) degenerates to one rate r/alpha = "
            f"{p['r'] / p['alpha']:.4g} per time unit (r, alpha -> infinity)"], high - {"r", "alpha"}


def register(cls: type[PurchaseModel]) -> type[PurchaseModel]:
    """Class decorator: add one instance of the model to the registry under its name (once)."""
    if cls.name in REGISTRY:
        raise ValueError(f"purchase model {cls.name!r} registered twice")
    REGISTRY[cls.name] = cls()
    return cls


def get(name: str) -> PurchaseModel:
    """The registered model, or a ValueError listing the known ones."""
    if name not in REGISTRY:
        raise ValueError(f"unknown clv model {name!r}: expected one of {', '.join(REGISTRY)}")
    return REGISTRY[name]


def as_params(model: PurchaseModel, values: Any) -> Params:
    """Parameter dict from values in the model's parameter order."""
    return dict(zip(model.param_names, values, strict=True))
