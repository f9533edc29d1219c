"""Matplotlib figures (Agg, no pyplot state) from the evaluation tables; the caller decides where to save."""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

SIZE = (6.0, 4.5)


def _models(table: pd.DataFrame, x: str, skip: tuple[str, ...] = ()) -> list[str]:
    """Model columns of a wide curve table."""
    return [c for c in table.columns if c != x and c not in skip and not c.endswith("_count")]


def _line_figure(table: pd.DataFrame, x: str, title: str, xlabel: str, ylabel: str, diagonal: bool = False) -> Figure:
    """One line per model column, optional y = x reference."""
    fig = Figure(figsize=SIZE, layout="constrained")
    ax = fig.add_subplot()
    for name in _models(table, x, skip=("perfect", "random")):
        ax.plot(table[x], table[name], label=name, lw=2.0 if name == "lightgbm" else 1.2)
    if diagonal:
        ax.plot([0, 1], [0, 1], ls="--", color="grey", lw=1, label="reference")
    ax.set(title=title, xlabel=xlabel, ylabel=ylabel)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return fig


def roc_figure(roc: pd.DataFrame) -> Figure:
    """ROC curves."""
    return _line_figure(roc, "fpr", "ROC (evaluation cutoff)", "false positive rate", "true positive rate", True)


def pr_figure(pr: pd.DataFrame) -> Figure:
    """Precision-recall curves (interpolated precision)."""
    return _line_figure(pr, "recall", "Precision-recall (evaluation cutoff)", "recall", "precision")


def gains_figure(gains: pd.DataFrame, lift: pd.DataFrame) -> Figure:
    """Cumulative gains (share of churners captured) and lift by share of customers targeted."""
    fig = Figure(figsize=(11.0, 4.5), layout="constrained")
    left, right = fig.subplots(1, 2)
    for name in _models(gains, "fraction", skip=("random",)):
        width = 2.0 if name == "lightgbm" else 1.2
        left.plot(gains["fraction"], gains[name], label=name, lw=width)
        right.plot(lift["fraction"], lift[name], label=name, lw=width)
    left.plot([0, 1], [0, 1], ls="--", color="grey", lw=1, label="random")
    right.axhline(1.0, ls="--", color="grey", lw=1)
    left.set(title="Cumulative gains", xlabel="share of customers targeted", ylabel="share of churners captured")
    right.set(title="Lift", xlabel="share of customers targeted", ylabel="lift")
    for ax in (left, right):
        ax.grid(alpha=0.3)
    left.legend(fontsize=8)
    return fig


def reliability_figure(reliability: pd.DataFrame) -> Figure:
    """Observed churn rate per predicted-probability bin (points sized by rows), with the diagonal."""
    fig = Figure(figsize=SIZE, layout="constrained")
    ax = fig.add_subplot()
    ax.plot([0, 1], [0, 1], ls="--", color="grey", lw=1, label="perfect")
    for name in _models(reliability, "predicted", skip=("perfect",)):
        used = reliability[f"{name}_count"] > 0
        ax.plot(
            reliability.loc[used, "predicted"],
            reliability.loc[used, name],
            marker="o",
            ms=3,
            label=name,
            lw=2.5 if name == "champion" else 1.0,
        )
    ax.set(
        title="Reliability (evaluation cutoff)",
        xlabel="predicted churn probability (bin centre)",
        ylabel="observed churn rate",
        xlim=(0, 1),
        ylim=(0, 1),
    )
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return fig


def importance_figure(importance: pd.DataFrame, top: int = 20) -> Figure:
    """Top features by mean |SHAP| beside their share of total gain."""
    head = importance.head(top).iloc[::-1]
    fig = Figure(figsize=(11.0, 0.3 * len(head) + 1.5), layout="constrained")
    left, right = fig.subplots(1, 2, sharey=True)
    left.barh(head["feature"], head["mean_abs_shap"], color="tab:blue")
    right.barh(head["feature"], head["gain_share"], color="tab:orange")
    left.set(title="mean |SHAP| (log-odds)", xlabel="mean |contribution|")
    right.set(title="gain share", xlabel="share of total split gain")
    return fig


def shap_summary_figure(
    contrib: np.ndarray, values: np.ndarray, features: list[str], top: int = 15, seed: int = 0
) -> Figure:
    """Beeswarm-style summary: per top feature, each row's SHAP value, coloured by value rank."""
    rng = np.random.default_rng(seed)
    order = np.argsort(-np.abs(contrib).mean(axis=0))[:top][::-1]
    fig = Figure(figsize=(7.5, 0.35 * len(order) + 1.5), layout="constrained")
    ax = fig.add_subplot()
    for row, j in enumerate(order):
        v = values[:, j]
        rank = pd.Series(v).rank(pct=True).to_numpy()
        colour = np.where(np.isfinite(rank), rank, 0.5)
        jitter = rng.uniform(-0.3, 0.3, size=v.size)
        points = ax.scatter(
            contrib[:, j],
            row + jitter,
            c=colour,
            cmap="coolwarm",
            s=4,
            alpha=0.6,
            vmin=0,
            vmax=1,
            rasterized=True,
        )
    ax.set_yticks(range(len(order)), [features[j] for j in order])
    ax.axvline(0, color="grey", lw=1)
    ax.set(title="SHAP summary (evaluation cutoff sample)", xlabel="contribution to churn log-odds")
    if len(order):
        fig.colorbar(points, ax=ax, label="feature value (percentile)")
    return fig
