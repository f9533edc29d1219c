"""Champion choice on validation predictions: simpler models win without evidence; never worse than baselines."""

from __future__ import annotations

import numpy as np
import pytest

from models.churn.champion import choose, group_bootstrap_deltas

ORDER = ["bgnbd", "log_rfm", "lightgbm", "lightgbm_prior_bgnbd"]
BASELINES = ["bgnbd", "log_rfm"]


def _labels(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """True churn probabilities and labels drawn from them."""
    rng = np.random.default_rng(seed)
    p = rng.uniform(0.05, 0.95, n)
    return p, (rng.random(n) < p).astype(float)


def test_a_clearly_better_model_replaces_the_baselines() -> None:
    p, y = _labels(4000)
    preds = {"bgnbd": np.full(y.size, y.mean()), "log_rfm": 0.5 * p + 0.25, "lightgbm": p}
    choice = choose(y, preds, ORDER, BASELINES, np.arange(y.size), n_boot=100, seed=1)
    assert choice.name == "lightgbm"
    assert choice.validation["lightgbm"]["n"] == y.size
    margin = choice.margin_vs_best_baseline["log_loss"]
    assert margin["best_baseline"] == "log_rfm" and margin["delta"] < 0 and margin["delta_ci95"][1] < 0
    assert any(s.startswith("lightgbm replaces log_rfm") for s in choice.steps)


def test_a_complex_model_within_noise_keeps_the_simpler_baseline() -> None:
    p, y = _labels(300)
    rng = np.random.default_rng(5)
    noisy = np.clip(p + rng.normal(0, 0.01, y.size), 0.01, 0.99)  # same model, a hair of noise
    preds = {"bgnbd": np.full(y.size, y.mean()), "log_rfm": p, "lightgbm": noisy}
    choice = choose(y, preds, ORDER, BASELINES, np.arange(y.size), n_boot=100, seed=1)
    assert choice.name == "log_rfm"
    assert "no lower log loss beyond validation noise" in choice.steps[-1]
    loose = choose(y, preds, ORDER, BASELINES, np.arange(y.size), min_evidence=False, n_boot=100, seed=1)
    assert loose.name in {"log_rfm", "lightgbm"}  # point estimates only


def test_never_ships_a_model_with_lower_auc_than_the_best_baseline() -> None:
    p, y = _labels(4000)
    rank_only = np.clip(p, 0.01, 0.99)
    calibrated_but_flat = np.where(p > 0.5, 0.7, 0.3)  # a lower-AUC model
    preds = {"bgnbd": rank_only * 0.5 + 0.25, "log_rfm": calibrated_but_flat, "lightgbm": calibrated_but_flat * 0.9}
    choice = choose(y, preds, ORDER, BASELINES, np.arange(y.size), min_evidence=False, n_boot=0)
    best_auc = max(choice.validation[b]["auc"] for b in BASELINES)
    assert choice.validation[choice.name]["auc"] >= best_auc or choice.name in BASELINES


def test_choice_needs_a_baseline() -> None:
    p, y = _labels(100)
    with pytest.raises(ValueError, match="no baseline"):
        choose(y, {"lightgbm": p}, ORDER, BASELINES, np.arange(y.size))


def test_grouped_bootstrap_resamples_whole_customers() -> None:
    # two customers, two rows each; a resample holds 0, 2 or 4 rows of each customer, never 1 or 3
    y = np.array([1.0, 0.0, 1.0, 0.0])
    groups = np.array(["a", "a", "b", "b"])
    a = np.array([0.9, 0.1, 0.6, 0.4])
    b = np.full(4, 0.5)
    deltas = group_bootstrap_deltas(y, a, b, groups, "log_loss", 50, seed=0)
    from models import metrics

    whole = {
        metrics.log_loss(y[r], a[r]) - metrics.log_loss(y[r], b[r])
        for r in ([0, 1, 0, 1], [2, 3, 2, 3], [0, 1, 2, 3])
    }
    assert all(any(np.isclose(d, w) for w in whole) for d in deltas)


def test_baselines_tied_on_log_loss_start_from_the_better_ranking_one() -> None:
    p, y = _labels(3000)
    rng = np.random.default_rng(2)
    flat = 0.5 * p + 0.25  # calibrated-ish but compressed: same ranking as p
    shuffled = flat.copy()
    worse_rank = rng.random(y.size) < 0.3
    shuffled[worse_rank] = rng.permutation(flat[worse_rank])  # similar log loss, worse ranking
    preds = {"bgnbd": shuffled, "log_rfm": flat}
    choice = choose(y, preds, ["bgnbd", "log_rfm"], ["bgnbd", "log_rfm"], np.arange(y.size), n_boot=100, seed=0)
    assert choice.validation["log_rfm"]["auc"] > choice.validation["bgnbd"]["auc"]
    assert choice.name == "log_rfm"
