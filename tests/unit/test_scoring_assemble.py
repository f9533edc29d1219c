"""customer_scores rows from their parts: deciles, interval grid, segment labels, the contract."""

from __future__ import annotations

from datetime import date

import numpy as np
import pandas as pd
import pytest

from models.clv import ClvModel
from models.clv.bounds import expected_clv_bounds, quantized
from models.clv.uncertainty import ParameterDraws
from models.scoring.assemble import ClvSettings, assemble, clv_scores, decile_edges, deciles
from models.scoring.config import ScoringConfig
from models.scoring.schema import ScoreLayout, check_scores, column_names
from models.scoring.summary import finish_summary, segment_summary, summary_parts
from tests.conftest import compose_params

LAYOUT = ScoreLayout(horizon_days=90, horizon_months=12, interval=0.9, reason_codes=2)
PURCHASES = {"r": 0.24, "alpha": 4.41, "a": 0.79, "b": 2.43}  # published CDNOW BG/NBD (weeks)
SPEND = {"p": 6.25, "q": 3.74, "gamma": 15.44}


def test_deciles_from_edges_put_ties_together_and_the_top_in_10() -> None:
    values = np.arange(1.0, 21.0)  # 1..20
    edges = decile_edges(values)
    assert deciles(values, edges).tolist() == [1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7, 8, 8, 9, 9, 10, 10]
    assert deciles(np.array([0.0, 0.0, 100.0]), edges).tolist() == [1, 1, 10]


def test_quantized_rounds_recency_and_age_to_the_grid_and_spend_to_two_digits() -> None:
    rfm = pd.DataFrame({"customer_id": ["a", "b", "c"], "frequency": [0, 2, 5], "recency": [0.0, 10.0, 31.0],
                        "T": [3.0, 40.0, 52.0], "monetary_value": [0.0, 23.456, 1234.5]})
    out = quantized(rfm, 7.0)
    assert out["recency"].tolist() == [0.0, 7.0, 28.0]
    assert out["T"].tolist() == [3.0, 42.0, 49.0]  # below one grid step: kept
    assert out["monetary_value"].tolist() == [0.0, 23.0, 1200.0]
    assert (out["recency"] <= out["T"]).all()


def rfm_frame() -> pd.DataFrame:
    """Four customers in weeks, CDNOW-like."""
    return pd.DataFrame({"customer_id": ["c1", "c2", "c3", "c4"], "frequency": [0, 1, 4, 10],
                         "recency": [0.0, 10.0, 30.0, 38.0], "T": [38.0, 38.0, 39.0, 39.0],
                         "monetary_value": [0.0, 20.0, 35.0, 60.0]})


def model_and_draws() -> tuple[ClvModel, ParameterDraws]:
    """The published parameters and 20 draws close to them."""
    model = ClvModel.from_params("bgnbd", PURCHASES, SPEND, time_unit_days=7.0)
    rng = np.random.default_rng(0)
    purchases = np.array([list(PURCHASES.values())]) * np.exp(rng.normal(0, 0.02, (20, 4)))
    spend = np.array([list(SPEND.values())]) * np.exp(rng.normal(0, 0.02, (20, 3)))
    return model, ParameterDraws("bgnbd", purchases, spend, {})


def test_clv_scores_columns_and_every_point_inside_its_own_interval() -> None:
    model, draws = model_and_draws()
    out = clv_scores(model, draws, rfm_frame(), LAYOUT, ClvSettings(n_draws=20))
    assert out.columns.tolist() == ["customer_id", "p_purchase", "expected_purchases", "expected_aov",
                                    "clv", "clv_low", "clv_high", "p_no_purchase_clv"]
    assert (out["clv_low"] <= out["clv"]).all() and (out["clv"] <= out["clv_high"]).all()
    assert (out["clv_low"] > 0).all()  # an interval on the expected value: no zero-inflated lower end
    assert (out["clv_low"] < out["clv_high"]).all()  # the draws differ, so the interval has width
    assert out["clv"].is_monotonic_increasing  # more and richer purchases, recently -> more value


def test_p_purchase_is_one_minus_the_models_p_no_purchase_over_the_horizon() -> None:
    model, draws = model_and_draws()
    out = clv_scores(model, draws, rfm_frame(), LAYOUT, ClvSettings(n_draws=20))
    point = model.predict(rfm_frame(), 90, 12, 0.01)
    np.testing.assert_allclose(out["p_purchase"], 1.0 - point["p_no_purchase_90d"], rtol=0, atol=1e-15)
    year = model.predict(rfm_frame(), 360, 12, 0.01)["p_no_purchase_360d"]  # 12 months x 30 days
    np.testing.assert_allclose(out["p_no_purchase_clv"], year, rtol=0, atol=1e-15)
    assert (out["p_no_purchase_clv"] <= 1.0 - out["p_purchase"] + 1e-12).all()  # a year includes 90 days


