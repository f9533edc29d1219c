"""reports/metrics.json: at most 25 numbers with fixed keys, from the stage reports, no wall-clock values."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import yaml

from pipelines import metrics
from pipelines.catalog import dataset

ROOT = Path(__file__).resolve().parents[2]
KEYS = {
    "ingest": {"rows_read", "rows_kept", "customers"},
    "churn": {"champion", "roc_auc", "pr_auc", "log_loss", "brier", "ece", "roc_auc_vs_best_baseline",
              "log_loss_vs_best_baseline", "ece_vs_best_baseline", "eval_rows", "eval_churn_rate"},
    "clv": {"model", "chosen", "purchases_mae", "purchases_total_error_pct", "revenue_mae", "revenue_total_error_pct",
            "revenue_interval_coverage", "customers", "repeat_customers"},
    "score": {"rows_out", "high_risk"},
}


def tiny_reports() -> dict:
    """Hand-made stage reports in the shapes the stages write."""
    return {
        "ingest": {"transactions": {"rows_read": 10, "rows_kept": 9, "customers": 4}, "seconds": 1.5},
        "churn": {"model": {"roc_auc": 0.81234567891, "pr_auc": 0.9, "log_loss": 0.41, "brier": 0.13, "ece": 0.02},
                  "comparison": [{"metric": "roc_auc", "delta": 0.01}, {"metric": "log_loss", "delta": -0.002},
                                 {"metric": "ece", "delta": 0.001}, {"metric": "lift_top10", "delta": 0.5}],
                  "champion": {"name": "lightgbm"}, "eval_rows": 100, "eval_churn_rate": 0.77,
                  "timings": {"refit": 3.0}, "seconds": 400.0},
        "clv": {"model": "bgnbd", "champion": {"chosen": "btyd"}, "customers": 100, "repeat_customers": 40,
                "btyd": {"purchases": {"mae": 0.5, "total_error_pct": -2.8}, "revenue": {"mae": 21.1,
                                                                                      "total_error_pct": 1.0}},
                "ml": {"purchases": {"mae": 9.0}}, "coverage": {"revenue_predictive": 0.94}, "seconds": 60.0},
        "score": {"rows_out": 4, "risk_bands": {"high": 3, "low": 1}, "scored_at": "2026-01-01T00:00:00"},
    }


def test_headline_has_the_keys_and_at_most_25_numbers() -> None:
    out = metrics.headline(tiny_reports())
    assert {k: set(v) for k, v in out.items()} == KEYS
    assert metrics.numeric_leaves(out) <= 25
    assert out["churn"]["roc_auc"] == 0.812346  # rounded: last-digit noise is not a change
    assert out["churn"]["log_loss_vs_best_baseline"] == -0.002 and out["clv"]["revenue_mae"] == 21.1
    assert "seconds" not in json.dumps(out) and "scored_at" not in json.dumps(out)


def test_numeric_leaves_counts_numbers_only() -> None:
    assert metrics.numeric_leaves({"a": 1, "b": [2.5, "x", True], "c": {"d": None, "e": 3}}) == 3


def test_run_on_the_committed_reports(tmp_path: Path) -> None:
    for name in metrics.SOURCES.values():
        rel = dataset(name).location
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(ROOT / rel, tmp_path / rel)
    out = metrics.run(tmp_path)
    assert json.loads((tmp_path / "reports/metrics.json").read_text()) == out
    assert metrics.numeric_leaves(out) <= 25
    assert 0.5 < out["churn"]["roc_auc"] < 1 and out["ingest"]["rows_read"] > 0


def test_metrics_json_is_the_only_dvc_metric() -> None:
    stages = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]
    declared = [next(iter(m)) if isinstance(m, dict) else m for s in stages.values() for m in s.get("metrics", [])]
    assert declared == ["reports/metrics.json"]
