"""The `scoring:` block of params.yaml: risk bands, actions (eligibility, cost, save rate, capacity), budget, sink."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from features.segments import LOCALES

OPERATORS = ("min", "max", "in")


@dataclass(frozen=True)
class RiskBand:
    """churn_probability < upper -> this band (bands are checked in order)."""

    name: str
    upper: float
    labels: dict[str, str]


@dataclass(frozen=True)
class ActionRule:
    """An action: eligible where every condition holds; cost per customer, assumed save rate (share of the value
    at risk it keeps), optional capacity (customers); labels per locale ({day} filled from schedule_days)."""

    name: str
    when: dict[str, dict[str, Any]]
    labels: dict[str, str]
    schedule_days: tuple[int, ...] = ()
    cost: float = 0.0
    save_rate: float = 0.0
    capacity: int | None = None
    campaign: str | None = None  # a measured campaign whose save rate replaces save_rate (reports/campaigns.json)


def _labels(block: dict[str, Any], where: str) -> dict[str, str]:
    """The en/zh labels of a band or action (both required)."""
    missing = [loc for loc in LOCALES if not block.get(loc)]
    if missing:
        raise ValueError(f"{where}: missing label(s) for locale(s) {missing}")
    return {loc: str(block[loc]) for loc in LOCALES}


def parse_bands(items: list[dict[str, Any]]) -> tuple[RiskBand, ...]:
    """Risk bands with strictly increasing upper bounds, the last above 1."""
    bands = tuple(RiskBand(str(b["name"]), float(b["upper"]), _labels(b, f"scoring.risk_bands[{b.get('name')}]"))
                  for b in items)
    uppers = np.array([b.upper for b in bands])
    if not bands or (np.diff(uppers) <= 0).any() or uppers[-1] <= 1.0:
        raise ValueError(f"scoring.risk_bands: upper bounds must increase and the last must exceed 1, got "
                         f"{uppers.tolist()}")
    return bands


def parse_rule(item: dict[str, Any]) -> ActionRule:
    """One action rule, its conditions checked for known operators."""
    name = str(item.get("name"))
    when = parse_conditions(item.get("when"), f"scoring.actions[{name}].when")
    days = tuple(int(d) for d in item.get("schedule_days") or ())
    if list(days) != sorted(set(days)):
        raise ValueError(f"scoring.actions[{name}].schedule_days must increase, got {list(days)}")
    cost, save = float(item.get("cost") or 0.0), float(item.get("save_rate") or 0.0)
    capacity = None if item.get("capacity") is None else int(item["capacity"])
    if not np.isfinite(cost) or cost < 0 or not 0.0 <= save <= 1.0 or (capacity is not None and capacity < 0):
        raise ValueError(f"scoring.actions[{name}]: cost must be >= 0, save_rate in [0, 1] and capacity >= 0 or null, "
                         f"got cost={item.get('cost')}, save_rate={item.get('save_rate')}, "
                         f"capacity={item.get('capacity')}")
    return ActionRule(name, when, _labels(item, f"scoring.actions[{name}]"), days, cost, save, capacity,
                      str(item["campaign"]) if item.get("campaign") else None)


def parse_conditions(block: dict[str, Any] | None, where: str) -> dict[str, dict[str, Any]]:
    """A `when`-style condition block checked for known operators."""
    when = {str(col): dict(cond) for col, cond in (block or {}).items()}
    for col, cond in when.items():
        bad = sorted(set(cond) - set(OPERATORS))
        if bad or not cond:
            raise ValueError(f"{where}.{col}: operators must be among {OPERATORS}, got {sorted(cond)}")
    return when


@dataclass(frozen=True)
class ScoringConfig:
    """Parsed scoring settings."""

    risk_bands: tuple[RiskBand, ...]
    actions: tuple[ActionRule, ...]
    default_action: ActionRule
    chunk_rows: int = 500_000
    interval_draws: int = 100
    interval_grid_days: float = 7.0
    sink: str | None = None
    budget: float | None = None  # None: no budget limit
    must_act: dict[str, dict[str, Any]] = field(default_factory=dict)
    plan_top: int = 20
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_params(cls, block: dict[str, Any]) -> ScoringConfig:
        """Build from params['scoring'] (ValueError naming the bad key)."""
        chunk, draws = int(block.get("chunk_rows", 500_000)), int(block.get("interval_draws", 100))
        if chunk < 1 or draws < 2:
            raise ValueError(f"scoring.chunk_rows must be >= 1 and scoring.interval_draws >= 2, got {chunk}, {draws}")
        default = block.get("default_action") or {}
        budget = block.get("budget")
        if budget is not None and not (np.isfinite(float(budget)) and float(budget) >= 0):
            raise ValueError(f"scoring.budget must be >= 0 or null, got {budget}")
        actions = tuple(parse_rule(r) for r in block.get("actions") or [])
        names = [a.name for a in actions] + [str(default.get("name", "default"))]
        if len(set(names)) != len(names):
            raise ValueError(f"scoring.actions: action names must be unique (default_action included), got {names}")
        return cls(
            risk_bands=parse_bands(list(block.get("risk_bands") or [])),
            actions=actions,
            default_action=ActionRule(str(default.get("name", "default")), {},
                                      _labels(default, "scoring.default_action")),
            chunk_rows=chunk,
            interval_draws=draws,
            interval_grid_days=float(block.get("interval_grid_days", 7.0)),
            sink=block.get("sink") or None,
            budget=None if budget is None else float(budget),
            must_act=parse_conditions(block.get("must_act"), "scoring.must_act"),
            plan_top=int(block.get("plan_top", 20)),
        )

    def rule_columns(self) -> set[str]:
        """Every column the action rules and must_act read."""
        return {col for rule in self.actions for col in rule.when} | set(self.must_act)
