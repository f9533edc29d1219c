"""Explanations from LightGBM's own TreeSHAP (pred_contrib): reason codes and global importance."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from scipy.special import expit

from models.churn.features import PRIOR_COLUMN
from models.churn.model import ChurnModel
from models.churn.prior import prior_offset, prior_probability
from models.churn.reasons import code, sentence
from models.churn.treeshap import PREDICT_LOCK, tree_contributions

DIRECTIONS = ("abs", "raises")


@dataclass(frozen=True)
class Contributions:
    """Per-row SHAP values in log-odds (bias dropped), the explained columns and their values."""

    names: list[str]
    values: np.ndarray
    categorical: np.ndarray
    shap: np.ndarray
    bias: np.ndarray


def contributions(model: ChurnModel, frame: pd.DataFrame, grouped: bool = True) -> Contributions:
    """TreeSHAP from pred_contrib (grouped per tree pattern, or direct); a BTYD prior is one more column."""
    names, values = list(model.spec.features), model.values(frame)
    if grouped:
        full = tree_contributions(model.booster, values, model.trees())
    else:
        with PREDICT_LOCK:
            full = np.asarray(model.booster.predict(model.inputs(frame), pred_contrib=True))
    shap, bias = full[:, :-1], full[:, -1]
    categorical = np.array([f in model.spec.categories for f in names], dtype=bool)
    offset = prior_offset(frame, model.spec)
    if offset is not None:
        names.append(PRIOR_COLUMN)
        values = np.column_stack([values, prior_probability(frame, model.spec)])
        shap = np.column_stack([shap, offset - model.spec.prior_center])
        categorical = np.append(categorical, False)
    return Contributions(names, values, categorical, shap, bias)


def _display_round(values: np.ndarray) -> np.ndarray:
    """Values rounded for display: whole numbers from 100 up, else 3 significant digits."""
    out = np.asarray(values, dtype=float).copy()
    mag = np.abs(out)
    small = (mag > 0) & (mag < 100) & np.isfinite(mag)
    with np.errstate(divide="ignore", invalid="ignore"):
        scale = 10.0 ** (2 - np.floor(np.log10(mag[small])))
    out[small] = np.round(out[small] * scale) / scale
    big = mag >= 100
    out[big] = np.round(out[big])
    return out


def _value_text(value: float, categories: list[str] | None) -> str:
    """One feature value as text: category label, whole number, or short decimal ('missing' for NaN)."""
    if not np.isfinite(value):
        return "missing"
    if categories is not None:
        return categories[int(value)]
    if float(value).is_integer() and abs(value) < 1e15:
        return str(int(value))
    return f"{value:.3g}"


def _texts(model: Any, names: list[str], feat: np.ndarray, value: np.ndarray, sign: np.ndarray
           ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(English sentence, machine code, shown value) for flat (column index, value, sign) arrays, each distinct
    triple worded once."""
    value_codes, value_uniques = pd.factorize(value, use_na_sentinel=False)
    n_feat = len(names)
    key = (value_codes.astype(np.int64) * n_feat + feat) * 3 + (sign + 1)
    codes, uniques = pd.factorize(key)
    sign_u, rest = uniques % 3 - 1, uniques // 3
    feat_u, value_u = rest % n_feat, np.asarray(value_uniques)[rest // n_feat]
    shown = [_value_text(v, model.spec.categories.get(names[f])) for f, v in zip(feat_u, value_u, strict=True)]
    texts = np.array([sentence(names[f], v, s, "en") for f, v, s in zip(feat_u, shown, sign_u, strict=True)],
                     dtype=object)
    machine = np.array([code(names[f], s) for f, s in zip(feat_u, sign_u, strict=True)], dtype=object)
    values = np.array([v if s else "" for v, s in zip(shown, sign_u, strict=True)], dtype=object)
    return texts[codes], machine[codes], values[codes]


def top_contributions(contrib: np.ndarray, k: int, direction: str = "abs") -> np.ndarray:
    """Per row, the column indices of the k largest contributions (by |value|, or largest positive first).

    Ties go to the earlier feature (a stable descending sort); k passes of argmax over the matrix.
    """
    if direction not in DIRECTIONS:
        raise ValueError(f"direction must be one of {DIRECTIONS}, got {direction!r}")
    key = np.abs(contrib) if direction == "abs" else np.array(contrib, dtype=float)
    key = np.ascontiguousarray(key)  # rows x features, each row contiguous for argmax
    k = min(k, contrib.shape[1])
    rows = np.arange(contrib.shape[0])
    order = np.empty((contrib.shape[0], k), dtype=np.int64)
    for i in range(k):
        order[:, i] = np.argmax(key, axis=1)
        key[rows, order[:, i]] = -np.inf
    return order


def reasons_from(model: Any, parts: Contributions, k: int, direction: str, index: pd.Index) -> pd.DataFrame:
    """reason_1..k (English sentences), reason_code_1..k (`<feature>:raises|lowers`) and reason_value_1..k (the
    value shown) from computed contributions (model: anything with a FeatureSpec `spec`); models.churn.reasons
    words them in another locale."""
    order = top_contributions(parts.shap, k, direction)
    picked = np.take_along_axis(parts.shap, order, axis=1)
    values = np.take_along_axis(parts.values, order, axis=1)
    shown = np.where(parts.categorical[order], values, _display_round(values))
    sign = np.sign(picked).astype(np.int64)
    if direction == "raises":
        sign = np.where(sign > 0, sign, 0)
    texts, codes, shown_text = (a.reshape(order.shape) for a in _texts(model, parts.names, order.ravel(),
                                                                        shown.ravel(), sign.ravel()))
    out = pd.DataFrame(texts, index=index, columns=[f"reason_{i + 1}" for i in range(order.shape[1])])
    for i in range(order.shape[1], k):
        out[f"reason_{i + 1}"] = ""
    for i in range(k):
        out[f"reason_code_{i + 1}"] = codes[:, i] if i < order.shape[1] else ""
    for i in range(k):
        out[f"reason_value_{i + 1}"] = shown_text[:, i] if i < order.shape[1] else ""
    return out


def reason_codes(model: ChurnModel, frame: pd.DataFrame, k: int = 3, direction: str = "abs") -> pd.DataFrame:
    """Top-k reasons per customer, e.g. 'no purchase for 143 days raises risk', with codes and values."""
    return reasons_from(model, contributions(model, frame), k, direction, frame.index)


def score_with_reasons(model: ChurnModel, frame: pd.DataFrame, k: int = 3, direction: str = "abs") -> pd.DataFrame:
    """Calibrated p_churn (sum of the contributions) and reason_1..k per row: what a scoring stage calls."""
    parts = contributions(model, frame)
    center = model.spec.prior_center if model.spec.prior != "none" else 0.0
    raw = parts.shap.sum(axis=1) + parts.bias + center  # TreeSHAP adds up to the raw score
    p = model.calibrator.transform(expit(raw))
    out = reasons_from(model, parts, k, direction, frame.index)
    out.insert(0, "p_churn", p)
    return out


def global_importance(model: ChurnModel, frame: pd.DataFrame) -> pd.DataFrame:
    """Per explained column: total gain, split count and mean |SHAP| over frame, sorted by mean |SHAP|."""
    parts = contributions(model, frame)
    gain = model.booster.feature_importance("gain")
    splits = model.booster.feature_importance("split")
    extra = len(parts.names) - len(gain)
    table = pd.DataFrame(
        {
            "feature": parts.names,
            "gain": np.append(gain, [np.nan] * extra),
            "splits": np.append(splits, [0] * extra),
            "mean_abs_shap": np.abs(parts.shap).mean(axis=0),
        }
    )
    total = np.nansum(gain)
    table["gain_share"] = table["gain"] / total if total > 0 else 0.0
    return table.sort_values(["mean_abs_shap", "gain"], ascending=False, ignore_index=True)
