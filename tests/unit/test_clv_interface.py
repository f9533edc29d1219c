"""The public CLV interface: output shape, JSON round trip, clear errors on bad input."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from models.clv import ClvModel, fit_clv
from models.clv.inputs import unique_rows
from models.clv.simulate import simulate

PARAMS = {"r": 0.243, "alpha": 4.414, "a": 0.793, "b": 2.426}
SPEND = {"p": 6.25, "q": 3.74, "gamma": 15.44}


@pytest.fixture(scope="module")
def rfm() -> pd.DataFrame:
    """1,000 simulated BG/NBD customers with Gamma-Gamma spend, ages in weeks."""
    ages = np.random.default_rng(0).uniform(1, 78, 1000).round(2)
    return simulate("bgnbd", PARAMS, ages, 0.0, 0, SPEND).drop(columns="future_purchases")


@pytest.fixture(scope="module")
def model(rfm) -> ClvModel:
    """BG/NBD + Gamma-Gamma fitted on the simulated customers."""
    return fit_clv(rfm, "bgnbd", time_unit_days=7.0)


def tiny(**changes) -> pd.DataFrame:
    """Three hand-made customers, with column overrides."""
    frame = pd.DataFrame({"customer_id": ["a", "b", "c"], "frequency": [0.0, 2.0, 5.0],
                          "recency": [0.0, 10.0, 30.0], "T": [12.0, 20.0, 40.0],
                          "monetary_value": [0.0, 20.0, 35.0]})
    return frame.assign(**changes)


def test_predict_columns_rows_and_ids(model) -> None:
    frame = tiny().iloc[::-1].set_index(pd.Index([7, 8, 9]))
    out = model.predict(frame, 90, 6, 0.01)
    assert list(out.columns) == ["customer_id", "p_alive", "expected_purchases_90d", "p_no_purchase_90d",
                                 "expected_aov", "clv_6m"]
    assert out["customer_id"].tolist() == ["c", "b", "a"] and list(out.index) == [0, 1, 2]


def test_to_dict_from_dict_round_trip_through_json_predicts_identically(model, rfm) -> None:
    text = json.dumps(model.to_dict(), allow_nan=False)
    loaded = ClvModel.from_dict(json.loads(text))
    assert loaded == model
    pd.testing.assert_frame_equal(loaded.predict(rfm, 365), model.predict(rfm, 365), check_exact=True)


def test_report_describes_the_fit(model, rfm) -> None:
    report = model.purchases
    assert report.model == "bgnbd" and report.penalizer == 0.0 and report.attempts[0].ok
    assert report.n_customers == 1000 and report.n_unique_rows <= 1000 and report.seconds > 0
    assert model.spend.model == "gamma_gamma" and model.spend.n_customers == int((rfm["frequency"] > 0).sum())


def test_from_dict_rejects_other_documents(model) -> None:
    with pytest.raises(ValueError, match="churn-clv/clv-model"):
        ClvModel.from_dict({**model.to_dict(), "version": 99})
    broken = model.to_dict()
    broken["purchases"]["params"]["r"] = -1.0
    with pytest.raises(ValueError, match="finite and > 0"):
        ClvModel.from_dict(broken)


def test_unknown_model_name(rfm) -> None:
    with pytest.raises(ValueError, match="unknown clv model .gamma.: expected one of bgnbd, mbgnbd, pareto_nbd, bgbb"):
        fit_clv(rfm, "gamma", time_unit_days=7.0)


def test_fewer_than_30_repeat_customers(rfm) -> None:
    few = pd.concat([rfm[rfm["frequency"] == 0], rfm[rfm["frequency"] > 0].head(29)])
    with pytest.raises(ValueError, match="only 29 repeat customers"):
        fit_clv(few, "bgnbd", time_unit_days=7.0)


def test_all_zero_spend(rfm) -> None:
    with pytest.raises(ValueError, match="all-zero spend"):
        fit_clv(rfm.assign(monetary_value=0.0), "bgnbd", time_unit_days=7.0)


@pytest.mark.parametrize(("changes", "message"), [
    ({"recency": [0.0, -1.0, 30.0]}, "'recency' has 1 negative"),
    ({"T": [12.0, np.nan, 40.0]}, "'T' has 1 NaN"),
    ({"monetary_value": [0.0, np.inf, 1.0]}, "'monetary_value' has 1 NaN/inf"),
    ({"frequency": [0.0, 1.5, 5.0]}, "whole numbers"),
    ({"recency": [0.0, 25.0, 30.0]}, "recency exceeds T"),
    ({"recency": [1.0, 10.0, 30.0]}, "recency must be 0 for customers with frequency 0"),
    ({"customer_id": ["a", None, "c"]}, "customer_id has missing"),
])
def test_bad_inputs_name_the_problem(model, changes: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        model.predict(tiny(**changes), 30)
    with pytest.raises(ValueError, match=message):
        fit_clv(tiny(**changes), "bgnbd", time_unit_days=7.0)


def test_missing_column(model) -> None:
    with pytest.raises(ValueError, match=r"lacks column\(s\) \['T'\]"):
        model.predict(tiny().drop(columns="T"), 30)


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"horizon_days": 0}, "horizon_days"), ({"horizon_days": 2.5}, "horizon_days"),
    ({"horizon_days": 30, "horizon_months": 0}, "horizon_months"),
    ({"horizon_days": 30, "discount_rate_monthly": float("nan")}, "discount_rate_monthly"),
])
def test_bad_horizons(model, kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        model.predict(tiny(), **kwargs)


def test_bad_time_unit(rfm) -> None:
    with pytest.raises(ValueError, match="time_unit_days"):
        fit_clv(rfm, "bgnbd", time_unit_days=0.0)


def test_unique_rows_counts_and_inverse() -> None:
    a = np.array([1.0, 2.0, 1.0, 1.0, 3.0])
    b = np.array([5.0, 5.0, 5.0, 6.0, 5.0])
    (ua, ub), inverse, counts = unique_rows(a, b)
    expected = [(1.0, 5.0, 2), (2.0, 5.0, 1), (1.0, 6.0, 1), (3.0, 5.0, 1)]
    assert list(zip(ua, ub, counts, strict=True)) == expected
    assert (ua[inverse] == a).all() and (ub[inverse] == b).all()


def test_from_params_rejects_gamma_gamma_q_at_most_one() -> None:
    with pytest.raises(ValueError, match="q must be > 1"):
        ClvModel.from_params("bgnbd", PARAMS, {**SPEND, "q": 0.9}, time_unit_days=7.0)