def test_one_time_buyer_is_not_certainly_purchasing() -> None:
    """BG/NBD gives P(alive) = 1 to every one-time buyer; p_purchase also counts an alive customer not buying."""
    model, draws = model_and_draws()
    old_one_timer = pd.DataFrame({"customer_id": ["x"], "frequency": [0], "recency": [0.0], "T": [70.0],
                                  "monetary_value": [0.0]})
    assert model.predict(old_one_timer, 90)["p_alive"].iloc[0] == 1.0
    out = clv_scores(model, draws, old_one_timer, LAYOUT, ClvSettings(n_draws=20))
    assert out["p_purchase"].iloc[0] < 0.35  # hand check: 1 - (alpha+T)^r / (alpha+T+t)^r, t = 90/7 weeks
    r, alpha, t = PURCHASES["r"], PURCHASES["alpha"], 90 / 7
    assert out["p_purchase"].iloc[0] == pytest.approx(1 - ((alpha + 70) / (alpha + 70 + t)) ** r, rel=1e-9)


def test_expected_bounds_hand_case_ratio_scaled_to_the_exact_point() -> None:
    model, _ = model_and_draws()
    half, double = ({k: v for k, v in PURCHASES.items()} for _ in range(2))
    half["alpha"], double["alpha"] = PURCHASES["alpha"] * 2, PURCHASES["alpha"] / 2  # fewer / more purchases
    spends = [SPEND, dict(SPEND, p=7.0, q=3.2, gamma=12.0)]  # the factorised bounds must follow spend draws too
    draws = ParameterDraws("bgnbd", np.array([list(half.values()), list(double.values())]),
                           np.array([list(sp.values()) for sp in spends]), {})
    rfm = rfm_frame()
    point = model.predict(rfm, 90, 12, 0.01)["clv_12m"].to_numpy()
    got = expected_clv_bounds(model, draws, rfm, point, (90, 12, 0.01, 30.0), level=0.5)
    values = np.column_stack([ClvModel.from_params("bgnbd", p, sp, time_unit_days=7.0).predict(rfm, 90)["clv_12m"]
                              for p, sp in zip((half, double), spends, strict=True)])
    expected_low, expected_high = np.quantile(values, [0.25, 0.75], axis=1)
    np.testing.assert_allclose(got.low, np.minimum(expected_low, point), rtol=1e-12)
    np.testing.assert_allclose(got.high, np.maximum(expected_high, point), rtol=1e-12)
    assert got.widened == int(((expected_low > point) | (expected_high < point)).sum())


def test_point_outside_the_draws_is_widened_into_the_interval() -> None:
    model, _ = model_and_draws()
    richer = dict(SPEND, gamma=SPEND["gamma"] * 2)  # every draw spends more per order than the point model
    draws = ParameterDraws("bgnbd", np.array([list(PURCHASES.values())] * 3), np.array([list(richer.values())] * 3), {})
    rfm = rfm_frame()
    point = model.predict(rfm, 90)["clv_12m"].to_numpy()
    got = expected_clv_bounds(model, draws, rfm, point, (90, 12, 0.01, 30.0))
    np.testing.assert_array_equal(got.low, point)
    assert (got.high > point).all() and got.widened == 4


