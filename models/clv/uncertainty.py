"""Per-customer CLV intervals: parameter uncertainty (Laplace approximation) and posterior predictive draws.

Parameter uncertainty: the purchase and spend models' log-parameters are drawn from a normal centred on the
fit with covariance minus the inverse of the numerically computed Hessian of the total log-likelihood (the two
models are fitted separately, so their draws are independent). Each draw gives a closed-form CLV and expected
horizon revenue per customer; their quantiles are `clv_low` / `clv_high`. That interval says how well the
*expected* value is known; it does not cover what one customer will actually spend.

Predictive: for each parameter draw, each customer's own latent state is drawn from its posterior given
(x, t_x, T, m) -- alive or not, purchase rate, dropout (BG/NBD: p, Pareto/NBD: remaining lifetime), spend
scale -- then its purchases and spend over the horizon are simulated month by month. Quantiles of those draws
bound the revenue a customer may actually bring (`*_pred_low` / `*_pred_high`).

Without a spend part (data without amounts) the spend draws are an empty (n, 0) array and every spend-based
bound is NaN.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from models.clv.btyd import SPEND_MODEL, get
from models.clv.inputs import PURCHASE_PARAMS, SPEND_PARAMS, rfm_arrays, unique_rows
from models.clv.model import ClvModel

HESSIAN_STEP = 1e-3  # central-difference step on the log-parameter scale
MAX_CELLS = 4_000_000  # rows x draws held in memory at once
MIN_USABLE_SHARE = 0.5


@dataclass(frozen=True)
class ParameterDraws:
    """Parameter draws of the purchase and spend models (one row per draw) and how they were made."""

    model: str
    purchases: np.ndarray
    spend: np.ndarray
    std_errors: dict[str, float]
    warnings: list[str] = field(default_factory=list)

    @property
    def n_draws(self) -> int:
        """Number of usable draws."""
        return int(self.purchases.shape[0])

    @property
    def has_spend(self) -> bool:
        """False when the model had no spend part (spend draws of width 0)."""
        return self.spend.ndim == 2 and self.spend.shape[1] == len(SPEND_PARAMS)

    def params(self, k: int) -> tuple[dict[str, float], dict[str, float] | None]:
        """Purchase and spend parameters of draw k (spend None without a spend part)."""
        purchases = dict(zip(PURCHASE_PARAMS[self.model], map(float, self.purchases[k]), strict=True))
        if not self.has_spend:
            return purchases, None
        return purchases, dict(zip(SPEND_PARAMS, map(float, self.spend[k]), strict=True))


def numerical_hessian(f: Callable[[np.ndarray], float], at: np.ndarray, step: float = HESSIAN_STEP) -> np.ndarray:
    """Central-difference Hessian of a scalar function at a point."""
    at = np.asarray(at, dtype=float)
    k, e, f0 = at.size, np.eye(at.size) * step, f(at)
    out = np.empty((k, k))
    for i in range(k):
        out[i, i] = (f(at + e[i]) - 2.0 * f0 + f(at - e[i])) / step**2
        for j in range(i + 1, k):
            out[i, j] = out[j, i] = (f(at + e[i] + e[j]) - f(at + e[i] - e[j]) - f(at - e[i] + e[j])
                                     + f(at - e[i] - e[j])) / (4.0 * step**2)
    return out


def laplace_covariance(hessian: np.ndarray, name: str) -> tuple[np.ndarray, list[str]]:
    """Covariance -H^-1 of the log-parameters, with eigenvalues floored when -H is not positive definite."""
    if not np.isfinite(hessian).all():
        raise FloatingPointError(f"{name}: non-finite log-likelihood Hessian; no parameter uncertainty")
    info = -(hessian + hessian.T) / 2.0
    values, vectors = np.linalg.eigh(info)
    notes = []
    floor = max(float(values.max()), 1.0) * 1e-9
    if values.min() <= floor:
        notes.append(f"{name}: log-likelihood Hessian not negative definite (eigenvalues {values.tolist()}); "
                     f"flat directions floored at {floor:.3g}, so their parameter intervals are very wide")
        values = np.maximum(values, floor)
    return (vectors / values) @ vectors.T, notes


def _weighted_loglik(loglik: Callable, names: tuple[str, ...], data: dict, weights: np.ndarray
                     ) -> Callable[[np.ndarray], float]:
    """Total log-likelihood as a function of log-parameters (NaN where it cannot be computed)."""
    def f(u: np.ndarray) -> float:
        """sum of weights * per-row log-likelihood at exp(u)."""
        with np.errstate(all="ignore"):
            return float((weights * np.asarray(loglik(dict(zip(names, np.exp(u), strict=True)), data))).sum())
    return f


def _log_lik_functions(model: ClvModel, rfm: pd.DataFrame) -> dict[str, Callable[[np.ndarray], float]]:
    """Total log-likelihood of each sub-model as a function of its log-parameters, on compressed rows."""
    cols = rfm_arrays(rfm)
    x, m = cols["frequency"], cols["monetary_value"]
    (ux, utx, uage), _, n = unique_rows(x, cols["recency"], cols["T"])
    purchase = model.purchase_model
    out = {"purchases": _weighted_loglik(purchase.loglik, purchase.param_names, purchase.prepare(ux, utx, uage),
                                         n.astype(float))}
    if model.spend is not None:
        paying = (x > 0) & (m > 0)
        (sx, sm), _, ns = unique_rows(x[paying], m[paying])
        out["spend"] = _weighted_loglik(SPEND_MODEL.loglik, SPEND_PARAMS, SPEND_MODEL.prepare(sx, sm),
                                        ns.astype(float))
    return out


def laplace_draws(model: ClvModel, rfm: pd.DataFrame, n_draws: int, seed: int) -> ParameterDraws:
    """Seeded draws of both sub-models' parameters from the normal approximation of their likelihoods.

    On little data the log-likelihood can be so flat (or its Hessian non-finite) that most draws overflow; then
    every draw is the fitted point with a warning saying so: the intervals keep each customer's own randomness
    but carry no parameter uncertainty, instead of the stage failing.
    """
    if n_draws < 2:
        raise ValueError(f"n_draws must be >= 2, got {n_draws}")
    rng = np.random.default_rng([seed, 7])
    fns = _log_lik_functions(model, rfm)
    out, errors, notes, centres = {"spend": np.empty((n_draws, 0))}, {}, [], {"spend": np.empty(0)}
    parts = [("purchases", PURCHASE_PARAMS[model.model], model.purchases.params)]
    if model.spend is not None:
        parts.append(("spend", SPEND_PARAMS, model.spend.params))
    for part, names, params in parts:
        centres[part] = centre = np.log([params[n] for n in names])
        try:
            cov, found = laplace_covariance(numerical_hessian(fns[part], centre), part)
        except FloatingPointError as exc:
            notes.append(f"{exc}: {part} draws fixed at the fit")
            errors.update(dict.fromkeys(names, float("nan")))
            out[part] = np.tile(np.exp(centre), (n_draws, 1))
            continue
        notes += found
        se_log = np.sqrt(np.diag(cov))
        errors.update({n: float(params[n] * s) for n, s in zip(names, se_log, strict=True)})  # delta method
        with np.errstate(over="ignore", invalid="ignore"):
            out[part] = np.exp(rng.multivariate_normal(centre, cov, size=n_draws, method="eigh"))
    usable = np.ones(n_draws, dtype=bool)
    for drawn in out.values():  # finite and > 0: exp() of a far-off log-parameter overflows or underflows to 0
        usable &= (np.isfinite(drawn) & (drawn > 0)).all(axis=1)
    if model.spend is not None:
        usable &= out["spend"][:, SPEND_PARAMS.index("q")] > 1.0  # else the mean spend is undefined
    if usable.sum() < MIN_USABLE_SHARE * n_draws:
        notes.append(f"only {int(usable.sum())} of {n_draws} parameter draws are usable (finite, > 0, q > 1): the "
                     "log-likelihood is too flat on this data, so every draw is the fitted point (intervals show "
                     "customer-level randomness only, no parameter uncertainty)")
        point = {part: np.tile(np.exp(centres[part]), (n_draws, 1)) for part in ("purchases", "spend")}
        return ParameterDraws(model.model, point["purchases"], point["spend"], errors, notes)
    if not usable.all():
        notes.append(f"{int((~usable).sum())} of {n_draws} parameter draws dropped (non-finite, 0 or q <= 1)")
    return ParameterDraws(model.model, out["purchases"][usable], out["spend"][usable], errors, notes)


@dataclass(frozen=True)
class Horizon:
    """What to forecast: the evaluation horizon in days and the discounted CLV horizon in months."""

    horizon_days: int
    horizon_months: int = 12
    discount_rate_monthly: float = 0.01
    days_per_month: float = 30.0

    def edges(self, time_unit_days: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Simulation segment ends (model time unit), each segment's CLV discount and whether it is in H days."""
        days = np.union1d(np.arange(1, self.horizon_months + 1) * self.days_per_month, [self.horizon_days])
        month = np.ceil(days / self.days_per_month - 1e-9)
        discount = np.where(month <= self.horizon_months, (1.0 + self.discount_rate_monthly) ** -month, 0.0)
        return days / time_unit_days, discount, days <= self.horizon_days + 1e-9


