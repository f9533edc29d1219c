"""Action plan: at most one action per customer maximising expected value under a budget and action capacities.

The problem is a multiple-choice knapsack: customer i may take one eligible action a with value
v_ia = P(churn) x CLV x save_rate_a - cost_a and cost c_a, or nothing (0, 0); total cost <= budget B and at most
K_a customers per action. Method (Sinha & Zoltners 1979, "The multiple-choice knapsack problem"):

1. Per customer, drop options with v <= 0 and options dominated by a cheaper one, and keep the upper concave hull
   of (cost, value) from (0, 0). Moving along the hull gives increments (dc, dv) with strictly decreasing
   slopes dv/dc per customer.
2. Sort every customer's increments by slope (a free increment first) and take them in that order while the
   budget and the capacities allow; an increment that does not fit freezes its customer at the current action,
   later increments of other customers are still tried (they may fit in what is left).
3. Customers stopped that way may still switch to any option that fits what is left (a cheaper action under the
   hull, or another action when theirs is full), the largest gain first.

Exactness argument. Without capacities, taking hull increments by slope solves the LP relaxation exactly: the LP
optimum is the value of the increments before the first one that does not fit plus a fraction of that one, so the
integer plan found is within that one increment's dv of the LP optimum, hence of the integer optimum. With
capacities the greedy is a heuristic, so every plan carries a certificate: the Lagrangian dual bound
D(mu, lam) = mu B + sum_a lam_a K_a + sum_i max(0, max_a v_ia - mu c_a - lam_a) >= LP optimum >= integer optimum
for any mu, lam >= 0; mu and lam are found by exact coordinate minimisation (D is convex and piecewise linear in
each coordinate). `Plan.upper_bound - Plan.value` is the proven gap. tests/unit/test_scoring_plan.py checks plan,
bound and gap against brute force on small cases.

Customers meeting `must_act` are served first (largest value at risk first): each gets its best eligible action with
a save rate > 0, whatever its value, while the budget and capacities allow; the rest is optimised as above on what
remains (the bound is then the forced customers' value plus the bound of the remaining problem).

Bounded input. With a budget, at most N = floor(budget / cheapest positive cost) customers (plus the capacities of
free actions) can be planned, so the plan only looks at the candidates (`candidates`): per action the N customers
with the highest value, and per saving action the N must-act customers with the highest value at risk. The forced
customers are exactly those of the whole batch (a must-act customer served with action a has fewer than N eligible
customers for a ahead of it, else one of them was skipped because a did not fit, or N + 1 were served). An optimum
lies within the candidates (a planned customer outside them can hand its action to one of the N better, unplanned
ones), so the bound certifies the plan against the whole batch too. Keeping the candidates of each chunk and of the
candidates kept so far gives the same candidates as the whole batch: the plan's input is bounded by N, not by the
customers. Without a budget (or with a free action of unlimited capacity) N is unbounded and every row is kept.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd

from models.scoring.config import ActionRule, ScoringConfig
from models.scoring.rules import expected_values, labels_of, rule_mask, value_column

NONE = -1
EPS = 1e-9


@dataclass(frozen=True)
class Plan:
    """The chosen action per customer (index into the actions, -1 none) with totals and the optimality bound."""

    choice: np.ndarray
    value: float
    spent: float
    upper_bound: float
    budget: float | None
    forced: np.ndarray
    must: np.ndarray  # rows meeting scoring.must_act (forced: those of them served first)

    @property
    def gap(self) -> float:
        """Proven distance to the optimum: upper bound minus the plan's expected value."""
        return max(0.0, self.upper_bound - self.value)


