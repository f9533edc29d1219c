"""Grouped TreeSHAP equals LightGBM's pred_contrib on the whole matrix (NaN, zeros, categories, depth)."""

from __future__ import annotations

import lightgbm as lgb
import numpy as np
import pandas as pd
import pytest

from models.churn.treeshap import compile_trees, tree_contributions


def _data(n: int, seed: int) -> tuple[pd.DataFrame, np.ndarray]:
    """Numeric columns with NaN and exact zeros, a categorical column with missing values, a binary label."""
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame({
        "a": rng.normal(size=n),
        "b": np.where(rng.random(n) < 0.2, np.nan, rng.exponential(size=n)),
        "c": np.where(rng.random(n) < 0.3, 0.0, rng.normal(size=n)),
        "d": rng.integers(-3, 4, n).astype(float),
        "cat": pd.Categorical.from_codes(rng.integers(-1, 6, n), list("uvwxyz")),
    })
    logit = frame["a"] + np.nan_to_num(frame["b"]) - 2 * (frame["c"] == 0) + (frame["cat"].cat.codes % 2)
    return frame, (rng.random(n) < 1 / (1 + np.exp(-logit))).to_numpy().astype(float)


def _matrix(frame: pd.DataFrame) -> np.ndarray:
    """Numbers as they are, the categorical as its codes (NaN when missing)."""
    out = frame.drop(columns="cat").to_numpy(dtype=float)
    codes = frame["cat"].cat.codes.to_numpy().astype(float)
    return np.column_stack([out, np.where(codes < 0, np.nan, codes)])


@pytest.mark.parametrize("leaves, zero_as_missing", [(7, False), (63, False), (15, True)])
def test_grouped_equals_pred_contrib(leaves: int, zero_as_missing: bool) -> None:
    frame, y = _data(3000, seed=leaves)
    params = {"objective": "binary", "num_leaves": leaves, "min_child_samples": 5, "verbosity": -1,
              "zero_as_missing": zero_as_missing, "cat_smooth": 1, "min_data_per_group": 5}
    booster = lgb.train(params, lgb.Dataset(frame, y), num_boost_round=30)
    score, _ = _data(2000, seed=99)
    x = _matrix(score)
    expected = booster.predict(score, pred_contrib=True)
    np.testing.assert_allclose(tree_contributions(booster, x), expected, rtol=0, atol=1e-10)
    assert max(len(t.splits) for t in compile_trees(booster)) > (31 if leaves == 63 else 0)


def test_empty_input() -> None:
    frame, y = _data(300, seed=1)
    booster = lgb.train({"objective": "binary", "verbosity": -1}, lgb.Dataset(frame, y), num_boost_round=3)
    assert tree_contributions(booster, np.empty((0, 5))).shape == (0, 6)
