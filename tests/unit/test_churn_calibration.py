"""Calibrators: fitted on held-out rows, stored as numbers, never worse in log loss where they were fitted."""

from __future__ import annotations

import json

import numpy as np
import pytest
from scipy.special import expit
from sklearn.isotonic import IsotonicRegression

from models import metrics
from models.churn import ChurnConfig, fit_churn
from models.churn.calibration import Calibrator, fit_calibrator
from tests.unit.test_churn_frames import CUTOFFS, stacked


def _miscalibrated(n: int = 4000, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Over-confident probabilities: true log-odds halved would be right."""
    rng = np.random.default_rng(seed)
    z = rng.normal(0, 2, n)
    y = (rng.random(n) < expit(z / 2)).astype(float)
    return expit(z), y


@pytest.mark.parametrize("kind", ["isotonic", "platt"])
def test_calibration_lowers_log_loss_and_ece(kind: str) -> None:
    p, y = _miscalibrated()
    cal = fit_calibrator(kind, p, y)
    q = cal.transform(p)
    assert metrics.log_loss(y, q) < metrics.log_loss(y, p)
    assert metrics.ece(y, q) < metrics.ece(y, p)


def test_isotonic_matches_sklearn_and_round_trips_through_json() -> None:
    p, y = _miscalibrated(seed=2)
    cal = fit_calibrator("isotonic", p, y)
    reference = IsotonicRegression(y_min=0, y_max=1, out_of_bounds="clip").fit(p, y)
    grid = np.linspace(-0.1, 1.1, 101)
    np.testing.assert_allclose(cal.transform(grid), reference.predict(grid))
    again = Calibrator.from_dict(json.loads(json.dumps(cal.to_dict())))
    np.testing.assert_array_equal(again.transform(grid), cal.transform(grid))


def test_none_is_identity_and_unknown_kind_is_rejected() -> None:
    p = np.array([0.1, 0.7])
    np.testing.assert_array_equal(fit_calibrator("none", p, np.array([0, 1])).transform(p), p)
    with pytest.raises(ValueError, match="unknown calibration"):
        fit_calibrator("beta", p, np.array([0, 1]))


def test_fitted_model_calibration_keeps_or_improves_holdout_log_loss() -> None:
    cfg = ChurnConfig.from_params(
        {
            "params": {
                "num_leaves": 7,
                "learning_rate": 0.1,
                "min_child_samples": 20,
                "num_boost_round": 60,
                "early_stopping_rounds": 10,
            },
            "class_weight": "balanced",
            "calibration": "isotonic",
        }
    )
    model = fit_churn(stacked(CUTOFFS[:2], n=800), cfg)
    holdout = model.info["holdout"]
    assert model.info["class_weight"] == "balanced"  # raw scores are shifted by the weights ...
    assert holdout["log_loss_calibrated"] <= holdout["log_loss_raw"]  # ... and calibration undoes it
    assert holdout["ece_calibrated"] <= holdout["ece_raw"]


def test_crossfit_calibrated_never_scores_a_row_with_a_calibrator_fitted_on_it() -> None:
    from models.churn.model import crossfit_calibrated

    rng = np.random.default_rng(3)
    p = rng.uniform(0.05, 0.95, 2000)
    y = (rng.uniform(size=p.size) < p).astype(float)
    cross = crossfit_calibrated("isotonic", p, y, folds=5, seed=0)
    inside = fit_calibrator("isotonic", p, y).transform(p)
    assert cross.shape == p.shape and np.all((cross >= 0) & (cross <= 1))
    # Isotonic scored on its own rows is optimistic; the cross-fitted figure is not lower.
    assert metrics.log_loss(y, np.clip(cross, 1e-6, 1 - 1e-6)) >= metrics.log_loss(y, np.clip(inside, 1e-6, 1 - 1e-6))