def hull_increments(values: np.ndarray, costs: np.ndarray) -> tuple[np.ndarray, ...]:
    """(row, from action or -1, to action, dcost, dvalue) along each row's upper concave hull of (cost, value).

    values: rows x actions with -inf (or <= 0) for options not worth taking; costs: per action, >= 0.
    """
    n, k = values.shape
    order = np.lexsort((np.arange(k), costs))  # cheapest first, ties in config order
    v, c = values[:, order], costs[order]
    valid = v > 0
    vertex = valid.copy()
    for j in range(k):
        for b in range(k):  # b dominates j: no dearer (cost order, ties config order) and worth at least as much
            if b != j:
                beats = (v[:, b] >= v[:, j]) if b < j else (c[b] == c[j]) & (v[:, b] > v[:, j])
                vertex[:, j] &= ~(valid[:, b] & beats)
        for b in [NONE, *range(k)]:  # chord from a cheaper point b (or the origin) to a dearer point d
            cb = 0.0 if b == NONE else c[b]
            if cb >= c[j]:
                continue
            vb = np.zeros(n) if b == NONE else np.where(valid[:, b], v[:, b], np.nan)
            for d in range(k):
                if c[d] <= c[j]:
                    continue
                chord = vb + (np.where(valid[:, d], v[:, d], np.nan) - vb) * (c[j] - cb) / (c[d] - cb)
                vertex[:, j] &= ~(chord >= v[:, j])  # NaN (invalid end point) never removes a vertex
    rows, src, dst, dc, dv = [], [], [], [], []
    prev, prev_c, prev_v = np.full(n, NONE), np.zeros(n), np.zeros(n)
    for j in range(k):
        hit = np.flatnonzero(vertex[:, j])
        rows.append(hit)
        src.append(np.where(prev[hit] == NONE, NONE, order[np.maximum(prev[hit], 0)]))
        dst.append(np.full(hit.size, order[j]))
        dc.append(c[j] - prev_c[hit])
        dv.append(v[hit, j] - prev_v[hit])
        prev[hit], prev_c[hit], prev_v[hit] = j, c[j], v[hit, j]
    return tuple(np.concatenate(a) if a else np.array([]) for a in (rows, src, dst, dc, dv))


def greedy(increments: tuple[np.ndarray, ...], n: int, costs: np.ndarray, budget: float,
           capacity: np.ndarray, start: np.ndarray | None = None) -> tuple[np.ndarray, float]:
    """Take hull increments by decreasing slope while budget and capacity allow; (choice per row, cost spent)."""
    rows, src, dst, dc, dv = increments
    with np.errstate(divide="ignore", invalid="ignore"):
        slope = np.where(dc > 0, dv / np.where(dc > 0, dc, 1.0), np.inf)
    order = np.lexsort((rows, -dv, -slope))
    choice = np.full(n, NONE) if start is None else start.copy()
    frozen = choice != NONE
    counts = np.bincount(choice[choice != NONE], minlength=costs.size).astype(np.int64)
    spent = float(costs[choice[choice != NONE]].sum())
    room = budget - spent
    for r, a, b, step in zip(rows[order].tolist(), src[order].tolist(), dst[order].tolist(), dc[order].tolist(),
                             strict=True):
        if frozen[r] or choice[r] != a:
            continue
        if step > room + EPS or counts[b] >= capacity[b]:
            frozen[r] = True
            continue
        room -= step
        spent += step
        counts[b] += 1
        if a != NONE:
            counts[a] -= 1
        choice[r] = b
    return choice, spent


