"""LightGBM's own TreeSHAP (pred_contrib), computed once per distinct decision pattern of each tree.

Path-dependent TreeSHAP values of one tree depend on a row only through the direction it takes at each
split of that tree (LightGBM's ``NumericalDecision`` / ``CategoricalDecision``, replicated here from the
dumped model: missing type, default direction, threshold or category set). Rows are grouped per tree by
that bit vector, ``pred_contrib`` runs on one representative row per group for that tree alone
(``start_iteration=t, num_iteration=1``), and the values are scattered back and summed over trees. The
result equals ``booster.predict(X, pred_contrib=True)`` (tests check it, with NaN, zeros, categories and
deep trees); the cost follows the number of distinct patterns per tree instead of the number of customers.
"""

from __future__ import annotations

from dataclasses import dataclass

import lightgbm as lgb
import numpy as np
import pandas as pd

ZERO = 1e-35  # LightGBM's kZeroThreshold
KEY_LIMIT = 1 << 60  # largest group key before it is renumbered
TABLE_KEYS = 1 << 22  # up to this many possible keys, group through a lookup table
THREADED_ROWS = 20_000  # representative rows from which one pred_contrib call uses every core


@dataclass(frozen=True)
class Split:
    """One internal node: feature column, threshold or category set, and where missing values go."""

    feature: int
    threshold: float
    categories: np.ndarray | None
    missing: str  # LightGBM missing type: None (NaN read as 0), Zero (0 and NaN missing), NaN
    default_left: bool


@dataclass(frozen=True)
class Tree:
    """The splits of one tree and the feature columns they use."""

    splits: tuple[Split, ...]
    features: np.ndarray


def _splits(node: dict, out: list[Split]) -> None:
    """Collect the internal nodes of a dumped tree, depth first."""
    if "split_feature" not in node:
        return
    feature, missing, left = int(node["split_feature"]), str(node["missing_type"]), bool(node["default_left"])
    if node["decision_type"] == "==":
        cats = np.array([int(c) for c in str(node["threshold"]).split("||")], dtype=np.int64)
        out.append(Split(feature, np.nan, cats, missing, left))
    else:
        out.append(Split(feature, float(node["threshold"]), None, missing, left))
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
    """Column-major input with per-column masks and category codes, each computed once."""

    def __init__(self, x: np.ndarray) -> None:
        self.x = np.asfortranarray(x, dtype=np.float64)
        self._cache: dict[tuple[str, int], np.ndarray | None] = {}

    def _get(self, kind: str, col: int) -> np.ndarray | None:
        """nan: NaN mask (None if no NaN); zero: |x| <= 1e-35 after NaN -> 0; shifted: category code + 1."""
        key = (kind, col)
        if key not in self._cache:
            x = self.x[:, col]
            nan = np.isnan(x)
            if kind == "nan":
                value = nan if nan.any() else None
            elif kind == "zero":
                value = (np.abs(x) <= ZERO) | nan
            else:
                with np.errstate(invalid="ignore"):
                    value = np.where(nan | (x < 0), -1, x).astype(np.int64) + 1
            self._cache[key] = value
        return self._cache[key]

    def goes_right(self, split: Split) -> np.ndarray:
        """LightGBM's decision at one split: True where the row goes to the right child."""
        x = self.x[:, split.feature]
        if split.categories is not None:  # NaN and negative codes always go right
            shifted = self._get("shifted", split.feature)
            table = np.ones(max(int(shifted.max()), int(split.categories.max()) + 1) + 1, dtype=bool)
            table[split.categories + 1] = False
            return table[shifted]
        nan = self._get("nan", split.feature)
        if split.missing == "NaN":
            right = x > split.threshold  # NaN compares False
            return right if nan is None else np.where(nan, not split.default_left, right)
        right = x > split.threshold
        if nan is not None:  # NaN is read as 0.0
            right = np.where(nan, 0.0 > split.threshold, right)
        if split.missing == "Zero":
            right = np.where(self._get("zero", split.feature), not split.default_left, right)
        return right


def _groups(cols: _Columns, tree: Tree) -> tuple[np.ndarray, np.ndarray]:
    """Per row its group id (the bit vector of its decisions), and one representative row per group."""
    n = cols.x.shape[0]
    key, bound = np.zeros(n, dtype=np.int64), 0
    for split in tree.splits:
        if bound > KEY_LIMIT:  # renumber the distinct keys 0..n-1 so that key * 2 + 1 stays within int64
            key = pd.factorize(key)[0].astype(np.int64)
            bound = n
        np.left_shift(key, 1, out=key)
        np.bitwise_or(key, cols.goes_right(split), out=key)
        bound = bound * 2 + 1
    if bound < TABLE_KEYS:  # few possible keys: number them with a lookup table instead of hashing
        present = np.zeros(bound + 1, dtype=bool)
        present[key] = True
        number = np.cumsum(present, dtype=np.int64) - 1
        codes, n_groups = number[key].astype(np.int32), int(number[-1]) + 1
    else:
        codes, uniques = pd.factorize(key)
        codes, n_groups = codes.astype(np.int32), len(uniques)
    first = np.empty(n_groups, dtype=np.int64)
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
