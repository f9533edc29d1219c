"""The BTYD core: log-likelihoods equal lifetimes', Pareto/NBD stays finite on long heavy histories, boundaries."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
from autograd import grad
from scipy.special import hyp2f1

from models.clv import fit_clv
from models.clv.btyd import REGISTRY, SPEND_MODEL, get
from models.clv.btyd.pareto_nbd import log_f
from models.clv.inputs import MODELS
from models.clv.simulate import simulate
from tests.conftest import cdnow_summary_rfm

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from lifetimes import BetaGeoFitter, GammaGammaFitter, ModifiedBetaGeoFitter, ParetoNBDFitter

CDNOW_PARAMS = {"bgnbd": {"r": 0.243, "alpha": 4.414, "a": 0.793, "b": 2.426},
                "mbgnbd": {"r": 0.525, "alpha": 6.183, "a": 0.891, "b": 1.614},
                "pareto_nbd": {"r": 0.553, "alpha": 10.578, "s": 0.606, "beta": 11.669}}


def columns(frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """frequency, recency, T as float arrays."""
    return tuple(frame[c].to_numpy(float) for c in ("frequency", "recency", "T"))


def test_registry_is_the_model_list() -> None:
    assert MODELS == tuple(REGISTRY) == ("bgnbd", "mbgnbd", "pareto_nbd", "bgbb")
    with pytest.raises(ValueError, match="unknown clv model 'nbd': expected one of bgnbd"):
        get("nbd")


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
@pytest.mark.parametrize("name", list(CDNOW_PARAMS))
def test_log_likelihood_per_customer_equals_lifetimes(name: str) -> None:
    x, tx, age = columns(cdnow_summary_rfm())
    params = CDNOW_PARAMS[name]
    model = get(name)
    ours = np.asarray(model.loglik(params, model.prepare(x, tx, age)))
    values = np.array([params[k] for k in model.param_names])
    if name == "pareto_nbd":
        theirs = ParetoNBDFitter._conditional_log_likelihood(values, x, tx, age)
        np.testing.assert_allclose(ours, theirs, rtol=1e-10)
    else:  # lifetimes only exposes the mean over customers for the beta-geometric models
        fitter = {"bgnbd": BetaGeoFitter, "mbgnbd": ModifiedBetaGeoFitter}[name]
        theirs = -fitter._negative_log_likelihood(np.log(values), x, tx, age, np.ones_like(x), 0.0) * x.size
        assert ours.sum() == pytest.approx(theirs, rel=1e-12)


def test_gamma_gamma_log_likelihood_equals_lifetimes() -> None:
    frame = cdnow_summary_rfm()
    rep = frame[frame["frequency"] > 0]
    x, m = rep["frequency"].to_numpy(float), rep["monetary_value"].to_numpy(float)
    params = {"p": 6.25, "q": 3.74, "gamma": 15.44}
    ours = np.asarray(SPEND_MODEL.loglik(params, SPEND_MODEL.prepare(x, m))).sum()
    theirs = -GammaGammaFitter._negative_log_likelihood(np.log([6.25, 3.74, 15.44]), x, m, np.ones_like(x), 0.0)
    assert ours == pytest.approx(theirs * x.size, rel=1e-12)


def test_pareto_log_f_equals_the_hypergeometric_closed_form() -> None:
    # where scipy's 2F1 is finite, the tanh-sinh integral gives the same log F to ~1e-9
    rng = np.random.default_rng(1)
    n = 400
    r, s = np.exp(rng.uniform(-4, 2, (2, n)))
    alpha, beta = np.exp(rng.uniform(-2, 7, (2, n)))
    x = rng.integers(1, 400, n).astype(float)
    t = rng.uniform(1, 3000, n)
    rows = zip(r, alpha, s, beta, x, t, strict=True)
    got = np.array([log_f(*v, np.array([xi]), np.array([ti]))[0] for *v, xi, ti in rows])
    m, a = np.maximum(alpha, beta), r + s + x
    second = np.where(alpha >= beta, s + 1, r + x)
    closed = np.log(hyp2f1(a, second, a + 1, np.abs(alpha - beta) / (m + t))) - np.log(a) - a * np.log(m + t)
    ok = np.isfinite(closed)
    assert ok.mean() > 0.8
    np.testing.assert_allclose(got[ok], closed[ok], rtol=0, atol=1e-8)


def heavy_long_customers() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Customers in days over 11 years, up to 600 repeat purchases (lifetimes' Pareto/NBD overflows here)."""
    x = np.array([0.0, 1.0, 50.0, 320.0, 450.0, 600.0, 600.0])
    tx = np.array([0.0, 30.0, 2000.0, 3900.0, 4010.0, 4015.0, 1200.0])
    age = np.full(7, 4015.0)
    return x, tx, age


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
def test_pareto_is_finite_with_x_above_300_over_ten_years_in_days() -> None:
    model = get("pareto_nbd")
    params = {"r": 0.55, "alpha": 74.0, "s": 0.61, "beta": 82.0}  # CDNOW's fit, in days
    x, tx, age = heavy_long_customers()
    with np.errstate(all="ignore"):
        theirs = ParetoNBDFitter._conditional_log_likelihood(np.array(list(params.values())), x, tx, age)
    assert not np.isfinite(theirs[3:]).all()  # the classic failure (lifetimes issue #25)
    data = model.prepare(x, tx, age)
    ll = np.asarray(model.loglik(params, data))
    assert np.isfinite(ll).all()
    total = lambda v: model.loglik(dict(zip(model.param_names, v, strict=True)), data).sum()  # noqa: E731
    assert np.isfinite(grad(total)(np.array(list(params.values())))).all()
    alive = model.p_alive(params, x, tx, age)
    assert np.all((alive >= 0) & (alive <= 1))
    assert alive[5] > 0.99 and alive[6] < 1e-6  # bought yesterday vs. silent for 8 years after 600 purchases
    expected = alive * model.alive_expected(params, x, age, 365.0)
    # the buyer of yesterday keeps close to its own rate, 600 purchases in 11 years = ~55 a year
    assert 40 < expected[5] < 60 and np.isfinite(expected).all()
    assert np.isfinite(model.alive_log_p_zero(params, x, age, 365.0)).all()


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
def test_pareto_fits_heavy_buyers_over_ten_years() -> None:
    params = {"r": 2.0, "alpha": 20.0, "s": 0.5, "beta": 2000.0}  # ~0.1 purchases a day: heavy buyers
    ages = np.random.default_rng(3).uniform(3650, 4015, 3000)
    rfm = simulate("pareto_nbd", params, ages, 0.0, 5, {"p": 6.0, "q": 4.0, "gamma": 15.0})
    assert rfm["frequency"].max() > 300
    model = fit_clv(rfm.drop(columns="future_purchases"), "pareto_nbd", time_unit_days=1.0)
    fitted = model.purchases.params
    assert np.isfinite(model.purchases.log_likelihood)
    assert fitted["r"] / fitted["alpha"] == pytest.approx(0.1, rel=0.1)
    out = model.predict(rfm, 365)
    assert np.isfinite(out.drop(columns="customer_id").to_numpy()).all()


