"""models/metrics.py on hand-computed cases, and the model-vs-best-baseline comparison."""

from __future__ import annotations

import math

import numpy as np
import pytest

from models import metrics
from models.churn.evaluate import comparison, curve_tables, paired_bootstrap


def test_lift_and_capture_at_top_ten_percent() -> None:
    # 20 customers, 5 churners; the top 10% = 2 rows (p = .9, .8) hold 1 churner.
    p = np.linspace(0.9, 0.0, 20)
    y = np.zeros(20)
    y[[0, 5, 10, 15, 19]] = 1
    lift, capture = metrics.lift_and_capture(y, p, 0.10)
    assert capture == pytest.approx(1 / 5)
    assert lift == pytest.approx((1 / 2) / (5 / 20))  # precision 0.5 over base rate 0.25 = 2.0
    lift20, capture20 = metrics.lift_and_capture(y, p, 0.20)  # top 4 rows hold 1 churner
    assert (lift20, capture20) == (pytest.approx(1.0), pytest.approx(0.2))


def test_top_k_rounds_up_and_keeps_one_row() -> None:
    assert metrics.top_k(10, 0.1) == 1 and metrics.top_k(11, 0.1) == 2 and metrics.top_k(3, 0.1) == 1
    assert metrics.top_k(100, 0.2) == 20


def test_ece_by_hand() -> None:
    # bin [0.1,0.2): p=.1,.1 observed 0,1 -> |0.5-0.1|; bin [0.9,1]: p=.9,.9 observed 1,1 -> |1-0.9|
    y = np.array([0, 1, 1, 1])
    p = np.array([0.1, 0.1, 0.9, 0.9])
    assert metrics.ece(y, p, n_bins=10) == pytest.approx(0.5 * 0.4 + 0.5 * 0.1)


def test_log_loss_brier_auc_by_hand() -> None:
    y, p = np.array([1, 0]), np.array([0.8, 0.4])
    assert metrics.log_loss(y, p) == pytest.approx(-(math.log(0.8) + math.log(0.6)) / 2)
    assert metrics.brier(y, p) == pytest.approx((0.04 + 0.16) / 2)
    assert metrics.roc_auc(y, p) == 1.0 and metrics.pr_auc(y, p) == 1.0
    assert math.isnan(metrics.roc_auc([1, 1], [0.2, 0.3]))


def test_bad_inputs_are_rejected() -> None:
    with pytest.raises(ValueError, match="differ in length"):
        metrics.log_loss([1, 0], [0.5])
    with pytest.raises(ValueError, match="within \\[0, 1\\]"):
        metrics.brier([1], [1.5])
    with pytest.raises(ValueError, match="0 or 1"):
        metrics.ece([2], [0.5])


def test_curves_end_where_they_must() -> None:
    rng = np.random.default_rng(0)
    y = (rng.random(500) < 0.3).astype(float)
    p = np.clip(y * 0.3 + rng.random(500) * 0.7, 0, 1)
    gains = metrics.gains_table(y, p)
    assert gains["capture"].iloc[-1] == pytest.approx(1.0) and gains["capture"].is_monotonic_increasing
    roc = metrics.roc_table(y, p)
    assert roc["tpr"].iloc[0] >= 0 and roc["tpr"].iloc[-1] == 1.0
    assert metrics.pr_table(y, p)["precision"].is_monotonic_decreasing
    tables = curve_tables(y, {"a": p, "b": 1 - p})
    assert set(tables) == {"roc", "pr", "gains", "lift", "reliability"}
    assert list(tables["roc"].columns) == ["fpr", "a", "b"]


def test_comparison_picks_the_best_baseline_per_metric_direction() -> None:
    results = {
        "lightgbm": {"roc_auc": 0.80, "log_loss": 0.42},
        "lr": {"roc_auc": 0.81, "log_loss": 0.45},
        "btyd": {"roc_auc": 0.78, "log_loss": 0.41},
    }
    rows = {r["metric"]: r for r in comparison(results, "lightgbm", ["lr", "btyd"])}
    assert rows["roc_auc"]["best_baseline"] == "lr" and rows["roc_auc"]["delta"] == pytest.approx(-0.01)
    assert rows["log_loss"]["best_baseline"] == "btyd" and not rows["log_loss"]["model_better"]


def test_paired_bootstrap_interval_contains_zero_for_identical_models() -> None:
    rng = np.random.default_rng(1)
    y = (rng.random(300) < 0.5).astype(float)
    p = rng.random(300)
    assert paired_bootstrap(y, p, p, "roc_auc", 50, 0) == (0.0, 0.0)
