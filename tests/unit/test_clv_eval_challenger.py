"""The LightGBM CLV challenger: time split (never an evaluation row in training), features, champion rule."""

from __future__ import annotations

from datetime import date

import numpy as np
import pandas as pd
import pytest

from models.clv.challenger import (
    ChallengerConfig,
    FeatureSpec,
    choose_champion,
    fit_challenger,
    time_split,
)

EVAL_CUTOFF = date(1998, 1, 1)


def cutoff_rows(cutoff: date, n: int, seed: int) -> pd.DataFrame:
    """n customers at one cutoff: a few features whose values drive the labels, plus ids, dates and text."""
    rng = np.random.default_rng(seed)
    frequency = rng.poisson(2.0, n).astype(float)
    spend = rng.gamma(2.0, 15.0, n)
    purchases = rng.poisson(0.3 * frequency)
    return pd.DataFrame({
        "customer_id": [f"c{i}" for i in range(n)], "cutoff": cutoff, "frequency": frequency,
        "monetary_value": spend, "T": rng.uniform(10, 300, n), "main_channel": rng.choice(["web", "app"], n),
        "rfm_segment": rng.choice(["champions", "lost"], n), "rfm_segment_label": "label", "rfm_score": "555",
        "first_purchase_date": cutoff, "future_purchases": purchases.astype(float),
        "future_revenue": purchases * spend, "churned": (purchases == 0).astype(float)})


def stacked(*sizes: int) -> pd.DataFrame:
    """Training cutoffs 180 days apart before EVAL_CUTOFF, oldest first, with the given customer counts."""
    k = len(sizes)
    return pd.concat([cutoff_rows(EVAL_CUTOFF - pd.Timedelta(days=180 * (k - i)), n, i) for i, n in enumerate(sizes)],
                     ignore_index=True)


def test_holdout_mode_fits_older_cutoffs_and_holds_out_the_latest() -> None:
    split = time_split(stacked(800, 1000), EVAL_CUTOFF)
    assert split.mode == "holdout"
    assert split.fit["cutoff"].nunique() == 1 and split.validation["cutoff"].nunique() == 1
    assert split.fit["cutoff"].max() < split.validation["cutoff"].min() < EVAL_CUTOFF


def test_fixed_mode_when_older_cutoffs_are_too_small() -> None:
    frame = stacked(100, 1000)
    split = time_split(frame, EVAL_CUTOFF, min_customers=50, min_fit_share=0.2)
    assert split.mode == "fixed" and split.validation is None and len(split.fit) == len(frame)
    assert "100 customers" in split.reason


def test_fixed_mode_with_one_training_cutoff() -> None:
    split = time_split(stacked(500), EVAL_CUTOFF)
    assert split.mode == "fixed" and "one training cutoff" in split.reason


def test_evaluation_rows_are_never_trained_on() -> None:
    leaked = pd.concat([stacked(800, 1000), cutoff_rows(EVAL_CUTOFF, 300, 9)], ignore_index=True)
    with pytest.raises(ValueError, match="must never be trained on"):
        time_split(leaked, EVAL_CUTOFF)


def test_unlabelled_rows_are_rejected() -> None:
    frame = stacked(800, 1000)
    frame.loc[0, "future_revenue"] = np.nan
    with pytest.raises(ValueError, match="without labels"):
        time_split(frame, EVAL_CUTOFF)


def test_feature_spec_leaves_out_ids_labels_dates_and_display_text() -> None:
    spec = FeatureSpec.from_frame(stacked(300))
    assert spec.columns == ["frequency", "monetary_value", "T", "main_channel", "rfm_segment"]
    assert spec.categories == {"main_channel": ["app", "web"], "rfm_segment": ["champions", "lost"]}


def test_feature_matrix_maps_unseen_categories_to_missing() -> None:
    spec = FeatureSpec.from_frame(stacked(300))
    frame = cutoff_rows(EVAL_CUTOFF, 3, 1).assign(main_channel=["web", "store", "app"])
    assert spec.matrix(frame)["main_channel"].isna().tolist() == [False, True, False]


def test_fit_challenger_early_stops_on_the_latest_cutoff_and_predicts_non_negative() -> None:
    cfg = ChallengerConfig({"learning_rate": 0.1, "num_leaves": 7, "min_child_samples": 20},
                           num_boost_round=300, early_stopping_rounds=10)
    model = fit_challenger(stacked(800, 1000), EVAL_CUTOFF, cfg)
    assert model.report["mode"] == "holdout" and model.report["validation_cutoff"] < str(EVAL_CUTOFF)
    assert all(1 <= r < 300 for r in model.report["rounds"].values())
    got = model.predict(cutoff_rows(EVAL_CUTOFF, 500, 7))
    for values in got.values():
        assert np.isfinite(values).all() and (values >= 0).all()
    actual = cutoff_rows(EVAL_CUTOFF, 500, 7)["future_revenue"]
    assert np.corrcoef(got["revenue"], actual)[0, 1] > 0.3


def test_fit_challenger_fixed_mode_runs_the_fixed_rounds() -> None:
    cfg = ChallengerConfig({"num_leaves": 7}, fixed_num_boost_round=25, min_customers=50)
    model = fit_challenger(stacked(100, 1000), EVAL_CUTOFF, cfg)
    assert model.report["mode"] == "fixed" and model.report["rounds"] == {"revenue": 25, "purchases": 25}


def test_config_reads_loop_settings_from_params() -> None:
    cfg = ChallengerConfig.from_params({"params": {"objective": "tweedie", "num_boost_round": 50,
                                                   "early_stopping_rounds": 5, "num_leaves": 3},
                                        "fixed_num_boost_round": 7}, seed=1)
    assert (cfg.num_boost_round, cfg.early_stopping_rounds, cfg.fixed_num_boost_round) == (50, 5, 7)
    assert cfg.lgb_params()["num_leaves"] == 3 and "num_boost_round" not in cfg.lgb_params()
    assert cfg.lgb_params()["seed"] == 1


SCORES = {"btyd": {"revenue_mae": 21.0, "revenue_gini": 0.72}, "ml": {"revenue_mae": 25.0, "revenue_gini": 0.76}}


def test_auto_champion_lower_mae_wins() -> None:
    chosen, reason = choose_champion("auto", "revenue_mae", SCORES)
    assert chosen == "btyd" and "lower is better" in reason


def test_auto_champion_higher_gini_wins() -> None:
    assert choose_champion("auto", "revenue_gini", SCORES)[0] == "ml"


def test_auto_champion_tie_keeps_btyd() -> None:
    tie = {"btyd": {"revenue_mae": 1.0}, "ml": {"revenue_mae": 1.0}}
    assert choose_champion("auto", "revenue_mae", tie)[0] == "btyd"


def test_auto_champion_ignores_a_missing_ml_value() -> None:
    assert choose_champion("auto", "revenue_gini", {"btyd": {"revenue_gini": 0.1},
                                                    "ml": {"revenue_gini": float("nan")}})[0] == "btyd"


def test_configured_champion_is_kept() -> None:
    assert choose_champion("ml", "revenue_mae", SCORES) == ("ml", "clv.champion=ml (configured)")


def test_unknown_champion_or_metric_is_an_error() -> None:
    with pytest.raises(ValueError, match="clv.champion must be"):
        choose_champion("best", "revenue_mae", SCORES)
    with pytest.raises(ValueError, match="clv.champion_metric must be"):
        choose_champion("auto", "accuracy", SCORES)
