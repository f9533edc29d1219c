"""train_clv end to end on CDNOW: the stage's outputs in the `dvc repro` workspace (tests/e2e/conftest.py; every
default setting, MLflow store in the workspace)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from models.clv import ClvModel
from pipelines.train_clv import stage_files
from tests.conftest import load_registered
from tests.e2e.conftest import Repro

pytestmark = pytest.mark.slow
RFM = ["customer_id", "frequency", "recency", "T", "monetary_value"]


@pytest.fixture
def cdnow(cdnow_repro: Repro) -> dict[str, Any]:
    """The stage's report (reports/clv.json) and files."""
    files = stage_files(cdnow_repro.root)
    return {"report": json.loads(files["report"].read_text(encoding="utf-8")), "files": files}


def test_holdout_is_cdnow_first_half_of_1998(cdnow) -> None:
    report = cdnow["report"]
    assert (report["eval_cutoff"], report["as_of"], report["horizon_days"]) == ("1997-12-31", "1998-06-30", 181)
    assert report["customers"] == 23_570


def test_model_is_chosen_on_the_1997_07_03_training_cutoff(cdnow) -> None:
    from models.clv import MODELS

    section = cdnow["report"]["selection"]
    assert section["window"]["source"] == "training_cutoff" and "1997-07-03" in section["window"]["note"]
    assert set(section["candidates"]) == set(MODELS) and section["chosen"] == cdnow["report"]["model"]
    fitted = {n: c["validation"]["no_purchase_log_loss"] for n, c in section["candidates"].items()
              if c["status"] == "fitted"}
    assert section["chosen"] in fitted and fitted[section["chosen"]] < 0.52  # 0.5075 for BG/NBD when measured
    assert json.loads(Path(cdnow["files"]["mlflow"]).read_text())["registered_model"] == f"clv-{section['chosen']}"


def test_btyd_forecasts_the_holdout_well(cdnow) -> None:
    btyd = cdnow["report"]["btyd"]
    assert abs(btyd["purchases"]["total_error_pct"]) < 10
    assert abs(btyd["revenue"]["total_error_pct"]) < 10
    assert btyd["revenue"]["gini"] > 0.6
    predictions = pd.read_parquet(cdnow["files"]["predictions"])
    corr = np.corrcoef(predictions["expected_purchases_181d"], predictions["future_purchases"])[0, 1]
    assert corr > 0.6  # the paper reports 0.626 on the 1/10 sample, weekly, 39-week holdout


def test_side_by_side_table_and_champion(cdnow) -> None:
    report = cdnow["report"]
    assert report["ml"]["revenue"]["mae"] > 0 and report["comparison"]["revenue_gini"]["ml"] > 0.5
    assert report["champion"]["chosen"] in ("btyd", "ml")
    assert report["challenger"]["fit_cutoffs"][-1] < report["eval_cutoff"]


def test_conditional_expectations_span_0_to_7_plus(cdnow) -> None:
    table = cdnow["report"]["conditional_expectation"]
    assert list(table) == ["0", "1", "2", "3", "4", "5", "6", "7+"]
    assert sum(row["customers"] for row in table.values()) == 23_570


def test_parameter_intervals_under_cover_and_predictive_ones_do_not(cdnow) -> None:
    coverage = cdnow["report"]["coverage"]
    assert coverage["revenue_parameter"] < 0.1
    assert 0.85 <= coverage["revenue_predictive"] <= 0.99


def test_no_nan_inf_or_negative_clv(cdnow) -> None:
    predictions = pd.read_parquet(cdnow["files"]["predictions"])
    values = predictions.select_dtypes("number").drop(columns="future_revenue").to_numpy()
    assert np.isfinite(values).all() and (values >= 0).all()


def test_registered_model_is_the_as_of_refit(cdnow) -> None:
    info = json.loads(Path(cdnow["files"]["mlflow"]).read_text())
    loaded = load_registered(info)
    score = pd.read_parquet(cdnow["files"]["score"])
    scores = loaded.predict(score[RFM])
    production = ClvModel.from_dict(json.loads(Path(cdnow["files"]["production"]).read_text()))
    assert production.purchases.n_customers == len(score) == 23_570
    expected = production.predict(score[RFM], 181)
    for col in ("p_alive", "expected_purchases_181d", "expected_aov", "clv_12m"):
        assert scores[col].to_numpy() == pytest.approx(expected[col].to_numpy(), rel=1e-12, abs=1e-300)
