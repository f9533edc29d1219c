"""Stage `metrics`: reports/metrics.json, the few headline numbers `dvc exp show` / `dvc metrics diff` compare.

The detailed reports (ingest, churn, clv, score .json) stay for the HTML report; this file is the only DVC
metric, so an experiment table has about twenty columns instead of hundreds. No wall-clock values.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from pipelines.catalog import Catalog, dataset

SOURCES = {"ingest": "ingest_report", "churn": "churn_report", "clv": "clv_report", "score": "score_report"}  # catalog
CHURN_METRICS = ("roc_auc", "pr_auc", "log_loss", "brier", "ece")
DELTAS = ("roc_auc", "log_loss", "ece")  # champion minus the best baseline on the same rows (c_e)
CLV_METRICS = (("purchases", "mae"), ("purchases", "total_error_pct"), ("revenue", "mae"),
               ("revenue", "total_error_pct"))
DIGITS = 6  # headline precision: differences below 1e-6 are noise, not a change


def number(value: Any) -> float | int | None:
    """A finite number rounded to DIGITS (ints kept), else None."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int):
        return value
    value = float(value)
    return round(value, DIGITS) if value == value and abs(value) != float("inf") else None


def churn_block(churn: dict[str, Any]) -> dict[str, Any]:
    """Champion name, its c_e metrics and deltas vs the best baseline, evaluation rows and churn rate."""
    model = churn.get("model") or {}
    rows = {r["metric"]: r for r in churn.get("comparison") or []}
    block: dict[str, Any] = {"champion": (churn.get("champion") or {}).get("name")}
    block.update({m: number(model.get(m)) for m in CHURN_METRICS})
    block.update({f"{m}_vs_best_baseline": number((rows.get(m) or {}).get("delta")) for m in DELTAS})
    block.update({"eval_rows": number(churn.get("eval_rows")), "eval_churn_rate": number(churn.get("eval_churn_rate"))})
    return block


def clv_block(clv: dict[str, Any]) -> dict[str, Any]:
    """The chosen CLV model and its holdout errors, interval coverage and customer counts."""
    chosen = (clv.get("champion") or {}).get("chosen") or "btyd"
    errors = clv.get(chosen) or {}
    block: dict[str, Any] = {"model": clv.get("model"), "chosen": chosen}
    block.update({f"{part}_{m}": number((errors.get(part) or {}).get(m)) for part, m in CLV_METRICS})
    block["revenue_interval_coverage"] = number((clv.get("coverage") or {}).get("revenue_predictive"))
    block.update({"customers": number(clv.get("customers")), "repeat_customers": number(clv.get("repeat_customers"))})
    return block


def headline(reports: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """The compact metrics from the detailed reports (a missing report gives an empty block)."""
    ingest, score = reports.get("ingest") or {}, reports.get("score") or {}
    tx = ingest.get("transactions") or {}
    return {
        "ingest": {"rows_read": number(tx.get("rows_read")), "rows_kept": number(tx.get("rows_kept")),
                   "customers": number(tx.get("customers"))},
        "churn": churn_block(reports.get("churn") or {}),
        "clv": clv_block(reports.get("clv") or {}),
        "score": {"rows_out": number(score.get("rows_out")),
                  "high_risk": number((score.get("risk_bands") or {}).get("high"))},
    }


def numeric_leaves(tree: Any) -> int:
    """How many numbers a JSON tree holds (booleans are not numbers)."""
    if isinstance(tree, dict):
        return sum(numeric_leaves(v) for v in tree.values())
    if isinstance(tree, list):
        return sum(numeric_leaves(v) for v in tree)
    return int(isinstance(tree, int | float) and not isinstance(tree, bool))


def run(root: Path | None = None) -> dict[str, Any]:
    """Read the stage reports under root and write reports/metrics.json; returns it."""
    cat = Catalog(root)
    reports = {name: json.loads(cat.require(entry).read_text(encoding="utf-8")) for name, entry in SOURCES.items()}
    metrics = headline(reports)
    cat.write("metrics", metrics)
    return metrics


def main() -> int:
    """Entry point: `python -m pipelines.metrics`."""
    try:
        metrics = run()
    except (FileNotFoundError, json.JSONDecodeError) as exc:
        print(f"metrics: error: {exc}", file=sys.stderr)
        return 2
    print(f"metrics: {numeric_leaves(metrics)} numbers -> {dataset('metrics').location}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
