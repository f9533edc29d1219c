"""Figures for the HTML report (Agg, no pyplot state) as PNG bytes: CLV plot CSVs, funnel, migration, distributions."""

from __future__ import annotations

import base64
import io

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

SIZE = (6.0, 4.5)

# reports/plots/<name>.csv -> (title, x column, x label, y label)
CLV_PLOTS = {
    "clv_calibration": ("CLV: holdout purchases by calibration frequency", "frequency",
                        "repeat purchases up to the evaluation cutoff (7 = 7+)", "mean purchases in the holdout"),
    "clv_tracking": ("CLV: cumulative repeat purchases in the holdout", "day",
                     "days after the evaluation cutoff", "cumulative repeat purchases"),
    "clv_p_alive": ("CLV: P(alive) by recency (oldest customers)", "recency",
                    "recency (model time unit)", "P(alive)"),
    "clv_frequency_recency": ("CLV: customers by recency and repeat frequency", "recency_mid",
                              "recency bin midpoint (days)", "customers (log scale)"),
}
_NOT_SERIES = {"label", "customers", "recency_low", "recency_high"}


def series_columns(table: pd.DataFrame, x: str) -> list[str]:
    """The numeric columns drawn as lines (everything but x and the bin descriptors)."""
    return [c for c in table.columns
            if c != x and c not in _NOT_SERIES and pd.api.types.is_numeric_dtype(table[c])]


def line_figure(table: pd.DataFrame, x: str, title: str, xlabel: str, ylabel: str, log_y: bool = False) -> Figure:
    """One line per series column of a wide plot table (zeros left out on a log axis)."""
    fig = Figure(figsize=SIZE, layout="constrained")
    ax = fig.add_subplot()
    for name in series_columns(table, x):
        ax.plot(table[x], table[name], label=name, lw=1.6, marker="o" if len(table) <= 12 else None, ms=3)
    if "label" in table.columns and len(table) <= 12:
        ax.set_xticks(table[x], table["label"].astype(str))
    if log_y:
        ax.set_yscale("log", nonpositive="mask")
    ax.set(title=title, xlabel=xlabel, ylabel=ylabel)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return fig


def clv_figure(name: str, table: pd.DataFrame) -> Figure:
    """The figure of one reports/plots/<name>.csv (a key of CLV_PLOTS)."""
    title, x, xlabel, ylabel = CLV_PLOTS[name]
    if x not in table.columns:
        raise ValueError(f"{name}.csv: column {x!r} missing (has {list(table.columns)})")
    return line_figure(table, x, title, xlabel, ylabel, log_y=name == "clv_frequency_recency")


def png_bytes(fig: Figure, dpi: int = 110) -> bytes:
    """A figure rendered to PNG."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi)
    return buffer.getvalue()


def data_uri(png: bytes) -> str:
    """A PNG as a base64 data: URI (embeddable in an offline page)."""
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def funnel_figure(table: pd.DataFrame) -> Figure:
    """Funnel bars (customers per step, overall conversion on each bar) and step conversion by entry channel."""
    fig = Figure(figsize=(11.0, 4.2), layout="constrained")
    bars, lines = fig.subplots(1, 2, width_ratios=(1.1, 1.0))
    everyone = table[table["dimension"] == "all"].sort_values("step_index")
    y = list(range(len(everyone)))[::-1]
    bars.barh(y, everyone["customers"], color="#2563eb")
    top = float(everyone["customers"].max() or 1)
    for yi, (_, row) in zip(y, everyone.iterrows(), strict=True):
        share = row["overall_conversion"]
        text = f"{int(row['customers']):,}" + ("" if pd.isna(share) else f"  ({100 * share:.1f}%)")
        bars.text(row["customers"] + top * 0.01, yi, text, va="center", fontsize=9)
    bars.set_yticks(y, everyone["step"])
    bars.set_xlim(0, top * 1.35)
    bars.set(title="Funnel: customers reaching each step", xlabel="customers (share of entrants)")
    channels = table[table["dimension"] == "channel"]
    for name, group in channels.groupby("dimension_value", sort=True):
        group = group.sort_values("step_index")
        lines.plot(group["step"], 100 * group["overall_conversion"], marker="o", lw=1.6, label=str(name))
    lines.set(title="Overall conversion by entry channel", ylabel="% of the channel's entrants", ylim=(0, 105))
    lines.grid(alpha=0.3)
    if len(channels):
        lines.legend(fontsize=8)
    lines.tick_params(axis="x", labelrotation=15)
    return fig


def matrix_figure(matrix: pd.DataFrame, title: str, value_label: str) -> Figure:
    """A from (rows) x to (columns) heat map with every cell's value written in it."""
    fig = Figure(figsize=(1.6 + 0.95 * max(3, matrix.shape[1]), 1.4 + 0.55 * max(3, matrix.shape[0])),
                 layout="constrained")
    ax = fig.add_subplot()
    values = matrix.to_numpy(dtype=float)
    image = ax.imshow(values, cmap="Blues", aspect="auto")
    peak = values.max() if values.size else 0.0
    for (i, j), v in np.ndenumerate(values):
        ax.text(j, i, f"{v:,.0f}", ha="center", va="center", fontsize=8,
                color="white" if peak and v > 0.6 * peak else "#1f2937")
    ax.set_xticks(range(matrix.shape[1]), matrix.columns, rotation=35, ha="right", fontsize=8)
    ax.set_yticks(range(matrix.shape[0]), matrix.index, fontsize=8)
    ax.set(title=title, xlabel="segment now (to)", ylabel="segment before (from)")
    fig.colorbar(image, ax=ax, label=value_label, shrink=0.8)
    return fig


def distribution_figure(stats: pd.DataFrame, value: str, title: str, xlabel: str) -> Figure:
    """Box plots per segment from precomputed quantiles (p10 / p25 / p50 / p75 / p90 of `value`)."""
    fig = Figure(figsize=(6.0, 0.9 + 0.42 * max(3, len(stats))), layout="constrained")
    ax = fig.add_subplot()
    boxes = [{"label": f"{r['segment']} (n={int(r['customers']):,})", "whislo": r[f"{value}_p10"],
              "q1": r[f"{value}_p25"], "med": r[f"{value}_p50"], "q3": r[f"{value}_p75"],
              "whishi": r[f"{value}_p90"], "mean": r[f"{value}_mean"]} for _, r in stats.iterrows()]
    if boxes:
        ax.bxp(boxes, orientation="horizontal", showfliers=False, showmeans=True, patch_artist=True,
               boxprops={"facecolor": "#dbeafe"}, meanprops={"marker": "D", "markersize": 4})
    ax.tick_params(axis="y", labelsize=8)
    ax.set(title=title, xlabel=xlabel)
    ax.grid(alpha=0.3, axis="x")
    return fig
