"""Holdout evaluation of CLV predictions: error metrics, conditional expectations, plot tables."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from scipy.stats import spearmanr

from models.clv.inputs import RFM_COLUMNS, unique_rows
from models.clv.model import ClvModel

MAX_FREQUENCY_BIN = 7  # calibration frequency 0, 1, ..., 6 and "7+" (Fader, Hardie & Lee 2005, figure 5)
P_ALIVE_FREQUENCIES = (0, 1, 2, 5, 10, 20)  # fixed columns of the P(alive) plot data (dvc.yaml names them)
RECENCY_BINS = 10


def _pair(actual: np.ndarray | pd.Series, predicted: np.ndarray | pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """Actual and predicted values as finite float arrays of equal, non-zero length."""
    a = np.asarray(actual, dtype=float).ravel()
    p = np.asarray(predicted, dtype=float).ravel()
    if a.shape != p.shape:
        raise ValueError(f"actual ({a.size}) and predicted ({p.size}) differ in length")
    if a.size == 0:
        raise ValueError("no rows to evaluate")
    if not (np.isfinite(a).all() and np.isfinite(p).all()):
        raise ValueError("actual and predicted values must be finite (no NaN/inf)")
    return a, p


def mae(actual: np.ndarray | pd.Series, predicted: np.ndarray | pd.Series) -> float:
    """Mean absolute error."""
    a, p = _pair(actual, predicted)
    return float(np.mean(np.abs(p - a)))


def rmse(actual: np.ndarray | pd.Series, predicted: np.ndarray | pd.Series) -> float:
    """Root mean squared error."""
    a, p = _pair(actual, predicted)
    return float(np.sqrt(np.mean((p - a) ** 2)))


def spearman(actual: np.ndarray | pd.Series, predicted: np.ndarray | pd.Series) -> float:
    """Spearman rank correlation (ties averaged); NaN when either side is constant."""
    a, p = _pair(actual, predicted)
    if a.min() == a.max() or p.min() == p.max():
        return float("nan")
    return float(spearmanr(a, p).statistic)


def _gini_sorted(values: np.ndarray) -> float:
    """Gini of values already ordered best-first: area between their Lorenz curve and the diagonal."""
    n = values.size
    return float(np.cumsum(values).sum() / values.sum() / n - (n + 1) / (2 * n))


def normalised_gini(actual: np.ndarray | pd.Series, predicted: np.ndarray | pd.Series) -> float:
    """Gini of actual ordered by predicted (descending) over the Gini of the perfect order: 1 best, 0 random.

    Customers with tied predictions share their mean actual value (the expectation over random tie-breaks),
    so the result does not depend on row order. NaN when total actual is <= 0 or all actuals are equal.
    """
    a, p = _pair(actual, predicted)
    perfect = np.sort(a)[::-1]
    if a.sum() <= 0 or perfect[0] == perfect[-1]:
        return float("nan")
    groups, tie = np.unique(p, return_inverse=True)
    shared = (np.bincount(tie, weights=a) / np.bincount(tie))[tie]
    order = np.argsort(-p, kind="stable")
    return _gini_sorted(shared[order]) / _gini_sorted(perfect)


def total_error_pct(actual: np.ndarray | pd.Series, predicted: np.ndarray | pd.Series) -> float:
    """100 * (sum predicted - sum actual) / sum actual; NaN when the actual total is 0."""
    a, p = _pair(actual, predicted)
    total = a.sum()
    return float(100.0 * (p.sum() - total) / total) if total != 0 else float("nan")


def regression_metrics(actual: np.ndarray | pd.Series, predicted: np.ndarray | pd.Series) -> dict[str, float]:
    """MAE, RMSE, Spearman, normalised Gini, total error (%) and both totals."""
    a, p = _pair(actual, predicted)
    return {"mae": mae(a, p), "rmse": rmse(a, p), "spearman": spearman(a, p), "gini": normalised_gini(a, p),
            "total_error_pct": total_error_pct(a, p), "total_predicted": float(p.sum()),
            "total_actual": float(a.sum())}


def frequency_bin(frequency: np.ndarray | pd.Series, max_bin: int = MAX_FREQUENCY_BIN) -> np.ndarray:
    """Calibration frequency clipped at max_bin (the last bin holds max_bin and more)."""
    return np.minimum(np.asarray(frequency, dtype=float), max_bin).astype(int)


def conditional_expectation(frequency: np.ndarray | pd.Series, predicted: np.ndarray | pd.Series,
                            actual: np.ndarray | pd.Series, max_bin: int = MAX_FREQUENCY_BIN) -> pd.DataFrame:
    """Mean predicted and actual holdout value by calibration frequency 0..max_bin-1 and max_bin+ (non-empty)."""
    a, p = _pair(actual, predicted)
    bins = frequency_bin(frequency, max_bin)
    if bins.shape != a.shape:
        raise ValueError(f"frequency ({bins.size}) and actual ({a.size}) differ in length")
    counts = np.bincount(bins, minlength=max_bin + 1)
    present = np.flatnonzero(counts)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_p = np.bincount(bins, weights=p, minlength=max_bin + 1) / counts
        mean_a = np.bincount(bins, weights=a, minlength=max_bin + 1) / counts
    labels = [f"{b}+" if b == max_bin else str(b) for b in present]
    return pd.DataFrame({"frequency": present, "label": labels, "customers": counts[present],
                         "predicted": mean_p[present], "actual": mean_a[present]})


def interval_coverage(actual: np.ndarray | pd.Series, low: np.ndarray | pd.Series,
                      high: np.ndarray | pd.Series) -> float:
    """Share of rows whose actual value lies within [low, high] (bounds included)."""
    a, lo = _pair(actual, low)
    _, hi = _pair(actual, high)
    if (lo > hi).any():
        raise ValueError(f"{int((lo > hi).sum())} interval(s) have low > high")
    return float(np.mean((a >= lo) & (a <= hi)))


def population_expected(model: ClvModel, t: np.ndarray) -> np.ndarray:
    """E[X(t)]: expected repeat purchases of a just-acquired customer by age t (model time unit)."""
    t = np.asarray(t, dtype=float)
    zero = np.zeros_like(t)
    purchase, params = model.purchase_model, model.purchases.params
    return purchase.p_alive(params, zero, zero, zero) * purchase.alive_expected(params, zero, zero, t)


def tracking_table(model: ClvModel, rfm: pd.DataFrame, actual_daily: np.ndarray | pd.Series) -> pd.DataFrame:
    """Cumulative repeat purchases by holdout day: actual, population expectation, conditional expectation.

    actual_daily[d] is the number of purchases (periods) on holdout day d = 1..H (index 0 is day 0, always
    0). The population curve sums E[X(T_i + d)] - E[X(T_i)] over customers of age T_i at the cutoff; the
    conditional one sums P(alive_i) * E[purchases in (T_i, T_i + d] | alive, x_i].
    """
    actual = np.asarray(actual_daily, dtype=float)
    days = np.arange(actual.size, dtype=float)
    t = days / model.time_unit_days
    x, tx, age = (rfm[c].to_numpy(dtype=float) for c in ("frequency", "recency", "T"))
    (uage,), _, n_age = unique_rows(age)
    grid = uage[:, None] + t[None, :]
    population = n_age[:, None] * (population_expected(model, grid) - population_expected(model, uage)[:, None])
    purchase, params = model.purchase_model, model.purchases.params
    alive = purchase.p_alive(params, x, tx, age)
    (ux, uage2), row, _ = unique_rows(x, age)
    alive_sum = np.bincount(row, weights=alive, minlength=ux.size)
    conditional = alive_sum[:, None] * purchase.alive_expected(params, ux[:, None], uage2[:, None], t[None, :])
    return pd.DataFrame({"day": days.astype(int), "actual": np.cumsum(actual),
                         "predicted_population": population.sum(axis=0),
                         "predicted_conditional": conditional.sum(axis=0)})


def p_alive_matrix(model: ClvModel, max_frequency: int, age: float, n_recency: int = 50) -> pd.DataFrame:
    """P(alive) on a (frequency 0..max_frequency) x (recency 0..age) grid for customers of age `age`."""
    recency = np.linspace(0.0, float(age), n_recency)
    f, r = np.meshgrid(np.arange(max_frequency + 1, dtype=float), recency, indexing="ij")
    r = np.where(f == 0, 0.0, r)  # recency is 0 without a repeat purchase
    alive = model.purchase_model.p_alive(model.purchases.params, f.ravel(), r.ravel(), np.full(f.size, float(age)))
    return pd.DataFrame({"frequency": f.ravel().astype(int), "recency": np.tile(recency, max_frequency + 1),
                         "p_alive": np.clip(alive, 0.0, 1.0)})


def p_alive_curves(model: ClvModel, age: float, frequencies: tuple[int, ...] = P_ALIVE_FREQUENCIES,
                   n_recency: int = 50) -> pd.DataFrame:
    """P(alive) by recency (0..age), one column p_alive_x<f> per repeat frequency f (fixed plot columns)."""
    recency = np.linspace(0.0, float(age), n_recency)
    out = {"recency": recency}
    for f in frequencies:
        x = np.full(n_recency, float(f))
        tx = recency if f > 0 else np.zeros(n_recency)
        alive = model.purchase_model.p_alive(model.purchases.params, x, tx, np.full(n_recency, float(age)))
        out[f"p_alive_x{f}"] = np.clip(alive, 0.0, 1.0)
    return pd.DataFrame(out)


def frequency_recency_counts(frequency: np.ndarray | pd.Series, recency: np.ndarray | pd.Series,
                             n_recency_bins: int = RECENCY_BINS,
                             max_bin: int = MAX_FREQUENCY_BIN) -> pd.DataFrame:
    """Customers per recency bin (rows, equal widths over 0..max) and frequency bin (columns x0.. x<max>plus)."""
    f = frequency_bin(frequency, max_bin)
    r = np.asarray(recency, dtype=float)
    top = float(r.max()) if r.size and r.max() > 0 else 1.0
    edges = np.linspace(0.0, top, n_recency_bins + 1)
    rbin = np.clip(np.searchsorted(edges, r, side="right") - 1, 0, n_recency_bins - 1)
    counts = np.zeros((n_recency_bins, max_bin + 1), dtype=np.int64)
    np.add.at(counts, (rbin, f), 1)
    names = [f"x{b}plus" if b == max_bin else f"x{b}" for b in range(max_bin + 1)]
    table = pd.DataFrame(counts, columns=names)
    table.insert(0, "recency_high", edges[1:])
    table.insert(0, "recency_low", edges[:-1])
    table.insert(0, "recency_mid", (edges[:-1] + edges[1:]) / 2)
    return table


def _scores(purchases: dict[str, float], revenue: dict[str, float]) -> dict[str, float]:
    """One side's metrics as flat keys (revenue_mae, ...) for the side-by-side table and the champion rule."""
    flat = {f"purchases_{k}": v for k, v in purchases.items()} | {f"revenue_{k}": v for k, v in revenue.items()}
    flat["revenue_abs_total_error_pct"] = abs(revenue["total_error_pct"])
    return flat


