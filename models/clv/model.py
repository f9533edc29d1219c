"""Public CLV interface: fit a BTYD purchase model (+ Gamma-Gamma spend when amounts exist), predict, save as JSON."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from models.clv.btyd import SPEND_MODEL, PurchaseModel, get
from models.clv.fitting import DEFAULT_PENALIZER_GRID, fit_purchase_rows, fit_spend_rows
from models.clv.inputs import PURCHASE_PARAMS, SPEND_PARAMS, check_model, rfm_arrays, spend_missing, unique_rows
from models.clv.report import FitReport
from models.clv.stats import RfmStats, compress

MIN_REPEAT_CUSTOMERS = 30
FORMAT = "churn-clv/clv-model"
FORMAT_VERSION = 2  # v2: optional spend part (null), boundary notes in the fit reports; v1 still reads
READABLE_VERSIONS = (1, 2)


def _require_positive(name: str, value: float) -> None:
    """ValueError unless value is a finite number > 0."""
    if not np.isfinite(value) or value <= 0:
        raise ValueError(f"{name} must be a finite number > 0, got {value!r}")


def _require_whole(name: str, value: int) -> int:
    """value as an int when it is a whole number >= 1, else ValueError."""
    if isinstance(value, bool) or not float(value).is_integer() or value < 1:
        raise ValueError(f"{name} must be a whole number >= 1, got {value!r}")
    return int(value)


def _check_params(params: dict[str, float], names: tuple[str, ...]) -> None:
    """ValueError unless params has exactly these names, each a finite number > 0."""
    if sorted(params) != sorted(names):
        raise ValueError(f"expected parameters {list(names)}, got {list(params)}")
    bad = {k: v for k, v in params.items() if not (np.isfinite(v) and v > 0)}
    if bad:
        raise ValueError(f"parameters must be finite and > 0, got {bad}")
    if "q" in params and params["q"] <= 1:
        raise ValueError(f"Gamma-Gamma q must be > 1 (else the mean spend is undefined), got {params['q']}")


def _discounted_purchases(model: PurchaseModel, params: dict[str, float], x: np.ndarray, age: np.ndarray,
                          month: float, months: int, rate: float) -> np.ndarray:
    """Sum over months i of (E[purchases by month i] - E[by month i-1]) / (1 + rate)^i, given alive."""
    cumulative = np.stack([model.alive_expected(params, x, age, i * month) for i in range(months + 1)])
    discount = (1.0 + rate) ** -np.arange(1, months + 1)
    return (np.diff(cumulative, axis=0) * discount[:, None]).sum(axis=0)


@dataclass(frozen=True)
class ClvModel:
    """A fitted purchase model (any registered one) and Gamma-Gamma spend model (None without amounts)."""

    time_unit_days: float
    purchases: FitReport
    spend: FitReport | None

    @property
    def model(self) -> str:
        """The purchase model's name."""
        return self.purchases.model

    @property
    def purchase_model(self) -> PurchaseModel:
        """The registered purchase-model class instance (likelihood, closed forms, simulators)."""
        return get(self.model)

    def predict(self, rfm: pd.DataFrame, horizon_days: int, horizon_months: int = 12,
                discount_rate_monthly: float = 0.01, *, days_per_month: float = 30.0) -> pd.DataFrame:
        """Per customer: p_alive, expected_purchases_<H>d, p_no_purchase_<H>d, expected_aov, clv_<M>m."""
        horizon_days = _require_whole("horizon_days", horizon_days)
        horizon_months = _require_whole("horizon_months", horizon_months)
        _require_positive("days_per_month", days_per_month)
        if not np.isfinite(discount_rate_monthly) or discount_rate_monthly <= -1:
            raise ValueError(f"discount_rate_monthly must be finite and > -1, got {discount_rate_monthly!r}")
        cols = rfm_arrays(rfm)
        x, tx, age, m = cols["frequency"], cols["recency"], cols["T"], cols["monetary_value"]
        model, params = self.purchase_model, self.purchases.params
        t = horizon_days / self.time_unit_days
        month = days_per_month / self.time_unit_days

        (ux, utx, uage), row3, _ = unique_rows(x, tx, age)
        alive = model.p_alive(params, ux, utx, uage)[row3]
        (px, page), row2, _ = unique_rows(x, age)
        expected = model.alive_expected(params, px, page, t)[row2]
        log_p0 = model.alive_log_p_zero(params, px, page, t)[row2]
        if self.spend is None:
            aov = np.full(x.size, np.nan)  # no amounts: spend-based outputs are NaN
        elif spend_missing(rfm):
            raise ValueError("rfm monetary_value is entirely null but this CLV model has a spend part: "
                             "pass the customers' mean repeat spend")
        else:
            aov = np.maximum(SPEND_MODEL.expected_spend(self.spend.params, x, m), 0.0)
        per_alive = (_discounted_purchases(model, params, px, page, month, horizon_months,
                                           discount_rate_monthly)[row2] if self.spend is not None else 0.0)

        outputs = {
            "p_alive": np.clip(alive, 0.0, 1.0),
            f"expected_purchases_{horizon_days}d": np.maximum(alive * expected, 0.0),
            f"p_no_purchase_{horizon_days}d": np.clip(1.0 - alive * -np.expm1(log_p0), 0.0, 1.0),
            "expected_aov": aov,
            f"clv_{horizon_months}m": aov.copy() if self.spend is None else np.maximum(alive * aov * per_alive, 0.0),
        }
        spend_cols = () if self.spend is not None else ("expected_aov", f"clv_{horizon_months}m")  # NaN by design
        checked = {k: v for k, v in outputs.items() if k not in spend_cols}
        bad = [name for name, values in checked.items() if not np.isfinite(values).all()]
        if bad:
            raise FloatingPointError(f"non-finite CLV outputs in {bad}; parameters {params}, "
                                     f"{None if self.spend is None else self.spend.params}")
        ids = rfm["customer_id"].reset_index(drop=True)
        return pd.DataFrame({"customer_id": ids, **outputs}, copy=False)

    def to_dict(self) -> dict[str, Any]:
        """Fitted parameters and fit reports as a JSON-able dict (exact: floats survive json round trips)."""
        return {"format": FORMAT, "version": FORMAT_VERSION, "model": self.model,
                "time_unit_days": self.time_unit_days, "purchases": self.purchases.to_dict(),
                "spend": None if self.spend is None else self.spend.to_dict()}

    @classmethod
    def from_params(cls, model: str, purchase_params: dict[str, float], spend_params: dict[str, float] | None, *,
                    time_unit_days: float) -> ClvModel:
        """A model with given parameters (e.g. published ones), with empty fit reports; spend None: no spend part."""
        check_model(model)
        _require_positive("time_unit_days", time_unit_days)
        purchases = dict(purchase_params)
        _check_params(purchases, PURCHASE_PARAMS[model])
        if spend_params is not None:
            _check_params(dict(spend_params), SPEND_PARAMS)

        def report(name: str, params: dict[str, float]) -> FitReport:
            """A report for parameters that were not fitted here."""
            return FitReport(name, {k: float(v) for k, v in params.items()}, None, 0.0, [], 0, 0, 0.0,
                             ["parameters given, not fitted"])
        spend = None if spend_params is None else report("gamma_gamma", dict(spend_params))
        return cls(float(time_unit_days), report(model, purchases), spend)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ClvModel:
        """Rebuild a model saved with to_dict."""
        if data.get("format") != FORMAT or data.get("version") not in READABLE_VERSIONS:
            found = f"{data.get('format')!r} v{data.get('version')!r}"
            raise ValueError(f"not a {FORMAT} v{'/v'.join(map(str, READABLE_VERSIONS))} dict: {found}")
        purchases = FitReport.from_dict(data["purchases"])
        spend = None if data.get("spend") is None else FitReport.from_dict(data["spend"])
        _check_params(purchases.params, PURCHASE_PARAMS[check_model(purchases.model)])
        if spend is not None:
            _check_params(spend.params, SPEND_PARAMS)
        return cls(float(data["time_unit_days"]), purchases, spend)


