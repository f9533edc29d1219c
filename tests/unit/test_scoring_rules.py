"""Risk bands, next-best-action rules and the scoring config, on tiny hand-made frames."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from models.scoring.config import ScoringConfig
from models.scoring.rules import action_labels, band_names
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
    """Five customers, one per rule of the shipped config (in rule order), and one matching none."""
    return pd.DataFrame({
        "clv_decile": [9, 5, 10, 6, 2, 5],
        "churn_risk_band": ["high", "low", "low", "medium", "high", "low"],
        "orders_total": [8, 1, 12, 3, 2, 4],
        "tenure_days": [400, 10, 700, 300, 500, 200],
        "rfm_segment": ["at_risk_loyal", "new_low_spend", "champions", "loyal_low_spend", "lost", "loyal_low_spend"],
    })


def test_first_matching_rule_wins_with_labels_per_locale(cfg) -> None:
    en = action_labels(customers(), cfg.actions, cfg.default_action, "en").tolist()
    assert en == ["Personal win-back offer", "Onboarding tips: next on day 15", "Loyalty perks",
                  "Retention offer", "No spend (lost, low value)", "Regular newsletter"]
    zh = action_labels(customers(), cfg.actions, cfg.default_action, "zh").tolist()
    assert zh[0] == "专属挽回优惠" and zh[1] == "新客引导：第15天发送"


@pytest.mark.parametrize(("tenure", "day"), [(0, 7), (7, 7), (8, 15), (16, 25), (29, 25)])
def test_onboarding_names_the_next_touchpoint(cfg, tenure: int, day: int) -> None:
    frame = customers().iloc[[1]].assign(tenure_days=tenure)
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
