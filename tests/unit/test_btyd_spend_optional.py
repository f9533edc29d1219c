"""Data without amounts: the purchase model alone, spend outputs NaN everywhere, old JSON still loads."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from models.clv import ClvModel, fit_clv
from models.clv.simulate import simulate
from models.clv.uncertainty import (
    Horizon,
    draws_from_dict,
    draws_to_dict,
    intervals,
    laplace_draws,
    predictive_clv_bounds,
)

PARAMS = {"r": 0.243, "alpha": 4.414, "a": 0.793, "b": 2.426}
SPEND = {"p": 6.25, "q": 3.74, "gamma": 15.44}


@pytest.fixture(scope="module")
def rfm() -> pd.DataFrame:
    """800 simulated BG/NBD customers in weeks, without amounts (monetary_value all null)."""
    ages = np.random.default_rng(0).uniform(1, 78, 800).round(2)
    frame = simulate("bgnbd", PARAMS, ages, 0.0, 0).drop(columns="future_purchases")
    return frame.assign(monetary_value=None)


@pytest.fixture(scope="module")
def model(rfm) -> ClvModel:
    """BG/NBD fitted without a spend part."""
    return fit_clv(rfm, "bgnbd", time_unit_days=7.0)


def test_fit_without_amounts_has_no_spend_part(model, rfm) -> None:
    assert model.spend is None and model.purchases.n_customers == 800
    with_spend = fit_clv(rfm.assign(monetary_value=np.where(rfm["frequency"] > 0, 20.0, 0.0)), "bgnbd",
                         time_unit_days=7.0)
    assert model.purchases.params == with_spend.purchases.params  # the purchase fit does not see spend


def test_predict_gives_nan_spend_outputs_and_usual_purchase_outputs(model, rfm) -> None:
    out = model.predict(rfm, 90, 6)
    assert out["expected_aov"].isna().all() and out["clv_6m"].isna().all()
    rest = out[["p_alive", "expected_purchases_90d", "p_no_purchase_90d"]].to_numpy()
    assert np.isfinite(rest).all()
    reference = ClvModel.from_params("bgnbd", model.purchases.params, SPEND, time_unit_days=7.0)
    expected = reference.predict(rfm.assign(monetary_value=0.0), 90, 6)
    pd.testing.assert_frame_equal(out.drop(columns=["expected_aov", "clv_6m"]),
                                  expected.drop(columns=["expected_aov", "clv_6m"]))


def test_json_round_trip_without_spend(model, rfm) -> None:
    loaded = ClvModel.from_dict(json.loads(json.dumps(model.to_dict(), allow_nan=False)))
    assert loaded == model
    pd.testing.assert_frame_equal(loaded.predict(rfm, 30), model.predict(rfm, 30))


def test_version_1_documents_still_load() -> None:
    model = ClvModel.from_params("bgnbd", PARAMS, SPEND, time_unit_days=7.0)
    old = model.to_dict()
    old["version"] = 1
    for part in ("purchases", "spend"):
        del old[part]["boundary"]  # v1 reports had no boundary notes
    assert ClvModel.from_dict(json.loads(json.dumps(old))) == model


def test_partly_missing_amounts_stay_an_error(rfm) -> None:
    partly = rfm.assign(monetary_value=[None] * 10 + [5.0] * (len(rfm) - 10))
    with pytest.raises(ValueError, match="monetary_value' has 10 NaN"):
        fit_clv(partly, "bgnbd", time_unit_days=7.0)


def test_uncertainty_without_spend(model, rfm) -> None:
    draws = laplace_draws(model, rfm, 20, seed=0)
    assert draws.spend.shape == (draws.n_draws, 0) and not draws.has_spend
    again = draws_from_dict(json.loads(json.dumps(draws_to_dict(draws))))
    assert np.array_equal(again.purchases, draws.purchases) and again.spend.shape == draws.spend.shape
    horizon = Horizon(horizon_days=90, horizon_months=6)
    table = intervals(model, rfm.head(50), draws, horizon)
    assert table.filter(like="clv").isna().all().all() and table.filter(like="revenue").isna().all().all()
    bounds = predictive_clv_bounds(model, rfm.head(50), draws, horizon)
    assert list(bounds.columns) == ["customer_id", "clv_6m_pred_low", "clv_6m_pred_high"]
    assert bounds[["clv_6m_pred_low", "clv_6m_pred_high"]].isna().all().all()
