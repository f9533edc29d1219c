"""Campaign effect: Newcombe/Wilson intervals against published values, horizon outcomes, statuses, coverage."""

from __future__ import annotations

from datetime import date

import duckdb
import pandas as pd
import pytest

from features import synthetic
from features.synthetic_campaigns import CampaignSpec, add_campaigns, send_days, simulate
from models.campaigns.effect import campaign_effect, diff_ci, effects, outcomes, save_rate_ci, wilson

START, END = "2023-01-01", "2024-12-31"


@pytest.mark.parametrize(("x", "n", "low", "high"), [
    (81, 263, 0.2553, 0.3662), (15, 148, 0.0624, 0.1605), (0, 20, 0.0, 0.1611), (1, 29, 0.0061, 0.1718)])
def test_wilson_matches_newcombe_1998_single_proportion(x: int, n: int, low: float, high: float) -> None:
    assert wilson(x, n) == pytest.approx((low, high), abs=5e-5)


# Newcombe (1998) Stat Med 17:873, Table II: method 10 (hybrid score) and method 1 (Wald).
@pytest.mark.parametrize(("counts", "score", "wald"), [
    ((56, 70, 48, 80), (0.0524, 0.3339), (0.0575, 0.3425)),
    ((9, 10, 3, 10), (0.1705, 0.8090), (0.2605, 0.9395)),
    ((6, 7, 2, 7), (0.0582, 0.8062), (0.1481, 0.9947)),
    ((5, 56, 0, 29), (-0.0381, 0.1926), (0.0146, 0.1640)),
    ((0, 10, 0, 20), (-0.1611, 0.2775), (0.0, 0.0)),
    ((10, 10, 0, 20), (0.6791, 1.0), (1.0, 1.0)),
])
def test_difference_interval_matches_newcombe_1998(counts: tuple, score: tuple, wald: tuple) -> None:
    assert diff_ci(*counts) == pytest.approx(score, abs=5e-5)
    assert diff_ci(*counts, method="wald") == pytest.approx(wald, abs=5e-5)


def test_unknown_ci_method_is_refused() -> None:
    with pytest.raises(ValueError, match="campaigns.ci_method"):
        diff_ci(1, 2, 1, 2, method="exact")


def test_save_rate_is_relative_churn_reduction() -> None:
    save, low, high = save_rate_ci(40, 100, 50, 100)  # churn 0.4 vs 0.5: RR 0.8
    assert save == pytest.approx(0.2)
    assert low < 0.2 < high
    assert save_rate_ci(0, 10, 0, 10) == (None, None, None)


def _ts(text: str) -> pd.Timestamp:
    return pd.Timestamp(text, tz="UTC")


def test_outcomes_count_purchases_only_inside_the_horizon_after_sent_at() -> None:
    campaigns = pd.DataFrame({"customer_id": ["a", "b", "c"], "campaign": "x",
                              "sent_at": _ts("2024-01-10 09:00"), "group": ["treatment", "control", "treatment"]})
    tx = pd.DataFrame({"customer_id": ["a", "a", "a", "a", "b", "b"],
                       "ts": [_ts("2024-01-10 08:59"), _ts("2024-01-10 09:00"), _ts("2024-01-20"),
                              _ts("2024-02-09 09:00"), _ts("2024-02-09 09:00:01"), _ts("2024-01-11")],
                       "amount": [5.0, 6.0, 7.0, 8.0, 9.0, -3.0]})
    con = duckdb.connect()
    con.register("campaigns", campaigns)
    con.register("transactions", tx)
    got = outcomes(con, horizon_days=30).set_index("customer_id")
    # a: before/at sent_at excluded, 01-20 and the horizon's last instant included; b: after H, a return
    assert got["purchases"].to_dict() == {"a": 2, "b": 0, "c": 0}
    assert got["revenue"].to_dict() == {"a": 15.0, "b": -3.0, "c": 0.0}


