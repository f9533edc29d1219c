"""Campaign effects (effect.py), uplift models (uplift.py), and the measured save rates the action plan reads."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pandas as pd

from models.scoring.schema import Column


def effect_columns() -> list[Column]:
    """The columns of the warehouse table `campaign_effects` after the batch key (one row per campaign)."""
    rate = "share 0-1"
    return [Column("campaign", "text", "name", "Campaign name as in the campaigns table."),
            Column("status", "text", "label", "measured | too_small | horizon_open (why there is no figure)."),
            Column("first_sent_at", "text", "ISO-8601 instant", "First send of the campaign (UTC)."),
            Column("campaign_horizon_days", "integer", "days", "Outcome window after sent_at."),
            Column("n_treatment", "integer", "customers", "Customers in the treatment group."),
            Column("n_control", "integer", "customers", "Customers in the control group."),
            *[Column(name, "decimal", rate, meaning, 4, nullable=True) for name, meaning in (
                ("purchase_rate_treatment", "Share of treated customers with a purchase in the horizon."),
                ("purchase_rate_control", "Share of control customers with a purchase in the horizon."),
                ("purchase_uplift", "Treatment minus control purchase rate."),
                ("purchase_uplift_low", "Lower bound of its 95% interval (campaigns.ci_method)."),
                ("purchase_uplift_high", "Upper bound of its 95% interval."),
                ("save_rate", "1 - churn rate treated / churn rate control."),
                ("save_rate_low", "Lower bound of its 95% interval (Katz log risk ratio)."),
                ("save_rate_high", "Upper bound of its 95% interval."))]]


def measured_save_rates(report: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """Per measured campaign of reports/campaigns.json: save rate (1 - churn_t / churn_c), its CI and counts."""
    return {c["campaign"]: {"save_rate": c["save_rate"], "save_rate_ci": c["save_rate_ci"],
                            "purchase_uplift": c["purchase_uplift"], "purchase_uplift_ci": c["purchase_uplift_ci"],
                            "churn_rate_control": c["churn_rate_control"], "n_treatment": c["n_treatment"],
                            "n_control": c["n_control"], "horizon_days": report["horizon_days"],
                            "status": c["status"]}
            for c in report.get("campaigns", []) if c["status"] == "measured" and c["save_rate"] is not None}


def measured_save_rate(report: Mapping[str, Any] | None, campaign: str) -> float | None:
    """The measured save rate of a campaign, clipped at 0 (an action that harms saves nobody); None if unmeasured."""
    if not report:
        return None
    found = measured_save_rates(report).get(campaign)
    return None if found is None else max(0.0, float(found["save_rate"]))


def effects_table(report: Mapping[str, Any]) -> pd.DataFrame:
    """One row per campaign in the effect_columns layout (empty when the data has no campaigns)."""
    names = [c.name for c in effect_columns()]
    rows = []
    for c in report.get("campaigns", []):
        low, high = c.get("purchase_uplift_ci") or (None, None)
        s_low, s_high = c.get("save_rate_ci") or (None, None)
        rows.append({**{k: c.get(k) for k in names if k in c}, "campaign_horizon_days": report["horizon_days"],
                     "purchase_uplift_low": low, "purchase_uplift_high": high,
                     "save_rate_low": s_low, "save_rate_high": s_high})
    return pd.DataFrame(rows, columns=names)