def improve(values: np.ndarray, costs: np.ndarray, choice: np.ndarray, budget: float, capacity: np.ndarray,
            fixed: np.ndarray) -> tuple[np.ndarray, float]:
    """After the greedy: customers it stopped (an increment did not fit the budget or its action was full) switch to
    the option that adds most value among those that still fit, largest gain first; every switch raises the total."""
    choice = choice.copy()
    counts = np.bincount(choice[choice != NONE], minlength=costs.size).astype(np.int64)
    spent = float(costs[choice[choice != NONE]].sum())
    rows = np.arange(len(choice))
    current = np.where(choice != NONE, values[rows, np.maximum(choice, 0)], 0.0)
    current[fixed | ~np.isfinite(current)] = 0.0  # fixed rows (must_act) never switch
    paid = np.where(choice != NONE, costs[np.maximum(choice, 0)], 0.0)
    open_ = counts < capacity
    gain = np.where((values > current[:, None] + EPS) & open_[None, :] & ~fixed[:, None]
                    & (costs[None, :] - paid[:, None] <= budget - spent + EPS), values - current[:, None], -np.inf)
    candidates = np.flatnonzero(np.isfinite(gain).any(axis=1))
    for r in candidates[np.argsort(-gain[candidates].max(axis=1), kind="stable")].tolist():
        best, best_gain = NONE, 0.0
        for a in np.flatnonzero(np.isfinite(gain[r])).tolist():
            extra = costs[a] - paid[r]
            if counts[a] < capacity[a] and extra <= budget - spent + EPS and gain[r, a] > best_gain:
                best, best_gain = a, gain[r, a]
        if best != NONE:
            if choice[r] != NONE:
                counts[choice[r]] -= 1
            counts[best] += 1
            spent += costs[best] - paid[r]
            choice[r] = best
    return choice, spent


def _best_after_prices(values: np.ndarray, costs: np.ndarray, mu: float, lam: np.ndarray) -> np.ndarray:
    """Per row max(0, max_a v_ia - mu c_a - lam_a) (invalid options are -inf)."""
    reduced = values - mu * costs[None, :] - lam[None, :]
    return np.maximum(0.0, reduced.max(axis=1, initial=0.0))


def dual_bound(values: np.ndarray, costs: np.ndarray, budget: float, capacity: np.ndarray, rounds: int = 6) -> float:
    """min over mu, lam >= 0 (coordinate descent) of the Lagrangian dual D(mu, lam): an upper bound on the optimum.

    Infinite budget / capacity fix the matching multiplier at 0. Any (mu, lam) gives a valid bound.
    """
    values = values[(values > 0).any(axis=1)]  # rows with nothing worth taking add 0 at any prices
    if values.shape[0] == 0 or values.shape[1] == 0:
        return 0.0
    lam = np.zeros(costs.size)
    limited = np.isfinite(capacity)
    mu = 0.0

    def dual(m: float, la: np.ndarray) -> float:
        caps = np.where(limited, capacity, 0.0)
        return (m * budget if np.isfinite(budget) else 0.0) + float(la @ caps) + float(
            _best_after_prices(values, costs, m, la).sum())

    for _ in range(rounds if limited.any() else 1):
        before = lam.copy()
        if np.isfinite(budget) and (costs > 0).any():
            # D(mu) convex piecewise linear; slope B - cost of each row's best option: bisection on the slope sign
            lo, hi = 0.0, float(np.max(np.where(np.isfinite(values) & (costs[None, :] > 0),
                                                values / np.where(costs > 0, costs, 1.0)[None, :], 0.0))) + 1.0
            for _ in range(45):
                mid = 0.5 * (lo + hi)
                reduced = values - mid * costs[None, :] - lam[None, :]
                best = reduced.argmax(axis=1)
                take = reduced[np.arange(len(reduced)), best] > 0
                if costs[best[take]].sum() > budget:
                    lo = mid
                else:
                    hi = mid
            mu = min((lo, hi), key=lambda m: dual(m, lam))
        for a in np.flatnonzero(limited):
            rest = _best_after_prices(np.delete(values, a, axis=1), np.delete(costs, a), mu, np.delete(lam, a))
            gain = values[:, a] - mu * costs[a] - rest
            gain = np.sort(gain[np.isfinite(gain) & (gain > 0)])[::-1]
            k = int(capacity[a])
            lam[a] = gain[k] if gain.size > k else 0.0  # the (K+1)-th largest: derivative K - #{gain > lam} <= 0
        if np.array_equal(lam, before):
            break
    return dual(mu, lam)


def saving_actions(cfg: ScoringConfig, save_rates: Mapping[str, float] | None = None) -> np.ndarray:
    """Per action: can it ever be planned (a save rate > 0, configured or measured)?"""
    rates = {r.name: r.save_rate for r in cfg.actions} | {k: float(v) for k, v in (save_rates or {}).items()}
    return np.array([r.save_rate > 0 or rates.get(r.name, 0.0) > 0 for r in cfg.actions], dtype=bool)


