"""Seeded draws of RFM summaries (and what follows) from a registered model's generative story, vectorised."""

from __future__ import annotations

import numpy as np
import pandas as pd

from models.clv.btyd import SPEND_MODEL, get
from models.clv.btyd.base import Params


def simulate(model: str, params: Params, age: np.ndarray, horizon: float, seed: int,
             spend: Params | None = None) -> pd.DataFrame:
    """RFM at T = age per customer, and future_purchases in (T, T + horizon], drawn from the model."""
    rng = np.random.default_rng(seed)
    age = np.asarray(age, dtype=float)
    x, tx, future = get(model).simulate(rng, params, age, horizon)
    out = pd.DataFrame({"customer_id": np.arange(age.size).astype(str), "frequency": x, "recency": tx,
                        "T": age, "future_purchases": np.asarray(future, dtype=float)})
    out["monetary_value"] = 0.0 if spend is None else SPEND_MODEL.simulate(rng, spend, x)
    return out
