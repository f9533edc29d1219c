"""LightGBM's own TreeSHAP (pred_contrib), computed once per distinct decision pattern of each tree.

Path-dependent TreeSHAP values of one tree depend on a row only through the direction it takes at each
split of that tree (LightGBM's ``NumericalDecision`` / ``CategoricalDecision``, replicated here from the
dumped model: missing type, default direction, threshold or category set). Each feature value is first
binned once per call among all of the model's thresholds on that feature (plus NaN / zero / category
codes); per tree, a lookup table turns each used feature's bin into that tree's local decision pattern
on it, and the patterns combine into one key per row. ``pred_contrib`` runs for that tree alone
(``start_iteration=t, num_iteration=1``) on one representative row per key not seen before: small trees
keep their per-key values across calls (a scoring stage's chunks), so later chunks mostly only look
them up. The values are scattered back and summed over trees in tree order. The result equals
``booster.predict(X, pred_contrib=True)`` (tests check it, with NaN, zeros, categories and deep trees);
the cost follows the number of distinct patterns per tree instead of the number of customers.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field, replace

import lightgbm as lgb
import numpy as np
import pandas as pd

ZERO = float(np.float32(1e-35))  # LightGBM's kZeroThreshold (1e-35f)
KEY_LIMIT = 1 << 60  # largest group key before it is renumbered
TABLE_KEYS = 1 << 22  # up to this many possible keys, group through a lookup table
CACHED_CELLS = 1 << 14  # trees with at most this many (keys x features) values keep them across calls
INTEGER_RANGE = 4096  # whole-number columns spanning fewer values are binned through a table
BLOCK_ROWS = 32_768  # rows binned and keyed together (each tree's work stays in the CPU cache)
QUIET = 2  # blocks without a new key after which a tree's cache is trusted (checked only through NaN in the sums)
THREADED_ROWS = 20_000  # representative rows from which one pred_contrib call uses every core
# LightGBM's predict sets the booster's iteration range in the booster itself (InitPredict): two threads asking
# for different trees at once can get each other's tree, and a whole-model predict beside a one-tree predict on the
# same booster crashed the process (segfault, LightGBM 4.7). Every predict of a shared booster takes this lock.
PREDICT_LOCK = threading.Lock()


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


def category_codes(x: np.ndarray, top: int | None = None) -> np.ndarray:
    """LightGBM's integer category + 1 per value (0 for NaN and negatives), values above `top` as top + 2."""
    with np.errstate(invalid="ignore"):
        bad = np.isnan(x) | (x < 0)
        clipped = np.where(bad, -1.0, x if top is None else np.minimum(x, top + 1))
    return clipped.astype(np.int64) + 1


def goes_right(x: np.ndarray, split: Split) -> np.ndarray:
    """LightGBM's decision at one split for a column of values: True where the row goes to the right child."""
    if split.categories is not None:  # NaN and negative codes always go right
        shifted = category_codes(x)
        table = np.ones(max(int(shifted.max(initial=0)), int(split.categories.max()) + 1) + 1, dtype=bool)
        table[split.categories + 1] = False
        return table[shifted]
    nan = np.isnan(x)
    right = x > split.threshold  # NaN compares False
    if split.missing == "NaN":
        return np.where(nan, not split.default_left, right)
    right = np.where(nan, 0.0 > split.threshold, right)  # NaN is read as 0.0
    if split.missing == "Zero":
        right = np.where((np.abs(x) <= ZERO) | nan, not split.default_left, right)
    return right


