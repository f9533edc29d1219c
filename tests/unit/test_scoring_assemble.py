"""customer_scores rows from their parts: deciles, interval grid, segment labels, the contract."""

from __future__ import annotations

from datetime import date

import numpy as np
import pandas as pd
import pytest

from models.clv import ClvModel
from models.clv.uncertainty import ParameterDraws
from models.scoring.assemble import ClvSettings, assemble, clv_scores, decile_edges, deciles, quantized
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


def test_clv_scores_bracket_what_customers_may_spend() -> None:
    model, draws = model_and_draws()
    out = clv_scores(model, draws, rfm_frame(), LAYOUT, ClvSettings(n_draws=20))
    assert out.columns.tolist() == ["customer_id", "p_alive", "expected_purchases_90d", "expected_aov", "clv_12m",
                                    "clv_low", "clv_high"]
    assert (out["clv_low"] <= out["clv_high"]).all() and (out["clv_low"] >= 0).all()
    assert out["clv_12m"].is_monotonic_increasing  # more and richer purchases, recently -> more value


def parts(n: int = 4) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Features, churn scores and CLV rows for n customers."""
    model, draws = model_and_draws()
    rfm = rfm_frame().iloc[:n]
    features = rfm.assign(cutoff="2024-06-30", rfm_r=[1, 3, 5, 5][:n], rfm_f=[1, 2, 4, 5][:n],
                          rfm_m=[1, 2, 3, 5][:n], rfm_segment=["lost", "new_low_spend", "champions", "champions"][:n],
                          tenure_days=[266, 266, 273, 273][:n], orders_total=[1, 2, 5, 11][:n])
    churn = pd.DataFrame({"p_churn": [0.95, 0.6, 0.2, 0.05][:n], "reason_1": ["a raises risk", "=1+1", "c", "d"][:n],
                          "reason_2": ["", "", "e", "f"][:n]})
    return features, churn, clv_scores(model, draws, rfm, LAYOUT, ClvSettings(n_draws=20))


def stamp() -> tuple[date, str, pd.Timestamp]:
    """as_of, model version, scored_at."""
    return date(2024, 6, 30), "churn-lightgbm/1|clv-bgnbd/1", pd.Timestamp("2024-07-01T08:00:00Z")


@pytest.mark.parametrize("locale", ["en", "zh"])
def test_assembled_rows_meet_the_contract(locale: str) -> None:
    cfg = ScoringConfig.from_params(compose_params([])["scoring"])
    features, churn, clv = parts()
    out = assemble(features, churn, clv, decile_edges(clv["clv_12m"]), cfg, LAYOUT, locale, stamp())
    check_scores(out, LAYOUT)
    assert out.columns.tolist() == column_names(LAYOUT)
    assert out["customer_id"].tolist() == ["c1", "c2", "c3", "c4"]
    assert out["as_of"].tolist() == [date(2024, 6, 30)] * 4
    assert str(out["scored_at"].dtype) == "datetime64[us, UTC]"
    bands = {"en": ["high", "medium", "low", "low"], "zh": ["高", "中", "低", "低"]}[locale]
    assert out["churn_risk_band"].tolist() == bands
    assert out["rfm_segment"].iloc[2] == {"en": "Champions", "zh": "重要价值客户"}[locale]
    assert out["clv_decile"].tolist() == [1, 4, 7, 10]


def test_misaligned_parts_are_refused() -> None:
    cfg = ScoringConfig.from_params(compose_params([])["scoring"])
    features, churn, clv = parts()
    with pytest.raises(ValueError, match="not aligned"):
        assemble(features, churn, clv.iloc[::-1], decile_edges(clv["clv_12m"]), cfg, LAYOUT, "en", stamp())


def test_streamed_summary_equals_the_whole_table_summary() -> None:
    cfg = ScoringConfig.from_params(compose_params([])["scoring"])
    features, churn, clv = parts()
    out = assemble(features, churn, clv, decile_edges(clv["clv_12m"]), cfg, LAYOUT, "en", stamp())
    whole = segment_summary(out, LAYOUT)
    streamed = finish_summary([summary_parts(out.iloc[:2], LAYOUT), summary_parts(out.iloc[2:], LAYOUT)], LAYOUT)
    pd.testing.assert_frame_equal(whole, streamed)
    assert whole["customers"].sum() == 4
    champions = whole[whole["rfm_segment"] == "Champions"]
    assert champions["customers"].tolist() == [2]
    assert champions["mean_churn_probability"].iloc[0] == pytest.approx(0.125)
