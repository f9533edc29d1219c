"""Campaign effects (effect.py), uplift models (uplift.py), and the measured save rates the action plan reads."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pandas as pd

EFFECT_COLUMNS = ("campaign", "status", "first_sent_at", "horizon_days", "n_treatment", "n_control",
                  "purchase_rate_treatment", "purchase_rate_control", "purchase_uplift", "purchase_uplift_low",
                  "purchase_uplift_high", "save_rate", "save_rate_low", "save_rate_high")


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
    """One row per campaign (warehouse table `campaign_effects`), empty when the data has no campaigns."""
    rows = []
    for c in report.get("campaigns", []):
        low, high = c.get("purchase_uplift_ci") or (None, None)
        s_low, s_high = c.get("save_rate_ci") or (None, None)
        rows.append({**{k: c.get(k) for k in EFFECT_COLUMNS if k in c}, "horizon_days": report["horizon_days"],
                     "purchase_uplift_low": low, "purchase_uplift_high": high,
                     "save_rate_low": s_low, "save_rate_high": s_high})
    return pd.DataFrame(rows, columns=list(EFFECT_COLUMNS))