@dataclass(frozen=True)
class Bins:
    """How one feature's values are binned so that every split of the model on it is a function of the bin.

    Numbers: the count of the model's thresholds below the value (0..m), the same + m + 1 for values LightGBM
    reads as zero when a split treats zero as missing, then NaN. Categories: category_codes up to the largest
    category any split names. `examples` holds one value per bin (to evaluate the splits on)."""

    feature: int
    thresholds: np.ndarray | None  # None: categorical
    top: int
    zero: bool
    examples: np.ndarray

    @classmethod
    def of(cls, feature: int, splits: list[Split]) -> Bins:
        """The bins of one feature from every split on it."""
        if splits[0].categories is not None:
            top = max(int(s.categories.max()) for s in splits)
            return cls(feature, None, top, False, np.concatenate([[np.nan], np.arange(top + 2, dtype=float)]))
        th = np.unique(np.array([s.threshold for s in splits], dtype=np.float64))
        upper = np.append(th, np.inf)  # the largest value of each bin (inf for the last)
        zero = any(s.missing == "Zero" for s in splits)
        if not zero:
            return cls(feature, th, len(th), zero, np.append(upper, np.nan))
        below = np.nextafter(-ZERO, -np.inf)  # a bin's values that are not read as zero lie below -ZERO
        nonzero = np.where(np.abs(upper) <= ZERO, below, upper)
        return cls(feature, th, len(th), zero, np.concatenate([nonzero, np.clip(upper, -ZERO, ZERO), [np.nan]]))

    def codes(self, x: np.ndarray) -> np.ndarray:
        """The bin of each value of this feature's column (whole numbers in a short range: through a table)."""
        if self.thresholds is None:
            return category_codes(x, self.top)
        with np.errstate(invalid="ignore"):
            whole = x.astype(np.int64)  # NaN and huge values do not survive the round trip
        if len(x) > INTEGER_RANGE and (whole == x).all():
            low, high = int(whole.min()), int(whole.max())
            if high - low < INTEGER_RANGE:
                whole -= low
                return self._search(np.arange(low, high + 1, dtype=np.float64))[whole]
        return self._search(x)

    def _search(self, x: np.ndarray) -> np.ndarray:
        """The bins of numbers by binary search among the thresholds."""
        out = np.searchsorted(self.thresholds, x)
        nan = np.isnan(x)
        if nan.any():
            out[nan] = len(self.examples) - 1
        if self.zero:
            out[(np.abs(x) <= ZERO) & ~nan] += self.top + 1
        return out


@dataclass
class Plan:
    """One tree's key: per used feature a lookup (bin -> local pattern x radix), the possible keys, cached values."""

    tree: int
    features: np.ndarray
    lookups: list[tuple[int, np.ndarray, int]]  # (bins slot, lookup, local patterns)
    keys: int  # possible keys (product of the local pattern counts), or 0 when beyond KEY_LIMIT
    values: np.ndarray | None = field(default=None, repr=False)  # (features, keys) cached contributions
    known: np.ndarray | None = field(default=None, repr=False)
    bias: float | None = None
    quiet: int = 0  # blocks in a row in which the cache met no new key


def _plan(t: int, tree: Tree, slots: dict[int, int], bins: list[Bins]) -> Plan:
    """The lookups of one tree: each feature's decision vectors over its bins, numbered."""
    lookups, keys = [], 1
    for f in tree.features:
        b = bins[slots[int(f)]]
        decided = np.column_stack([goes_right(b.examples, s) for s in tree.splits if s.feature == f])
        if decided.shape[1] < 63:  # each bin's decisions as the bits of one number
            decided = decided.astype(np.int64) @ (np.int64(1) << np.arange(decided.shape[1], dtype=np.int64))
        _, local = np.unique(decided, axis=0, return_inverse=True)
        size = int(local.max()) + 1
        lookups.append((slots[int(f)], local.reshape(-1).astype(np.int64), size))
        keys = keys * size if keys and keys * size <= KEY_LIMIT else 0
    if keys:  # fold the radix into the lookups: key = sum of lookups
        radix = 1
        for i, (slot, local, size) in reversed(list(enumerate(lookups))):
            lookups[i] = (slot, local * radix, size)
            radix *= size
    return Plan(t, tree.features, lookups, keys)


