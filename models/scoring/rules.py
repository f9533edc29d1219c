"""Risk bands and next-best actions, vectorised over a frame of customers."""

from __future__ import annotations

import numpy as np
import pandas as pd

from models.scoring.config import ActionRule, RiskBand


def band_names(p_churn: np.ndarray, bands: tuple[RiskBand, ...]) -> np.ndarray:
    """The band name of each probability (first band whose upper bound it is below)."""
    p = np.asarray(p_churn, dtype=float)
    if not np.isfinite(p).all() or (p < 0).any() or (p > 1).any():
        raise ValueError("churn probabilities must be finite and in [0, 1]")
    uppers = np.array([b.upper for b in bands])
    names = np.array([b.name for b in bands], dtype=object)
    return names[np.searchsorted(uppers, p, side="right")]


def condition_mask(values: pd.Series, cond: dict, where: str) -> np.ndarray:
    """Rows meeting one condition ({min}, {max}, {in}); missing values never match."""
    mask = values.notna().to_numpy().copy()
    if "in" in cond:
        mask &= values.isin(list(cond["in"])).to_numpy()
    for op, compare in (("min", np.greater_equal), ("max", np.less_equal)):
        if op in cond:
            numeric = pd.to_numeric(values, errors="coerce")
            if numeric.isna().gt(values.isna()).any():
                raise ValueError(f"{where}: `{op}` needs a numeric column, got {values.dtype}")
            mask &= compare(numeric.to_numpy(dtype=float, na_value=np.nan), float(cond[op]))
    return mask


def rule_mask(frame: pd.DataFrame, rule: ActionRule) -> np.ndarray:
    """Rows meeting every condition of a rule (ValueError naming a column the frame lacks)."""
    mask = np.ones(len(frame), dtype=bool)
    for col, cond in rule.when.items():
        if col not in frame.columns:
            raise ValueError(f"scoring.actions[{rule.name}]: unknown column {col!r}")
        mask &= condition_mask(frame[col], cond, f"scoring.actions[{rule.name}].when.{col}")
    return mask


def action_labels(frame: pd.DataFrame, rules: tuple[ActionRule, ...], default: ActionRule, locale: str,
                  tenure_days: str = "tenure_days") -> np.ndarray:
    """The label of the first matching rule per row (default when none); {day} = next scheduled tenure day."""
    out = np.full(len(frame), default.labels[locale], dtype=object)
    open_rows = np.ones(len(frame), dtype=bool)
    for rule in rules:
        hit = open_rows & rule_mask(frame, rule)
        if not hit.any():
            continue
        text = rule.labels[locale]
        if rule.schedule_days and "{day}" in text:
            days = np.asarray(rule.schedule_days)
            tenure = frame.loc[hit, tenure_days].to_numpy(dtype=float)
            step = days[np.minimum(np.searchsorted(days, tenure, side="left"), days.size - 1)]
            texts = np.array([text.replace("{day}", str(d)) for d in days], dtype=object)
            out[hit] = texts[np.searchsorted(days, step)]
        else:
            out[hit] = text
        open_rows &= ~hit
    return out
