"""The action plan looks only at its candidate rows (bounded by the budget): same plan as over the whole batch,
chunk by chunk or at once."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

from models.scoring import plan as P
from models.scoring.config import ScoringConfig
from tests.conftest import compose_params
from tests.unit.test_scoring_plan import config, customers


def shipped(budget: float | None) -> ScoringConfig:
    """The shipped scoring config with another budget."""
    return replace(ScoringConfig.from_params(compose_params([])["scoring"]), budget=budget)


def batch(n: int, seed: int) -> pd.DataFrame:
    """Decision rows with every column the shipped rules read."""
    rng = np.random.default_rng(seed)
    return pd.DataFrame({
        "customer_id": [f"c{i:06d}" for i in range(n)], "churn_probability": rng.uniform(0, 1, n),
        "clv": rng.gamma(0.8, 60, n), "clv_decile": rng.integers(1, 11, n),
        "churn_risk_band": rng.choice(["low", "medium", "high"], n),
        "rfm_segment": rng.choice(["champions", "lost", "at_risk_loyal", "new_low_spend"], n),
        "orders_total": rng.integers(1, 5, n), "tenure_days": rng.integers(1, 900, n)})


def rounded(value: object) -> object:
    """Floats rounded to 6 decimals inside dicts and lists (sums added up chunk by chunk differ in the last bits)."""
    if isinstance(value, dict):
        return {k: rounded(v) for k, v in value.items()}
    if isinstance(value, list):
        return [rounded(v) for v in value]
    return round(value, 6) if isinstance(value, float) else value


def test_plan_limit_is_budget_over_the_cheapest_cost_plus_free_capacity() -> None:
    assert P.plan_limit(shipped(20000.0)) == 40000  # cheapest paid saving action 0.5; no_spend saves nothing
    assert P.plan_limit(shipped(None)) == np.inf
    assert P.plan_limit(config([0.0, 2.0], [0.1, 0.2], caps=[5, None], budget=7.0)) == 5 + 3
    assert P.plan_limit(config([0.0, 2.0], [0.1, 0.2], budget=7.0)) == np.inf  # a free action without a cap
    assert P.plan_limit(config([3.0], [0.0], budget=7.0)) == 0  # nothing can be worth taking
    assert P.plan_limit(config([3.0], [0.0], budget=7.0), save_rates={"a0": 0.2}) == 2  # a measured rate


@pytest.mark.parametrize("budget", [50.0, 200.0, 600.0])
def test_bounded_plan_equals_the_plan_over_every_row_on_a_cdnow_size_batch(budget: float) -> None:
    frame, cfg = batch(2357, seed=int(budget)), shipped(budget)
    keep = P.plan_rows(frame, cfg)
    assert keep.sum() < len(frame) / 2  # the candidates are a small part of the batch
    full, bounded = P._plan_all(frame, cfg), P.plan_actions(frame, cfg)
    pd.testing.assert_frame_equal(P.plan_table(frame, bounded, cfg, "en"), P.plan_table(frame, full, cfg, "en"))
    assert bounded.upper_bound == pytest.approx(full.upper_bound) and bounded.forced.tolist() == full.forced.tolist()


def test_chunks_reduce_to_the_same_plan_and_summary_as_the_whole_batch() -> None:
    frame, cfg = batch(3000, seed=4), shipped(150.0)
    kept, totals = P.reduce_chunks((frame.iloc[i:i + 400] for i in range(0, 3000, 400)), cfg)
    assert len(kept) <= 4 * P.plan_limit(cfg) + cfg.plan_top < len(frame)
    whole = P.plan_actions(frame, cfg)
    table = P.plan_table(frame, whole, cfg, "en")
    plan = P.plan_actions(kept, cfg)
    pd.testing.assert_frame_equal(P.plan_table(kept, plan, cfg, "en"), table)
    assert rounded(P.summarise(kept, table, plan, cfg, totals=totals)) == rounded(P.summarise(frame, table, whole, cfg))


def test_a_budget_that_never_reaches_the_dear_action_plans_the_same() -> None:
    frame = customers([0.9] * 12, [100.0 - 5 * i for i in range(12)], [[1, 1]] * 12)
    cfg = config([1.0, 10.0], [0.1, 0.9], budget=5.0)  # the dear action never fits: 5 customers, the cheap one
    bounded, full = P.plan_actions(frame, cfg), P._plan_all(frame, cfg)
    assert P.plan_rows(frame, cfg).sum() == 5 and bounded.choice.tolist() == full.choice.tolist() == [0] * 5 + [-1] * 7


def test_where_the_greedy_over_every_row_wastes_budget_the_bounded_plan_keeps_the_better_customers() -> None:
    # 16 customers enter by the dear action (slope 7.5 > 3.5): the first takes it, the rest do not fit; over every
    # row the greedy then gives a0 to the last row (value 0.8, only eligible for a0) before the others switch to
    # a0 in `improve`. The bounded plan never sees that row (15 better customers for a0): a higher value, same bound.
    frame = customers([0.9] * 17, [100.0 - i for i in range(16)] + [40.0], [[1, 1]] * 16 + [[1, 0]])
    cfg = config([1.0, 10.0], [0.05, 0.95], budget=15.0)
    bounded, full = P.plan_actions(frame, cfg), P._plan_all(frame, cfg)
    assert full.choice.tolist() == [1, 0, 0, 0, 0] + [-1] * 11 + [0]
    assert bounded.choice.tolist() == [1, 0, 0, 0, 0, 0] + [-1] * 11
    assert bounded.value > full.value and bounded.upper_bound == pytest.approx(full.upper_bound)


@pytest.mark.parametrize("seed", range(6))
def test_must_act_customers_served_are_those_of_the_whole_batch(seed: int) -> None:
    frame = batch(1500, seed)
    cfg = replace(shipped(float(np.random.default_rng(seed).choice([30.0, 120.0, 400.0]))),
                  must_act={"churn_risk_band": {"in": ["high"]}})
    bounded, full = P.plan_actions(frame, cfg), P._plan_all(frame, cfg)
    assert P.plan_rows(frame, cfg).sum() < len(frame)
    assert bounded.forced.tolist() == full.forced.tolist() and bounded.forced.any()
    assert (bounded.choice[bounded.forced] == full.choice[full.forced]).all()
    assert bounded.must.sum() == full.must.sum()