def holdout_evaluation(frame: pd.DataFrame, point: pd.DataFrame, bounds: pd.DataFrame, ml: dict[str, np.ndarray],
                       horizon_days: int, horizon_months: int) -> tuple[dict[str, Any], pd.DataFrame]:
    """Report sections (metrics, BTYD vs ML table, conditional expectations, coverage, totals) and predictions.

    frame holds the evaluation cutoff's RFM columns and labels; point is ClvModel.predict's output, bounds the
    output of uncertainty.intervals and ml the challenger's predicted revenue and purchases, all row-aligned.
    The BTYD horizon revenue is expected purchases times expected order value (undiscounted).
    """
    h, months = horizon_days, horizon_months
    purchases = point[f"expected_purchases_{h}d"].to_numpy()
    revenue = purchases * point["expected_aov"].to_numpy()
    actual_p = frame["future_purchases"].to_numpy(dtype=float)
    actual_r = frame["future_revenue"].to_numpy(dtype=float)
    sides = {"btyd": (purchases, revenue), "ml": (ml["purchases"], ml["revenue"])}
    metrics = {side: {"purchases": regression_metrics(actual_p, p), "revenue": regression_metrics(actual_r, r)}
               for side, (p, r) in sides.items()}
    scores = {side: _scores(**values) for side, values in metrics.items()}
    table = conditional_expectation(frame["frequency"], purchases, actual_p)
    table["ml_predicted"] = conditional_expectation(frame["frequency"], ml["purchases"], actual_p)["predicted"]
    width = {name: (bounds[f"{name}_high"] - bounds[f"{name}_low"]).to_numpy()
             for name in (f"revenue_{h}d", f"revenue_{h}d_pred", "clv")}
    report = {
        **metrics, "scores": scores,
        "comparison": {key: {"btyd": scores["btyd"][key], "ml": scores["ml"][key]} for key in scores["btyd"]},
        "conditional_expectation": {row.label: {"customers": int(row.customers), "predicted": row.predicted,
                                                "actual": row.actual, "ml_predicted": row.ml_predicted}
                                    for row in table.itertuples()},
        "coverage": {
            "revenue_parameter": interval_coverage(actual_r, bounds[f"revenue_{h}d_low"], bounds[f"revenue_{h}d_high"]),
            "revenue_predictive": interval_coverage(actual_r, bounds[f"revenue_{h}d_pred_low"],
                                                    bounds[f"revenue_{h}d_pred_high"]),
            "revenue_parameter_width_mean": float(width[f"revenue_{h}d"].mean()),
            "revenue_predictive_width_mean": float(width[f"revenue_{h}d_pred"].mean()),
            "clv_parameter_width_mean": float(width["clv"].mean()),
        },
        "clv": {f"total_{months}m": float(point[f"clv_{months}m"].sum()),
                f"mean_{months}m": float(point[f"clv_{months}m"].mean()),
                "total_low": float(bounds["clv_low"].sum()), "total_high": float(bounds["clv_high"].sum())},
    }
    keys = [c for c in ("customer_id", "cutoff", *RFM_COLUMNS[1:]) if c in frame.columns]
    predictions = pd.concat([frame[keys].reset_index(drop=True), point.drop(columns="customer_id"),
                             bounds.drop(columns="customer_id")], axis=1)
    predictions[f"revenue_{h}d"] = revenue
    predictions[f"ml_revenue_{h}d"] = ml["revenue"]
    predictions[f"ml_purchases_{h}d"] = ml["purchases"]
    predictions["future_purchases"] = actual_p
    predictions["future_revenue"] = actual_r
    return report, predictions


