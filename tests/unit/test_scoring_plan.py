"""The action plan (multiple-choice knapsack) against brute force on tiny cases, and its business rules."""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pytest

from models.scoring.config import ScoringConfig
from models.scoring.plan import hull_increments, plan_actions, plan_table, summarise
from models.scoring.rules import expected_values
from tests.conftest import compose_params

BANDS = [{"name": "low", "upper": 0.5, "en": "low", "zh": "低"},
         {"name": "high", "upper": 1.01, "en": "high", "zh": "高"}]


def config(costs, rates, caps=None, budget=None, must_act=None) -> ScoringConfig:
    """Actions a0, a1, ... eligible where column `ok_<i>` is 1."""
    caps = caps or [None] * len(costs)
    actions = [{"name": f"a{i}", "when": {f"ok_{i}": {"min": 1}}, "cost": c, "save_rate": r, "capacity": k,
                "en": f"A{i}", "zh": f"A{i}"} for i, (c, r, k) in enumerate(zip(costs, rates, caps, strict=True))]
    return ScoringConfig.from_params({"risk_bands": BANDS, "actions": actions, "budget": budget,
                                      "must_act": must_act or {},
                                      "default_action": {"name": "nurture", "en": "Newsletter", "zh": "关怀"}})


def customers(p, clv, eligible) -> pd.DataFrame:
    """Decision rows: churn probability, CLV, eligibility flags per action."""
    eligible = np.asarray(eligible)
    frame = pd.DataFrame({"customer_id": [f"c{i}" for i in range(len(p))], "churn_probability": p, "clv": clv,
                          "clv_decile": 10, "churn_risk_band": np.where(np.asarray(p) >= 0.5, "high", "low"),
                          "tenure_days": 400})
    for j in range(eligible.shape[1]):
        frame[f"ok_{j}"] = eligible[:, j].astype(int)
    return frame


def brute_force(values, eligible, costs, budget, caps) -> float:
    """The best total value over every assignment (one action or none per customer)."""
    n, k = values.shape
    best = 0.0
    for pick in itertools.product(range(-1, k), repeat=n):
        chosen = [(i, a) for i, a in enumerate(pick) if a >= 0]
        if any(not eligible[i, a] for i, a in chosen) or sum(costs[a] for _, a in chosen) > budget + 1e-9:
            continue
        if any(sum(1 for _, a in chosen if a == j) > caps[j] for j in range(k)):
            continue
        best = max(best, sum(values[i, a] for i, a in chosen))
    return best


