"""Hand-computed features on a tiny history (cutoff 2024-03-31, horizon to 2024-04-30)."""

from __future__ import annotations

from datetime import date

import duckdb
import pandas as pd
import pytest

from features.build import FeatureConfig, build_features, event_count_names, period_bitmap, rfm_params, sql_text
from features.engine import DuckRunner, render
from features.timeline import Cutoff
from tests.conftest import event_frame, tx_frame

CUT = Cutoff("eval", date(2024, 3, 31), date(2024, 4, 30))
TX = [
    ("a", "2024-01-01 09:00", 10.0, "web", "books"),
    ("a", "2024-01-01 18:00", 5.0, "app", "books"),
    ("a", "2024-02-15", 20.0, "web", "music"),
    ("a", "2024-03-20", -5.0, "web", "music"),  # a return: kept, not a purchase
    ("a", "2024-04-10", 30.0, "web", "books"),  # inside the horizon
    ("b", "2024-03-01", 50.0, "store", "books"),
    ("b", "2024-05-15", 10.0),  # after the horizon
    ("c", "2024-03-31 23:59:59", 8.0),  # last second of the cutoff day: included
    ("c", "2024-04-01 00:00:00", 12.0),  # first second after: a label, not a feature
    ("d", "2024-04-05", 9.0),  # first purchase after the cutoff: not in the population
    ("e", "2024-02-01", -3.0),  # only a return: not in the population
]
EVENTS = [
    ("a", "2024-03-30", "page_view"),
    ("a", "2024-03-01", "page_view"),
    ("a", "2024-03-25", "add_to_cart"),
    ("a", "2024-03-25", "add_to_cart"),
    ("a", "2024-03-10", "email_sent"),
    ("a", "2024-03-10", "email_sent"),
    ("a", "2024-03-11", "email_open"),
    ("a", "2024-03-11", "email_click"),
    ("a", "2024-02-10", "support_ticket", 2.0),
    ("a", "2024-03-15", "support_ticket", 4.0),
    ("a", "2024-02-20", "review", 5.0),
    ("a", "2024-04-02", "page_view"),  # after the cutoff: ignored
]


def build(tx: list[tuple], events: list[tuple] | None = None, locale: str = "en", cut: Cutoff = CUT,
          customers: pd.DataFrame | None = None) -> pd.DataFrame:
    """Features for the tiny history, indexed by customer_id."""
    con = duckdb.connect()
    con.register("transactions", tx_frame(tx))
    if events is not None:
        con.register("events", event_frame(events))
    if customers is not None:
        con.register("customers", customers)
    return build_features(con, cut, FeatureConfig(segment_locale=locale)).df().set_index("customer_id").sort_index()


@pytest.fixture(scope="module")
def feats() -> pd.DataFrame:
    """Features of the tiny history with events and a profile for a."""
    profile = pd.DataFrame({"customer_id": ["a"], "signup_ts": pd.to_datetime(["2023-12-01"], utc=True),
                            "region": ["north"], "gender": [None], "age_band": [None],
                            "acquisition_channel": ["ads"]})
    return build(TX, EVENTS, customers=profile)


def test_population_is_customers_with_a_purchase_by_the_cutoff(feats: pd.DataFrame) -> None:
    assert sorted(feats.index) == ["a", "b", "c"]
    assert (feats["cutoff"] == pd.Timestamp("2024-03-31")).all()


def test_lifetimes_rfm(feats: pd.DataFrame) -> None:
    a, b, c = feats.loc["a"], feats.loc["b"], feats.loc["c"]
    assert (a.frequency, a.recency, a["T"], a.monetary_value) == (1, 45, 90, 20.0)
    assert (b.frequency, b.recency, b["T"], b.monetary_value) == (0, 0, 30, 0.0)
    assert (c.frequency, c.recency, c["T"], c.monetary_value) == (0, 0, 0, 0.0)