def figures(calibration: pd.DataFrame, tracking: pd.DataFrame, p_alive: pd.DataFrame,
            frequency_recency: pd.DataFrame, time_unit: str = "days") -> dict[str, object]:
    """Matplotlib figures (Agg) of the plot tables: calibration, tracking, P(alive) matrix, F/R heat map (days)."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    out: dict[str, object] = {}
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for col, style, label in (("actual", "o-", "actual"), ("predicted", "s--", "BTYD"), ("ml_predicted", "^:", "ML")):
        if col in calibration:
            ax.plot(calibration["frequency"], calibration[col], style, label=label)
    ax.set_xticks(calibration["frequency"], calibration["label"])
    ax.set(xlabel="repeat purchases in calibration", ylabel="mean purchases in holdout",
           title="Conditional expectations: calibration vs holdout")
    ax.legend()
    out["clv_calibration"] = fig

    fig, ax = plt.subplots(figsize=(7, 4.5))
    ax.plot(tracking["day"], tracking["actual"], "k-", label="actual")
    ax.plot(tracking["day"], tracking["predicted_population"], "--", label="model E[X(t)] over customer ages")
    ax.plot(tracking["day"], tracking["predicted_conditional"], ":", label="model, conditional on history")
    ax.set(xlabel="days after the evaluation cutoff", ylabel="cumulative repeat purchases",
           title="Tracking: cumulative repeat purchases in the holdout")
    ax.legend()
    out["clv_tracking"] = fig

    grid = p_alive.pivot(index="frequency", columns="recency", values="p_alive")
    fig, ax = plt.subplots(figsize=(7, 5))
    image = ax.imshow(grid.to_numpy(), origin="lower", aspect="auto", vmin=0, vmax=1, cmap="viridis",
                      extent=(grid.columns.min(), grid.columns.max(), grid.index.min() - 0.5, grid.index.max() + 0.5))
    fig.colorbar(image, ax=ax, label="P(alive)")
    ax.set(xlabel=f"recency ({time_unit})", ylabel="frequency (repeat purchases)",
           title="P(alive) by frequency and recency (customers of the oldest age)")
    out["clv_p_alive_matrix"] = fig

    counts = frequency_recency.filter(regex=r"^x\d").to_numpy().T
    fig, ax = plt.subplots(figsize=(7, 5))
    image = ax.imshow(np.log10(1 + counts), origin="lower", aspect="auto", cmap="magma")
    fig.colorbar(image, ax=ax, label="log10(1 + customers)")
    ax.set_yticks(range(counts.shape[0]), [c.replace("plus", "+").lstrip("x") for c in
                                          frequency_recency.filter(regex=r"^x\d").columns])
    ax.set_xticks(range(len(frequency_recency)), [f"{v:.0f}" for v in frequency_recency["recency_mid"]])
    ax.set(xlabel="recency bin midpoint (days)", ylabel="frequency", title="Customers by frequency and recency")
    out["clv_frequency_recency"] = fig
    return out
