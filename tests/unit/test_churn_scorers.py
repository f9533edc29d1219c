"""Every churn model kind behind one interface: probability, reasons, save/load; candidates on shared rows."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy.special import expit

from models.churn import ChurnConfig
from models.churn.base import ChurnScorer, load_scorer, save_scorer
from models.churn.candidates import (
    Candidate,
    candidate_list,
    fit_candidate,
    plan_validation,
    validation_predictions,
    with_prior,
)
from models.churn.features import PRIOR_COLUMN
from models.churn.scorers import LOG_RFM, BtydChurn, LogisticChurn, fit_btyd_churn, fit_logistic_churn
from tests.unit.test_churn_frames import CUTOFFS, churn_frame, stacked
from tests.unit.test_churn_split import FAST


def _with_btyd(frame: pd.DataFrame) -> pd.DataFrame:
    """A stand-in BTYD P(no purchase): rises with days since the last purchase (no labels used)."""
    return frame.assign(**{PRIOR_COLUMN: expit((frame["days_since_last_purchase"] - 120) / 60)})


@pytest.mark.parametrize(
    "fit",
    [
        lambda f: fit_logistic_churn(f, "log_rfm"),
        lambda f: fit_logistic_churn(f, "log_rfm_prior_bgnbd", LOG_RFM, prior="bgnbd"),
        lambda f: fit_btyd_churn(f, "bgnbd"),
        lambda f: fit_candidate(Candidate("lightgbm", "lightgbm"), f, ChurnConfig.from_params(FAST)),
    ],
    ids=["logistic", "logistic_prior", "btyd", "lightgbm"],
)
def test_each_kind_scores_explains_and_round_trips(fit, tmp_path: Path) -> None:
    train, score = _with_btyd(churn_frame(600)), _with_btyd(churn_frame(50, seed=3))
    model = fit(train)
    assert isinstance(model, ChurnScorer)
    p = model.predict_proba(score)
    assert p.shape == (50,) and np.all((p >= 0) & (p <= 1))
    reasons = model.score_with_reasons(score, 3)
    assert list(reasons.columns) == ["p_churn", *[f"reason_{kind}{i}" for kind in ("", "code_", "value_")
                                                  for i in (1, 2, 3)]]
    np.testing.assert_allclose(reasons["p_churn"], p, rtol=1e-9, atol=1e-12)
    assert reasons["reason_1"].str.contains(r" (?:raises|lowers) risk$").all()
    assert reasons["reason_code_1"].str.fullmatch(r"\w+:(?:raises|lowers)").all()
    save_scorer(model, tmp_path)
    again = load_scorer(tmp_path)
    assert type(again) is type(model) and again.spec == model.spec
    np.testing.assert_allclose(again.predict_proba(score), p, rtol=1e-12)


def test_logistic_reasons_are_its_own_terms() -> None:
    train = churn_frame(600)
    model = fit_logistic_churn(train, "log_rfm")
    row = train.head(1)
    parts = model.score.contributions(row)[0]
    assert np.isclose(expit(model.score.intercept + parts.sum()), model.predict_proba(row)[0])
    top = LOG_RFM[int(np.argmax(np.abs(parts)))]
    assert model.score_with_reasons(row, 1)["reason_code_1"].iloc[0].startswith(f"{top}:")


def test_btyd_model_is_the_prior_column_and_reads_no_labels() -> None:
    train = _with_btyd(churn_frame(400))
    flipped = train.assign(churned=1 - train["churned"])
    a, b = fit_btyd_churn(train, "bgnbd"), fit_btyd_churn(flipped, "bgnbd")
    np.testing.assert_allclose(a.predict_proba(train), train[PRIOR_COLUMN])
    assert a.surrogate == b.surrogate
    assert isinstance(a, BtydChurn) and a.spec.prior == "bgnbd"


def test_simpler_models_need_only_their_columns_but_check_the_training_schema() -> None:
    model = fit_logistic_churn(churn_frame(300), "log_rfm")
    assert isinstance(model, LogisticChurn) and model.spec.features == LOG_RFM
    assert "page_view_30d" in model.spec.expected_columns  # score stage: same feature file as training


def test_candidates_come_simplest_first_and_respect_usable_btyd() -> None:
    names = [c.name for c in candidate_list(ChurnConfig.from_params({}), ["bgnbd"])]
    assert names == [
        "bgnbd", "recency_rule", "log_rfm", "log_rfm_prior_bgnbd", "lightgbm_relative_prior_bgnbd", "lightgbm",
        "lightgbm_prior_bgnbd",
    ]


@pytest.mark.parametrize("frames", ["holdout", "cv"])
def test_every_candidate_is_validated_on_the_same_rows(frames: str) -> None:
    train = stacked(CUTOFFS[:2]) if frames == "holdout" else churn_frame(600)
    train = _with_btyd(train)
    cfg = ChurnConfig.from_params(FAST)
    plan = plan_validation(train, cfg)
    assert plan is not None
    if frames == "holdout":
        assert plan.selected_on == f"time-held-out cutoff {CUTOFFS[1]}"
        assert set(train.loc[plan.rows, "cutoff"]) == {CUTOFFS[1]}
    else:
        assert "customer-grouped CV" in plan.selected_on and len(plan.folds) == 5
    priors = {"bgnbd": train[PRIOR_COLUMN].to_numpy()}
    for cand in candidate_list(cfg, ["bgnbd"]):
        frame = with_prior(train, priors, cand.prior)
        p = validation_predictions(cand, fit_candidate(cand, frame, cfg), frame, cfg, plan)
        assert p.shape == (len(plan.rows),) and np.isfinite(p).all(), cand.name
