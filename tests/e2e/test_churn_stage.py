"""train_churn end to end on CDNOW: the stage's outputs in the `dvc repro` workspace (tests/e2e/conftest.py; every
default setting, MLflow store in the workspace)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from models.churn.features import PRIOR_COLUMN
from models.churn.prior import btyd_prior
from tests.e2e.conftest import Repro

pytestmark = pytest.mark.slow
CDNOW_CUSTOMERS = 23_570


@pytest.fixture
def cdnow(cdnow_repro: Repro) -> tuple[Path, dict]:
    """The workspace root and the stage's report (reports/churn.json; its MLflow record from the run record file)."""
    root = cdnow_repro.root
    report = json.loads((root / "reports" / "churn.json").read_text(encoding="utf-8"))
    report["mlflow"] = json.loads((root / "artifacts" / "churn" / "mlflow_run.json").read_text(encoding="utf-8"))
    return root, report


def test_baselines_match_the_published_btyd_figures(cdnow) -> None:
    _, report = cdnow
    assert report["eval_rows"] == CDNOW_CUSTOMERS and report["eval_churn_rate"] == pytest.approx(
        0.7720, abs=5e-4
    )
    pareto, bgnbd = report["baselines"]["pareto_nbd"], report["baselines"]["bgnbd"]
    assert pareto["roc_auc"] == pytest.approx(0.7998, abs=0.002)
    assert pareto["log_loss"] == pytest.approx(0.4208, abs=0.002)
    assert bgnbd["roc_auc"] == pytest.approx(0.7882, abs=0.002)
    assert bgnbd["log_loss"] == pytest.approx(0.4244, abs=0.002)


def test_champion_is_not_worse_than_the_best_baseline(cdnow) -> None:
    _, report = cdnow
    rows = {r["metric"]: r for r in report["comparison"]}
    # Non-inferiority on the paired-bootstrap interval: at most noise below the best baseline.
    assert rows["roc_auc"]["delta_ci95_high"] > 0, rows["roc_auc"]
    assert rows["log_loss"]["delta_ci95_low"] < 0, rows["log_loss"]
    assert report["model"]["roc_auc"] > 0.80 and report["model"]["log_loss"] < 0.425


def test_champion_is_chosen_on_training_validation_and_every_candidate_is_reported(cdnow) -> None:
    _, report = cdnow
    champion = report["champion"]
    assert report["eval_cutoff"] not in champion["selected_on"]
    assert {"bgnbd", "pareto_nbd", "recency_rule", "log_rfm", "lightgbm"} <= set(champion["validation"])
    assert set(champion["validation"]) == set(report["candidates"])  # the c_e table keeps every candidate
    margin = champion["margin_vs_best_baseline"]
    assert margin["log_loss"]["delta"] <= 0 and margin["roc_auc"]["delta"] >= 0  # never worse on validation
    for name in report["candidates_vs_best_baseline"]:
        assert any("delta_ci95_low" in r for r in report["candidates_vs_best_baseline"][name]), name


def test_protocol_is_time_ordered(cdnow) -> None:
    _, report = cdnow
    protocol, refit = report["protocol"], report["refit"]
    if "fit_cutoffs" not in protocol:  # a linear or BTYD champion has no booster protocol
        return
    assert all(c < report["eval_cutoff"] for c in protocol["fit_cutoffs"])
    assert protocol["holdout_cutoff"] in (None, *report["train_cutoffs"])
    assert refit["mode"] == "holdout" and refit["holdout_cutoff"] == report["eval_cutoff"]
    if protocol["mode"] == "fixed":  # CDNOW: rounds and calibrator from customer-grouped CV on training rows
        assert "customer-grouped" in protocol["validation"] and protocol["holdout"]["rows"] == protocol["n_fit_rows"]


def test_registered_model_scores_equal_the_stage_scores(cdnow) -> None:
    import mlflow

    root, report = cdnow
    before = mlflow.get_tracking_uri()
    mlflow.set_tracking_uri(report["mlflow"]["tracking_uri"])
    try:
        loaded = mlflow.pyfunc.load_model("models:/churn@champion")
    finally:
        mlflow.set_tracking_uri(before)
    score = pd.read_parquet(root / "data" / "features" / "score.parquet")
    kind = loaded.unwrap_python_model().model.spec.prior
    if kind != "none":  # the caller supplies the BTYD prior fitted at as_of (the score stage does)
        score[PRIOR_COLUMN] = btyd_prior(score.assign(cutoff=score["cutoff"].astype(str)), kind, 181, 1.0, 42)[0]
    stage = pd.read_parquet(root / "artifacts" / "churn" / "scores.parquet")
    np.testing.assert_allclose(
        loaded.predict(score)["p_churn"].to_numpy(), stage["p_churn"].to_numpy(), atol=1e-12
    )
    assert len(stage) == CDNOW_CUSTOMERS and (stage["reason_1"] != "").all()
