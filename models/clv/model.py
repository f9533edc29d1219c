"""Public CLV interface: fit BTYD + Gamma-Gamma on an RFM frame, predict per customer, save as JSON."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from models.clv import formulas
from models.clv.fitting import DEFAULT_PENALIZER_GRID, fit_purchase_model, fit_spend_model
from models.clv.inputs import PURCHASE_PARAMS, SPEND_PARAMS, check_model, rfm_arrays, unique_rows
from models.clv.report import FitReport

MIN_REPEAT_CUSTOMERS = 30
FORMAT = "churn-clv/clv-model"
FORMAT_VERSION = 1


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


def _discounted_purchases(model: str, params: dict[str, float], x: np.ndarray, age: np.ndarray, month: float,
                          months: int, rate: float) -> np.ndarray:
    """Sum over months i of (E[purchases by month i] - E[by month i-1]) / (1 + rate)^i, given alive."""
    cumulative = np.stack([formulas.alive_expected(model, params, x, age, i * month)
                           for i in range(months + 1)])
    discount = (1.0 + rate) ** -np.arange(1, months + 1)
    return (np.diff(cumulative, axis=0) * discount[:, None]).sum(axis=0)


@dataclass(frozen=True)
class ClvModel:
    """A fitted purchase model (bgnbd | pareto_nbd | mbgnbd) and Gamma-Gamma spend model."""

    time_unit_days: float
    purchases: FitReport
    spend: FitReport

    @property
    def model(self) -> str:
        """The purchase model's name."""
        return self.purchases.model

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
        model, params = self.model, self.purchases.params
        t = horizon_days / self.time_unit_days
        month = days_per_month / self.time_unit_days

        (ux, utx, uage), row3, _ = unique_rows(x, tx, age)
        alive = formulas.p_alive(model, params, ux, utx, uage)[row3]
        (px, page), row2, _ = unique_rows(x, age)
        expected = formulas.alive_expected(model, params, px, page, t)[row2]
        log_p0 = formulas.alive_log_p_zero(model, params, px, page, t)[row2]
        per_alive = _discounted_purchases(model, params, px, page, month, horizon_months,
                                          discount_rate_monthly)[row2]
        aov = formulas.expected_spend(self.spend.params, x, m)

        outputs = {
            "p_alive": np.clip(alive, 0.0, 1.0),
            f"expected_purchases_{horizon_days}d": np.maximum(alive * expected, 0.0),
            f"p_no_purchase_{horizon_days}d": np.clip(1.0 - alive * -np.expm1(log_p0), 0.0, 1.0),
            "expected_aov": np.maximum(aov, 0.0),
            f"clv_{horizon_months}m": np.maximum(alive * aov * per_alive, 0.0),
        }
        bad = [name for name, values in outputs.items() if not np.isfinite(values).all()]
        if bad:
            raise FloatingPointError(f"non-finite CLV outputs in {bad}; parameters {params}, "
                                     f"{self.spend.params}")
        ids = rfm["customer_id"].reset_index(drop=True)
        return pd.DataFrame({"customer_id": ids, **outputs}, copy=False)

    def to_dict(self) -> dict[str, Any]:
        """Fitted parameters and fit reports as a JSON-able dict (exact: floats survive json round trips)."""
        return {"format": FORMAT, "version": FORMAT_VERSION, "model": self.model,
                "time_unit_days": self.time_unit_days,
                "purchases": self.purchases.to_dict(), "spend": self.spend.to_dict()}

    @classmethod
    def from_params(cls, model: str, purchase_params: dict[str, float], spend_params: dict[str, float], *,
                    time_unit_days: float) -> ClvModel:
        """A model with given parameters (e.g. published ones), with empty fit reports."""
        check_model(model)
        _require_positive("time_unit_days", time_unit_days)
        purchases, spend = dict(purchase_params), dict(spend_params)
        _check_params(purchases, PURCHASE_PARAMS[model])
        _check_params(spend, SPEND_PARAMS)

        def report(name: str, params: dict[str, float]) -> FitReport:
            """A report for parameters that were not fitted here."""
            return FitReport(name, {k: float(v) for k, v in params.items()}, None, 0.0, [], 0, 0, 0.0,
                             ["parameters given, not fitted"])
        return cls(float(time_unit_days), report(model, purchases), report("gamma_gamma", spend))

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ClvModel:
        """Rebuild a model saved with to_dict."""
        if data.get("format") != FORMAT or data.get("version") != FORMAT_VERSION:
            found = f"{data.get('format')!r} v{data.get('version')!r}"
            raise ValueError(f"not a {FORMAT} v{FORMAT_VERSION} dict: {found}")
        purchases, spend = FitReport.from_dict(data["purchases"]), FitReport.from_dict(data["spend"])
        _check_params(purchases.params, PURCHASE_PARAMS[check_model(purchases.model)])
        _check_params(spend.params, SPEND_PARAMS)
        return cls(float(data["time_unit_days"]), purchases, spend)


def fit_clv(rfm: pd.DataFrame, model: str = "bgnbd", *, time_unit_days: float,
            penalizer_grid: Sequence[float] = DEFAULT_PENALIZER_GRID, seed: int = 0) -> ClvModel:
    """Fit the purchase model on all customers and Gamma-Gamma on repeat buyers with positive spend."""
    check_model(model)
    _require_positive("time_unit_days", time_unit_days)
    cols = rfm_arrays(rfm)
    x, m = cols["frequency"], cols["monetary_value"]
    n_repeat = int((x > 0).sum())
    if n_repeat < MIN_REPEAT_CUSTOMERS:
        raise ValueError(f"only {n_repeat} repeat customers (frequency > 0); at least {MIN_REPEAT_CUSTOMERS} "
                         "are needed to fit a CLV model")
    n_paying = int(((x > 0) & (m > 0)).sum())
    if n_paying == 0:
        raise ValueError("all-zero spend: no repeat customer has monetary_value > 0; "
                         "Gamma-Gamma cannot be fit")
    if n_paying < MIN_REPEAT_CUSTOMERS:
        raise ValueError(f"only {n_paying} repeat customers with monetary_value > 0; at least "
                         f"{MIN_REPEAT_CUSTOMERS} are needed to fit Gamma-Gamma")
    purchases = fit_purchase_model(model, x, cols["recency"], cols["T"], penalizer_grid, seed)
    spend = fit_spend_model(x, m, penalizer_grid, seed)
    return ClvModel(float(time_unit_days), purchases, spend)