def test_day_counts(feats: pd.DataFrame) -> None:
    a = feats.loc["a"]
    assert (a.recency_days, a.tenure_days, a.days_since_last_purchase) == (45, 90, 45)
    assert feats.loc["b", "days_since_last_purchase"] == 30
    assert feats.loc["c", "days_since_last_purchase"] == 0


def test_totals_order_values_and_returns(feats: pd.DataFrame) -> None:
    a = feats.loc["a"]
    assert (a.orders_total, a.purchase_days_total) == (3, 2)
    assert (a.revenue_gross_total, a.revenue_net_total) == (35.0, 30.0)
    assert a.avg_order_value == pytest.approx(35 / 3)
    assert a.max_order_value == 20.0
    assert (a.returns_total, a.returned_amount_total) == (1, 5.0)
    assert a.return_rate == pytest.approx(1 / 3)
    assert feats.loc["b", "return_rate"] == 0.0


def test_trend_windows(feats: pd.DataFrame) -> None:
    a = feats.loc["a"]
    # last 30d = (Mar 1, Mar 31]: only the return; previous 30d = (Jan 31, Mar 1]: Feb 15
    assert (a.orders_last_30d, a.orders_prev_30d) == (0, 1)
    assert (a.revenue_last_30d, a.revenue_prev_30d) == (0.0, 20.0)
    # last 90d = (Jan 1, Mar 31]: Feb 15; previous 90d = (Oct 3, Jan 1]: both Jan 1 orders
    assert (a.orders_last_90d, a.orders_prev_90d) == (1, 2)
    # Mar 1 is exactly 30 days before Mar 31, so it falls in the previous window, not the last one
    assert (feats.loc["b", "orders_last_30d"], feats.loc["b", "orders_prev_30d"]) == (0, 1)


def test_inter_purchase_gaps(feats: pd.DataFrame) -> None:
    a = feats.loc["a"]
    assert a.mean_gap_days == 45.0
    assert pd.isna(a.std_gap_days)  # one gap: no spread
    assert a.days_since_last_over_mean_gap == 1.0
    assert pd.isna(feats.loc["b", "mean_gap_days"])


def test_gap_spread() -> None:
    f = build([("x", "2024-01-01", 1.0), ("x", "2024-01-11", 1.0), ("x", "2024-01-31", 1.0)])
    assert f.loc["x", "mean_gap_days"] == 15.0
    assert f.loc["x", "std_gap_days"] == pytest.approx(7.0710678)  # sample std of (10, 20)


def test_channel_and_category_mix(feats: pd.DataFrame) -> None:
    a = feats.loc["a"]
    assert (a.n_channels, a.main_channel) == (2, "web")
    assert a.main_channel_share == pytest.approx(2 / 3)
    assert (a.n_categories, a.main_category) == (2, "books")
    assert a.main_category_share == pytest.approx(2 / 3)
    assert pd.isna(feats.loc["c", "main_channel"])


def test_behavioural_windows(feats: pd.DataFrame) -> None:
    a = feats.loc["a"]
    assert (a.page_view_7d, a.page_view_30d, a.page_view_90d) == (1, 1, 2)
    assert a.days_since_last_event == 1
    assert a.add_to_cart_90d == 2
    assert a.cart_abandonment_rate_90d == 0.5  # 1 order in 90 days for 2 carts
    assert (a.email_open_rate_90d, a.email_click_rate_90d) == (0.5, 1.0)
    assert (a.support_ticket_30d, a.support_ticket_90d, a.support_tickets_total) == (1, 2, 2)
    assert a.support_ticket_rating_mean == 3.0
    assert a.review_rating_mean == 5.0


def test_behaviour_is_absent_safe(feats: pd.DataFrame) -> None:
    b = feats.loc["b"]
    assert b.page_view_90d == 0 and b.support_tickets_total == 0
    assert pd.isna(b.days_since_last_event) and pd.isna(b.cart_abandonment_rate_90d)
    without_events = build(TX)
    counts = event_count_names(FeatureConfig())
    assert (without_events[counts] == 0).all().all()
    assert without_events[["days_since_last_event", "email_open_rate_90d"]].isna().all().all()