@pytest.mark.parametrize(("name", "params", "note"), [
    ("bgnbd", {"r": 0.5, "alpha": 20.0, "a": 1e-9, "b": 3.0}, "no dropout evidence: BG/NBD reduces to NBD"),
    ("mbgnbd", {"r": 0.5, "alpha": 20.0, "a": 1e-9, "b": 3.0}, "no dropout evidence: MBG/NBD reduces to NBD"),
    ("pareto_nbd", {"r": 0.5, "alpha": 20.0, "s": 0.5, "beta": 1e12}, "no dropout evidence: Pareto/NBD"),
])
def test_no_dropout_data_give_a_reported_boundary_fit_with_finite_predictions(name, params, note) -> None:
    ages = np.random.default_rng(0).uniform(100, 700, 3000)
    rfm = simulate(name, params, ages, 0.0, 1, {"p": 6.0, "q": 4.0, "gamma": 15.0})
    model = fit_clv(rfm.drop(columns="future_purchases"), name, time_unit_days=1.0)
    assert any(b.startswith(note) for b in model.purchases.boundary), model.purchases.boundary
    assert model.purchases.penalizer == 0.0
    out = model.predict(rfm, 90)
    assert np.isfinite(out.drop(columns="customer_id").to_numpy()).all()
    assert out["p_alive"].min() > 0.99  # nobody drops out


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore::RuntimeWarning")
def test_pareto_warm_started_fit_on_large_data_equals_cold_fit() -> None:
    # the large-data path: coarse-rule subsample fit + exact Hessian (second derivatives through the
    # quadrature), then BFGS on every row; it must land on the cold L-BFGS-B optimum
    from models.clv.btyd.fit import maximise
    from models.clv.fitting import fit_purchase_model, purchase_spec
    from models.clv.inputs import unique_rows

    ages = np.random.default_rng(0).integers(0, 731, 300_000).astype(float)
    sim = simulate("pareto_nbd", {"r": 0.55, "alpha": 74.0, "s": 0.61, "beta": 82.0}, ages, 0.0, seed=1)
    x, tx = sim["frequency"].to_numpy(), np.floor(sim["recency"].to_numpy())
    report = fit_purchase_model("pareto_nbd", x, tx, ages, (), seed=0)
    assert report.diagnostics["warm_start_customers"] > 0
    (ux, utx, uage), _, counts = unique_rows(x, tx, ages)
    model = get("pareto_nbd")
    data = model.prepare(ux, utx, uage)
    cold = maximise(purchase_spec("pareto_nbd", ages), lambda p: model.loglik(p, data), counts.astype(float))
    for key, value in report.params.items():
        assert value == pytest.approx(cold.params[key], rel=1e-5), key
    assert report.log_likelihood == pytest.approx(cold.loglik, rel=1e-12)


@pytest.mark.parametrize(("name", "params"), [
    ("bgnbd", CDNOW_PARAMS["bgnbd"]), ("mbgnbd", CDNOW_PARAMS["mbgnbd"]), ("pareto_nbd", CDNOW_PARAMS["pareto_nbd"]),
    ("bgbb", {"alpha": 1.204, "beta": 0.750, "gamma": 0.657, "delta": 2.783}),
])
def test_p_no_purchase_equals_the_posterior_simulation(name: str, params: dict) -> None:
    # P(no purchase in 10 periods) = 1 - P(alive) (1 - P(0 | alive)), against the model's own posterior simulator
    model = get(name)
    x, tx, age = np.array([0.0, 2.0, 5.0, 1.0]), np.array([0.0, 30.0, 35.0, 5.0]), np.array([39.0, 39.0, 38.0, 39.0])
    closed = 1 - model.p_alive(params, x, tx, age) * -np.expm1(model.alive_log_p_zero(params, x, age, 10.0))
    n = 50_000
    counts = model.simulate_future(np.random.default_rng(2), params, np.repeat(x, n), np.repeat(tx, n),
                                   np.repeat(age, n), np.array([4.0, 10.0]))
    share = (counts.sum(axis=1) == 0).reshape(4, n).mean(axis=1)
    assert np.all(np.abs(share - closed) <= 4 * np.sqrt(closed * (1 - closed) / n) + 1e-12), (share, closed)
