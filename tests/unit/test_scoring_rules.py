"""Risk bands, next-best-action rules and the scoring config, on tiny hand-made frames."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from models.scoring.config import ScoringConfig
from models.scoring.rules import action_labels, action_slugs, band_names
from tests.conftest import compose_params


@pytest.fixture(scope="module")
def cfg() -> ScoringConfig:
    """The shipped conf/scoring/default.yaml."""
    return ScoringConfig.from_params(compose_params([])["scoring"])


def test_bands_split_at_the_configured_upper_bounds(cfg) -> None:
    p = np.array([0.0, 0.4999, 0.5, 0.7999, 0.8, 1.0])
    assert band_names(p, cfg.risk_bands).tolist() == ["low", "low", "medium", "medium", "high", "high"]


def test_band_rejects_a_probability_outside_0_1(cfg) -> None:
    with pytest.raises(ValueError, match="in \\[0, 1\\]"):
        band_names(np.array([0.2, np.nan]), cfg.risk_bands)


def test_bands_must_increase_and_cover_1() -> None:
    block = compose_params([])["scoring"]
    bad = {**block, "risk_bands": [{**b, "upper": 0.9} for b in block["risk_bands"]]}
    with pytest.raises(ValueError, match="upper bounds must increase"):
        ScoringConfig.from_params(bad)


def customers() -> pd.DataFrame:
    """One customer per outcome of the shipped config, and one for which nothing is worth doing."""
    return pd.DataFrame({
        "churn_probability": [0.9, 0.6, 0.2, 0.7, 0.95, 0.3],
        "clv": [200.0, 8.0, 400.0, 30.0, 3.0, 5.0],
        "clv_decile": [10, 5, 10, 7, 2, 5],
        "churn_risk_band": ["high", "medium", "low", "medium", "high", "low"],
        "orders_total": [8, 1, 12, 3, 2, 4],
        "tenure_days": [400, 10, 700, 300, 500, 200],
        "rfm_segment": ["champions", "new_low_spend", "champions", "at_risk_loyal", "lost", "loyal_low_spend"],
    })


def test_highest_expected_value_wins_with_labels_per_locale(cfg) -> None:
    # values: winback 0.9*200*0.3-10 = 44 > retention 25; onboarding 0.6*8*0.1-0.5 = -0.02 < 0 but retention
    # 0.6*8*0.15-2 < 0 too -> newsletter; champions at low risk: perks 0.2*400*0.1-1 = 7; medium risk decile 7:
    # retention 0.7*30*0.15-2 = 1.15; decile 2: no_spend (0); low risk decile 5: nothing eligible -> newsletter
    en = action_labels(customers(), cfg.actions, cfg.default_action, "en").tolist()
    assert en == ["Personal win-back offer", "Regular newsletter", "Loyalty perks", "Retention offer",
                  "No spend (low value)", "Regular newsletter"]
    assert action_slugs(customers(), cfg.actions, cfg.default_action).tolist() == [
        "personal_winback", "nurture", "loyalty_perks", "retention_offer", "no_spend", "nurture"]
    zh = action_labels(customers(), cfg.actions, cfg.default_action, "zh").tolist()
    assert zh[0] == "专属挽回优惠" and zh[2] == "会员忠诚礼遇"


def test_risk_and_value_beat_the_segment_label(cfg) -> None:
    # a champion (segment label) at high risk and top value: win-back, never perks or only a newsletter
    frame = customers().iloc[[0]].assign(rfm_segment="champions", clv=80.0)  # winback 0.9*80*0.3-10 = 11.6
    assert action_slugs(frame, cfg.actions, cfg.default_action).tolist() == ["personal_winback"]
    poor = frame.assign(clv=12.0)  # every saving action loses money: must_act still sends the best one
    assert action_slugs(poor, cfg.actions, cfg.default_action).tolist() == ["nurture"]
    assert action_slugs(poor, cfg.actions, cfg.default_action, cfg.must_act).tolist() == ["retention_offer"]


def test_without_a_clv_the_first_eligible_rule_wins(cfg) -> None:
    frame = customers().assign(clv=np.nan, clv_decile=pd.array([pd.NA] * 6, dtype="Int64"))
    assert action_slugs(frame, cfg.actions, cfg.default_action).tolist() == [
        "nurture", "onboarding", "loyalty_perks", "nurture", "nurture", "nurture"]


@pytest.mark.parametrize(("tenure", "day"), [(0, 7), (7, 7), (8, 15), (16, 25), (29, 25)])
def test_onboarding_names_the_next_touchpoint(cfg, tenure: int, day: int) -> None:
    frame = customers().iloc[[1]].assign(tenure_days=tenure, churn_probability=0.9, clv=20.0, clv_decile=3)
    assert action_labels(frame, cfg.actions, cfg.default_action, "en")[0] == f"Onboarding tips: next on day {day}"


def test_a_rule_on_an_unknown_column_is_named(cfg) -> None:
    block = compose_params([])["scoring"]
    rules = [{"name": "odd", "when": {"shoe_size": {"min": 40}}, "en": "x", "zh": "x"}]
    bad = ScoringConfig.from_params({**block, "actions": rules})
    with pytest.raises(ValueError, match="odd.*shoe_size"):
        action_labels(customers(), bad.actions, bad.default_action, "en")


def test_an_unknown_operator_is_rejected() -> None:
    block = compose_params([])["scoring"]
    rules = [{"name": "odd", "when": {"clv_decile": {"above": 4}}, "en": "x", "zh": "x"}]
    with pytest.raises(ValueError, match="odd.*clv_decile.*operators"):
        ScoringConfig.from_params({**block, "actions": rules})


def test_a_missing_locale_label_is_named() -> None:
    block = compose_params([])["scoring"]
    rules = [{"name": "odd", "when": {"clv_decile": {"min": 4}}, "en": "x"}]
    with pytest.raises(ValueError, match="odd.*zh"):
        ScoringConfig.from_params({**block, "actions": rules})