def test_events_older_than_every_window_count_only_in_the_history_columns() -> None:
    old = [("b", "2023-11-01", "support_ticket", 1.0), ("b", "2023-10-01", "page_view"),  # > 90 days before CUT
           ("c", "2024-03-30", "email_sent")]  # only our own sends: counted, but no "last event"
    f = build(TX, old)
    b, c = f.loc["b"], f.loc["c"]
    assert (b.page_view_90d, b.support_ticket_90d, b.support_tickets_total) == (0, 0, 1)
    assert b.days_since_last_event == (date(2024, 3, 31) - date(2023, 11, 1)).days
    assert b.support_ticket_rating_mean == 1.0
    assert (c.email_sent_7d, c.email_sent_90d, c.support_tickets_total) == (1, 1, 0)
    assert pd.isna(c.days_since_last_event)


def test_profile_columns(feats: pd.DataFrame) -> None:
    assert feats.loc["a", "region"] == "north"
    assert feats.loc["a", "days_since_signup"] == 121
    assert pd.isna(feats.loc["b", "region"])


def test_rfm_scores_and_segments(feats: pd.DataFrame) -> None:
    scores = feats[["rfm_r", "rfm_f", "rfm_m"]].to_dict("index")
    assert scores == {"a": {"rfm_r": 1, "rfm_f": 5, "rfm_m": 3},
                      "b": {"rfm_r": 3, "rfm_f": 1, "rfm_m": 5},
                      "c": {"rfm_r": 5, "rfm_f": 1, "rfm_m": 1}}
    assert feats["rfm_segment"].to_dict() == {"a": "at_risk_loyal", "b": "promising_big_spender",
                                              "c": "new_low_spend"}
    assert feats.loc["a", "rfm_score"] == "153"


def test_segment_labels_in_chinese() -> None:
    zh = build(TX, locale="zh")
    assert zh["rfm_segment_label"].to_dict() == {"a": "重要保持客户", "b": "重要发展客户", "c": "一般发展客户"}
    assert zh.loc["a", "rfm_segment"] == "at_risk_loyal"  # the slug stays English


def test_scores_are_tie_consistent() -> None:
    f = build([(c, "2024-03-01", 10.0) for c in "pqrs"])
    assert f["rfm_r"].nunique() == 1 and f["rfm_f"].nunique() == 1 and f["rfm_m"].nunique() == 1


def test_labels(feats: pd.DataFrame) -> None:
    labels = feats[["future_purchases", "future_revenue", "churned"]].to_dict("index")
    assert labels == {"a": {"future_purchases": 1, "future_revenue": 30.0, "churned": 0},
                      "b": {"future_purchases": 0, "future_revenue": 0.0, "churned": 1},
                      "c": {"future_purchases": 1, "future_revenue": 12.0, "churned": 0}}


def test_score_cutoff_has_no_labels() -> None:
    f = build(TX, cut=Cutoff("score", date(2024, 3, 31), None))
    assert f[["future_purchases", "future_revenue", "churned"]].isna().all().all()


def test_weekly_periods() -> None:
    con = duckdb.connect()
    con.register("transactions", tx_frame([("w", "2024-01-01", 5.0), ("w", "2024-01-03", 7.0),
                                           ("w", "2024-01-15", 4.0)]))
    cfg = FeatureConfig(freq="W")
    f = build_features(con, Cutoff("score", date(2024, 1, 31), None), cfg).df().set_index("customer_id")
    # weeks start Monday: Jan 1 and Jan 3 merge (12.0), Jan 15 is two weeks later, Jan 31 is in week of Jan 29
    assert (f.loc["w", "frequency"], f.loc["w", "recency"], f.loc["w", "T"]) == (1, 2, 4)
    assert f.loc["w", "monetary_value"] == 4.0


SPEND_COLUMNS = ["monetary_value", "revenue_gross_total", "revenue_net_total", "avg_order_value", "max_order_value",
                 "returned_amount_total", "revenue_last_30d", "revenue_prev_30d", "revenue_last_90d",
                 "revenue_prev_90d", "future_revenue", "rfm_m"]


