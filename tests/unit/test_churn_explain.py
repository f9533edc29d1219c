"""Reason codes come from LightGBM's pred_contrib, in |contribution| order, as readable text."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from models.churn import ChurnConfig, fit_churn, global_importance, reason_codes, score_with_reasons
from models.churn.explain import _display_round, contributions, top_contributions
from models.churn.features import PRIOR_COLUMN
from tests.unit.test_churn_frames import CUTOFFS, churn_frame, stacked

CFG = ChurnConfig.from_params(
    {"params": {"num_leaves": 7, "learning_rate": 0.1, "min_child_samples": 20}, "fixed_num_boost_round": 40}
)


@pytest.fixture(scope="module")
def model():
    """A small fixed-mode model on one synthetic cutoff."""
    return fit_churn(churn_frame(800), CFG)


REASON_COLUMNS = [f"reason_{kind}{i}" for kind in ("", "code_", "value_") for i in (1, 2, 3)]


def test_reason_order_and_codes_match_pred_contrib(model) -> None:
    frame = churn_frame(50, seed=5)
    reasons = reason_codes(model, frame, k=3)
    assert list(reasons.columns) == REASON_COLUMNS and reasons.index.equals(frame.index)
    contrib = model.booster.predict(model.inputs(frame), pred_contrib=True)[:, :-1]
    names = list(model.spec.features)
    for row in range(len(frame)):
        order = np.argsort(-np.abs(contrib[row]), kind="stable")[:3]
        for rank, col in enumerate(order):
            text, code = reasons.iloc[row, rank], reasons.iloc[row, 3 + rank]
            if contrib[row, col] == 0:
                assert text == code == ""
                continue
            verb = "raises" if contrib[row, col] > 0 else "lowers"
            assert code == f"{names[col]}:{verb}" and text.endswith(f"{verb} risk")


def test_reason_text_is_plain_language_with_the_customer_value(model) -> None:
    frame = churn_frame(1, seed=7)
    frame["days_since_last_purchase"] = 511
    frame["page_view_30d"] = 3
    frame["main_channel"] = "store"
    contrib = contributions(model, frame)
    reasons = reason_codes(model, frame, k=len(contrib.names)).iloc[0]
    texts = dict(zip(reasons.filter(like="reason_code_"), reasons.filter(regex=r"^reason_\d+$"), strict=True))
    verb = {c: c.split(":")[1] for c in texts if c}
    days = next(c for c in texts if c.startswith("days_since_last_purchase:"))
    assert texts[days] == f"no purchase for 511 days {verb[days]} risk"
    views = next(c for c in texts if c.startswith("page_view_30d:"))
    assert texts[views] == f"3 page views in the last 30 days {verb[views]} risk"
    channel = next(c for c in texts if c.startswith("main_channel:"))
    assert texts[channel] == f"buys mostly via store {verb[channel]} risk"


def test_top_contributions_by_abs_and_by_raise() -> None:
    contrib = np.array([[0.1, -0.5, 0.3, 0.0], [-0.2, 0.05, 0.0, 0.4]])
    np.testing.assert_array_equal(top_contributions(contrib, 2), [[1, 2], [3, 0]])
    np.testing.assert_array_equal(top_contributions(contrib, 2, "raises"), [[2, 0], [3, 1]])
    np.testing.assert_array_equal(
        top_contributions(contrib, 9), np.argsort(-np.abs(contrib), axis=1, kind="stable")
    )


def test_display_rounding() -> None:
    np.testing.assert_array_equal(
        _display_round(np.array([143.0, 1234.56, 0.123456, 5.255, 0.0, -12.34])),
        [143.0, 1235.0, 0.123, 5.26, 0.0, -12.3],
    )


def test_more_reasons_than_features_are_padded(model) -> None:
    reasons = reason_codes(model, churn_frame(3, seed=1), k=len(model.spec.features) + 2)
    k = len(model.spec.features) + 2
    assert (reasons[[f"reason_{kind}{i}" for kind in ("", "code_", "value_") for i in (k - 1, k)]] == "").all().all()


def test_prior_is_an_explained_column() -> None:
    cfg = ChurnConfig.from_params(
        {"params": {"num_leaves": 7, "min_child_samples": 20}, "prior": "bgnbd", "fixed_num_boost_round": 20}
    )
    train = stacked(CUTOFFS[:1], n=500).assign(**{PRIOR_COLUMN: np.linspace(0.05, 0.95, 500)})
    fitted = fit_churn(train, cfg)
    frame = churn_frame(20, seed=3).assign(**{PRIOR_COLUMN: 0.99})
    parts = contributions(fitted, frame)
    assert parts.names[-1] == PRIOR_COLUMN
    raw = fitted.booster.predict(fitted.inputs(frame), raw_score=True)
    bias = fitted.booster.predict(fitted.inputs(frame), pred_contrib=True)[:, -1]
    np.testing.assert_allclose(
        parts.shap.sum(axis=1) + bias + fitted.spec.prior_center, fitted.raw_score(frame), atol=1e-9
    )
    assert not np.allclose(raw, fitted.raw_score(frame))
    top = reason_codes(fitted, frame, k=1)
    assert (top["reason_code_1"] == f"{PRIOR_COLUMN}:raises").all() and (top["reason_value_1"] == "0.99").all()
    assert (top["reason_1"] == "purchase pattern: 99% chance of no purchase in the churn horizon raises risk").all()


def test_global_importance_has_gain_and_shap(model) -> None:
    table = global_importance(model, churn_frame(200, seed=2))
    assert set(table.columns) >= {"feature", "gain", "mean_abs_shap", "gain_share"}
    assert table["mean_abs_shap"].is_monotonic_decreasing
    assert table.iloc[0]["feature"] in {
        "days_since_last_purchase",
        "frequency",
        "page_view_30d",
        "recency",
        "rfm_r",
        "rfm_segment",
    }
    assert table["gain_share"].sum() == pytest.approx(1.0)


def test_reason_codes_name_missing_features(model) -> None:
    with pytest.raises(ValueError, match="page_view_30d"):
        reason_codes(model, pd.DataFrame(churn_frame(5)).drop(columns="page_view_30d"))


def test_grouped_and_direct_pred_contrib_agree(model) -> None:
    frame = churn_frame(300, seed=4)
    frame.loc[::7, "main_channel"] = None
    grouped = contributions(model, frame).shap
    np.testing.assert_allclose(grouped, contributions(model, frame, grouped=False).shap, rtol=0, atol=1e-10)


def test_score_with_reasons_matches_predict_proba_and_reason_codes(model) -> None:
    frame = churn_frame(200, seed=6)
    scored = score_with_reasons(model, frame, k=3)
    assert list(scored.columns) == ["p_churn", *REASON_COLUMNS]
    np.testing.assert_allclose(scored["p_churn"], model.predict_proba(frame), rtol=0, atol=1e-12)
    pd.testing.assert_frame_equal(scored.drop(columns="p_churn"), reason_codes(model, frame, k=3))
