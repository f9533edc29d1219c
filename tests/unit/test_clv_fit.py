"""Fitting: compressed rows give lifetimes' uncompressed fit, penalizer fallback, spend diagnostics."""

from __future__ import annotations

import logging
import warnings

import numpy as np
import pandas as pd
import pytest

from models.clv import FitError, fit_clv
from models.clv import lifetimes_adapter as lt
from models.clv.fitting import fit_purchase_model
from models.clv.inputs import unique_rows
from models.clv.simulate import simulate
from tests.conftest import cdnow_summary_rfm

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from lifetimes import BetaGeoFitter, GammaGammaFitter, ModifiedBetaGeoFitter

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


def test_compressed_pareto_fit_equals_uncompressed(cdnow) -> None:
    x, tx, age = arrays(cdnow)
    ours = fit_purchase_model("pareto_nbd", x, tx, age, (0.01,), seed=0).params
    every_row = lt.fit_purchases("pareto_nbd", x, tx, age, np.ones(len(x)), 0.0, 0, [])
    # Nelder-Mead stops on a log-likelihood plateau ~1e-12 wide, where the parameters move by ~5e-7
    for key, value in ours.items():
        assert value == pytest.approx(every_row[key], rel=1e-5), key


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
    cold = lt.fit_purchases("bgnbd", ux, utx, uage, counts, 0.0, 0, [])
    for key, value in report.params.items():  # both stop at lifetimes' gradient tolerance (1e-7)
        assert value == pytest.approx(cold[key], rel=1e-4), key


def homogeneous_rate_customers(seed: int) -> pd.DataFrame:
    """400 customers sharing one purchase rate: BG/NBD heterogeneity (r, alpha) runs off to infinity."""
    params = {"r": 1e5, "alpha": 1e6, "a": 2.0, "b": 8.0}
    sim = simulate("bgnbd", params, np.full(400, 52.0), 0.0, seed, SPEND)
    return sim.drop(columns="future_purchases")


def test_penalizer_fallback_is_chosen_on_held_out_customers_and_recorded(caplog) -> None:
    with caplog.at_level(logging.WARNING, logger="models.clv.fitting"):
        report = fit_clv(homogeneous_rate_customers(0), "bgnbd", time_unit_days=7.0).purchases
    first, *splits, final = report.attempts
    assert (first.penalizer, first.sample, first.ok) == (0.0, "all", False) and first.reason
    assert [a.penalizer for a in splits] == [0.001, 0.01, 0.1] and all(a.sample == "train" for a in splits)
    best = max((a for a in splits if a.ok), key=lambda a: a.log_likelihood)
    assert final.sample == "all" and final.ok and report.penalizer == best.penalizer == final.penalizer
    assert np.isfinite(report.log_likelihood) and all(np.isfinite(v) for v in report.params.values())
    assert any("penalizer" in w for w in report.warnings)
    assert "unpenalised fit unusable" in caplog.text


def test_no_usable_fit_raises_fit_error() -> None:
    # everyone bought 5 times and just bought again: no evidence of dropout nor of rate heterogeneity
    n = 60
    frame = pd.DataFrame({"customer_id": [str(i) for i in range(2 * n)], "frequency": [5.0] * n + [0.0] * n,
                          "recency": [20.0] * n + [0.0] * n, "T": [20.0] * (2 * n),
                          "monetary_value": [10.0 + i % 7 for i in range(n)] + [0.0] * n})
    with pytest.raises(FitError, match="no usable fit"):
        fit_clv(frame, "bgnbd", time_unit_days=1.0)


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
