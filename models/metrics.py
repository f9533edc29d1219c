"""Binary classification metrics and curve tables shared by the churn and CLV models (positive class = 1)."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pandas as pd
from sklearn import metrics as skm

EPS = 1e-15


def _arrays(
    y_true: Sequence[float] | np.ndarray, p: Sequence[float] | np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Labels and probabilities as float arrays of equal length: labels 0/1, probabilities in [0, 1]."""
    y = np.asarray(y_true, dtype=float).ravel()
    q = np.asarray(p, dtype=float).ravel()
    if y.shape != q.shape:
        raise ValueError(f"labels ({y.size}) and probabilities ({q.size}) differ in length")
    if y.size == 0:
        raise ValueError("no rows to score")
    if not np.isin(y, (0.0, 1.0)).all():
        raise ValueError("labels must be 0 or 1 (no missing values)")
    if not np.isfinite(q).all() or (q < 0).any() or (q > 1).any():
        raise ValueError("probabilities must be finite and within [0, 1]")
    return y, q


def log_loss(y_true: Sequence[float], p: Sequence[float]) -> float:
    """Mean negative log-likelihood, probabilities clipped to [1e-15, 1 - 1e-15]."""
    y, q = _arrays(y_true, p)
    q = np.clip(q, EPS, 1 - EPS)
    return float(-np.mean(y * np.log(q) + (1 - y) * np.log1p(-q)))


def brier(y_true: Sequence[float], p: Sequence[float]) -> float:
    """Mean squared error of the probabilities."""
    y, q = _arrays(y_true, p)
    return float(np.mean((q - y) ** 2))


def roc_auc(y_true: Sequence[float], p: Sequence[float]) -> float:
    """Area under the ROC curve (NaN when only one class is present)."""
    y, q = _arrays(y_true, p)
    return float(skm.roc_auc_score(y, q)) if 0 < y.sum() < y.size else math.nan


def pr_auc(y_true: Sequence[float], p: Sequence[float]) -> float:
    """Average precision (area under the precision-recall curve, step interpolation)."""
    y, q = _arrays(y_true, p)
    return float(skm.average_precision_score(y, q)) if y.sum() > 0 else math.nan


def reliability_table(y_true: Sequence[float], p: Sequence[float], n_bins: int = 10) -> pd.DataFrame:
    """Per equal-width probability bin: bounds, rows, mean predicted probability, observed positive rate."""
    y, q = _arrays(y_true, p)
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    bins = np.clip(np.searchsorted(edges, q, side="right") - 1, 0, n_bins - 1)
    count = np.bincount(bins, minlength=n_bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_p = np.bincount(bins, weights=q, minlength=n_bins) / count
        rate = np.bincount(bins, weights=y, minlength=n_bins) / count
    return pd.DataFrame(
        {
            "bin": np.arange(n_bins),
            "lower": edges[:-1],
            "upper": edges[1:],
            "count": count,
            "mean_predicted": mean_p,
            "fraction_positive": rate,
        }
    )


def ece(y_true: Sequence[float], p: Sequence[float], n_bins: int = 10) -> float:
    """Expected calibration error: row-weighted mean |observed - predicted| over equal-width bins."""
    table = reliability_table(y_true, p, n_bins)
    used = table["count"] > 0
    gap = (table.loc[used, "fraction_positive"] - table.loc[used, "mean_predicted"]).abs()
    return float((gap * table.loc[used, "count"]).sum() / table["count"].sum())


def top_k(n_rows: int, fraction: float) -> int:
    """Rows in the top `fraction` of a ranking: ceil(fraction * n), at least 1."""
    if not 0 < fraction <= 1:
        raise ValueError(f"fraction must be in (0, 1], got {fraction}")
    return max(1, math.ceil(round(fraction * n_rows, 9)))


def _ranked(y: np.ndarray, q: np.ndarray) -> np.ndarray:
    """Labels ordered by descending probability (stable: ties keep input order)."""
    return y[np.argsort(-q, kind="stable")]


def lift_and_capture(y_true: Sequence[float], p: Sequence[float], fraction: float) -> tuple[float, float]:
    """(lift, capture rate) of the top `fraction` by probability: precision / base rate, positives share."""
    y, q = _arrays(y_true, p)
    k = top_k(y.size, fraction)
    hits = _ranked(y, q)[:k].sum()
    positives = y.sum()
    if positives == 0:
        return math.nan, math.nan
    return float((hits / k) / (positives / y.size)), float(hits / positives)


def gains_table(y_true: Sequence[float], p: Sequence[float], n_points: int = 100) -> pd.DataFrame:
    """Cumulative gains and lift at fractions 1/n_points .. 1 of customers ranked by probability."""
    y, q = _arrays(y_true, p)
    cum = np.cumsum(_ranked(y, q))
    fractions = np.arange(1, n_points + 1) / n_points
    ks = np.array([top_k(y.size, f) for f in fractions])
    positives = max(y.sum(), 1.0)
    capture = cum[ks - 1] / positives
    return pd.DataFrame({"fraction": fractions, "capture": capture, "lift": capture / (ks / y.size)})


def roc_table(y_true: Sequence[float], p: Sequence[float], n_points: int = 101) -> pd.DataFrame:
    """True positive rate on an even false-positive-rate grid (for plotting several models on one axis)."""
    y, q = _arrays(y_true, p)
    fpr, tpr, _ = skm.roc_curve(y, q)
    grid = np.linspace(0.0, 1.0, n_points)
    return pd.DataFrame({"fpr": grid, "tpr": np.interp(grid, fpr, tpr)})


def pr_table(y_true: Sequence[float], p: Sequence[float], n_points: int = 101) -> pd.DataFrame:
    """Interpolated precision (best precision at recall >= r) on an even recall grid."""
    y, q = _arrays(y_true, p)
    precision, recall, _ = skm.precision_recall_curve(y, q)
    order = np.argsort(recall, kind="stable")
    recall, precision = recall[order], precision[order]
    envelope = np.maximum.accumulate(precision[::-1])[::-1]
    grid = np.linspace(0.0, 1.0, n_points)
    idx = np.clip(np.searchsorted(recall, grid, side="left"), 0, recall.size - 1)
    return pd.DataFrame({"recall": grid, "precision": envelope[idx]})


def classification_metrics(
    y_true: Sequence[float], p: Sequence[float], fractions: Sequence[float] = (0.1, 0.2), n_bins: int = 10
) -> dict[str, float]:
    """ROC AUC, PR AUC, log loss, Brier, ECE, and lift / capture rate at each top fraction."""
    out = {
        "roc_auc": roc_auc(y_true, p),
        "pr_auc": pr_auc(y_true, p),
        "log_loss": log_loss(y_true, p),
        "brier": brier(y_true, p),
        "ece": ece(y_true, p, n_bins),
    }
    for fraction in fractions:
        lift, capture = lift_and_capture(y_true, p, fraction)
        pct = round(fraction * 100)
        out[f"lift_top{pct}"] = lift
        out[f"capture_top{pct}"] = capture
    return out
