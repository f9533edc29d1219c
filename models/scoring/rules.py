"""Risk bands and next-best actions (eligible action with the highest expected value), vectorised."""

from __future__ import annotations

import re
from collections.abc import Mapping

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


def value_column(frame: pd.DataFrame) -> str:
    """The CLV column of a decision frame: `clv`, else the single `clv_<N>m` column (ValueError when neither)."""
    if "clv" in frame.columns:
        return "clv"
    found = [c for c in frame.columns if re.fullmatch(r"clv_\d+m", str(c))]
    if len(found) != 1:
        raise ValueError(f"action rules need one CLV column (`clv` or `clv_<N>m`), found {found}")
    return found[0]


def expected_values(frame: pd.DataFrame, rules: tuple[ActionRule, ...],
                    save_rates: Mapping[str, float] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(rows x actions) P(churn) x CLV x save rate - cost, and the eligibility mask; save_rates (by action name)
    replace the configured ones (e.g. measured by a campaign). NaN where the CLV is unknown (no amounts)."""
    rates = {r.name: r.save_rate for r in rules}
    unknown = sorted(set(save_rates or {}) - set(rates))
    if unknown:
        raise ValueError(f"save rates for unknown action(s) {unknown}; actions are {sorted(rates)}")
    for name, rate in (save_rates or {}).items():
        if not 0.0 <= float(rate) <= 1.0:
            raise ValueError(f"save rate of action {name!r} must be in [0, 1], got {rate}")
        rates[name] = float(rate)
    at_risk = frame["churn_probability"].to_numpy(dtype=float) * pd.to_numeric(
        frame[value_column(frame)], errors="coerce").to_numpy(dtype=float, na_value=np.nan)
    save = np.array([rates[r.name] for r in rules], dtype=float)
    cost = np.array([r.cost for r in rules], dtype=float)
    value = at_risk[:, None] * save[None, :] - cost[None, :]
    eligible = np.column_stack([rule_mask(frame, r) for r in rules]) if rules else np.zeros((len(frame), 0), bool)
    return value, eligible


def choose_actions(frame: pd.DataFrame, rules: tuple[ActionRule, ...], must_act: dict | None = None,
                   save_rates: Mapping[str, float] | None = None) -> np.ndarray:
    """Per row the index of the chosen rule, -1 for the default: no budget, so the eligible action with the highest
    expected value (ties: config order) when that value is >= 0. Rows meeting `must_act` (e.g. high risk in the
    top CLV decile) take their best eligible action with a save rate > 0 whatever its value, so risk and value
    decide, never the segment label alone. Rows without a CLV (no amounts): the first eligible rule in config order.
    """
    value, eligible = expected_values(frame, rules, save_rates)
    out = np.full(len(frame), -1, dtype=np.int64)
    if not rules:
        return out
    known = np.isfinite(value).all(axis=1)
    scored = np.where(eligible, value, -np.inf)
    best = np.argmax(scored, axis=1)
    take = known & (np.take_along_axis(scored, best[:, None], axis=1)[:, 0] >= 0)
    if must_act:
        forced = known & rule_mask(frame, ActionRule("must_act", must_act, {}))
        saving = np.where(eligible & (np.array([r.save_rate for r in rules]) > 0)[None, :], value, -np.inf)
        strong = np.argmax(saving, axis=1)
        hit = forced & np.isfinite(np.take_along_axis(saving, strong[:, None], axis=1)[:, 0])
        best, take = np.where(hit, strong, best), take | hit
    out[take] = best[take]
    first = np.argmax(eligible, axis=1)
    unknown = ~known & eligible.any(axis=1)
    out[unknown] = first[unknown]
    return out


def action_slugs(frame: pd.DataFrame, rules: tuple[ActionRule, ...], default: ActionRule,
                 must_act: dict | None = None) -> np.ndarray:
    """The stable action name per row (the same in every locale)."""
    names = np.array([r.name for r in rules] + [default.name], dtype=object)
    return names[choose_actions(frame, rules, must_act)]


def labels_of(chosen: np.ndarray, frame: pd.DataFrame, rules: tuple[ActionRule, ...], default: ActionRule,
              locale: str, tenure_days: str = "tenure_days") -> np.ndarray:
    """Labels in the locale for chosen rule indices (-1 = default); {day} = next scheduled tenure day."""
    out = np.full(len(frame), default.labels[locale], dtype=object)
    for i, rule in enumerate(rules):
        hit = chosen == i
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
    return out


def action_labels(frame: pd.DataFrame, rules: tuple[ActionRule, ...], default: ActionRule, locale: str,
                  tenure_days: str = "tenure_days", must_act: dict | None = None) -> np.ndarray:
    """The label of each row's chosen action (choose_actions) in the locale; {day} = next scheduled tenure day."""
    return labels_of(choose_actions(frame, rules, must_act), frame, rules, default, locale, tenure_days)