def _simulate_counts(rng: np.random.Generator, model: str, p: dict[str, float], x: np.ndarray, tx: np.ndarray,
                     age: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """Purchases per segment (rows x segments) after T, each customer's latent state drawn from its posterior."""
    return get(model).simulate_future(rng, p, x, tx, age, ends)


def _chunk_draws(model: ClvModel, draws: ParameterDraws, horizon: Horizon, rows: pd.DataFrame,
                 rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Per (row, draw): closed-form CLV and horizon revenue, and simulated ones, for one chunk of rows."""
    x, tx, age, m = (rows[c].to_numpy(dtype=float) for c in ("frequency", "recency", "T", "monetary_value"))
    ends, discount, in_horizon = horizon.edges(model.time_unit_days)
    h, months = horizon.horizon_days, horizon.horizon_months
    out = {k: np.empty((len(rows), draws.n_draws)) for k in ("clv", "revenue", "clv_pred", "revenue_pred")}
    for k in range(draws.n_draws):
        purchases, spend = draws.params(k)
        drawn = ClvModel.from_params(model.model, purchases, spend, time_unit_days=model.time_unit_days)
        point = drawn.predict(rows, h, months, horizon.discount_rate_monthly, days_per_month=horizon.days_per_month)
        out["clv"][:, k] = point[f"clv_{months}m"].to_numpy()
        out["revenue"][:, k] = (point[f"expected_purchases_{h}d"] * point["expected_aov"]).to_numpy()
        counts = _simulate_counts(rng, model.model, purchases, x, tx, age, ends)
        if spend is None:
            out["clv_pred"][:, k] = out["revenue_pred"][:, k] = np.nan
            continue
        value = SPEND_MODEL.simulate_future(rng, spend, x, m, counts)
        out["clv_pred"][:, k] = value @ discount
        out["revenue_pred"][:, k] = value @ in_horizon.astype(float)
    return out


def intervals(model: ClvModel, rfm: pd.DataFrame, draws: ParameterDraws, horizon: Horizon, level: float = 0.9,
              seed: int = 0) -> pd.DataFrame:
    """Per customer: clv_low/high and revenue_<H>d_low/high (parameter), and their predictive counterparts."""
    if not 0 < level < 1:
        raise ValueError(f"interval level must be in (0, 1), got {level}")
    cols = rfm_arrays(rfm)
    keys = (cols["frequency"], cols["recency"], cols["T"], cols["monetary_value"])
    uniq, row, _ = unique_rows(*keys)
    rows = pd.DataFrame({"customer_id": np.arange(uniq[0].size).astype(str), "frequency": uniq[0],
                         "recency": uniq[1], "T": uniq[2], "monetary_value": uniq[3]})
    q = [(1.0 - level) / 2.0, (1.0 + level) / 2.0]
    h, months = horizon.horizon_days, horizon.horizon_months
    names = {"clv": f"clv_{months}m", "revenue": f"revenue_{h}d", "clv_pred": f"clv_{months}m_pred",
             "revenue_pred": f"revenue_{h}d_pred"}
    bounds: dict[str, list[np.ndarray]] = {}
    size = max(1, MAX_CELLS // draws.n_draws)
    for i, start in enumerate(range(0, len(rows), size)):
        chunk = _chunk_draws(model, draws, horizon, rows.iloc[start:start + size], np.random.default_rng([seed, 11, i]))
        for key, values in chunk.items():
            with np.errstate(invalid="ignore"):
                lo, hi = np.quantile(values, q, axis=1)  # NaN without a spend part
            bounds.setdefault(f"{names[key]}_low", []).append(np.maximum(lo, 0.0))
            bounds.setdefault(f"{names[key]}_high", []).append(np.maximum(hi, 0.0))
    table = {name: np.concatenate(parts)[row] for name, parts in bounds.items()}
    table["clv_low"], table["clv_high"] = table.pop(f"clv_{months}m_low"), table.pop(f"clv_{months}m_high")
    return pd.DataFrame({"customer_id": rfm["customer_id"].reset_index(drop=True), **table}, copy=False)


def _spend_factors(rng: np.random.Generator, model: str, purchases: dict[str, float], spend: dict[str, float],
                   rows: tuple[np.ndarray, np.ndarray, np.ndarray], ends: np.ndarray,
                   weights: np.ndarray) -> np.ndarray:
    """One draw per (x, t_x, T) row of sum_j weights_j * Gamma(p * n_j, 1) / Gamma(q + p x, 1).

    Times (gamma + x m) that is GammaGamma.simulate_future's draw weighted over the segments: the Gamma-Gamma posterior
    scale nu = Gamma(q + p x, 1) / (gamma + x m), so spend = Gamma(p n, 1) * (gamma + x m) / Gamma(q + p x, 1).
    """
    x, tx, age = rows
    counts = _simulate_counts(rng, model, purchases, x, tx, age, ends)
    shape = rng.gamma(spend["q"] + spend["p"] * x, 1.0)
    return (rng.gamma(spend["p"] * counts, 1.0) @ weights) / shape


def predictive_clv_bounds(model: ClvModel, rfm: pd.DataFrame, draws: ParameterDraws, horizon: Horizon,
                          level: float = 0.9, seed: int = 0) -> pd.DataFrame:
    """Per customer: clv_<M>m_pred_low/high, the predictive CLV interval of `intervals`, computed for scoring.

    The same distribution per customer as `intervals` (each parameter draw, the customer's latent state drawn
    from its posterior, purchases and spend simulated over the horizon), but simulated once per draw for each
    unique (x, t_x, T): the spend of a row with spend m is that row's draw times (gamma + x m) (see
    _spend_factors), so rows that differ only in m share their purchase simulation (common random numbers, as
    identical rows already do). Only the CLV bounds: no closed-form or horizon-revenue intervals.
    """
    if not 0 < level < 1:
        raise ValueError(f"interval level must be in (0, 1), got {level}")
    n = horizon.horizon_months
    if model.spend is None or not draws.has_spend:  # no amounts: no spend, so no CLV bounds
        nan = np.full(len(rfm), np.nan)
        return pd.DataFrame({"customer_id": rfm["customer_id"].reset_index(drop=True),
                             f"clv_{n}m_pred_low": nan, f"clv_{n}m_pred_high": nan.copy()}, copy=False)
    cols = rfm_arrays(rfm)
    x, m = cols["frequency"], np.maximum(cols["monetary_value"], 0.0)
    (ux, utx, uage), key3, _ = unique_rows(x, cols["recency"], cols["T"])
    (k3, um), key4, _ = unique_rows(key3, m)  # unique (x, t_x, T, m) rows and their (x, t_x, T) row
    ends, discount, _ = horizon.edges(model.time_unit_days)
    q, n_draws = [(1.0 - level) / 2.0, (1.0 + level) / 2.0], draws.n_draws
    gammas = draws.spend[:, SPEND_PARAMS.index("gamma")]
    base = ux[k3] * um  # x m of each unique row
    order = np.argsort(k3, kind="stable")  # unique rows grouped by their (x, t_x, T) row
    grouped = k3[order]
    bounds = np.empty((2, k3.size))
    size = max(1, MAX_CELLS // n_draws)
    for i, start in enumerate(range(0, ux.size, size)):
        stop = min(start + size, ux.size)
        rng = np.random.default_rng([seed, 13, i])
        factors = np.empty((stop - start, n_draws))
        for k in range(n_draws):
            purchases, spend = draws.params(k)
            factors[:, k] = _spend_factors(rng, model.model, purchases, spend,
                                           (ux[start:stop], utx[start:stop], uage[start:stop]), ends, discount)
        members = order[np.searchsorted(grouped, start):np.searchsorted(grouped, stop)]
        for lo in range(0, members.size, size):
            part = members[lo:lo + size]
            values = factors[k3[part] - start] * (gammas[None, :] + base[part, None])
            # A simulated value, not an interpolation: with most draws at 0 (no purchase) and a few at the spend
            # of an order, linear interpolation invents amounts nobody spends (e.g. 0.42 between 0 and 36).
            bounds[:, part] = np.maximum(np.quantile(values, q, axis=1, method="inverted_cdf"), 0.0)
    return pd.DataFrame({"customer_id": rfm["customer_id"].reset_index(drop=True),
                         f"clv_{n}m_pred_low": bounds[0][key4], f"clv_{n}m_pred_high": bounds[1][key4]}, copy=False)


def draws_to_dict(draws: ParameterDraws) -> dict[str, object]:
    """Parameter draws as a JSON-able dict (floats survive the round trip exactly)."""
    return {"model": draws.model, "purchases": draws.purchases.tolist(), "spend": draws.spend.tolist(),
            "std_errors": dict(draws.std_errors), "warnings": list(draws.warnings)}


def draws_from_dict(data: dict[str, object]) -> ParameterDraws:
    """Rebuild parameter draws saved with draws_to_dict (ValueError when the shapes do not fit the model)."""
    model = str(data["model"])
    if model not in PURCHASE_PARAMS:
        raise ValueError(f"parameter draws of unknown clv model {model!r}")
    purchases = np.asarray(data["purchases"], dtype=float)
    spend = np.asarray(data["spend"], dtype=float).reshape(purchases.shape[0] if purchases.ndim == 2 else -1, -1)
    if purchases.ndim != 2 or purchases.shape[1] != len(PURCHASE_PARAMS[model]) or spend.shape[1] not in (
            0, len(SPEND_PARAMS)):
        raise ValueError(f"parameter draws do not fit model {model!r}: shapes {purchases.shape}, {spend.shape}")
    return ParameterDraws(model, purchases, spend, dict(data.get("std_errors") or {}),
                          list(data.get("warnings") or []))
