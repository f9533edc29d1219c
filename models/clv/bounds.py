"""Scoring-time interval on each customer's EXPECTED CLV (parameter uncertainty), vectorised and fast.

For every Laplace parameter draw k the closed-form CLV of a row is computed (ClvModel.predict with the drawn
parameters); the interval is the (1 - level)/2 and (1 + level)/2 quantiles over the draws, i.e. what
`uncertainty.intervals` calls the parameter interval. It says how well the expected value is known, not what
one customer will spend. Speed: the draws are evaluated once per unique row of RFM quantised to a grid
(recency and T to `grid_units`, spend to 2 significant digits) and expressed relative to the point CLV of that
quantised row; each customer's bounds are those ratios times its own exact point CLV. Containment: the ratios
are clipped to [.. <= 1 <= ..], so clv_low <= clv_<M>m <= clv_high holds for every row by construction (the
point is widened into the interval when it lies outside the draws' quantiles; `widened` counts those rows).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from models.clv.inputs import RFM_COLUMNS, unique_rows
from models.clv.model import ClvModel

MAX_CELLS = 4_000_000  # rows x draws held in memory at once
RFM = list(RFM_COLUMNS)


@dataclass(frozen=True)
class ClvBounds:
    """Per-row bounds (aligned with the input rows) and how many rows were widened to contain the point."""

    low: np.ndarray
    high: np.ndarray
    widened: int


def quantized(rfm: pd.DataFrame, grid_units: float) -> pd.DataFrame:
    """RFM rounded for the draws: recency and T to the grid (from one grid step up), spend to 2 digits."""
    out = rfm[RFM].copy()
    if grid_units > 0:
        for col in ("recency", "T"):
            v = out[col].to_numpy(dtype=float)
            out[col] = np.where(v >= grid_units, np.round(v / grid_units) * grid_units, v)
        out["recency"] = np.minimum(out["recency"].to_numpy(dtype=float), out["T"].to_numpy(dtype=float))
    m = out["monetary_value"].to_numpy(dtype=float)
    digits = np.where(m > 0, 1 - np.floor(np.log10(np.where(m > 0, m, 1.0))), 0).astype(int)
    scale = 10.0 ** digits
    out["monetary_value"] = np.where(m > 0, np.round(m * scale) / scale, m)
    return out


def _clv(model: ClvModel, rows: pd.DataFrame, horizon: tuple[int, int, float, float]) -> np.ndarray:
    """Closed-form clv_<M>m of the rows under a model."""
    h, months, rate, dpm = horizon
    return model.predict(rows, h, months, rate, days_per_month=dpm)[f"clv_{months}m"].to_numpy(dtype=float)


def expected_clv_bounds(model: ClvModel, draws: object, rfm: pd.DataFrame, point_clv: np.ndarray,
                        horizon: tuple[int, int, float, float], level: float = 0.9,
                        grid_units: float = 0.0) -> ClvBounds:
    """Bounds of the parameter interval on expected CLV (module doc); horizon = (days, months, rate, days/month).

    draws: ParameterDraws (purchases and spend arrays, params(k) -> (purchase dict, spend dict)).
    """
    if not 0 < level < 1:
        raise ValueError(f"interval level must be in (0, 1), got {level}")
    point = np.asarray(point_clv, dtype=float)
    if point.shape != (len(rfm),):
        raise ValueError(f"point_clv has {point.size} values for {len(rfm)} rows")
    coarse = quantized(rfm, grid_units)
    keys = [coarse[c].to_numpy(dtype=float) for c in RFM[1:]]
    uniq, row, _ = unique_rows(*keys)
    rows = pd.DataFrame({"customer_id": np.arange(uniq[0].size).astype(str),
                         **{c: v for c, v in zip(RFM[1:], uniq, strict=True)}})
    n_draws = int(draws.purchases.shape[0])
    q = [(1.0 - level) / 2.0, (1.0 + level) / 2.0]
    ratio = np.ones((2, len(rows)))
    size = max(1, MAX_CELLS // max(n_draws, 1))
    drawn = [ClvModel.from_params(model.model, *draws.params(k), time_unit_days=model.time_unit_days)
             for k in range(n_draws)]
    for start in range(0, len(rows), size):
        part = rows.iloc[start:start + size]
        ref = _clv(model, part, horizon)
        values = np.column_stack([_clv(m, part, horizon) for m in drawn])
        with np.errstate(divide="ignore", invalid="ignore"):
            rel = np.quantile(values / ref[:, None], q, axis=1)
        usable = ref > 0
        ratio[:, start:start + len(part)] = np.where(usable[None, :] & np.isfinite(rel), rel, 1.0)
    lo, hi = ratio[0][row], ratio[1][row]
    widened = int(((lo > 1.0) | (hi < 1.0)).sum())
    return ClvBounds(point * np.minimum(lo, 1.0), point * np.maximum(hi, 1.0), widened)
