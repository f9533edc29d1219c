"""Choose the churn champion on training-period validation only, preferring simpler models without evidence.

Candidates, simplest first: BTYD P(no purchase) (no labels), the recency rule and logistic regression on
log-RFM (the baselines), LightGBM, then LightGBM boosting from a BTYD prior. Every candidate is scored on the
same validation rows: the latest training cutoff held out in time (fit rows purged of overlapping labels,
models/churn/split.py) when usable, else the out-of-fold rows of the customer-grouped CV on the training
rows. The evaluation cutoff is never read here.

Rule: the incumbent starts as the baseline with the lowest validation log loss (among baselines whose log
loss is within the paired-bootstrap noise of that one, the one with the highest AUC). Each more complex candidate,
in order, replaces the incumbent only when (a) its log loss is lower than the incumbent's beyond validation
noise (the upper end of the customer-grouped paired-bootstrap 95% interval of the difference is below 0;
with ``min_evidence`` off: any lower point estimate) and (b) it is no worse than the best baseline on
validation: log loss <= the lowest baseline log loss and ROC AUC >= the highest baseline AUC. Small or
noisy data therefore keep a baseline by themselves.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from models import metrics


@dataclass(frozen=True)
class Choice:
    """The champion, every candidate's validation figures, the margins and the decision trail."""

    name: str
    validation: dict[str, dict[str, float]]
    margin_vs_best_baseline: dict[str, dict[str, float | str]]
    steps: list[str]


def group_bootstrap_deltas(
    y: np.ndarray,
    p_a: np.ndarray,
    p_b: np.ndarray,
    groups: np.ndarray,
    metric: str,
    n_boot: int,
    seed: int,
) -> np.ndarray:
    """metric(a) - metric(b) over n_boot resamples of whole groups (customers) with replacement."""
    fn = {"log_loss": metrics.log_loss, "roc_auc": metrics.roc_auc}[metric]
    codes = np.unique(groups, return_inverse=True)[1]
    order = np.argsort(codes, kind="stable")  # row positions grouped by customer
    sizes = np.bincount(codes)
    starts = np.cumsum(sizes) - sizes
    rng = np.random.default_rng(seed)
    out = np.empty(n_boot)
    for b in range(n_boot):
        counts = sizes[pick := rng.integers(0, sizes.size, sizes.size)]
        within = np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts)
        rows = order[np.repeat(starts[pick], counts) + within]
        out[b] = fn(y[rows], p_a[rows]) - fn(y[rows], p_b[rows])
    return out


def validation_metrics(y: np.ndarray, p: np.ndarray, n_bins: int) -> dict[str, float]:
    """ROC AUC, log loss, ECE and row count of one candidate on the validation rows."""
    return {
        "auc": float(metrics.roc_auc(y, p)),
        "log_loss": float(metrics.log_loss(y, p)),
        "ece": float(metrics.ece(y, p, n_bins)),
        "n": int(y.size),
    }


def _interval(deltas: np.ndarray) -> list[float]:
    """The 95% percentile interval of bootstrap deltas."""
    lo, hi = np.percentile(deltas, [2.5, 97.5])
    return [float(lo), float(hi)]


def _starting_baseline(
    y: np.ndarray,
    predictions: Mapping[str, np.ndarray],
    pool: list[str],
    table: dict[str, dict[str, float]],
    groups: np.ndarray,
    boots: int,
    seed: int,
    min_evidence: bool,
) -> tuple[str, list[str]]:
    """The baseline with the lowest validation log loss; among baselines within its noise, the highest AUC."""
    best = min(pool, key=lambda n: table[n]["log_loss"])
    tied = [best]
    if boots and min_evidence:
        for name in pool:
            if name != best:
                deltas = group_bootstrap_deltas(
                    y, predictions[name], predictions[best], groups, "log_loss", boots, seed
                )
                if _interval(deltas)[0] <= 0:
                    tied.append(name)
    start = max(tied, key=lambda n: table[n]["auc"])
    steps = [f"lowest validation log loss of the baselines: {best} ({table[best]['log_loss']:.4f})"]
    if start != best:
        steps.append(
            f"start from {start}: log loss {table[start]['log_loss']:.4f} within the noise of {best}'s, "
            f"higher AUC ({table[start]['auc']:.4f} vs {table[best]['auc']:.4f})"
        )
    return start, steps


def choose(
    y: np.ndarray,
    predictions: Mapping[str, np.ndarray],
    order: Sequence[str],
    baselines: Sequence[str],
    groups: np.ndarray,
    *,
    min_evidence: bool = True,
    n_boot: int = 200,
    seed: int = 0,
    n_bins: int = 10,
) -> Choice:
    """Apply the module's rule to validation predictions (order: simplest first; baselines: a subset)."""
    y = np.asarray(y, dtype=float)
    names = [n for n in order if n in predictions]
    pool = [b for b in baselines if b in predictions]
    if not pool:
        raise ValueError("no baseline has validation predictions: nothing to compare a champion against")
    table = {n: validation_metrics(y, np.asarray(predictions[n], dtype=float), n_bins) for n in names}
    best_ll = min(pool, key=lambda n: table[n]["log_loss"])
    best_auc = max(pool, key=lambda n: table[n]["auc"])
    boots = max(int(n_boot), 0)
    incumbent, steps = _starting_baseline(y, predictions, pool, table, groups, boots, seed, min_evidence)
    for name in names:
        if name in pool:
            continue
        row, inc = table[name], table[incumbent]
        if boots:
            deltas = group_bootstrap_deltas(
                y, predictions[name], predictions[incumbent], groups, "log_loss", boots, seed
            )
            lo, hi = _interval(deltas)
            beats = hi < 0 if min_evidence else row["log_loss"] < inc["log_loss"]
            delta = row["log_loss"] - inc["log_loss"]
            evidence = f"log loss {delta:+.4f} vs {incumbent}, 95% CI [{lo:+.4f}, {hi:+.4f}]"
        else:
            beats = row["log_loss"] < inc["log_loss"]
            evidence = f"log loss {row['log_loss'] - inc['log_loss']:+.4f} vs {incumbent} (no bootstrap)"
        safe = row["log_loss"] <= table[best_ll]["log_loss"] and row["auc"] >= table[best_auc]["auc"]
        if beats and safe:
            steps.append(f"{name} replaces {incumbent}: {evidence}")
            incumbent = name
        else:
            why = (
                "no lower log loss beyond validation noise"
                if not beats
                else (f"worse than the best baseline (AUC {row['auc']:.4f} vs {best_auc} {table[best_auc]['auc']:.4f})")
            )
            steps.append(f"{name} kept out: {evidence}; {why}")
    margins = {}
    for metric, key, best in (("log_loss", "log_loss", best_ll), ("roc_auc", "auc", best_auc)):
        margin: dict[str, float | str] = {
            "best_baseline": best,
            "best_baseline_value": table[best][key],
            "champion_value": table[incumbent][key],
            "delta": table[incumbent][key] - table[best][key],
        }
        if boots and incumbent != best:
            deltas = group_bootstrap_deltas(y, predictions[incumbent], predictions[best], groups, metric, boots, seed)
            margin["delta_ci95"] = _interval(deltas)
        margins[metric] = margin
    return Choice(incumbent, table, margins, steps)
