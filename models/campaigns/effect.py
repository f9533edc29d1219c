"""Campaign effect on purchase and churn in the horizon after sent_at: treatment vs control rates with CIs.

Interval for the difference of two independent proportions: Newcombe's hybrid score interval (Newcombe
1998, method 10; Wilson intervals of each rate combined by square-and-add). Chosen over Wald because
campaign response rates are often small or near 1 and groups small, where Wald undercovers and collapses to
zero width at 0 or n successes; Newcombe stays inside [-1, 1] and is close to nominal at every rate.
`method="wald"` gives the textbook interval for comparison. Save rate = relative churn reduction
1 - churn_t / churn_c with the Katz log interval of the risk ratio.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from datetime import date, timedelta
from typing import Any

import duckdb
import pandas as pd
from scipy.stats import norm

METHODS = ("newcombe", "wald")
PURCHASE = "(t.amount >= 0 OR t.amount IS NULL)"


def z_value(level: float) -> float:
    """The two-sided standard normal quantile of a confidence level."""
    if not 0 < level < 1:
        raise ValueError(f"confidence level must lie in (0, 1), got {level!r}")
    return float(norm.ppf(0.5 + level / 2))


def wilson(successes: int, n: int, level: float = 0.95) -> tuple[float, float]:
    """Wilson score interval of a proportion."""
    if n <= 0:
        raise ValueError("a proportion needs n >= 1")
    z, p = z_value(level), successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z / (1 + z * z / n) * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return max(0.0, centre - half), min(1.0, centre + half)


def diff_ci(x1: int, n1: int, x0: int, n0: int, level: float = 0.95,
            method: str = "newcombe") -> tuple[float, float]:
    """CI of p1 - p0 (x1/n1 - x0/n0): Newcombe hybrid score (default) or Wald."""
    if method not in METHODS:
        raise ValueError(f"campaigns.ci_method must be one of {', '.join(METHODS)}, got {method!r}")
    p1, p0 = x1 / n1, x0 / n0
    d = p1 - p0
    if method == "wald":
        half = z_value(level) * math.sqrt(p1 * (1 - p1) / n1 + p0 * (1 - p0) / n0)
        return d - half, d + half
    l1, u1 = wilson(x1, n1, level)
    l0, u0 = wilson(x0, n0, level)
    return d - math.sqrt((p1 - l1) ** 2 + (u0 - p0) ** 2), d + math.sqrt((u1 - p1) ** 2 + (p0 - l0) ** 2)


def save_rate_ci(churn_t: int, n_t: int, churn_c: int, n_c: int,
                 level: float = 0.95) -> tuple[float | None, float | None, float | None]:
    """Save rate 1 - RR (RR = churn rate treated / control) and its Katz log-RR interval; None if undefined."""
    if churn_c == 0:
        return None, None, None
    rr = (churn_t / n_t) / (churn_c / n_c)
    if churn_t == 0:
        return 1.0 - rr, None, None
    se = math.sqrt(1 / churn_t - 1 / n_t + 1 / churn_c - 1 / n_c)
    z = z_value(level)
    return 1.0 - rr, 1.0 - rr * math.exp(z * se), 1.0 - rr * math.exp(-z * se)


@dataclass(frozen=True)
class Effect:
    """One campaign's treatment vs control comparison (purchase = any purchase in (sent_at, sent_at + H])."""

    campaign: str
    status: str
    reason: str | None
    first_sent_at: str | None
    last_sent_at: str | None
    horizon_end: str | None
    n_treatment: int
    n_control: int
    purchasers_treatment: int
    purchasers_control: int
    purchase_rate_treatment: float | None = None
    purchase_rate_control: float | None = None
    purchase_uplift: float | None = None
    purchase_uplift_ci: tuple[float, float] | None = None
    churn_rate_treatment: float | None = None
    churn_rate_control: float | None = None
    churn_change: float | None = None
    churn_change_ci: tuple[float, float] | None = None
    save_rate: float | None = None
    save_rate_ci: tuple[float | None, float | None] | None = None
    revenue_per_customer_treatment: float | None = None
    revenue_per_customer_control: float | None = None
    revenue_uplift: float | None = None
    revenue_uplift_ci: tuple[float, float] | None = None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (intervals as [low, high])."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}