def fit_clv(rfm: pd.DataFrame, model: str = "bgnbd", *, time_unit_days: float,
            penalizer_grid: Sequence[float] = DEFAULT_PENALIZER_GRID, seed: int = 0) -> ClvModel:
    """Fit the purchase model on all customers and Gamma-Gamma on repeat buyers with positive spend.

    Without amounts (monetary_value entirely null) only the purchase model is fitted and spend is None.
    """
    check_model(model)
    _require_positive("time_unit_days", time_unit_days)
    stats = compress(rfm)
    return fit_clv_stats(stats, model, time_unit_days=time_unit_days, penalizer_grid=penalizer_grid, seed=seed)


def fit_clv_stats(stats: RfmStats, model: str = "bgnbd", *, time_unit_days: float,
                  penalizer_grid: Sequence[float] = DEFAULT_PENALIZER_GRID, seed: int = 0) -> ClvModel:
    """fit_clv on compressed statistics (models/clv/stats.py), e.g. aggregated by Spark: same fit, same numbers."""
    check_model(model)
    _require_positive("time_unit_days", time_unit_days)
    if stats.n_repeat < MIN_REPEAT_CUSTOMERS:
        raise ValueError(f"only {stats.n_repeat} repeat customers (frequency > 0); at least {MIN_REPEAT_CUSTOMERS} "
                         "are needed to fit a CLV model")
    if stats.spend_counts is None:
        purchases = fit_purchase_rows(model, stats.x, stats.tx, stats.age, stats.counts, penalizer_grid, seed)
        return ClvModel(float(time_unit_days), purchases, None)
    if stats.n_paying == 0:
        raise ValueError("all-zero spend: no repeat customer has monetary_value > 0; "
                         "Gamma-Gamma cannot be fit")
    if stats.n_paying < MIN_REPEAT_CUSTOMERS:
        raise ValueError(f"only {stats.n_paying} repeat customers with monetary_value > 0; at least "
                         f"{MIN_REPEAT_CUSTOMERS} are needed to fit Gamma-Gamma")
    purchases = fit_purchase_rows(model, stats.x, stats.tx, stats.age, stats.counts, penalizer_grid, seed)
    spend = fit_spend_rows(stats.spend_x, stats.spend_m, stats.spend_counts, stats.n_excluded, penalizer_grid, seed)
    return ClvModel(float(time_unit_days), purchases, spend)
