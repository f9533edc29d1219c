"""Validation of RFM frames and compression of customers into unique sufficient-statistic rows."""

from __future__ import annotations

import numpy as np
import pandas as pd

from models.clv.btyd import REGISTRY, SPEND_MODEL, get

RFM_COLUMNS = ("customer_id", "frequency", "recency", "T", "monetary_value")
MODELS = tuple(REGISTRY)  # registered purchase models
PURCHASE_PARAMS = {name: model.param_names for name, model in REGISTRY.items()}
SPEND_PARAMS = SPEND_MODEL.param_names


def check_model(model: str) -> str:
    """The model name, or a ValueError listing the registered ones."""
    get(model)
    return model


def spend_missing(rfm: pd.DataFrame) -> bool:
    """True when the frame has no amounts at all (monetary_value entirely null): spend is not modelled."""
    return "monetary_value" in rfm.columns and len(rfm) > 0 and bool(rfm["monetary_value"].isna().all())


def rfm_arrays(rfm: pd.DataFrame) -> dict[str, np.ndarray]:
    """frequency, recency, T, monetary_value as float arrays, after checking the frame is usable.

    monetary_value may be entirely null (data without amounts): it is returned as NaN; partly null is an error.
    """
    missing = [c for c in RFM_COLUMNS if c not in rfm.columns]
    if missing:
        raise ValueError(f"rfm frame lacks column(s) {missing}; expected {list(RFM_COLUMNS)}")
    if len(rfm) == 0:
        raise ValueError("rfm frame has no rows")
    if rfm["customer_id"].isna().any():
        raise ValueError("rfm customer_id has missing values")
    out = {}
    for col in RFM_COLUMNS[1:]:
        if col == "monetary_value" and spend_missing(rfm):
            out[col] = np.full(len(rfm), np.nan)
            continue
        values = pd.to_numeric(rfm[col], errors="coerce").to_numpy(dtype=float, na_value=np.nan)
        bad = int((~np.isfinite(values)).sum())
        if bad:
            raise ValueError(f"rfm column {col!r} has {bad} NaN/inf/non-numeric value(s)")
        out[col] = values
    for col in ("frequency", "recency", "T"):
        if (out[col] < 0).any():
            raise ValueError(f"rfm column {col!r} has {int((out[col] < 0).sum())} negative value(s)")
    x, tx, age = out["frequency"], out["recency"], out["T"]
    if (x != np.round(x)).any():
        raise ValueError("rfm column 'frequency' must hold whole numbers of repeat purchases")
    if (tx > age).any():
        raise ValueError(f"rfm recency exceeds T for {int((tx > age).sum())} customer(s)")
    if ((x == 0) & (tx != 0)).any():
        raise ValueError("rfm recency must be 0 for customers with frequency 0")
    return out


def unique_rows(*columns: np.ndarray) -> tuple[list[np.ndarray], np.ndarray, np.ndarray]:
    """Unique combinations of the columns, each row's index into them, and how many rows share each."""
    key, n_keys = np.zeros(len(columns[0]), dtype=np.int64), 1
    for col in columns:
        codes, uniques = pd.factorize(col, sort=False)
        if n_keys * len(uniques) >= 2**62:
            key, distinct = pd.factorize(key, sort=False)
            n_keys = len(distinct)
        key, n_keys = key * len(uniques) + codes, n_keys * len(uniques)
    key, _ = pd.factorize(key, sort=False)
    first = np.full(int(key.max()) + 1 if len(key) else 0, -1, dtype=np.int64)
    first[key[::-1]] = np.arange(len(key) - 1, -1, -1)
    counts = np.bincount(key, minlength=len(first))
    return [np.asarray(col)[first] for col in columns], key, counts


def split_weights(weights: np.ndarray, holdout_frac: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Random split of the customers behind each weighted row into (train, held-out) counts."""
    held = np.random.default_rng(seed).binomial(weights.astype(np.int64), holdout_frac)
    return weights - held, held