def outcomes(con: duckdb.DuckDBPyConnection, horizon_days: int) -> pd.DataFrame:
    """Per exposure (views `campaigns`, `transactions`): purchases and net revenue in (sent_at, sent_at + H]."""
    if horizon_days < 1:
        raise ValueError(f"campaigns.horizon_days must be >= 1, got {horizon_days}")
    return con.sql(f"""
        SELECT c.customer_id, c.campaign, c.sent_at, c."group",
               count(t.ts) FILTER (WHERE {PURCHASE}) AS purchases,
               CASE WHEN count(t.ts) = count(t.amount) THEN coalesce(sum(t.amount), 0.0) END AS revenue
        FROM campaigns c
        LEFT JOIN transactions t
          ON t.customer_id = c.customer_id AND t.ts > c.sent_at
         AND t.ts <= c.sent_at + INTERVAL {int(horizon_days)} DAY
        GROUP BY ALL ORDER BY c.campaign, c.customer_id""").df()


def _mean_diff_ci(a: pd.Series, b: pd.Series, level: float) -> tuple[float, tuple[float, float]]:
    """Difference of means a - b with a normal (Welch) interval."""
    d = float(a.mean() - b.mean())
    half = z_value(level) * math.sqrt(a.var(ddof=1) / len(a) + b.var(ddof=1) / len(b))
    return d, (d - half, d + half)


def campaign_effect(rows: pd.DataFrame, campaign: str, data_end: date, horizon_days: int,
                    min_group_size: int = 30, level: float = 0.95, method: str = "newcombe") -> Effect:
    """The effect of one campaign from its outcome rows; status says why no figure when there is none."""
    treated, control = rows[rows["group"] == "treatment"], rows[rows["group"] == "control"]
    first, last = pd.Timestamp(rows["sent_at"].min()), pd.Timestamp(rows["sent_at"].max())
    horizon_end = (last + timedelta(days=horizon_days)).date()
    bought_t, bought_c = int((treated["purchases"] > 0).sum()), int((control["purchases"] > 0).sum())
    base = {"campaign": campaign, "first_sent_at": first.isoformat(), "last_sent_at": last.isoformat(),
            "horizon_end": horizon_end.isoformat(), "n_treatment": len(treated), "n_control": len(control),
            "purchasers_treatment": bought_t, "purchasers_control": bought_c}
    if horizon_end > data_end:
        return Effect(status="horizon_open", reason=f"the horizon ends {horizon_end}, after the data's last day "
                      f"{data_end}: outcomes are not complete", **base)
    small = min(len(treated), len(control))
    if small < min_group_size:
        return Effect(status="too_small", reason=f"{small} customers in the smaller group, fewer than "
                      f"campaigns.min_group_size = {min_group_size}", **base)
    n_t, n_c = len(treated), len(control)
    p_t, p_c = bought_t / n_t, bought_c / n_c
    low, high = diff_ci(bought_t, n_t, bought_c, n_c, level, method)
    save, save_low, save_high = save_rate_ci(n_t - bought_t, n_t, n_c - bought_c, n_c, level)
    revenue: dict[str, Any] = {}
    if min(n_t, n_c) >= 2 and treated["revenue"].notna().all() and control["revenue"].notna().all():
        d, ci = _mean_diff_ci(treated["revenue"], control["revenue"], level)
        revenue = {"revenue_per_customer_treatment": float(treated["revenue"].mean()),
                   "revenue_per_customer_control": float(control["revenue"].mean()),
                   "revenue_uplift": d, "revenue_uplift_ci": ci}
    return Effect(status="measured", reason=None, purchase_rate_treatment=p_t, purchase_rate_control=p_c,
                  purchase_uplift=p_t - p_c, purchase_uplift_ci=(low, high), churn_rate_treatment=1 - p_t,
                  churn_rate_control=1 - p_c, churn_change=p_c - p_t, churn_change_ci=(-high, -low),
                  save_rate=save, save_rate_ci=(save_low, save_high), **revenue, **base)


def effects(rows: pd.DataFrame, data_end: date, horizon_days: int, min_group_size: int = 30,
            level: float = 0.95, method: str = "newcombe") -> list[Effect]:
    """campaign_effect for every campaign in the outcome rows, in name order."""
    return [campaign_effect(part, str(name), data_end, horizon_days, min_group_size, level, method)
            for name, part in rows.groupby("campaign", sort=True)]