def plan_limit(cfg: ScoringConfig, save_rates: Mapping[str, float] | None = None, budget: float | None = None
               ) -> float:
    """The most customers any plan can serve: budget / the cheapest positive cost of an action that can be planned,
    plus the capacities of such actions that cost nothing; inf without a budget or with a free unlimited action."""
    budget = cfg.budget if budget is None else budget
    can = saving_actions(cfg, save_rates)
    costs = np.array([r.cost for r in cfg.actions], dtype=float)[can]
    caps = np.array([np.inf if r.capacity is None else r.capacity for r in cfg.actions], dtype=float)[can]
    if budget is None or not can.any():
        return np.inf if budget is None and can.any() else 0.0
    paid = costs > 0
    limit = float(caps[~paid].sum())
    if paid.any():
        limit += np.floor(max(float(budget), 0.0) / float(costs[paid].min()) + EPS)
    return limit


def _top(key: np.ndarray, keep: np.ndarray, limit: float) -> np.ndarray:
    """Rows among `keep` with the `limit` largest keys (ties: the earlier row first), as a mask."""
    rows = np.flatnonzero(keep)
    if rows.size > limit:
        rows = rows[np.argsort(-key[rows], kind="stable")[: int(limit)]]
    out = np.zeros(key.size, dtype=bool)
    out[rows] = True
    return out


def candidates(values: np.ndarray, at_risk: np.ndarray, must: np.ndarray, saving: np.ndarray,
               limit: float) -> np.ndarray:
    """The rows the plan looks at (module docstring): per action the `limit` highest positive values, per saving
    action the `limit` must-act rows eligible for it with the highest value at risk (NaN last)."""
    n = values.shape[0]
    if n <= limit:
        return np.ones(n, dtype=bool)
    keep = np.zeros(n, dtype=bool)
    risk = np.where(np.isnan(at_risk), -np.inf, at_risk)
    for a in range(values.shape[1]):
        keep |= _top(values[:, a], values[:, a] > 0, limit)
        if saving[a] and must.any():
            keep |= _top(risk, must & np.isfinite(values[:, a]), limit)
    return keep


