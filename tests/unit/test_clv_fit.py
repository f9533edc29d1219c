"""Fitting: compressed rows give lifetimes' uncompressed fit, boundary optima are reported, spend diagnostics."""

from __future__ import annotations

import logging
import warnings

import numpy as np
import pandas as pd
import pytest

from models.clv import FitError, fit_clv
from models.clv.btyd import get
from models.clv.btyd.fit import LOG_BOUND, NEAR_BOUND, _projected_gradient, maximise
from models.clv.fitting import fit_purchase_model, purchase_spec
from models.clv.inputs import unique_rows
from models.clv.simulate import simulate
from tests.conftest import cdnow_summary_rfm

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from lifetimes import BetaGeoFitter, GammaGammaFitter, ModifiedBetaGeoFitter, ParetoNBDFitter

SPEND = {"p": 6.25, "q": 3.74, "gamma": 15.44}


@pytest.fixture(scope="module")
def cdnow() -> pd.DataFrame:
    """The CDNOW summary with mean repeat spend, in our RFM shape (weeks)."""
    return cdnow_summary_rfm()


def arrays(frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """frequency, recency, T as float arrays."""
    return tuple(frame[c].to_numpy(float) for c in ("frequency", "recency", "T"))


@pytest.mark.parametrize(("name", "fitter"), [("bgnbd", BetaGeoFitter), ("mbgnbd", ModifiedBetaGeoFitter)])
def test_compressed_fit_equals_lifetimes_fit_on_every_customer(cdnow, name: str, fitter) -> None:
    report = fit_clv(cdnow, name, time_unit_days=7.0).purchases
    assert report.n_unique_rows == 1016 < report.n_customers == 2357
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        theirs = fitter().fit(*arrays(cdnow)).params_
    for key, value in report.params.items():
        assert value == pytest.approx(theirs[key], rel=1e-6), key


def test_pareto_fit_equals_lifetimes_refit_with_tight_tolerance(cdnow) -> None:
    # lifetimes' Nelder-Mead stops early by default (parameters 1e-4 off); with tight xatol / fatol through its
    # public fit() it reaches our optimum: parameters to 1e-6 relative, log-likelihood to 1e-9
    ours = fit_clv(cdnow, "pareto_nbd", time_unit_days=7.0).purchases
    x, tx, age = arrays(cdnow)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        theirs = ParetoNBDFitter().fit(x, tx, age, initial_params=np.ones(4), maxiter=20_000, xatol=1e-12,
                                       fatol=1e-12)
    for key, value in ours.params.items():
        assert value == pytest.approx(theirs.params_[key], rel=1e-6), key
    their_ll = ParetoNBDFitter._conditional_log_likelihood(theirs.params_[list(ours.params)].to_numpy(), x, tx, age)
    assert ours.log_likelihood >= their_ll.sum() - 1e-9 * abs(their_ll.sum())


def test_compressed_gamma_gamma_equals_lifetimes_fit_on_every_buyer(cdnow) -> None:
    report = fit_clv(cdnow, "bgnbd", time_unit_days=7.0).spend
    repeat = cdnow[cdnow["frequency"] > 0]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        theirs = GammaGammaFitter().fit(repeat["frequency"], repeat["monetary_value"]).params_
    assert report.n_customers == 946 and report.n_unique_rows < 946
    for key, their_key in (("p", "p"), ("q", "q"), ("gamma", "v")):
        assert report.params[key] == pytest.approx(theirs[their_key], rel=1e-6), key


@pytest.mark.slow
def test_warm_started_fit_on_large_data_equals_cold_fit() -> None:
    ages = np.random.default_rng(0).integers(0, 731, 300_000).astype(float)
    sim = simulate("bgnbd", {"r": 0.243, "alpha": 30.9, "a": 0.793, "b": 2.426}, ages, 0.0, seed=1)
    x, tx, age = sim["frequency"].to_numpy(), np.floor(sim["recency"].to_numpy()), ages
    report = fit_purchase_model("bgnbd", x, tx, age, (0.01,), seed=0)
    assert report.diagnostics["warm_start_customers"] > 0
    (ux, utx, uage), _, counts = unique_rows(x, tx, age)
    data = get("bgnbd").prepare(ux, utx, uage)
    cold = maximise(purchase_spec("bgnbd", age), lambda p: get("bgnbd").loglik(p, data), counts.astype(float))
    for key, value in report.params.items():  # both stop at a gradient of 1e-9 per customer
        assert value == pytest.approx(cold.params[key], rel=1e-5), key


def homogeneous_rate_customers(seed: int) -> pd.DataFrame:
    """400 customers sharing one purchase rate: BG/NBD heterogeneity (r, alpha) runs off to infinity."""
    params = {"r": 1e5, "alpha": 1e6, "a": 2.0, "b": 8.0}
    sim = simulate("bgnbd", params, np.full(400, 52.0), 0.0, seed, SPEND)
    return sim.drop(columns="future_purchases")


def test_parameters_running_off_past_near_bound_do_not_count_as_unconverged() -> None:
    u, grad = np.array([12.3, 10.7, 0.85, -11.0]), np.array([-2e-5, -2e-6, 5e-9, 3e-5])  # r, alpha out; b to 0
    assert _projected_gradient(grad, u) == 3e-5  # inside the hard bounds every component still counts
    assert _projected_gradient(grad, u, NEAR_BOUND) == 5e-9  # beyond NEAR_BOUND, pushing outwards: at the bound
    assert _projected_gradient(-grad, u, NEAR_BOUND) == 3e-5  # pulled back inside: still counts
    assert _projected_gradient(np.array([-1.0]), np.array([LOG_BOUND])) == 0.0


def test_one_rate_for_everyone_is_a_reported_boundary_solution(caplog) -> None:
    with caplog.at_level(logging.WARNING, logger="models.clv.fitting"):
        model = fit_clv(homogeneous_rate_customers(0), "bgnbd", time_unit_days=7.0)
    report = model.purchases
    assert report.penalizer == 0.0 and [a.ok for a in report.attempts] == [True]
    assert any("no purchase-rate heterogeneity" in note for note in report.boundary), report.boundary
    assert report.params["r"] / report.params["alpha"] == pytest.approx(0.1, rel=0.1)  # the common rate
    assert "no purchase-rate heterogeneity" in caplog.text
    out = model.predict(homogeneous_rate_customers(1), 90)
    assert np.isfinite(out.drop(columns="customer_id").to_numpy()).all()


def test_no_dropout_evidence_is_a_reported_boundary_solution() -> None:
    # everyone bought 5 times and just bought again: no evidence of dropout (a -> 0: BG/NBD becomes the NBD)
    n = 60
    frame = pd.DataFrame({"customer_id": [str(i) for i in range(2 * n)], "frequency": [5.0] * n + [0.0] * n,
                          "recency": [20.0] * n + [0.0] * n, "T": [20.0] * (2 * n),
                          "monetary_value": [10.0 + i % 7 for i in range(n)] + [0.0] * n})
    model = fit_clv(frame, "bgnbd", time_unit_days=1.0)
    assert any(note.startswith("no dropout evidence: BG/NBD reduces to NBD") for note in model.purchases.boundary)
    out = model.predict(frame, 30)
    assert np.isfinite(out.drop(columns="customer_id").to_numpy()).all()
    assert out["p_alive"].min() > 0.999


def test_data_that_cannot_be_fitted_raise_one_line_fit_error(monkeypatch) -> None:
    model = get("bgnbd")
    monkeypatch.setattr(type(model), "loglik", lambda self, p, data: np.full(len(data["x"]), np.nan))
    with pytest.raises(FitError, match=r"^bgnbd cannot be fitted on these data \(penalizer 0: non-finite") as err:
        fit_clv(homogeneous_rate_customers(0), "bgnbd", time_unit_days=7.0)
    assert "\n" not in str(err.value)


def test_spend_correlated_with_frequency_warns(caplog) -> None:
    sim = simulate("bgnbd", {"r": 0.5, "alpha": 5.0, "a": 0.8, "b": 2.5}, np.full(3000, 52.0), 0.0, 3, SPEND)
    sim["monetary_value"] = np.where(sim["frequency"] > 0, 10.0 + 8.0 * sim["frequency"], 0.0)
    with caplog.at_level(logging.WARNING, logger="models.clv.fitting"):
        spend = fit_clv(sim, "bgnbd", time_unit_days=7.0).spend
    assert spend.diagnostics["frequency_spend_corr"] > 0.3
    assert any("correlated" in w for w in spend.warnings) and "correlated" in caplog.text


def test_non_positive_spend_is_excluded_from_gamma_gamma_and_counted() -> None:
    sim = simulate("bgnbd", {"r": 0.5, "alpha": 5.0, "a": 0.8, "b": 2.5}, np.full(3000, 52.0), 0.0, 4, SPEND)
    repeat = np.flatnonzero(sim["frequency"].to_numpy() > 0)
    sim.loc[repeat[:25], "monetary_value"] = 0.0
    model = fit_clv(sim, "bgnbd", time_unit_days=7.0)
    assert model.spend.n_excluded == 25 and model.spend.n_customers == len(repeat) - 25
    assert model.purchases.n_customers == 3000
    assert any("25 repeat buyer(s)" in w for w in model.spend.warnings)


def test_log_likelihood_is_a_sum_in_our_time_unit(cdnow) -> None:
    # the same customers measured in days instead of weeks: alpha scales by 7 and the log-likelihood of the
    # event times drops by sum(x) * log(7) (a density per day instead of per week)
    weeks = fit_clv(cdnow, "bgnbd", time_unit_days=7.0).purchases
    days = fit_clv(cdnow.assign(recency=cdnow["recency"] * 7, T=cdnow["T"] * 7), "bgnbd",
                   time_unit_days=1.0).purchases
    assert days.params["alpha"] == pytest.approx(7 * weeks.params["alpha"], rel=1e-5)
    shift = cdnow["frequency"].sum() * np.log(7)
    assert days.log_likelihood == pytest.approx(weeks.log_likelihood - shift, abs=1e-3)
