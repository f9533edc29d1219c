"""Bad input stops with a ValueError subclass that names the problem, never deep inside LightGBM."""

from __future__ import annotations

import pytest

from models.churn import (
    ChurnConfig,
    ChurnInputError,
    MissingFeaturesError,
    SingleClassError,
    TooFewCustomersError,
    fit_churn,
)
from models.churn.features import PRIOR_COLUMN
from tests.unit.test_churn_frames import churn_frame

CFG = ChurnConfig.from_params(
    {"params": {"num_leaves": 7, "min_child_samples": 20}, "fixed_num_boost_round": 10}
)


def test_single_class_training_set() -> None:
    frame = churn_frame(400).assign(churned=1.0)
    with pytest.raises(SingleClassError, match="every row has churned=1") as err:
        fit_churn(frame, CFG)
    assert isinstance(err.value, ValueError)


def test_too_few_customers() -> None:
    with pytest.raises(TooFewCustomersError, match="199 customer\\(s\\); at least 200"):
        fit_churn(churn_frame(199), CFG)


def test_unlabelled_training_rows() -> None:
    with pytest.raises(ChurnInputError, match="no `churned` label"):
        fit_churn(churn_frame(400, labelled=False), CFG)


def test_missing_training_columns() -> None:
    with pytest.raises(ChurnInputError, match="lacks column\\(s\\) \\['cutoff'\\]"):
        fit_churn(churn_frame(400).drop(columns="cutoff"), CFG)


def test_feature_missing_at_scoring_time() -> None:
    model = fit_churn(churn_frame(400), CFG)
    score = churn_frame(10, labelled=False).drop(columns=["frequency", "rfm_segment"])
    with pytest.raises(
        MissingFeaturesError, match="lacks 2 feature column\\(s\\) .*: frequency, rfm_segment"
    ):
        model.predict_proba(score)


def test_prior_missing_at_training_and_scoring_time() -> None:
    cfg = ChurnConfig.from_params(
        {"params": {"min_child_samples": 20}, "prior": "pareto_nbd", "fixed_num_boost_round": 10}
    )
    with pytest.raises(MissingFeaturesError, match=PRIOR_COLUMN):
        fit_churn(churn_frame(400), cfg)
    model = fit_churn(churn_frame(400).assign(**{PRIOR_COLUMN: 0.7}), cfg)
    with pytest.raises(MissingFeaturesError, match=PRIOR_COLUMN):
        model.predict_proba(churn_frame(5))


@pytest.mark.parametrize(
    "block, message",
    [
        ({"class_weight": "heavy"}, "churn.class_weight"),
        ({"calibration": "beta"}, "churn.calibration"),
        ({"prior": "gamma"}, "churn.prior"),
        ({"min_fit_share": 2}, "churn.min_fit_share"),
        ({"max_train_rows": 0}, "churn.max_train_rows"),
    ],
)
def test_bad_config(block: dict, message: str) -> None:
    with pytest.raises(ChurnInputError, match=message):
        ChurnConfig.from_params(block)


def test_loop_settings_are_read_from_params() -> None:
    cfg = ChurnConfig.from_params(
        {"params": {"num_leaves": 63, "n_estimators": 77, "early_stopping_rounds": 9}}
    )
    assert (cfg.num_boost_round, cfg.early_stopping_rounds) == (77, 9)
    assert cfg.lightgbm_params()["num_leaves"] == 63 and "n_estimators" not in cfg.lightgbm_params()
