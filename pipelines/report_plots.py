"""CLV figures for the HTML report, drawn from the train_clv plot CSVs (Agg, no pyplot state) as PNG bytes."""

from __future__ import annotations

import base64
import io

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
