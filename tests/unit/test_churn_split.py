"""Time-ordered validation: the latest training cutoff is held out, never a random split; row capping."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from models.churn import ChurnConfig, fit_churn
from models.churn.split import grouped_folds, stratified_cap, time_split
from tests.unit.test_churn_frames import CUTOFFS, churn_frame, stacked

FAST = {
    "params": {
        "num_leaves": 7,
        "learning_rate": 0.1,
        "min_child_samples": 20,
        "num_boost_round": 60,
        "early_stopping_rounds": 10,
    },
    "fixed_num_boost_round": 25,
    "bootstrap": 0,
    "calibration": "isotonic",
}


def test_latest_cutoff_is_held_out_in_time() -> None:
    split = time_split(stacked(CUTOFFS[:3]))
    assert split.mode == "holdout"
    assert split.fit_cutoffs == list(CUTOFFS[:2]) and split.holdout_cutoff == CUTOFFS[2]
    assert split.fit["cutoff"].max() < split.holdout["cutoff"].min()


def test_one_cutoff_falls_back_to_fixed_rounds() -> None:
    split = time_split(churn_frame(400))
    assert (split.mode, split.holdout) == ("fixed", None)
    assert "one training cutoff" in split.reason


def test_small_older_cutoff_falls_back_to_fixed_rounds() -> None:
    frame = pd.concat(
        [churn_frame(250, CUTOFFS[0]), churn_frame(2000, CUTOFFS[1], seed=1)], ignore_index=True
    )
    split = time_split(frame, min_customers=200, min_fit_share=0.2)
    assert split.mode == "fixed" and "min_fit_share" in split.reason
    assert len(split.fit) == len(frame)


def test_fit_never_sees_the_evaluation_cutoff_and_calibrates_on_the_latest_training_one() -> None:
    train = stacked(CUTOFFS[:2])
    model = fit_churn(train, ChurnConfig.from_params(FAST))
    info = model.info
    assert info["mode"] == "holdout" and info["fit_cutoffs"] == [CUTOFFS[0]]
    assert info["holdout_cutoff"] == CUTOFFS[1] < CUTOFFS[2]  # CUTOFFS[2] plays the evaluation cutoff
    assert model.calibrator.kind == "isotonic"
    assert model.calibrator.info["rows"] == int((train["cutoff"] == CUTOFFS[1]).sum())
    assert 1 <= info["best_iteration"] <= 60 and model.booster.num_trees() == info["best_iteration"]


def test_fixed_mode_without_cv_uses_configured_rounds_without_calibrator_or_weights() -> None:
    model = fit_churn(churn_frame(500), ChurnConfig.from_params({**FAST, "cv_folds": 0}))
    assert model.info["mode"] == "fixed" and model.booster.num_trees() == 25
    assert model.calibrator.kind == "none" and model.info["class_weight"] == "none"


def test_fixed_mode_cross_fits_rounds_and_calibrates_on_out_of_fold_rows() -> None:
    frame = churn_frame(600)
    model = fit_churn(frame, ChurnConfig.from_params({**FAST, "calibration": "platt"}))
    info = model.info
    assert info["mode"] == "fixed" and info["cv_folds"] == 5 and "customer-grouped" in info["validation"]
    assert 1 <= info["best_iteration"] <= 60 and model.booster.num_trees() == info["best_iteration"]
    assert model.calibrator.kind == "platt" and model.calibrator.info["rows"] == len(frame)
    assert info["holdout"]["rows"] == len(frame)


def test_grouped_folds_keep_a_customer_in_one_fold() -> None:
    frame = stacked(CUTOFFS[:2], n=300)  # each customer appears at both cutoffs
    folds = grouped_folds(frame, 5, seed=0)
    assert folds is not None and len(folds) == 5
    ids = frame["customer_id"].to_numpy()
    for fit, held in folds:
        assert not set(ids[fit]) & set(ids[held])
    assert sorted(np.concatenate([h for _, h in folds]).tolist()) == list(range(len(frame)))


def test_grouped_folds_refuse_too_few_customers() -> None:
    frame = pd.DataFrame({"customer_id": ["a", "b", "c", "d"], "churned": [0.0, 1.0, 0.0, 1.0]})
    assert grouped_folds(frame, 5, seed=0) is None
    assert grouped_folds(frame, 0, seed=0) is None


def test_evaluation_labels_cannot_change_the_model() -> None:
    train = stacked(CUTOFFS[:2])
    evaluation = churn_frame(300, CUTOFFS[2], seed=9)
    cfg = ChurnConfig.from_params(FAST)
    first = fit_churn(train, cfg).predict_proba(evaluation)
    flipped = evaluation.assign(churned=1 - evaluation["churned"])
    np.testing.assert_array_equal(first, fit_churn(train, cfg).predict_proba(flipped))


def test_stratified_cap_keeps_proportions_and_is_deterministic() -> None:
    frame = stacked(CUTOFFS[:2], n=1000)
    capped = stratified_cap(frame, 500, seed=3)
    assert len(capped) == 500
    assert capped.equals(stratified_cap(frame, 500, seed=3))
    share = frame.groupby(["cutoff", "churned"]).size() / len(frame)
    capped_share = capped.groupby(["cutoff", "churned"]).size() / len(capped)
    assert np.abs(share - capped_share).max() < 0.005
    assert stratified_cap(frame, 5000, seed=3) is frame


@pytest.mark.parametrize("rows", [1, 7, 999])
def test_stratified_cap_hits_the_exact_size(rows: int) -> None:
    assert len(stratified_cap(stacked(CUTOFFS[:2], n=500), rows, seed=0)) == rows


def test_fit_and_holdout_rows_are_capped() -> None:
    cfg = ChurnConfig.from_params({**FAST, "max_train_rows": 300})
    model = fit_churn(stacked(CUTOFFS[:2], n=500), cfg)
    assert model.info["n_fit_rows"] == 500 and model.info["n_fit_rows_used"] == 300
    assert model.info["n_holdout_rows"] == 300 and model.calibrator.info["rows"] == 300


def _dense(cutoffs: list[str], n: int = 300) -> pd.DataFrame:
    """n customers at every cutoff, alternating labels (both classes everywhere)."""
    return pd.concat(
        [
            pd.DataFrame({"customer_id": np.arange(n), "cutoff": c, "churned": np.arange(n) % 2, "x": 1.0})
            for c in cutoffs
        ],
        ignore_index=True,
    )


def test_overlapping_cutoffs_are_purged_from_the_fit_rows() -> None:
    # H = 90 days, cutoffs every 30 days: only cutoffs with c + 90 <= 2024-07-01 may be fitted on
    cutoffs = ["2024-02-01", "2024-03-01", "2024-04-02", "2024-05-01", "2024-06-01", "2024-07-01"]
    split = time_split(_dense(cutoffs), min_customers=10, horizon_days=90)
    assert split.mode == "holdout" and split.holdout_cutoff == "2024-07-01"
    assert split.fit_cutoffs == ["2024-02-01", "2024-03-01", "2024-04-02"]  # 04-02 + 90 d = 07-01
    assert split.purged == ("2024-05-01", "2024-06-01")
    assert "purged 2 cutoff(s)" in split.reason
    assert len(split.fit) + len(split.holdout) == 4 * 300


def test_without_a_horizon_every_older_cutoff_is_fitted() -> None:
    split = time_split(_dense(["2024-05-01", "2024-06-01", "2024-07-01"]), min_customers=10)
    assert split.fit_cutoffs == ["2024-05-01", "2024-06-01"] and split.purged == ()


def test_no_closed_label_window_falls_back_to_fixed_mode() -> None:
    split = time_split(_dense(["2024-05-01", "2024-06-01", "2024-07-01"]), min_customers=10, horizon_days=90)
    assert split.mode == "fixed" and split.holdout is None and len(split.fit) == 900
    assert "no older cutoff" in split.reason and "purged 2" in split.reason