def parts(n: int = 4) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Features, churn scores and CLV rows for n customers."""
    model, draws = model_and_draws()
    rfm = rfm_frame().iloc[:n]
    features = rfm.assign(cutoff="2024-06-30", rfm_r=[1, 3, 5, 5][:n], rfm_f=[1, 2, 4, 5][:n],
                          rfm_m=[1, 2, 3, 5][:n], rfm_segment=["lost", "new_low_spend", "champions", "champions"][:n],
                          tenure_days=[266, 266, 273, 273][:n], orders_total=[1, 2, 5, 11][:n])
    churn = pd.DataFrame({"p_churn": [0.95, 0.6, 0.2, 0.05][:n], "reason_1": ["a raises risk", "=1+1", "c", "d"][:n],
                          "reason_2": ["", "", "e", "f"][:n],
                          "reason_code_1": ["days_since_last_purchase:raises", "orders_total:lowers", "", ""][:n],
                          "reason_value_1": ["143", "2", "", ""][:n], "reason_code_2": [""] * n,
                          "reason_value_2": [""] * n})
    return features, churn, clv_scores(model, draws, rfm, LAYOUT, ClvSettings(n_draws=20))


def stamp() -> tuple[date, str, pd.Timestamp]:
    """as_of, model version, scored_at."""
    return date(2024, 6, 30), "churn-lightgbm/1|clv-bgnbd/1", pd.Timestamp("2024-07-01T08:00:00Z")


@pytest.mark.parametrize("locale", ["en", "zh"])
def test_assembled_rows_meet_the_contract(locale: str) -> None:
    cfg = ScoringConfig.from_params(compose_params([])["scoring"])
    features, churn, clv = parts()
    out = assemble(features, churn, clv, decile_edges(clv["clv"]), cfg, LAYOUT, locale, stamp())
    check_scores(out, LAYOUT)
    assert out.columns.tolist() == column_names(LAYOUT)
    assert out["customer_id"].tolist() == ["c1", "c2", "c3", "c4"]
    assert out["as_of"].tolist() == [date(2024, 6, 30)] * 4
    assert (out["horizon_days"].tolist(), out["clv_months"].tolist()) == ([90] * 4, [12] * 4)  # settings as values
    assert out["clv_interval"].tolist() == [0.9] * 4
    assert str(out["scored_at"].dtype) == "datetime64[us, UTC]"
    bands = {"en": ["high", "medium", "low", "low"], "zh": ["高", "中", "低", "低"]}[locale]
    assert out["churn_risk_band"].tolist() == bands
    assert out["rfm_segment"].iloc[2] == {"en": "Champions", "zh": "重要价值客户"}[locale]
    assert out["clv_decile"].tolist() == [1, 4, 7, 10]
    assert out["reason_code_1"].tolist() == ["days_since_last_purchase:raises", "orders_total:lowers", "", ""]
    assert "143" in out["reason_1"].iloc[0] and out["reason_1"].iloc[2] == "" and out["reason_2"].tolist() == [""] * 4
    assert out["recommended_action_code"].notna().all() and out["recommended_action"].notna().all()
    assert "p_alive" not in out.columns


def test_without_amounts_spend_columns_are_null_and_the_rest_is_filled() -> None:
    from dataclasses import replace

    cfg = ScoringConfig.from_params(compose_params([])["scoring"])
    features, churn, clv = parts()
    layout = replace(LAYOUT, has_spend=False)
    clv = clv.assign(expected_aov=np.nan, clv=np.nan, clv_low=np.nan, clv_high=np.nan)
    features = features.assign(rfm_m=np.nan)  # the features stage leaves the monetary score null without amounts
    out = assemble(features, churn, clv, decile_edges(np.zeros(1)), cfg, layout, "en", stamp())
    check_scores(out, layout)
    assert out[list(layout.spend_columns())].isna().all().all()
    assert out[["p_purchase", "expected_purchases", "p_no_purchase_clv"]].notna().all().all()
    with pytest.raises(ValueError, match="NaN/inf"):
        check_scores(out, LAYOUT)  # with amounts, an empty CLV breaks the contract
    assert segment_summary(out, layout)["total_clv"].isna().all()


def test_misaligned_parts_are_refused() -> None:
    cfg = ScoringConfig.from_params(compose_params([])["scoring"])
    features, churn, clv = parts()
    with pytest.raises(ValueError, match="not aligned"):
        assemble(features, churn, clv.iloc[::-1], decile_edges(clv["clv"]), cfg, LAYOUT, "en", stamp())


def test_streamed_summary_equals_the_whole_table_summary() -> None:
    cfg = ScoringConfig.from_params(compose_params([])["scoring"])
    features, churn, clv = parts()
    out = assemble(features, churn, clv, decile_edges(clv["clv"]), cfg, LAYOUT, "en", stamp())
    whole = segment_summary(out, LAYOUT)
    streamed = finish_summary([summary_parts(out.iloc[:2], LAYOUT), summary_parts(out.iloc[2:], LAYOUT)], LAYOUT)
    pd.testing.assert_frame_equal(whole, streamed)
    assert whole["customers"].sum() == 4
    champions = whole[whole["rfm_segment"] == "Champions"]
    assert champions["customers"].tolist() == [2]
    assert champions["mean_churn_probability"].iloc[0] == pytest.approx(0.125)
