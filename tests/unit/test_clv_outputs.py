"""Our vectorised per-customer outputs equal lifetimes' own functions, Monte Carlo, and stay finite."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

from models.clv import ClvModel, fit_clv
from models.clv.simulate import simulate
from tests.conftest import cdnow_summary_rfm

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from lifetimes import BetaGeoFitter, GammaGammaFitter, ModifiedBetaGeoFitter, ParetoNBDFitter

FITTERS = {"bgnbd": BetaGeoFitter, "mbgnbd": ModifiedBetaGeoFitter, "pareto_nbd": ParetoNBDFitter}
PUBLISHED = {"bgnbd": {"r": 0.243, "alpha": 4.414, "a": 0.793, "b": 2.426},
             "mbgnbd": {"r": 0.525, "alpha": 6.183, "a": 0.891, "b": 1.614},
             "pareto_nbd": {"r": 0.553, "alpha": 10.578, "s": 0.606, "beta": 11.669}}
SPEND = {"p": 6.25, "q": 3.74, "gamma": 15.44}
RTOL = 1e-6
N_PARITY = 300


@pytest.fixture(scope="module")
def cdnow() -> pd.DataFrame:
    """The CDNOW summary with cent-rounded mean spend, in our RFM shape (weeks)."""
    return cdnow_summary_rfm()


@pytest.fixture(scope="module")
def fitted(cdnow) -> dict[str, ClvModel]:
    """Each purchase model fitted with our interface on the CDNOW summary."""
    return {name: fit_clv(cdnow, name, time_unit_days=7.0) for name in FITTERS}


def lifetimes_pair(model: ClvModel) -> tuple:
    """lifetimes fitters carrying our fitted parameters (purchase model, Gamma-Gamma)."""
    purchases = FITTERS[model.model]()
    purchases.params_ = pd.Series(model.purchases.params)
    purchases.predict = purchases.conditional_expected_number_of_purchases_up_to_time
    spend = GammaGammaFitter()
    spend.params_ = pd.Series({"p": model.spend.params["p"], "q": model.spend.params["q"],
                               "v": model.spend.params["gamma"]})
    return purchases, spend


@pytest.mark.parametrize("name", list(FITTERS))
def test_p_alive_and_expected_purchases_equal_lifetimes(fitted, cdnow, name: str) -> None:
    rows = cdnow.head(N_PARITY)
    ours = fitted[name].predict(rows, 39 * 7)
    theirs, _ = lifetimes_pair(fitted[name])
    x, tx, age = rows["frequency"], rows["recency"], rows["T"]
    np.testing.assert_allclose(ours["p_alive"], theirs.conditional_probability_alive(x, tx, age), rtol=RTOL)
    expected = theirs.conditional_expected_number_of_purchases_up_to_time(39.0, x, tx, age)
    np.testing.assert_allclose(ours["expected_purchases_273d"], expected, rtol=RTOL)


def test_expected_aov_equals_lifetimes(fitted, cdnow) -> None:
    rows = cdnow.head(N_PARITY)
    _, spend = lifetimes_pair(fitted["bgnbd"])
    theirs = spend.conditional_expected_average_profit(rows["frequency"], rows["monetary_value"])
    np.testing.assert_allclose(fitted["bgnbd"].predict(rows, 7)["expected_aov"], theirs, rtol=RTOL)


@pytest.mark.filterwarnings("ignore:divide by zero:RuntimeWarning")  # lifetimes' Pareto at t = 0
@pytest.mark.parametrize("name", list(FITTERS))
@pytest.mark.parametrize(("freq", "time_unit_days", "days_per_month"), [("D", 1.0, 30.0), ("W", 7.0, 30.415)])
def test_clv_equals_lifetimes_customer_lifetime_value(fitted, cdnow, name: str, freq: str,
                                                      time_unit_days: float, days_per_month: float) -> None:
    # lifetimes' month is 30 units for freq D and 4.345 units (30.415 days) for freq W
    rows = cdnow.head(N_PARITY)
    base = fitted[name]
    model = ClvModel.from_params(name, base.purchases.params, base.spend.params,
                                 time_unit_days=time_unit_days)
    ours = model.predict(rows, 30, 12, 0.01, days_per_month=days_per_month)["clv_12m"]
    purchases, spend = lifetimes_pair(base)
    indexed = rows.set_index("customer_id")
    theirs = spend.customer_lifetime_value(purchases, indexed["frequency"], indexed["recency"], indexed["T"],
                                           indexed["monetary_value"], time=12, discount_rate=0.01, freq=freq)
    np.testing.assert_allclose(ours, theirs.to_numpy(), rtol=RTOL)


def test_pareto_p_no_purchase_equals_lifetimes_conditional_pmf(fitted, cdnow) -> None:
    rows = cdnow.head(N_PARITY)
    ours = fitted["pareto_nbd"].predict(rows, 39 * 7)["p_no_purchase_273d"]
    theirs, _ = lifetimes_pair(fitted["pareto_nbd"])
    pmf = [theirs.conditional_probability_of_n_purchases_up_to_time(0, 39.0, x, tx, age)
           for x, tx, age in rows[["frequency", "recency", "T"]].itertuples(index=False)]
    np.testing.assert_allclose(ours, pmf, rtol=RTOL)


@pytest.mark.parametrize("name", list(PUBLISHED))
def test_p_no_purchase_and_expected_purchases_match_monte_carlo(name: str) -> None:
    # customers drawn from the model itself: within each calibration-frequency group the mean predicted
    # probability of no purchase (and expected count) must match the simulated future
    ages = np.random.default_rng(1).uniform(0, 78, 200_000).round(1)
    sim = simulate(name, PUBLISHED[name], ages, 39.0, seed=7, spend=SPEND)
    model = ClvModel.from_params(name, PUBLISHED[name], SPEND, time_unit_days=7.0)
    pred = model.predict(sim, 39 * 7)
    frame = pd.DataFrame({"x": sim["frequency"].clip(upper=6), "p0": pred["p_no_purchase_273d"],
                          "zero": (sim["future_purchases"] == 0).astype(float),
                          "e": pred["expected_purchases_273d"], "y": sim["future_purchases"]})
    groups = frame.groupby("x").agg(n=("zero", "size"), p0=("p0", "mean"), zero=("zero", "mean"),
                                    e=("e", "mean"), y=("y", "mean"), sd_y=("y", "std"))
    se_zero = np.sqrt(groups["zero"] * (1 - groups["zero"]) / groups["n"])
    se_y = groups["sd_y"] / np.sqrt(groups["n"])
    assert ((groups["zero"] - groups["p0"]).abs() < 4 * se_zero).all(), groups
    assert ((groups["y"] - groups["e"]).abs() < 4 * se_y).all(), groups


def edge_cases() -> pd.DataFrame:
    """New customers, no repeat purchases, zero or huge ages, zero spend of a repeat buyer."""
    rows = [("new", 0, 0.0, 0.0, 0.0), ("quiet", 0, 0.0, 50.0, 0.0), ("ancient_quiet", 0, 0.0, 1e6, 0.0),
            ("ancient_lapsed", 5, 3.0, 1e6, 40.0), ("ancient_active", 500, 1e6, 1e6, 40.0),
            ("just_bought", 3, 20.0, 20.0, 25.0), ("free_orders", 2, 10.0, 30.0, 0.0),
            ("busy", 2000, 700.0, 700.0, 1e4)]
    return pd.DataFrame(rows, columns=["customer_id", "frequency", "recency", "T", "monetary_value"])


@pytest.mark.parametrize("name", list(PUBLISHED))
def test_outputs_finite_and_in_range_on_edge_cases(name: str) -> None:
    model = ClvModel.from_params(name, PUBLISHED[name], SPEND, time_unit_days=7.0)
    out = model.predict(edge_cases(), 365, 24, 0.01)
    values = out.drop(columns="customer_id").to_numpy()
    assert np.isfinite(values).all() and (values >= 0).all()
    assert out["p_alive"].between(0, 1).all() and out["p_no_purchase_365d"].between(0, 1).all()
    assert out.loc[out["customer_id"] == "new", "p_alive"].item() == pytest.approx(
        1.0 if name != "mbgnbd" else 1 / (1 + PUBLISHED[name]["a"] / PUBLISHED[name]["b"]))
    lapsed = out.set_index("customer_id").loc["ancient_lapsed"]
    assert lapsed["p_alive"] < 1e-6 and lapsed["clv_24m"] < 1e-6


def test_clv_is_purchases_times_aov_without_discount() -> None:
    # with a 0 discount rate, CLV over M months is E[purchases in M months] * expected_aov
    model = ClvModel.from_params("bgnbd", PUBLISHED["bgnbd"], SPEND, time_unit_days=1.0)
    out = model.predict(edge_cases(), 360, 12, 0.0, days_per_month=30.0)
    undiscounted = out["expected_purchases_360d"] * out["expected_aov"]
    np.testing.assert_allclose(out["clv_12m"], undiscounted, rtol=1e-9)


def test_expected_aov_of_customers_without_repeat_spend_is_the_population_mean() -> None:
    model = ClvModel.from_params("bgnbd", PUBLISHED["bgnbd"], SPEND, time_unit_days=7.0)
    out = model.predict(edge_cases(), 30).set_index("customer_id")
    population = SPEND["p"] * SPEND["gamma"] / (SPEND["q"] - 1)
    assert out.loc["new", "expected_aov"] == pytest.approx(population)
    assert out.loc["free_orders", "expected_aov"] < population  # zero repeat spend shrinks towards 0
