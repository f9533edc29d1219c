"""Out-of-time comparison of the churn model and its baselines on the same rows: metrics, deltas, curves."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from models import metrics

HIGHER_IS_BETTER = ("roc_auc", "pr_auc", "lift_top", "capture_top")


def higher_is_better(metric: str) -> bool:
    """True for AUCs, lift and capture; False for log loss, Brier and ECE."""
    return metric.startswith(HIGHER_IS_BETTER)


def score_all(
    y: np.ndarray, scores: Mapping[str, np.ndarray], fractions: Sequence[float] = (0.1, 0.2), n_bins: int = 10
) -> dict[str, dict[str, float]]:
    """classification_metrics for every named probability vector."""
    return {name: metrics.classification_metrics(y, p, fractions, n_bins) for name, p in scores.items()}


def metrics_table(results: Mapping[str, Mapping[str, float]]) -> pd.DataFrame:
    """One row per model (in the given order), one column per metric."""
    table = pd.DataFrame.from_dict(results, orient="index")
    return table.rename_axis("model").reset_index()


def comparison(results: Mapping[str, Mapping[str, float]], model: str, baselines: Sequence[str]) -> list[dict]:
    """Per metric: the model's value, the best baseline on it, the delta, whether the model wins."""
    rows = []
    available = [b for b in baselines if b in results]
    for metric in results[model]:
        better = higher_is_better(metric)
        values = {b: results[b][metric] for b in available if np.isfinite(results[b][metric])}
        if not values:
            continue
        best = max(values, key=values.get) if better else min(values, key=values.get)
        delta = results[model][metric] - values[best]
        rows.append(
            {
                "metric": metric,
                "model": float(results[model][metric]),
                "best_baseline": best,
                "best_baseline_value": float(values[best]),
                "delta": float(delta),
                "higher_is_better": better,
                "model_better": bool(delta > 0 if better else delta < 0),
            }
        )
    return rows


def _cell(value: object, digits: int) -> str:
    """A table cell: whole numbers as integers, other numbers with `digits` decimals."""
    if isinstance(value, (int, np.integer)) or (isinstance(value, float) and value.is_integer() and value > 1):
        return str(int(value))
    return f"{value:.{digits}f}" if isinstance(value, (float, np.floating)) else str(value)


def markdown_table(table: pd.DataFrame, columns: Sequence[str], digits: int = 4) -> str:
    """A GitHub markdown table of the chosen metric columns, one row per model."""
    head = "| model | " + " | ".join(columns) + " |"
    rule = "|---|" + "---|" * len(columns)
    body = [
        f"| {row['model']} | " + " | ".join(_cell(row[c], digits) for c in columns) + " |"
        for _, row in table.iterrows()
    ]
    return "\n".join([head, rule, *body])


def curve_tables(y: np.ndarray, scores: Mapping[str, np.ndarray], n_bins: int = 10) -> dict[str, pd.DataFrame]:
    """Wide tables for plotting: roc, pr, gains and lift by fraction, reliability by bin."""
    roc = pr = gains = lift = None
    reliability = pd.DataFrame({"predicted": (np.arange(n_bins) + 0.5) / n_bins})
    reliability["perfect"] = reliability["predicted"]
    for name, p in scores.items():
        r, c, g = metrics.roc_table(y, p), metrics.pr_table(y, p), metrics.gains_table(y, p)
        roc = r[["fpr"]].copy() if roc is None else roc
        pr = c[["recall"]].copy() if pr is None else pr
        gains = g[["fraction"]].copy() if gains is None else gains
        lift = g[["fraction"]].copy() if lift is None else lift
        roc[name], pr[name], gains[name], lift[name] = r["tpr"], c["precision"], g["capture"], g["lift"]
        rel = metrics.reliability_table(y, p, n_bins)
        reliability[name] = rel["fraction_positive"]
        reliability[f"{name}_count"] = rel["count"]
    gains["random"] = gains["fraction"]
    return {"roc": roc, "pr": pr, "gains": gains, "lift": lift, "reliability": reliability}


BOOTSTRAP_METRICS = {
    "roc_auc": metrics.roc_auc,
    "pr_auc": metrics.pr_auc,
    "log_loss": metrics.log_loss,
    "brier": metrics.brier,
}


def paired_bootstrap(
    y: np.ndarray, p_a: np.ndarray, p_b: np.ndarray, metric: str, n_boot: int, seed: int
) -> tuple[float, float]:
    """95% percentile interval of metric(a) - metric(b) over customers resampled with replacement."""
    fn = BOOTSTRAP_METRICS[metric]
    rng = np.random.default_rng(seed)
    deltas = []
    for _ in range(n_boot):
        idx = rng.integers(0, y.size, y.size)
        deltas.append(fn(y[idx], p_a[idx]) - fn(y[idx], p_b[idx]))
    lo, hi = np.percentile(deltas, [2.5, 97.5])
    return float(lo), float(hi)


def add_intervals(
    rows: list[dict], y: np.ndarray, scores: Mapping[str, np.ndarray], model: str, n_boot: int, seed: int
) -> list[dict]:
    """Comparison rows with a paired-bootstrap 95% interval of the delta (AUCs, log loss, Brier)."""
    if n_boot < 1:
        return rows
    out = []
    for row in rows:
        if row["metric"] in BOOTSTRAP_METRICS:
            lo, hi = paired_bootstrap(y, scores[model], scores[row["best_baseline"]], row["metric"], n_boot, seed)
            row = {**row, "delta_ci95_low": lo, "delta_ci95_high": hi}
        out.append(row)
    return out
