"""Compressed sufficient statistics of one cutoff's RFM: what the BTYD and Gamma-Gamma fits read, on any engine."""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import pandas as pd

from models.clv.inputs import rfm_arrays, spend_missing, unique_rows


@dataclass(frozen=True)
class RfmStats:
    """Unique (x, t_x, T) rows with customer counts, and unique (x, m) rows of repeat buyers with m > 0 with counts
    (spend_* None when the data has no amounts); rows in the order of their first customer."""

    x: np.ndarray
    tx: np.ndarray
    age: np.ndarray
    counts: np.ndarray
    spend_x: np.ndarray | None = None
    spend_m: np.ndarray | None = None
    spend_counts: np.ndarray | None = None
    n_excluded: int = 0  # repeat buyers with monetary_value <= 0 (left out of the spend rows)

    @property
    def n_customers(self) -> int:
        """Customers behind the purchase rows."""
        return int(self.counts.sum())

    @property
    def n_repeat(self) -> int:
        """Customers with frequency > 0."""
        return int(self.counts[self.x > 0].sum())

    @property
    def n_paying(self) -> int:
        """Repeat buyers with monetary_value > 0 (0 without amounts)."""
        return 0 if self.spend_counts is None else int(self.spend_counts.sum())

    def purchases_only(self) -> RfmStats:
        """The purchase rows alone (what a BTYD purchase model reads; the spend rows dropped)."""
        return replace(self, spend_x=None, spend_m=None, spend_counts=None, n_excluded=0)


def compress(rfm: pd.DataFrame, spend: bool = True) -> RfmStats:
    """The statistics of an RFM frame (validated like every fit input); row order = first appearance; spend=False:
    the purchase rows only."""
    cols = rfm_arrays(rfm)
    x, tx, age, m = cols["frequency"], cols["recency"], cols["T"], cols["monetary_value"]
    (ux, utx, uage), _, counts = unique_rows(x, tx, age)
    if not spend or spend_missing(rfm):
        return RfmStats(ux, utx, uage, counts)
    repeat = x > 0
    used = repeat & (m > 0)
    (sx, sm), _, scounts = unique_rows(x[used], m[used])
    return RfmStats(ux, utx, uage, counts, sx, sm, scounts, int((repeat & ~used).sum()))


def check_stats(stats: RfmStats, where: str) -> RfmStats:
    """ValueError (one line naming where) unless the rows are valid RFM statistics (the checks of rfm_arrays)."""
    if stats.n_customers == 0:
        raise ValueError(f"{where}: rfm frame has no rows")
    columns = {"frequency": stats.x, "recency": stats.tx, "T": stats.age}
    if stats.spend_m is not None:
        columns["monetary_value"] = stats.spend_m
    for name, values in columns.items():
        bad = ~np.isfinite(values)
        if bad.any():
            n = int((stats.spend_counts if name == "monetary_value" else stats.counts)[bad].sum())
            raise ValueError(f"{where}: rfm column {name!r} has {n} NaN/inf/non-numeric value(s)")
    for name, values in list(columns.items())[:3]:
        if (values < 0).any():
            n = int(stats.counts[values < 0].sum())
            raise ValueError(f"{where}: rfm column {name!r} has {n} negative value(s)")
    if (stats.x != np.round(stats.x)).any():
        raise ValueError(f"{where}: rfm column 'frequency' must hold whole numbers of repeat purchases")
    if (stats.tx > stats.age).any():
        raise ValueError(f"{where}: rfm recency exceeds T for {int(stats.counts[stats.tx > stats.age].sum())} "
                         "customer(s)")
    if ((stats.x == 0) & (stats.tx != 0)).any():
        raise ValueError(f"{where}: rfm recency must be 0 for customers with frequency 0")
    return stats
