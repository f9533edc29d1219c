"""Holdout report of a purchase-only CLV model (data without amounts): purchase metrics, no spend or revenue."""

from __future__ import annotations

from typing import Any

import pandas as pd

from models.clv import evaluation as ev
from models.clv.inputs import RFM_COLUMNS

NO_SPEND = ("the transactions have no amounts (data.columns.transactions.amount: null): only the purchase model "
            "is fitted; spend, revenue and CLV figures, their intervals and the revenue challenger are skipped")


def purchases_evaluation(frame: pd.DataFrame, point: pd.DataFrame, horizon_days: int) -> tuple[dict[str, Any],
                                                                                                  pd.DataFrame]:
    """Report sections (purchase metrics, conditional expectations) and per-customer predictions, row-aligned."""
    h = horizon_days
    purchases = point[f"expected_purchases_{h}d"].to_numpy(dtype=float)
    actual = frame["future_purchases"].to_numpy(dtype=float)
    table = ev.conditional_expectation(frame["frequency"], purchases, actual)
    body = {
        "btyd": {"purchases": ev.regression_metrics(actual, purchases)},
        "conditional_expectation": {row.label: {"customers": int(row.customers), "predicted": row.predicted,
                                                "actual": row.actual} for row in table.itertuples()},
        "spend": {"available": False, "reason": NO_SPEND},
    }
    keys = [c for c in ("customer_id", "cutoff", *RFM_COLUMNS[1:]) if c in frame.columns and frame[c].notna().any()]
    keep = [c for c in point.columns if c != "customer_id" and point[c].notna().any()]
    predictions = pd.concat([frame[keys].reset_index(drop=True), point[keep].reset_index(drop=True)], axis=1)
    predictions["future_purchases"] = actual
    return body, predictions


def without_challenger(frame: pd.DataFrame, point: pd.DataFrame, bounds: pd.DataFrame, horizon_days: int,
                       horizon_months: int) -> tuple[dict[str, Any], pd.DataFrame]:
    """ev.holdout_evaluation's sections for the BTYD side alone (no ML challenger could be fitted)."""
    h = horizon_days
    own = {"purchases": point[f"expected_purchases_{h}d"].to_numpy(dtype=float)}
    own["revenue"] = own["purchases"] * point["expected_aov"].to_numpy(dtype=float)
    body, predictions = ev.holdout_evaluation(frame, point, bounds, own, h, horizon_months)  # ML side = BTYD, dropped
    body.pop("ml")
    body["comparison"] = {k: {"btyd": v["btyd"], "ml": None} for k, v in body["comparison"].items()}
    for row in body["conditional_expectation"].values():
        row.pop("ml_predicted", None)
    return body, predictions.drop(columns=[c for c in predictions.columns if c.startswith("ml_")])
