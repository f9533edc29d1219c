"""Uplift evaluation: Qini curve and coefficient, uplift at k, customer split, T-learner on a planted effect."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from models.campaigns import effects_table, measured_save_rate
from models.campaigns.uplift import (
    TARGET,
    TREATED,
    customer_split,
    fit_two_model,
    qini_coefficient,
    qini_curve,
    uplift_at_k,
)


def test_qini_curve_by_hand() -> None:
    # sorted by score: (t, y) = (1,1) (0,0) (1,1) (0,1)
    y, t, s = np.array([1, 0, 1, 1]), np.array([1, 0, 1, 0], bool), np.array([4.0, 3.0, 2.0, 1.0])
    # n=1: 1 - 0; n=2: 1 - 0*1/1; n=3: 2 - 0*2/1; n=4: 2 - 1*2/2
    assert qini_curve(y, t, s).tolist() == [1.0, 1.0, 2.0, 1.0]
    # mean of q(n) - n/4 * q(4) = (0.75 + 0.5 + 1.25 + 0) / 4, over N_t = 2 treated
    assert qini_coefficient(y, t, s) == pytest.approx(2.5 / 4 / 2)


def test_perfect_ordering_beats_reversed() -> None:
    rng = np.random.default_rng(1)
    n = 4_000
    responsive = rng.random(n) < 0.5
    t = rng.random(n) < 0.5
    y = (rng.random(n) < 0.1 + 0.3 * (responsive & t)).astype(int)
    good, bad = responsive.astype(float), -responsive.astype(float)
    # perfect ordering of an effect 0.3 in half the customers: area 2 * 0.15 * 0.5**2 / 2 = 0.0375
    assert qini_coefficient(y, t, good) == pytest.approx(0.0375, abs=0.008)
    assert qini_coefficient(y, t, bad) == pytest.approx(-0.0375, abs=0.008)
    top = uplift_at_k(y, t, good, 0.5)
    assert top["uplift"] == pytest.approx(0.3, abs=0.05) and top["uplift_ci"][0] > 0.2


def test_customer_split_keeps_a_customer_on_one_side() -> None:
    ids = pd.Series(["a", "b", "a", "c", "b", "d"] * 50)
    held = customer_split(ids, 0.5, seed=3)
    assert all(len(set(held[ids.to_numpy() == c])) == 1 for c in ids.unique())


def test_two_model_learner_finds_the_planted_responsive_segment() -> None:
    rng = np.random.default_rng(7)
    n = 6_000
    recency = rng.uniform(0, 365, n)
    t = rng.random(n) < 0.5
    y = rng.random(n) < 0.1 + 0.3 * ((recency < 100) & t)  # only recent customers respond
    frame = pd.DataFrame({"days_since_last_purchase": recency, "frequency": rng.poisson(2, n).astype(float),
                          TARGET: y.astype(int), TREATED: t})
    model = fit_two_model(frame, {"num_boost_round": 50, "num_leaves": 4, "min_child_samples": 50}, seed=1)
    test = pd.DataFrame({"days_since_last_purchase": [30.0, 300.0], "frequency": [2.0, 2.0]})
    near, far = model.uplift(test)
    assert near == pytest.approx(0.3, abs=0.08) and abs(far) < 0.08


def test_measured_save_rate_reads_only_measured_campaigns() -> None:
    report = {"horizon_days": 60, "campaigns": [
        {"campaign": "a", "status": "measured", "save_rate": -0.1, "save_rate_ci": [-0.2, 0.0],
         "purchase_uplift": -0.02, "purchase_uplift_ci": [-0.05, 0.01], "churn_rate_control": 0.5,
         "n_treatment": 100, "n_control": 100, "first_sent_at": "2024-01-01"},
        {"campaign": "b", "status": "too_small", "save_rate": None, "n_treatment": 3, "n_control": 2}]}
    assert measured_save_rate(report, "a") == 0.0  # harmful: clipped, never a negative value
    assert measured_save_rate(report, "b") is None and measured_save_rate(None, "a") is None
    table = effects_table(report)
    assert table["campaign"].tolist() == ["a", "b"] and table.loc[0, "save_rate_low"] == -0.2
