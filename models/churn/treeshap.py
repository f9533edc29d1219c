"""LightGBM's own TreeSHAP (pred_contrib), computed once per distinct decision pattern of each tree.

Path-dependent TreeSHAP values of one tree depend on a row only through the outcome of each split of that
tree. Rows are grouped per tree by a code per split that refines LightGBM's decision (NaN, zero, or the
side of the threshold / category set), ``pred_contrib`` runs on one representative row per group for that
tree alone (``start_iteration=t, num_iteration=1``), and the values are scattered back and summed over
trees. The result equals ``booster.predict(X, pred_contrib=True)`` (tests check it); the cost scales with
the number of distinct patterns per tree (a few hundred) instead of the number of customers.
"""

from __future__ import annotations

from dataclasses import dataclass

import lightgbm as lgb
import numpy as np
import pandas as pd

ZERO = 1e-35  # LightGBM's kZeroThreshold
KEY_LIMIT = 1 << 60  # largest group key before it is renumbered
THREADED_ROWS = 20_000  # representative rows from which one pred_contrib call uses every core


@dataclass(frozen=True)
class Split:
    """One internal node: feature column, numeric threshold or category set."""

    feature: int
    threshold: float
    categories: np.ndarray | None


@dataclass(frozen=True)
class Tree:
    """The splits of one tree and the feature columns they use."""

    splits: tuple[Split, ...]
    features: np.ndarray


def _splits(node: dict, out: list[Split]) -> None:
    """Collect the internal nodes of a dumped tree, depth first."""
    if "split_feature" not in node:
        return
    if node["decision_type"] == "==":
        cats = np.array([int(c) for c in str(node["threshold"]).split("||")], dtype=np.int64)
        out.append(Split(int(node["split_feature"]), np.nan, cats))
    else:
        out.append(Split(int(node["split_feature"]), float(node["threshold"]), None))
    _splits(node["left_child"], out)
    _splits(node["right_child"], out)


def compile_trees(booster: lgb.Booster) -> list[Tree]:
    """Every tree of a binary booster as its list of splits."""
    trees = []
    for info in booster.dump_model()["tree_info"]:
        splits: list[Split] = []
        _splits(info["tree_structure"], splits)
        features = np.unique(np.array([s.feature for s in splits], dtype=np.int64))
        trees.append(Tree(tuple(splits), features))
    return trees


class _Columns:
    """Column-major input with, per column, a code for NaN (2) and zero (3) values computed once."""

    def __init__(self, x: np.ndarray) -> None:
        self.x = np.asfortranarray(x, dtype=np.float64)
        self._special: dict[int, np.ndarray | None] = {}

    def special(self, col: int) -> np.ndarray | None:
        """int64 codes 2 (NaN) / 3 (zero) / 0 (other) for one column, None when it has neither."""
        if col not in self._special:
            x = self.x[:, col]
            nan, zero = np.isnan(x), np.abs(x) <= ZERO
            self._special[col] = (2 * nan + 3 * zero).astype(np.int64) if (nan.any() or zero.any()) else None
        return self._special[col]

    def code(self, split: Split) -> np.ndarray:
        """0/1 = side of the split, 2 = NaN or negative category, 3 = zero: refines LightGBM's decision."""
        x = self.x[:, split.feature]
        if split.categories is not None:
            with np.errstate(invalid="ignore"):
                side = (~np.isin(np.nan_to_num(x, nan=-1.0).astype(np.int64), split.categories)).astype(
                    np.int64
                )
            return np.where(np.isnan(x) | (x < 0), 2, side)
        side = (x > split.threshold).astype(np.int64)
        special = self.special(split.feature)
        return side if special is None else np.where(special > 0, special, side)


def _groups(cols: _Columns, tree: Tree) -> tuple[np.ndarray, np.ndarray]:
    """Per row its group id, and one representative row index per group."""
    n = cols.x.shape[0]
    key, bound = np.zeros(n, dtype=np.int64), 0
    for split in tree.splits:
        if bound > KEY_LIMIT:  # renumber the distinct keys 0..n-1 so that key * 4 + 3 stays within int64
            key = pd.factorize(key)[0].astype(np.int64)
            bound = n
        key = key * 4 + cols.code(split)
        bound = bound * 4 + 3
    codes, uniques = pd.factorize(key)
    first = np.empty(len(uniques), dtype=np.int64)
    first[codes[::-1]] = np.arange(n - 1, -1, -1)
    return codes, first


def tree_contributions(booster: lgb.Booster, x: np.ndarray, trees: list[Tree] | None = None) -> np.ndarray:
    """booster.predict(x, pred_contrib=True) for a binary model on a float matrix (category codes)."""
    trees = trees if trees is not None else compile_trees(booster)
    cols = _Columns(x)
    n, width = cols.x.shape[0], cols.x.shape[1] + 1
    out = np.zeros((width, n))
    if n == 0:
        return out.T
    for t, tree in enumerate(trees):
        codes, first = _groups(cols, tree)
        threads = 1 if len(first) < THREADED_ROWS else 0  # thread start-up dominates small calls
        contrib = booster.predict(
            np.ascontiguousarray(cols.x[first]),
            pred_contrib=True,
            start_iteration=t,
            num_iteration=1,
            num_threads=threads,
        )
        contrib = np.asarray(contrib).reshape(len(first), width)
        out[-1] += contrib[0, -1]
        for col in tree.features:
            out[col] += contrib[:, col][codes]
    return out.T