def _without_amounts(rows: list[tuple]) -> list[tuple]:
    """The purchases of rows with the amount removed (a file without amounts has no returns either)."""
    return [(r[0], r[1], None, *r[3:]) for r in rows if r[2] >= 0]


def test_without_amounts_every_row_is_a_purchase_and_spend_is_null() -> None:
    f = build(_without_amounts(TX))
    assert sorted(f.index) == ["a", "b", "c"]
    assert f[SPEND_COLUMNS].isna().all().all()
    # a: purchase days 01-01 (two rows), 02-15; b: 03-01; c: 03-31 (hand-computed, days)
    assert f[["frequency", "recency", "T", "orders_total"]].to_dict("index") == {
        "a": {"frequency": 1, "recency": 45, "T": 90, "orders_total": 3},
        "b": {"frequency": 0, "recency": 0, "T": 30, "orders_total": 1},
        "c": {"frequency": 0, "recency": 0, "T": 0, "orders_total": 1}}
    assert f[["future_purchases", "churned"]].to_dict("index") == {
        "a": {"future_purchases": 1, "churned": 0}, "b": {"future_purchases": 0, "churned": 1},
        "c": {"future_purchases": 1, "churned": 0}}


def test_without_amounts_segments_use_r_and_f() -> None:
    f = build(_without_amounts(TX))
    assert f[["rfm_r", "rfm_f"]].to_dict("index") == {"a": {"rfm_r": 1, "rfm_f": 5}, "b": {"rfm_r": 3, "rfm_f": 1},
                                                     "c": {"rfm_r": 5, "rfm_f": 1}}
    assert f["rfm_score"].to_dict() == {"a": "15-", "b": "31-", "c": "51-"}
    # M is read as F: a (R low, F high) is at_risk_loyal; b and c (F low) are new_low_spend
    assert f["rfm_segment"].to_dict() == {"a": "at_risk_loyal", "b": "new_low_spend", "c": "new_low_spend"}


def test_amounts_change_only_the_spend_columns() -> None:
    purchases = [r for r in TX if r[2] >= 0]
    with_amounts, without = build(purchases), build(_without_amounts(purchases))
    same = [c for c in with_amounts.columns if c not in {*SPEND_COLUMNS, "rfm_score", "rfm_segment",
                                                          "rfm_segment_label"}]
    pd.testing.assert_frame_equal(with_amounts[same], without[same])


def test_duckdb_period_bitmap_counts_the_same_periods_as_count_distinct() -> None:
    con = duckdb.connect()
    con.register("transactions", tx_frame([*TX, ("a", "2024-01-02", 1.0), ("a", "2024-01-08", 1.0),
                                            ("f", "2023-12-31", 2.0)]))
    for freq in ("D", "W"):
        cfg = FeatureConfig(freq=freq)
        params = rfm_params(CUT.cutoff, cfg)
        logical = render(sql_text("rfm"), params)
        rewritten = period_bitmap(logical, DuckRunner(con), params)
        assert "bitstring_agg" in rewritten.lower() and "distinct" not in rewritten.lower()
        plain = con.sql(logical).df().sort_values("customer_id").reset_index(drop=True)
        assert plain.equals(con.sql(rewritten).df().sort_values("customer_id").reset_index(drop=True)), freq
        # 4 days, 3 Monday weeks
        assert plain.set_index("customer_id").loc["a", "frequency"] == (3.0 if freq == "D" else 2.0)


def test_render_fills_literals_and_refuses_a_missing_parameter() -> None:
    query = "SELECT $d AS d, $x AS x, $b AS b, $n AS n -- $not_a_param in a comment"
    assert render(query, {"d": date(2024, 1, 2), "x": 0.5, "b": True, "n": None}) == (
        "SELECT DATE '2024-01-02' AS d, CAST(0.5 AS DOUBLE) AS x, TRUE AS b, NULL AS n ")
    with pytest.raises(KeyError, match=r"\$d has no value"):
        render(query, {})