def _rows(n_t: int, buy_t: int, n_c: int, buy_c: int, sent: str = "2024-01-01") -> pd.DataFrame:
    groups = ["treatment"] * n_t + ["control"] * n_c
    bought = [1] * buy_t + [0] * (n_t - buy_t) + [1] * buy_c + [0] * (n_c - buy_c)
    return pd.DataFrame({"customer_id": [f"c{i}" for i in range(n_t + n_c)], "campaign": "x",
                         "sent_at": _ts(sent), "group": groups, "purchases": bought,
                         "revenue": [10.0 * b for b in bought]})


def test_effect_of_a_hand_computed_campaign() -> None:
    eff = campaign_effect(_rows(70, 56, 80, 48), "x", date(2024, 12, 31), 30)
    assert eff.status == "measured"
    assert eff.purchase_uplift == pytest.approx(0.8 - 0.6)
    assert eff.purchase_uplift_ci == pytest.approx((0.0524, 0.3339), abs=5e-5)
    assert eff.churn_change_ci == pytest.approx((-0.3339, -0.0524), abs=5e-5)
    assert eff.save_rate == pytest.approx(1 - 0.2 / 0.4)
    assert eff.revenue_uplift == pytest.approx(2.0)


def test_open_horizon_and_small_groups_get_a_reason_not_a_figure() -> None:
    open_ = campaign_effect(_rows(50, 5, 50, 5, sent="2024-12-15"), "x", date(2024, 12, 31), 30)
    small = campaign_effect(_rows(50, 5, 10, 1), "x", date(2024, 12, 31), 30, min_group_size=30)
    assert (open_.status, small.status) == ("horizon_open", "too_small")
    assert "2025-01-14" in open_.reason and "10 customers" in small.reason
    assert open_.purchase_uplift is None and small.purchase_uplift_ci is None


def test_campaign_spec_validation_and_send_days_fit_the_window() -> None:
    with pytest.raises(ValueError, match="uplift"):
        CampaignSpec(uplift=1.5)
    days = send_days(CampaignSpec(n_campaigns=2, horizon_days=60, gap_days=30), 731.0)
    assert days[1] - days[0] == 90 and days[1] + 60 < 731
    with pytest.raises(ValueError, match="do not fit"):
        send_days(CampaignSpec(n_campaigns=9, horizon_days=60), 731.0)


def test_synthetic_campaign_purchases_land_in_the_horizon_of_treated_customers_only() -> None:
    data = synthetic.generate(1_000, 3, START, END)
    spec = CampaignSpec(n_campaigns=2, uplift=0.1)
    table, extra, truth = simulate(data, spec, 3, START, END)
    groups = table.set_index(["customer_id", "campaign"])["group"]
    sent = table.groupby("campaign")["sent_at"].first()
    campaign = "campaign_" + extra["order_id"].str.rsplit("-C", n=1).str[1]
    assert len(extra) > 0 and (groups.loc[list(zip(extra["customer_id"], campaign, strict=True))] == "treatment").all()
    offset = (extra["ts"].to_numpy() - sent.loc[campaign].to_numpy()) / pd.Timedelta(days=1)
    assert ((offset > 0) & (offset <= spec.horizon_days)).all()
    assert truth["true_uplift"].eq(0.1).all() and (truth["conversion_probability"] <= 1).all()
    merged = add_campaigns(data, spec, 3, START, END)
    assert len(merged.transactions) == len(data.transactions) + len(extra)
    assert merged.transactions["order_id"].is_unique


def test_measured_effect_ci_covers_the_true_effect_in_at_least_9_of_10_seeds() -> None:
    spec = CampaignSpec(n_campaigns=1, uplift=0.1, horizon_days=60, target_share=0.8)
    con = duckdb.connect()
    covered = detected = 0
    for seed in range(10):
        data = add_campaigns(synthetic.generate(2_000, seed, START, END), spec, seed, START, END)
        con.register("campaigns", data.campaigns)
        con.register("transactions", data.transactions)
        (eff,) = effects(outcomes(con, spec.horizon_days), date(2024, 12, 31), spec.horizon_days)
        low, high = eff.purchase_uplift_ci
        covered += low <= spec.uplift <= high
        detected += low > 0
    assert covered >= 9
    assert detected >= 9  # ~800 per group: an interval that covered 0.1 by being wide would not pass