@pytest.mark.parametrize("seed", range(40))
def test_plan_is_feasible_and_within_its_bound_of_brute_force(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n, k = 5, 3
    costs = rng.choice([0.0, 1.0, 2.0, 3.0, 5.0], size=k)
    rates = rng.uniform(0.05, 0.6, size=k)
    capped = seed % 2 == 1
    caps = [int(rng.integers(0, 3)) if capped and rng.random() < 0.7 else None for _ in range(k)]
    budget = float(rng.choice([0.0, 2.0, 4.0, 7.0, 100.0]))
    frame = customers(rng.uniform(0.05, 1.0, n), rng.uniform(1.0, 40.0, n), rng.random((n, k)) < 0.7)
    cfg = config(costs.tolist(), rates.tolist(), caps, budget)
    plan = plan_actions(frame, cfg)
    values, eligible = expected_values(frame, cfg.actions)
    cap = [np.inf if c is None else c for c in caps]
    picked = np.flatnonzero(plan.choice >= 0)
    assert eligible[picked, plan.choice[picked]].all()
    spent = costs[plan.choice[picked]].sum()
    assert spent <= budget + 1e-9 and plan.spent == pytest.approx(spent)
    assert all((plan.choice == j).sum() <= cap[j] for j in range(k))
    assert plan.value == pytest.approx(values[picked, plan.choice[picked]].sum())
    best = brute_force(values, eligible, costs, budget, cap)
    assert plan.value <= best + 1e-9 <= plan.upper_bound + 1e-6
    if not capped:  # LP-exact greedy: the integer plan is within one increment of the optimum, and so is the bound
        largest = max(0.0, np.where(eligible, values, 0).max())
        assert best - plan.value <= largest + 1e-9 and plan.upper_bound - plan.value <= largest + 1e-6


def test_without_a_binding_budget_every_customer_gets_its_best_action_exactly() -> None:
    frame = customers([0.9, 0.6, 0.3], [100.0, 20.0, 5.0], [[1, 1], [1, 1], [1, 1]])
    cfg = config([10.0, 1.0], [0.3, 0.1], budget=None)
    plan = plan_actions(frame, cfg)
    # values: c0 (17, 8), c1 (-6.4, 0.2), c2 (-9.55, -0.85)
    assert plan.choice.tolist() == [0, 1, -1]
    assert plan.value == pytest.approx(17.2) and plan.upper_bound == pytest.approx(17.2) and plan.gap == 0


def test_budget_goes_to_the_best_value_per_cost_and_upgrades_when_it_allows() -> None:
    frame = customers([0.9, 0.9], [100.0, 50.0], [[1, 1], [1, 1]])
    cfg = config([10.0, 1.0], [0.3, 0.1], budget=11.0)
    # c0: cheap 8 (slope 8), upgrade +9 for 9 (slope 1); c1: cheap 3.5 (slope 3.5), dear 3.5: not on the hull
    plan = plan_actions(frame, cfg)
    assert plan.choice.tolist() == [0, 1] and plan.spent == pytest.approx(11.0)
    assert plan_actions(frame, cfg, budget=2.0).choice.tolist() == [1, 1]


def test_hull_drops_dominated_and_collinear_options() -> None:
    values = np.array([[1.0, 2.0, 3.0, 0.5]])  # costs 1, 2, 3: collinear; cost 4 dominated
    rows, src, dst, dc, dv = hull_increments(values, np.array([1.0, 2.0, 3.0, 4.0]))
    assert dst.tolist() == [2] and dv.tolist() == [3.0]  # one segment from the origin to (3, 3)
    values = np.array([[1.0, 3.0, 3.5]])
    rows, src, dst, dc, dv = hull_increments(values, np.array([1.0, 2.0, 4.0]))
    assert dst.tolist() == [1, 2] and src.tolist() == [-1, 1] and dv.tolist() == [3.0, 0.5]


def test_capacity_limits_an_action_and_the_next_best_customer_takes_another() -> None:
    frame = customers([0.9, 0.8], [100.0, 100.0], [[1, 1], [1, 1]])
    cfg = config([5.0, 1.0], [0.3, 0.1], caps=[1, None], budget=None)
    plan = plan_actions(frame, cfg)
    assert sorted(plan.choice.tolist()) == [0, 1] and plan.choice[0] == 0


def test_measured_save_rates_replace_the_assumed_ones() -> None:
    frame = customers([0.5], [100.0], [[1, 1]])
    cfg = config([5.0, 1.0], [0.3, 0.1], budget=None)
    assert plan_actions(frame, cfg).choice.tolist() == [0]  # 10 vs 4
    assert plan_actions(frame, cfg, save_rates={"a0": 0.05}).choice.tolist() == [1]  # -2.5 vs 4
    with pytest.raises(ValueError, match="unknown action.*zz"):
        plan_actions(frame, cfg, save_rates={"zz": 0.1})


def test_must_act_customers_get_a_saving_action_first_even_at_a_negative_value() -> None:
    frame = customers([0.9, 0.2], [20.0, 1000.0], [[1], [1]])
    cfg = config([10.0], [0.3], budget=10.0, must_act={"churn_risk_band": {"in": ["high"]}})
    plan = plan_actions(frame, cfg)  # c0: 5.4 - 10 < 0 but must act; c1 (60 - 10) would be worth more
    assert plan.choice.tolist() == [0, -1] and plan.forced.tolist() == [True, False]
    assert plan.value == pytest.approx(-4.6) and plan.upper_bound >= plan.value


def test_table_and_summary_on_the_shipped_config() -> None:
    cfg = ScoringConfig.from_params(compose_params([])["scoring"])
    frame = pd.DataFrame({
        "customer_id": ["hi_val_hi_risk", "hi_val_low_risk", "mid", "low_val", "new"],
        "churn_probability": [0.9, 0.2, 0.7, 0.95, 0.6], "clv": [300.0, 400.0, 30.0, 3.0, 8.0],
        "clv_decile": [10, 10, 7, 1, 5], "churn_risk_band": ["high", "low", "medium", "high", "medium"],
        "rfm_segment": ["champions", "champions", "lost", "lost", "new_low_spend"],
        "orders_total": [9, 12, 2, 1, 1], "tenure_days": [500, 700, 300, 400, 9]})
    plan = plan_actions(frame, cfg)
    table = plan_table(frame, plan, cfg, "en")
    by_id = dict(zip(table["customer_id"], table["action"], strict=True))
    assert by_id["hi_val_hi_risk"] == "personal_winback" and by_id["hi_val_low_risk"] == "loyalty_perks"
    assert "low_val" not in by_id and table["rank"].tolist() == list(range(1, len(table) + 1))
    assert table["expected_value"].is_monotonic_decreasing
    new = table[table["customer_id"] == "new"]
    assert new.empty or new["action_label"].iloc[0] == "Onboarding tips: next on day 15"
    summary = summarise(frame, table, plan, cfg, top=2)
    assert summary["spent"] <= cfg.budget and summary["high_risk_top_decile"] == {
        "customers": 1, "with_saving_action": 1, "without": 0}
    assert summary["must_act"] == {"customers": 1, "served": 1}
    assert [r["customer_id"] for r in summary["top_at_risk"]] == ["hi_val_hi_risk", "hi_val_low_risk"]
    winback = next(a for a in summary["per_action"] if a["action"] == "personal_winback")
    assert winback["expected_value"] == pytest.approx(0.9 * 300 * 0.3 - 10)


def test_must_act_serves_the_largest_value_at_risk_first_and_falls_back_when_full() -> None:
    frame = customers([0.9, 0.9, 0.9], [20.0, 40.0, 30.0], [[1, 1], [1, 1], [1, 1]])
    cfg = config([4.0, 3.0], [0.3, 0.1], caps=[1, None], budget=7.0, must_act={"churn_risk_band": {"in": ["high"]}})
    plan = plan_actions(frame, cfg)
    # value at risk 18, 36, 27: c1 takes a0 (6.8), c2 finds a0 full and takes a1 (-0.3), c0 no longer fits
    assert plan.choice.tolist() == [-1, 0, 1] and plan.forced.tolist() == [False, True, True]
    assert plan.spent == pytest.approx(7.0)


def test_without_a_budget_the_cost_spent_is_finite() -> None:
    frame = customers([0.9, 0.6], [100.0, 50.0], [[1, 1], [1, 1]])
    plan = plan_actions(frame, config([10.0, 1.0], [0.3, 0.1], budget=None))
    assert plan.spent == pytest.approx(11.0) and plan.budget is None


def test_a_customer_the_budget_stops_takes_a_cheaper_option_that_still_fits() -> None:
    frame = customers([1.0], [100.0], [[1, 1]])
    cfg = config([10.0, 1.0], [0.4, 0.02], budget=5.0)  # values 30 for 10 (the hull) and 1 for 1 (under it)
    plan = plan_actions(frame, cfg)
    assert plan.choice.tolist() == [1] and plan.value == pytest.approx(1.0) and plan.spent == pytest.approx(1.0)