def decision_values(decisions: pd.DataFrame, cfg: ScoringConfig, save_rates: Mapping[str, float] | None = None
                    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(values with -inf where not eligible, value at risk, must-act mask) of decision rows."""
    values, eligible = expected_values(decisions, cfg.actions, save_rates)
    values = np.where(eligible & np.isfinite(values), values, -np.inf)
    at_risk = decisions["churn_probability"].to_numpy(dtype=float) * decisions[value_column(decisions)].to_numpy(
        dtype=float, na_value=np.nan)
    must = rule_mask(decisions, ActionRule("must_act", cfg.must_act, {})) if cfg.must_act and len(decisions) \
        else np.zeros(len(decisions), dtype=bool)
    return values, at_risk, must


def plan_rows(decisions: pd.DataFrame, cfg: ScoringConfig, save_rates: Mapping[str, float] | None = None,
              budget: float | None = None) -> np.ndarray:
    """Mask of the candidate rows of a batch or chunk (module docstring: the plan's input is bounded)."""
    values, at_risk, must = decision_values(decisions, cfg, save_rates)
    return candidates(values, at_risk, must, saving_actions(cfg, save_rates), plan_limit(cfg, save_rates, budget))


def plan_actions(decisions: pd.DataFrame, cfg: ScoringConfig, save_rates: Mapping[str, float] | None = None,
                 budget: float | None = None) -> Plan:
    """The plan for a batch (rows: churn_probability, CLV, the rule columns); budget defaults to scoring.budget.
    Only the candidate rows are planned (module docstring); the others get no action."""
    values, at_risk, must = decision_values(decisions, cfg, save_rates)
    keep = candidates(values, at_risk, must, saving_actions(cfg, save_rates), plan_limit(cfg, save_rates, budget))
    if keep.all():
        return _plan_all(decisions, cfg, save_rates, budget)
    part = _plan_all(decisions[keep].reset_index(drop=True), cfg, save_rates, budget)
    rows = np.flatnonzero(keep)
    choice, forced = np.full(len(keep), NONE), np.zeros(len(keep), dtype=bool)
    choice[rows], forced[rows] = part.choice, part.forced
    return Plan(choice, part.value, part.spent, part.upper_bound, part.budget, forced, must)


def _plan_all(decisions: pd.DataFrame, cfg: ScoringConfig, save_rates: Mapping[str, float] | None = None,
              budget: float | None = None) -> Plan:
    """The plan over every row of decisions (no candidate selection)."""
    rules = cfg.actions
    budget = cfg.budget if budget is None else budget
    b = np.inf if budget is None else float(budget)
    values, eligible = expected_values(decisions, rules, save_rates)
    n = len(decisions)
    values = np.where(eligible & np.isfinite(values), values, -np.inf)
    costs = np.array([r.cost for r in rules], dtype=float)
    capacity = np.array([np.inf if r.capacity is None else r.capacity for r in rules], dtype=float)
    start, forced, must = np.full(n, NONE), np.zeros(n, dtype=bool), np.zeros(n, dtype=bool)
    if cfg.must_act and n:
        must = rule_mask(decisions, ActionRule("must_act", cfg.must_act, {}))
        start, forced = _must_act(decisions, cfg, values, costs, capacity, b)
    free = ~forced
    left_budget = b - float(costs[start[forced]].sum())
    left_capacity = capacity - np.bincount(start[forced], minlength=costs.size)
    masked = np.where(free[:, None] & (values > 0), values, -np.inf)
    choice, spent = greedy(hull_increments(masked, costs), n, costs, b, capacity, start)
    choice, spent = improve(masked, costs, choice, b, capacity, forced)
    value = float(values[np.arange(n), np.maximum(choice, 0)][choice != NONE].sum()) if n else 0.0
    forced_value = float(values[np.flatnonzero(forced), start[forced]].sum())
    bound = forced_value + dual_bound(masked[free], costs, left_budget, left_capacity)
    return Plan(choice, value, spent, max(bound, value), budget, forced, must)


def _must_act(decisions: pd.DataFrame, cfg: ScoringConfig, values: np.ndarray, costs: np.ndarray,
              capacity: np.ndarray, budget: float) -> tuple[np.ndarray, np.ndarray]:
    """Customers meeting must_act, largest value at risk first: their best saving action while budget/capacity allow."""
    n = len(decisions)
    match = rule_mask(decisions, ActionRule("must_act", cfg.must_act, {}))
    saving = np.where((np.array([r.save_rate for r in cfg.actions]) > 0)[None, :], values, -np.inf)
    at_risk = decisions["churn_probability"].to_numpy(dtype=float) * decisions[value_column(decisions)].to_numpy(
        dtype=float, na_value=np.nan)
    start, forced = np.full(n, NONE), np.zeros(n, dtype=bool)
    queue = np.flatnonzero(match & np.isfinite(saving).any(axis=1))
    queue = queue[np.argsort(-at_risk[queue], kind="stable")]
    first = saving[queue].argmax(axis=1)  # fast path: every first choice fits while budget and capacities last
    spend = np.cumsum(costs[first])
    used = np.cumsum(np.eye(costs.size, dtype=np.int64)[first], axis=0)
    fits = (spend <= budget + EPS) & (used <= capacity[None, :]).all(axis=1)
    done = int(np.argmin(fits)) if not fits.all() else fits.size
    start[queue[:done]], forced[queue[:done]] = first[:done], True
    counts = np.bincount(first[:done], minlength=costs.size).astype(float)
    room = budget - float(costs[first[:done]].sum())
    savers = np.flatnonzero(np.isfinite(saving).any(axis=0)).tolist()  # the only actions this loop can give
    for i in queue[done:]:
        if not any(costs[a] <= room + EPS and counts[a] < capacity[a] for a in savers):
            break  # none fits any more: room and counts only shrink, so nobody later in the queue is served either
        ranked = [a for a in np.argsort(-saving[i], kind="stable") if np.isfinite(saving[i, a])]
        for a in ranked:  # the best saving action that still fits, else the next best
            if costs[a] <= room + EPS and counts[a] < capacity[a]:
                start[i], forced[i] = a, True
                counts[a] += 1
                room -= costs[a]
                break
    return start, forced


def plan_table(decisions: pd.DataFrame, plan: Plan, cfg: ScoringConfig, locale: str,
               save_rates: Mapping[str, float] | None = None) -> pd.DataFrame:
    """One row per customer with an action, by expected value (rank 1 = highest): action slug and label, cost,
    save rate, churn probability, CLV, value at risk, expected saved revenue, expected value, forced."""
    picked = np.flatnonzero(plan.choice != NONE)
    chosen = plan.choice[picked]
    rules = cfg.actions
    rates = {r.name: r.save_rate for r in rules} | {k: float(v) for k, v in (save_rates or {}).items()}
    save = np.array([rates[r.name] for r in rules])[chosen]
    cost = np.array([r.cost for r in rules])[chosen]
    p = decisions["churn_probability"].to_numpy(dtype=float)[picked]
    clv = decisions[value_column(decisions)].to_numpy(dtype=float)[picked]
    rows = decisions.iloc[picked].reset_index(drop=True)
    table = pd.DataFrame({
        "customer_id": rows["customer_id"].astype(str).to_numpy(),
        "action": np.array([r.name for r in rules], dtype=object)[chosen],
        "action_label": labels_of(chosen, rows, rules, cfg.default_action, locale) if len(rows) else [],
        "cost": cost, "save_rate": save, "churn_probability": p, "clv": clv, "value_at_risk": p * clv,
        "expected_saved_revenue": p * clv * save, "expected_value": p * clv * save - cost,
        "must_act": plan.forced[picked],
    })
    table = table.sort_values(["expected_value", "customer_id"], ascending=[False, True], ignore_index=True)
    table.insert(len(table.columns) - 1, "rank", np.arange(1, len(table) + 1, dtype=np.int64))
    return table


def high_risk_top_decile(decisions: pd.DataFrame, high_risk: str = "high") -> np.ndarray:
    """Rows in the high risk band and the top CLV decile (the must-act target the summary counts)."""
    return ((decisions["churn_risk_band"] == high_risk) & (decisions["clv_decile"] == 10)).to_numpy(
        dtype=bool, na_value=False)


def batch_totals(decisions: pd.DataFrame, must: np.ndarray, high_risk: str = "high") -> dict[str, float]:
    """The whole-batch counts the summary reports, of one batch or chunk (they add up over chunks)."""
    at_risk = decisions["churn_probability"].to_numpy(dtype=float) * decisions[value_column(decisions)].to_numpy(
        dtype=float, na_value=np.nan)
    return {"customers": len(decisions), "revenue_at_risk_total": float(np.nansum(at_risk)),
            "high_risk_top_decile": int(high_risk_top_decile(decisions, high_risk).sum()), "must_act": int(must.sum())}


def reduce_chunks(chunks: Iterable[pd.DataFrame], cfg: ScoringConfig, save_rates: Mapping[str, float] | None = None,
                  top: int | None = None) -> tuple[pd.DataFrame, dict[str, float]]:
    """(the candidate rows and the top at-risk rows of every chunk, in batch order; the batch totals): what
    plan_actions and summarise need, held for at most plan_limit rows per action plus one chunk."""
    saving, limit, top = saving_actions(cfg, save_rates), plan_limit(cfg, save_rates), top or cfg.plan_top
    kept, arrays = None, None  # the kept rows and their (values, value at risk, must-act mask)
    totals = {"customers": 0, "revenue_at_risk_total": 0.0, "high_risk_top_decile": 0, "must_act": 0}
    for chunk in chunks:
        new = decision_values(chunk, cfg, save_rates)
        totals = {k: v + batch_totals(chunk, new[2])[k] for k, v in totals.items()}
        frame = chunk if kept is None else pd.concat([kept, chunk], ignore_index=True)
        arrays = new if arrays is None else tuple(np.concatenate([a, b]) for a, b in zip(arrays, new, strict=True))
        values, at_risk, must = arrays
        keep = candidates(values, at_risk, must, saving, limit)
        keep |= _top(np.nan_to_num(at_risk, nan=-np.inf), np.ones(len(frame), dtype=bool), top)
        kept, arrays = frame[keep].reset_index(drop=True), tuple(a[keep] for a in arrays)
    return (kept if kept is not None else pd.DataFrame()), totals


def summarise(decisions: pd.DataFrame, table: pd.DataFrame, plan: Plan, cfg: ScoringConfig, top: int | None = None,
              high_risk: str = "high", totals: Mapping[str, float] | None = None) -> dict:
    """Per action: customers, cost, expected saved revenue, expected value, value at risk; totals; the top at-risk
    valuable customers with their planned action; the must-act target (high risk in the top CLV decile). totals
    (reduce_chunks) give the whole batch's counts when decisions holds only its candidate rows."""
    per = table.groupby("action", sort=False).agg(
        customers=("customer_id", "size"), cost=("cost", "sum"),
        expected_saved_revenue=("expected_saved_revenue", "sum"), expected_value=("expected_value", "sum"),
        revenue_at_risk=("value_at_risk", "sum"))
    labels = dict(zip(table["action"], table["action_label"], strict=True))
    actions = []
    for rule in cfg.actions:
        if rule.name in per.index:
            row = per.loc[rule.name]
            actions.append({"action": rule.name, "label": labels[rule.name], "customers": int(row["customers"]),
                            "cost": float(row["cost"]), "expected_saved_revenue": float(row["expected_saved_revenue"]),
                            "expected_value": float(row["expected_value"]),
                            "expected_value_per_customer": float(row["expected_value"] / row["customers"]),
                            "revenue_at_risk": float(row["revenue_at_risk"])})
    at_risk = decisions["churn_probability"].to_numpy(dtype=float) * decisions[value_column(decisions)].to_numpy(
        dtype=float, na_value=np.nan)
    planned = dict(zip(table["customer_id"], table["action"], strict=True))
    ev = dict(zip(table["customer_id"], table["expected_value"], strict=True))
    order = np.argsort(-np.nan_to_num(at_risk, nan=-np.inf), kind="stable")[: top or cfg.plan_top]
    ids = decisions["customer_id"].astype(str).to_numpy()
    top_rows = [{"customer_id": ids[i], "churn_probability": float(decisions["churn_probability"].iloc[i]),
                 "clv": float(decisions[value_column(decisions)].iloc[i]), "value_at_risk": float(at_risk[i]),
                 "action": planned.get(ids[i], "none"), "expected_value": float(ev.get(ids[i], 0.0))} for i in order]
    target = high_risk_top_decile(decisions, high_risk)
    saving = {r.name for r in cfg.actions if r.save_rate > 0}
    treated = int(np.array([planned.get(i) in saving for i in ids[target]], dtype=bool).sum())
    whole = dict(totals or batch_totals(decisions, plan.must, high_risk))
    return {
        "budget": plan.budget, "spent": plan.spent, "customers": int(whole["customers"]), "planned": int(len(table)),
        "expected_value": plan.value, "upper_bound": plan.upper_bound, "gap": plan.gap,
        "expected_saved_revenue": float(table["expected_saved_revenue"].sum()),
        "revenue_at_risk_total": float(whole["revenue_at_risk_total"]),
        "revenue_at_risk_covered": float(table["value_at_risk"].sum()),
        "per_action": actions,
        "high_risk_top_decile": {"customers": int(whole["high_risk_top_decile"]), "with_saving_action": treated,
                                 "without": int(whole["high_risk_top_decile"]) - treated},
        "must_act": {"customers": int(whole["must_act"]), "served": int(plan.forced.sum())},
        "top_at_risk": top_rows,
    }
