"""Grouped TreeSHAP equals LightGBM's pred_contrib on the whole matrix (NaN, zeros, categories, depth)."""

from __future__ import annotations

import threading
from dataclasses import replace

import lightgbm as lgb
import numpy as np
import pandas as pd
import pytest

from models.churn import treeshap
from models.churn.treeshap import Bins, Split, compile_trees, goes_right, tree_contributions


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


def test_bins_count_thresholds_below_then_zero_then_nan() -> None:
    split = Split(0, 1.0, None, "Zero", True)
    bins = Bins.of(0, [split, replace(split, threshold=3.0), replace(split, threshold=1.0)])
    x = np.array([0.5, 1.0, 2.0, 3.0, 4.0, np.nan, 0.0, -1e-36])
    assert bins.codes(x).tolist() == [0, 0, 1, 1, 2, 6, 3, 3]  # two thresholds: 0..2, zero 3..5, NaN 6
    assert len(bins.examples) == 7
    near = [Split(0, t, None, m, True) for t, m in ((-2.0, "Zero"), (treeshap.ZERO, "None"), (-treeshap.ZERO, "NaN"))]
    bins = Bins.of(0, near)  # thresholds at LightGBM's zero bounds: every split must still be a function of the bin
    x = np.array([-3.0, -1.0, -treeshap.ZERO, 0.0, 1e-36, treeshap.ZERO, 1e-30, np.nan, -1e-40])
    for split in near:
        assert (goes_right(bins.examples, split)[bins.codes(x)] == goes_right(x, split)).all()
    counts = (np.arange(10_000) % 41 - 3).astype(float)  # whole numbers in a short range: binned through a table
    assert (bins.codes(counts) == bins._search(counts)).all()
    assert (bins.codes(counts + 0.5) == bins._search(counts + 0.5)).all()
    cats = Bins.of(1, [Split(1, np.nan, np.array([0, 2]), "None", False)])
    assert cats.codes(np.array([np.nan, -1.0, 0.0, 2.0, 7.0])).tolist() == [0, 0, 1, 3, 4]  # 7: beyond any set


def test_cache_blocks_and_renumbering_equal_pred_contrib(monkeypatch: pytest.MonkeyPatch) -> None:
    """Values kept across calls, rows in blocks, keys renumbered past KEY_LIMIT: still pred_contrib."""
    frame, y = _data(1500, seed=5)
    frame["c"] = np.where(np.arange(1500) % 7 == 0, 1e-36, frame["c"])  # LightGBM reads these as zero
    params = {"objective": "binary", "num_leaves": 7, "min_child_samples": 5, "verbosity": -1,
              "zero_as_missing": True, "cat_smooth": 1, "min_data_per_group": 5}
    booster = lgb.train(params, lgb.Dataset(frame, y), num_boost_round=15)
    monkeypatch.setattr(treeshap, "BLOCK_ROWS", 97)
    forest = compile_trees(booster)
    for seed in (11, 12):  # the second call reuses the values of the first and adds new keys
        score, _ = _data(600, seed=seed)
        expected = booster.predict(score, pred_contrib=True)
        np.testing.assert_allclose(tree_contributions(booster, _matrix(score), forest), expected, rtol=0, atol=1e-10)
    assert all(plan.known is not None and plan.known.any() for plan in forest.plans)
    monkeypatch.setattr(treeshap, "QUIET", 0)  # caches trusted before they hold anything: rows redone from NaN
    np.testing.assert_allclose(tree_contributions(booster, _matrix(score), compile_trees(booster)), expected, rtol=0,
                               atol=1e-10)
    monkeypatch.setattr(treeshap, "KEY_LIMIT", 4)  # every tree renumbers its keys and groups per call
    renumbered = compile_trees(booster)
    assert any(plan.keys == 0 for plan in renumbered.plans)
    np.testing.assert_allclose(tree_contributions(booster, _matrix(score), renumbered), expected, rtol=0, atol=1e-10)


def test_threads_sharing_a_forest_cache_in_plans_of_their_own_and_give_the_same_bits() -> None:
    """Two threads on one forest: each call takes a free set of plans (a spare when one is busy); the sums equal
    one thread's bit for bit and the forest keeps `plans` plus one spare for the next calls."""
    from concurrent.futures import ThreadPoolExecutor

    frame, y = _data(1500, seed=8)
    booster = lgb.train({"objective": "binary", "num_leaves": 7, "min_child_samples": 5, "verbosity": -1},
                        lgb.Dataset(frame, y), num_boost_round=10)
    parts = [_matrix(_data(400, seed=s)[0]) for s in (21, 22, 23, 24)]
    serial = [tree_contributions(booster, x, compile_trees(booster)) for x in parts]
    forest, started = compile_trees(booster), threading.Barrier(2)

    def call(x: np.ndarray) -> np.ndarray:
        plans = forest.take_plans()  # hold a set while the other thread takes one: two sets in use at once
        started.wait(timeout=10)
        forest.give_back(plans)
        return tree_contributions(booster, x, forest)

    with ThreadPoolExecutor(2) as pool:
        threaded = list(pool.map(call, parts))
    assert all(np.array_equal(a, b) for a, b in zip(serial, threaded, strict=True))
    assert len(forest._free) == 2 and forest._free[0] is forest.plans
    spare = forest._free[1]
    assert spare is not forest.plans and all(p.values is None or p.values is not q.values
                                             for p, q in zip(spare, forest.plans, strict=True))


def test_one_tree_pred_contrib_from_two_threads_gets_its_own_tree() -> None:
    """LightGBM keeps the asked iteration range in the booster: without treeshap's lock, threads asking for
    different trees at once got another tree's values (18 of 2,000 calls here)."""
    from concurrent.futures import ThreadPoolExecutor

    frame, y = _data(1000, seed=3)
    booster = lgb.train({"objective": "binary", "num_leaves": 7, "verbosity": -1}, lgb.Dataset(frame, y),
                        num_boost_round=40)
    rows = _matrix(frame.iloc[:50])
    expected = {t: treeshap._contrib(booster, rows, t, rows.shape[1] + 1) for t in range(40)}
    with ThreadPoolExecutor(2) as pool:
        for _ in range(25):
            got = pool.map(lambda t: (t, treeshap._contrib(booster, rows, t, rows.shape[1] + 1)), range(40))
            assert all(np.array_equal(v, expected[t]) for t, v in got)
