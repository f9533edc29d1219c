"""BG/BB on lifetimes' donations data (11,104 donors, 6 yearly opportunities): published figures and lifetimes.

Fader, Hardie & Shang (2010): alpha = 1.204, beta = 0.750, gamma = 0.657, delta = 2.783; P(alive) for
(x, t_x) = (0, 0): 0.11, (2, 4): 0.59, (6, 6): 0.93 (shared REFERENCE.md). Periods are years
(time_unit_days = 365); the data have no amounts, so the CLV model has no spend part.
"""

from __future__ import annotations

import warnings
from importlib import resources

import numpy as np
import pandas as pd
import pytest

from models.clv import ClvModel, fit_clv

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from lifetimes import BetaGeoBetaBinomFitter

PUBLISHED = {"alpha": 1.204, "beta": 0.750, "gamma": 0.657, "delta": 2.783}
YEAR = 365.0


@pytest.fixture(scope="module")
def donations() -> pd.DataFrame:
    """donations.csv (frequency, recency, periods, weights) expanded to one row per donor, no amounts."""
    raw = pd.read_csv(str(resources.files("lifetimes").joinpath("datasets", "donations.csv")))
    rows = raw.loc[raw.index.repeat(raw["weights"])].reset_index(drop=True)
    return pd.DataFrame({"customer_id": rows.index.astype(str), "frequency": rows["frequency"].astype(float),
                         "recency": rows["recency"].astype(float), "T": rows["periods"].astype(float),
                         "monetary_value": None})


@pytest.fixture(scope="module")
def model(donations) -> ClvModel:
    """BG/BB fitted through our interface."""
    return fit_clv(donations, "bgbb", time_unit_days=YEAR)


@pytest.fixture(scope="module")
def lifetimes_fit() -> BetaGeoBetaBinomFitter:
    """lifetimes' BG/BB fitted on the same (compressed) data."""
    raw = pd.read_csv(str(resources.files("lifetimes").joinpath("datasets", "donations.csv")))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return BetaGeoBetaBinomFitter().fit(raw["frequency"], raw["recency"], raw["periods"], weights=raw["weights"])


def test_published_parameters(model) -> None:
    assert model.purchases.n_customers == 11_104 and model.spend is None
    for key, value in PUBLISHED.items():
        assert model.purchases.params[key] == pytest.approx(value, abs=1e-3), key  # published to 3 decimals
    assert model.purchases.boundary == []


def test_parameters_equal_lifetimes(model, lifetimes_fit) -> None:
    for key, value in model.purchases.params.items():
        assert value == pytest.approx(lifetimes_fit.params_[key], rel=1e-6), key


def test_published_p_alive(model) -> None:
    rows = pd.DataFrame({"customer_id": ["a", "b", "c"], "frequency": [0.0, 2.0, 6.0],
                         "recency": [0.0, 4.0, 6.0], "T": [6.0] * 3, "monetary_value": None})
    got = model.predict(rows, int(YEAR))["p_alive"].to_numpy()
    np.testing.assert_allclose(got, [0.11, 0.59, 0.93], atol=0.005)  # published to 2 decimals


@pytest.mark.parametrize("years", [1, 3, 10])
def test_predictions_equal_lifetimes(model, lifetimes_fit, donations, years: int) -> None:
    rows = donations.drop_duplicates(["frequency", "recency", "T"])
    ours = ClvModel.from_params("bgbb", dict(lifetimes_fit.params_), None, time_unit_days=YEAR)
    out = ours.predict(rows, int(YEAR * years))
    x, tx, n = (rows[c].to_numpy() for c in ("frequency", "recency", "T"))
    np.testing.assert_allclose(out["p_alive"], lifetimes_fit.conditional_probability_alive(1, x, tx, n), rtol=1e-9)
    expected = lifetimes_fit.conditional_expected_number_of_purchases_up_to_time(years, x, tx, n)
    np.testing.assert_allclose(out[f"expected_purchases_{int(YEAR * years)}d"], expected, rtol=1e-9)
    assert out["expected_aov"].isna().all() and out["clv_12m"].isna().all()
