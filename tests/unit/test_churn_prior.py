"""The churn BTYD prior reads the purchase model alone: spend neither changes it nor can make it fail."""

from __future__ import annotations

import numpy as np
import pandas as pd

from models.churn.prior import btyd_prior
from models.clv import fit_clv


def rfm_frame(n: int = 400, seed: int = 5) -> pd.DataFrame:
    """One cutoff of daily RFM rows with amounts."""
    rng = np.random.default_rng(seed)
    age = rng.integers(60, 400, n).astype(float)
    x = np.minimum(rng.poisson(2.0, n), 30).astype(float)
    recency = np.where(x > 0, np.floor(rng.uniform(0.3, 1.0, n) * age), 0.0)
    return pd.DataFrame({"customer_id": [f"c{i:04d}" for i in range(n)], "cutoff": "2020-01-01", "frequency": x,
                         "recency": recency, "T": age,
                         "monetary_value": np.where(x > 0, np.round(rng.lognormal(3, 0.6, n), 2), 0.0)})


def test_the_prior_is_the_purchase_models_probability_whatever_the_spend() -> None:
    frame = rfm_frame()
    prior, failures = btyd_prior(frame, "bgnbd", 90, 1.0, seed=1)
    assert failures == {}
    full = fit_clv(frame, "bgnbd", time_unit_days=1.0, seed=1)  # purchases + Gamma-Gamma
    np.testing.assert_array_equal(prior, full.predict(frame, 90)["p_no_purchase_90d"].to_numpy())
    zero = frame.assign(monetary_value=0.0)  # Gamma-Gamma cannot be fitted on this
    prior_zero, failures = btyd_prior(zero, "bgnbd", 90, 1.0, seed=1)
    assert failures == {}
    np.testing.assert_array_equal(prior_zero, prior)