@dataclass
class Forest:
    """The booster's trees with the bins of every feature they split on and each tree's key plan.

    `plans` hold the value caches; a call that finds them in use by another thread (scoring threads) takes a
    spare set of plans with caches of its own, so no cache is shared between threads. Cached values depend only on
    the tree and the key, so every set gives the same bits."""

    trees: list[Tree]
    bins: list[Bins]
    plans: list[Plan]
    _free: list[list[Plan]] = field(default_factory=list, repr=False, compare=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def __post_init__(self) -> None:
        self._free.append(self.plans)

    def take_plans(self) -> list[Plan]:
        """A set of plans no other call is using (`plans` when free, else a spare, else a fresh copy)."""
        with self._lock:
            if self._free:
                return self._free.pop(0)
        return [replace(p, values=None, known=None, bias=None, quiet=0) for p in self.plans]

    def give_back(self, plans: list[Plan]) -> None:
        """Return a set of plans (with the values it cached) for the next call."""
        with self._lock:
            self._free.insert(0 if plans is self.plans else len(self._free), plans)

    def __getstate__(self) -> dict:  # a lock does not pickle (worker processes): spares are not sent
        return {"trees": self.trees, "bins": self.bins, "plans": self.plans}

    def __setstate__(self, state: dict) -> None:
        self.__init__(state["trees"], state["bins"], state["plans"])

    def __len__(self) -> int:
        return len(self.trees)

    def __iter__(self):  # noqa: ANN204 - the trees, as a list would
        return iter(self.trees)

    def __getitem__(self, i: int) -> Tree:
        return self.trees[i]


def compile_trees(booster: lgb.Booster) -> Forest:
    """Every tree of a binary booster as its splits, the model's bins and each tree's key plan."""
    trees = []
    for info in booster.dump_model()["tree_info"]:
        splits: list[Split] = []
        _splits(info["tree_structure"], splits)
        features = np.unique(np.array([s.feature for s in splits], dtype=np.int64))
        trees.append(Tree(tuple(splits), features))
    by_feature: dict[int, list[Split]] = {}
    for tree in trees:
        for s in tree.splits:
            by_feature.setdefault(s.feature, []).append(s)
    bins = [Bins.of(f, by_feature[f]) for f in sorted(by_feature)]
    slots = {b.feature: i for i, b in enumerate(bins)}
    return Forest(trees, bins, [_plan(t, tree, slots, bins) for t, tree in enumerate(trees)])


def _keys(plan: Plan, codes: list[np.ndarray], n: int) -> np.ndarray:
    """Per row its key in the tree (renumbered when the possible keys pass KEY_LIMIT)."""
    if plan.keys:
        if not plan.lookups:
            return np.zeros(n, dtype=np.int64)
        key = plan.lookups[0][1][codes[plan.lookups[0][0]]]
        for slot, lookup, _ in plan.lookups[1:]:
            key += lookup[codes[slot]]
        return key
    key, bound = np.zeros(n, dtype=np.int64), 1
    for slot, lookup, size in plan.lookups:
        if bound * size > KEY_LIMIT:
            key = pd.factorize(key)[0].astype(np.int64)
            bound = n
        key *= size
        key += lookup[codes[slot]]
        bound *= size
    return key


def _contrib(booster: lgb.Booster, rows: np.ndarray, t: int, width: int) -> np.ndarray:
    """pred_contrib of tree t alone on some rows: (rows, width)."""
    threads = 1 if len(rows) < THREADED_ROWS else 0  # thread start-up dominates small calls
    rows = np.ascontiguousarray(rows)
    with PREDICT_LOCK:
        out = booster.predict(rows, pred_contrib=True, start_iteration=t, num_iteration=1, num_threads=threads)
    return np.asarray(out).reshape(len(rows), width)


def _cached(booster: lgb.Booster, plan: Plan, key: np.ndarray, x: np.ndarray) -> np.ndarray:
    """The plan's (features, keys) value table with every key present in `key` filled in."""
    width = x.shape[1] + 1
    if plan.values is None:
        plan.values = np.full((len(plan.features), plan.keys), np.nan)
        plan.known = np.zeros(plan.keys, dtype=bool)
    fresh = np.zeros(plan.keys, dtype=bool)
    fresh[key] = True  # a scatter releases the GIL (bincount holds it: scoring threads)
    fresh &= ~plan.known
    found = bool(fresh.any())
    plan.quiet = 0 if found else plan.quiet + 1
    if found:
        rows = np.flatnonzero(fresh[key])
        new, first = np.unique(key[rows], return_index=True)
        contrib = _contrib(booster, x[rows[first]], plan.tree, width)
        plan.values[:, new] = contrib[:, plan.features].T
        plan.known[new] = True
        plan.bias = float(contrib[0, -1])
    return plan.values


def _grouped(key: np.ndarray, bound: int) -> tuple[np.ndarray, np.ndarray]:
    """Per row its group number, and one representative row per group."""
    n = len(key)
    if 0 < bound <= TABLE_KEYS:  # few possible keys: number them with a lookup table instead of hashing
        present = np.zeros(bound, dtype=bool)
        present[key] = True
        number = np.cumsum(present, dtype=np.int64) - 1
        codes, n_groups = number[key], int(number[-1]) + 1
    else:
        codes, uniques = pd.factorize(key)
        n_groups = len(uniques)
    first = np.empty(n_groups, dtype=np.int64)
    first[codes[::-1]] = np.arange(n - 1, -1, -1)
    return codes, first


def _add_trees(booster: lgb.Booster, plans: list[Plan], x: np.ndarray, codes: list[np.ndarray], out: np.ndarray,
               trusting: bool) -> bool:
    """Add every tree's contributions for a block of rows to out (width, rows), tree after tree; False when a
    trusted cache (a tree that found no new key in QUIET blocks, not checked) met an unknown key (NaN)."""
    width, trusted = x.shape[1] + 1, False
    for plan in plans:
        key = _keys(plan, codes, len(x))
        if plan.keys and plan.keys * len(plan.features) <= CACHED_CELLS:
            if trusting and plan.quiet >= QUIET and plan.bias is not None:
                values, trusted = plan.values, True  # unknown keys hold NaN
            else:
                values = _cached(booster, plan, key, x)
            out[-1] += plan.bias
            for j, col in enumerate(plan.features):
                out[col] += values[j][key]
            continue
        groups, first = _grouped(key, plan.keys)
        contrib = _contrib(booster, x[first], plan.tree, width)
        out[-1] += contrib[0, -1]
        for col in plan.features:
            out[col] += contrib[:, col][groups]
    return not (trusted and np.isnan(out).any())


def _block(booster: lgb.Booster, forest: Forest, plans: list[Plan], x: np.ndarray, out: np.ndarray) -> None:
    """Add every tree's contributions for a block of rows to out; the rows a trusted cache missed (NaN) again,
    with every cache checked (a row's values do not depend on the other rows)."""
    codes = [b.codes(x[:, b.feature]) for b in forest.bins]
    if not _add_trees(booster, plans, x, codes, out, trusting=True):
        missed = np.flatnonzero(np.isnan(out).any(axis=0))
        again = np.zeros((out.shape[0], missed.size))
        _add_trees(booster, plans, x[missed], [c[missed] for c in codes], again, trusting=False)
        out[:, missed] = again


def tree_contributions(booster: lgb.Booster, x: np.ndarray, trees: Forest | None = None) -> np.ndarray:
    """booster.predict(x, pred_contrib=True) for a binary model on a float matrix (category codes); safe to call
    from several threads on one forest (each call caches in a set of plans of its own)."""
    forest = trees if trees is not None else compile_trees(booster)
    x = np.asarray(x, dtype=np.float64)
    out = np.zeros((x.shape[1] + 1, x.shape[0]))
    plans = forest.take_plans()
    try:
        for start in range(0, x.shape[0], BLOCK_ROWS):
            rows = slice(start, start + BLOCK_ROWS)
            _block(booster, forest, plans, x[rows], out[:, rows])
    finally:
        forest.give_back(plans)
    return out.T
