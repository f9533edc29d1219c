"""Which columns the churn model uses, and how the model-ready frame is built."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from models.churn.errors import ChurnInputError, MissingFeaturesError
from models.churn.features import (
    CATEGORICAL,
    EXCLUDED,
    PRIOR_COLUMN,
    FeatureSpec,
    design_matrix,
    feature_columns,
    fit_spec,
    ignored_columns,
    model_frame,
    value_matrix,
)
from tests.unit.test_churn_frames import churn_frame


def test_exclusion_list_is_explicit() -> None:
    assert set(EXCLUDED) == {
        "customer_id",
        "cutoff",
        "first_purchase_date",
        "last_purchase_date",
        "churned",
        "future_purchases",
        "future_revenue",
        "rfm_segment_label",
        "rfm_score",
        PRIOR_COLUMN,
    }
    assert set(CATEGORICAL) == {
        "main_channel",
        "main_category",
        "region",
        "gender",
        "age_band",
        "acquisition_channel",
        "rfm_segment",
    }


def test_feature_columns_keep_numeric_and_declared_categoricals_only() -> None:
    frame = pd.DataFrame(
        {
            "customer_id": ["a"],
            "cutoff": ["2024-01-01"],
            "first_purchase_date": ["2023-01-01"],
            "last_purchase_date": ["2023-12-01"],
            "frequency": [1.0],
            "orders_total": [2],
            "is_vip": [True],
            "main_channel": ["web"],
            "rfm_segment": ["lost"],
            "rfm_segment_label": ["Lost"],
            "rfm_score": ["111"],
            "free_text": ["hello"],
            "churned": [1.0],
            "future_purchases": [0.0],
            "future_revenue": [0.0],
            PRIOR_COLUMN: [0.9],
        }
    )
    assert feature_columns(frame) == ["frequency", "orders_total", "is_vip", "main_channel", "rfm_segment"]
    assert ignored_columns(frame) == ["free_text"]


def test_categories_are_fixed_from_training_and_unseen_values_become_missing() -> None:
    train = churn_frame(50)
    spec = fit_spec(train)
    assert spec.categories["main_channel"] == ["app", "store", "web"]
    score = churn_frame(3, seed=1)
    score["main_channel"] = ["web", "kiosk", None]
    inputs = model_frame(score, spec)
    assert list(inputs.columns) == list(spec.features)
    assert list(inputs["main_channel"].cat.categories) == ["app", "store", "web"]
    assert inputs["main_channel"].tolist()[0] == "web" and inputs["main_channel"].isna().tolist()[1:] == [
        True,
        True,
    ]


def test_value_matrix_holds_category_codes() -> None:
    spec = fit_spec(churn_frame(50))
    score = churn_frame(2, seed=3)
    score["main_channel"] = ["store", None]
    values = value_matrix(model_frame(score, spec))
    col = list(spec.features).index("main_channel")
    assert values[0, col] == 1.0 and np.isnan(values[1, col])


def test_missing_feature_at_scoring_names_the_columns() -> None:
    spec = fit_spec(churn_frame(50))
    score = churn_frame(5).drop(columns=["page_view_30d", "main_channel"])
    with pytest.raises(MissingFeaturesError, match="page_view_30d, main_channel") as err:
        model_frame(score, spec)
    assert isinstance(err.value, ValueError) and err.value.missing == ["page_view_30d", "main_channel"]


def test_non_numeric_feature_is_a_clear_error() -> None:
    spec = fit_spec(churn_frame(50))
    score = churn_frame(5)
    score["frequency"] = "many"
    with pytest.raises(ChurnInputError, match="'frequency' is not numeric"):
        model_frame(score, spec)


def test_spec_round_trips_through_json_dict() -> None:
    spec = fit_spec(churn_frame(50))
    assert type(spec).from_dict(spec.to_dict()) == spec


def test_design_matrix_equals_the_model_frame_values() -> None:
    spec = fit_spec(churn_frame(80))
    score = churn_frame(40, seed=4)
    score.loc[::3, "main_channel"] = None
    score.loc[::5, "monetary_value"] = np.nan
    np.testing.assert_array_equal(design_matrix(score, spec), value_matrix(model_frame(score, spec)))


def test_a_model_on_a_feature_subset_expects_the_whole_training_schema() -> None:
    train = churn_frame(50)
    every = feature_columns(train)
    subset = fit_spec(train, every[:2])
    assert subset.features == tuple(every[:2]) and subset.expected_columns == tuple(every)
    assert fit_spec(train).expected_columns == tuple(every)
    restored = FeatureSpec.from_dict(subset.to_dict())
    assert restored.expected_columns == tuple(every)


def test_category_levels_are_capped_and_vetted_so_no_customer_value_lands_in_the_model() -> None:
    from models.churn.features import MAX_LEVELS, OTHER, category_levels

    region = pd.Series(["north"] * 30 + ["south"] * 20 + ["jane.doe@example.com", "+44 20 7946 0958",
                        "lives next to the old mill by the river", "east"] + [None] * 3)
    assert category_levels(region) == ["north", "south", OTHER]  # e-mail, phone, free text, rare 'east'
    many = pd.Series([f"c{i % 80}" for i in range(800)])
    assert len(category_levels(many)) == MAX_LEVELS + 1 and category_levels(many)[-1] == OTHER
    train = churn_frame(60)
    train["region"] = region.reindex(range(60)).to_numpy()
    spec = fit_spec(train)
    assert "jane.doe@example.com" not in str(spec.to_dict())
    score = churn_frame(3, seed=2)
    score["region"] = ["south", "someone@else.org", None]
    assert model_frame(score, spec)["region"].tolist()[:2] == ["south", OTHER]
    assert pd.isna(model_frame(score, spec)["region"].tolist()[2])
