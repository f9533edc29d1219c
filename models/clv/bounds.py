"""Scoring-time interval on each customer's EXPECTED CLV (parameter uncertainty), vectorised and fast.

For every Laplace parameter draw k the closed-form CLV of a row is computed (ClvModel.predict with the drawn
parameters); the interval is the (1 - level)/2 and (1 + level)/2 quantiles over the draws, i.e. what
`uncertainty.intervals` calls the parameter interval. It says how well the expected value is known, not what
one customer will spend. Speed: the draws are evaluated on RFM quantised to a grid (recency and T to
`grid_units`, spend to 2 significant digits), the purchase factor once per unique (x, t_x, T) and the spend
factor once per unique (x, m), each relative to the point model; each customer's bounds are the quantiles of
the product of those ratios times its own exact point CLV. Containment: the ratios
are clipped to [.. <= 1 <= ..], so clv_low <= clv_<M>m <= clv_high holds for every row by construction (the
point is widened into the interval when it lies outside the draws' quantiles; `widened` counts those rows).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from models.clv.inputs import RFM_COLUMNS, SPEND_PARAMS, unique_rows
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


def _parts(model: ClvModel, rows: pd.DataFrame, horizon: tuple[int, int, float, float]) -> tuple[np.ndarray,
                                                                                                   np.ndarray]:
    """Per row: discounted expected purchases (clv_<M>m / expected_aov, independent of spend) and expected_aov."""
    h, months, rate, dpm = horizon
    point = model.predict(rows, h, months, rate, days_per_month=dpm)
    aov = point["expected_aov"].to_numpy(dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        return point[f"clv_{months}m"].to_numpy(dtype=float) / aov, aov


def gamma_gamma_mean(spend: np.ndarray, x: np.ndarray, m: np.ndarray) -> np.ndarray:
    """E[order value | x, m] of Gamma-Gamma (Fader & Hardie 2013) for rows x draws: p (gamma + x m) / (p x + q - 1).

    spend: draws x (p, q, gamma) in models.clv.inputs.SPEND_PARAMS order. x = 0 gives the population mean.
    """
    p, q, gamma = (spend[:, i][None, :] for i in range(3))
    x, m = x[:, None], np.maximum(m, 0.0)[:, None]
    return p * (gamma + x * m) / (p * x + q - 1.0)


def _ratios(values: np.ndarray, ref: np.ndarray) -> np.ndarray:
    """values / ref per row (1 where the reference is 0 or the ratio is not finite)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        out = values / ref[:, None]
    return np.where(np.isfinite(out) & (ref[:, None] > 0), out, 1.0)


def expected_clv_bounds(model: ClvModel, draws: object, rfm: pd.DataFrame, point_clv: np.ndarray,
                        horizon: tuple[int, int, float, float], level: float = 0.9,
                        grid_units: float = 0.0) -> ClvBounds:
    """Bounds of the parameter interval on expected CLV (module doc); horizon = (days, months, rate, days/month).

    draws: ParameterDraws (purchases and spend arrays, params(k) -> (purchase dict, spend dict)). The closed
    form factors as CLV = [discounted expected purchases](x, t_x, T) x [expected order value](x, m), so each
    draw is evaluated once per unique quantised (x, t_x, T) and once per unique (x, m), and the two ratios to
    the point model are multiplied per unique (x, t_x, T, m) row before the quantiles are taken.
    """
    if not 0 < level < 1:
        raise ValueError(f"interval level must be in (0, 1), got {level}")
    point = np.asarray(point_clv, dtype=float)
    if point.shape != (len(rfm),):
        raise ValueError(f"point_clv has {point.size} values for {len(rfm)} rows")
    coarse = quantized(rfm, grid_units)
    x, tx, age, m = (coarse[c].to_numpy(dtype=float) for c in RFM[1:])
    (ux, utx, uage), key3, _ = unique_rows(x, tx, age)
    (k3, um), key4, _ = unique_rows(key3, m)  # unique (x, t_x, T, m) rows: their (x, t_x, T) row and spend
    (sx, sm), k2, _ = unique_rows(ux[k3], um)  # each unique row's (x, m) row
    purchases = pd.DataFrame({"customer_id": np.arange(ux.size).astype(str), "frequency": ux, "recency": utx,
                              "T": uage, "monetary_value": np.zeros(ux.size)})
    spend = pd.DataFrame({"customer_id": np.arange(sx.size).astype(str), "frequency": sx,  # point model only
                          "recency": np.where(sx > 0, 1.0, 0.0), "T": np.ones(sx.size), "monetary_value": sm})
    drawn = [ClvModel.from_params(model.model, *draws.params(k), time_unit_days=model.time_unit_days)
             for k in range(int(draws.purchases.shape[0]))]
    ref_d, _ = _parts(model, purchases, horizon)
    _, ref_a = _parts(model, spend, horizon)
    centre = np.array([[model.spend.params[k] for k in SPEND_PARAMS]])
    if not np.allclose(gamma_gamma_mean(centre, sx, sm)[:, 0], ref_a, rtol=1e-9, atol=0.0):
        raise FloatingPointError("Gamma-Gamma mean of the bounds differs from ClvModel.predict's expected_aov")
    ratio_d = _ratios(np.column_stack([_parts(d, purchases, horizon)[0] for d in drawn]), ref_d)
    ratio_a = _ratios(gamma_gamma_mean(np.asarray(draws.spend, dtype=float), sx, sm), ref_a)
    q = [(1.0 - level) / 2.0, (1.0 + level) / 2.0]
    ratio = np.empty((2, k3.size))
    size = max(1, MAX_CELLS // max(len(drawn), 1))
    for start in range(0, k3.size, size):
        part = slice(start, start + size)
        ratio[:, part] = np.quantile(ratio_d[k3[part]] * ratio_a[k2[part]], q, axis=1)
    lo, hi = ratio[0][key4], ratio[1][key4]
    widened = int(((lo > 1.0) | (hi < 1.0)).sum())
    return ClvBounds(point * np.minimum(lo, 1.0), point * np.maximum(hi, 1.0), widened)
