"""The train_churn stage on tiny tables: outputs, MLflow run, registered model reproduces scores."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from pipelines import tracking, train_churn
from tests.conftest import compose_params
from tests.unit.test_churn_frames import CUTOFFS, churn_frame, stacked

N = 600


def _root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A temporary repo root with tiny feature tables."""
    root = tmp_path_factory.mktemp("root")
    ids = np.char.add("c", np.arange(N).astype(str))
    tables = {
        "train": stacked(CUTOFFS[:2], n=N),
        "eval": churn_frame(N, CUTOFFS[2], seed=7, ids=ids),
        "score": churn_frame(N, CUTOFFS[3], seed=8, labelled=False, ids=ids),
    }
    for role, frame in tables.items():
        path = root / "data" / "features" / f"{role}.parquet"
        path.parent.mkdir(parents=True, exist_ok=True)
        frame.to_parquet(path, index=False)
    return root


def _params(root: Path, *extra: str) -> dict:
    """Small, fast stage settings with the MLflow store under root."""
    return compose_params(
        [
            f"mlflow.tracking_uri=sqlite:///{(root / 'mlflow.db').as_posix()}",
            "churn.params.num_leaves=7",
            "churn.params.min_child_samples=20",
            "churn.params.num_boost_round=60",
            "churn.bootstrap=20",
            "churn.btyd_baselines=[bgnbd]",
            "churn.prior=none",
            "churn.offset_priors=[]",
            *extra,
        ]
    )


@pytest.fixture(scope="module")
def stage(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict, dict]:
    """The stage with LightGBM forced as champion (its files and registry entry are checked below)."""
    root = _root(tmp_path_factory)
    params = _params(root, "churn.champion=lightgbm")
    return root, params, train_churn.run(params, root=root)


def test_outputs_are_written(stage) -> None:
    root, _, report = stage
    art = root / "artifacts" / "churn"
    for name in (
        "model.txt",
        "calibrator.json",
        "features.json",
        "scores.parquet",
        "eval_predictions.parquet",
        "backtest/model.txt",
        "plots/roc.png",
        "plots/shap_summary.png",
        "mlflow_run.json",
    ):
        assert (art / name).is_file(), name
    for name in ("roc", "pr", "reliability", "gains", "lift", "importance"):
        assert (root / "reports" / "plots" / "churn" / f"{name}.csv").is_file()
    saved = json.loads((root / "reports" / "churn.json").read_text())
    assert saved["model"]["roc_auc"] == pytest.approx(report["model"]["roc_auc"])
    assert saved["protocol"]["mode"] == "holdout" and saved["protocol"]["holdout_cutoff"] == CUTOFFS[1]
    assert saved["refit"]["holdout_cutoff"] == CUTOFFS[2]
    assert {r["metric"] for r in saved["comparison"]} >= {"roc_auc", "log_loss", "lift_top10"}
    assert [r["feature_set"] for r in saved["ablation"]] == ["rfm_only", "all"]
    assert "| lightgbm |" in (root / "reports" / "churn.md").read_text()
    calibrator = json.loads((art / "calibrator.json").read_text())
    assert calibrator["kind"] == "platt" and np.isfinite([calibrator["coef"], calibrator["intercept"]]).all()


def test_scores_have_probabilities_and_reasons(stage) -> None:
    root, _, _ = stage
    scores = pd.read_parquet(root / "artifacts" / "churn" / "scores.parquet")
    assert len(scores) == N and scores["customer_id"].is_unique
    assert scores["p_churn"].between(0, 1).all()
    assert scores["reason_1"].str.contains(" (?:raises|lowers) risk$").all()


def test_registered_model_reproduces_the_stage_scores(stage) -> None:
    import mlflow

    root, params, report = stage
    info = report["mlflow"]
    assert info["registered_model"] == "churn" and info["tracking_uri"].endswith("mlflow.db")
    assert info["aliases"]["champion"] == str(info["registered_version"])
    mlflow.set_tracking_uri(info["tracking_uri"])
    loaded = mlflow.pyfunc.load_model(f"models:/churn/{info['registered_version']}")
    score = pd.read_parquet(root / "data" / "features" / "score.parquet")
    predicted = loaded.predict(score)["p_churn"].to_numpy()
    stage_scores = pd.read_parquet(root / "artifacts" / "churn" / "scores.parquet")["p_churn"].to_numpy()
    np.testing.assert_allclose(predicted, stage_scores, rtol=0, atol=1e-12)


def test_run_carries_tags_params_metrics_and_plots(stage) -> None:
    from mlflow.tracking import MlflowClient

    root, params, report = stage
    client = MlflowClient(report["mlflow"]["tracking_uri"])
    run = client.get_run(report["mlflow"]["run_id"])
    tags = run.data.tags
    assert tags["data_fingerprint"] == report["mlflow"]["data_fingerprint"]
    assert tags["as_of"] == CUTOFFS[3] and tags["horizon_days"] == str(params["windows"]["horizon_days"])
    assert tags["git_commit"] and tags["data_source"] == params["data"]["source"]
    assert run.data.params["churn.params.num_leaves"] == "7"
    assert "champion.roc_auc" in run.data.metrics and "candidate.log_rfm.roc_auc" in run.data.metrics
    assert "validation.lightgbm.log_loss" in run.data.metrics and tags["champion"] == "lightgbm"
    plots = {f.path for f in client.list_artifacts(run.info.run_id, "plots")}
    assert {
        "plots/roc.png",
        "plots/pr.png",
        "plots/reliability.png",
        "plots/gains_lift.png",
        "plots/shap_summary.png",
    } <= plots
    features = json.loads((root / "artifacts" / "churn" / "features.json").read_text())["features"]
    assert "features.json" in {f.path for f in client.list_artifacts(run.info.run_id)} and len(features) > 10
    assert run.info.run_name.startswith(f"train_churn {params['data']['source']} as_of={CUTOFFS[3]} h=")
    assert " lightgbm cfg=" in run.info.run_name
    inputs = {d.dataset.name: d.dataset for d in run.inputs.dataset_inputs}
    assert set(inputs) == {"features/train", "features/eval", "features/score"}
    assert inputs["features/eval"].digest == tracking.fingerprint([root / "data" / "features" / "eval.parquet"])
    assert "churned" in inputs["features/eval"].schema and inputs["features/eval"].source_type == "local"
    version = client.get_model_version("churn", report["mlflow"]["registered_version"])
    assert version.description.startswith("lightgbm (lightgbm), refit at ") and "AUC 0." in version.description
    assert version.tags["data_fingerprint"] == tags["data_fingerprint"] and version.tags["as_of"] == CUTOFFS[3]
    assert float(version.tags["roc_auc"]) == pytest.approx(report["model"]["roc_auc"], abs=1e-4)


def test_a_logistic_champion_is_registered_scored_and_takes_the_champion_alias(stage) -> None:
    import mlflow

    root, _, first = stage
    params = _params(root, "churn.champion=log_rfm", "churn.ablation=false")
    report = train_churn.run(params, root=root)
    assert report["champion"]["name"] == "log_rfm" and report["champion"]["kind"] == "logistic"
    info = report["mlflow"]
    assert info["aliases"] == {"champion": str(info["registered_version"]),
                               "challenger": str(first["mlflow"]["registered_version"])}
    mlflow.set_tracking_uri(info["tracking_uri"])
    loaded = mlflow.pyfunc.load_model("models:/churn@champion")
    score = pd.read_parquet(root / "data" / "features" / "score.parquet")
    stage_scores = pd.read_parquet(root / "artifacts" / "churn" / "scores.parquet")
    np.testing.assert_allclose(loaded.predict(score)["p_churn"], stage_scores["p_churn"], rtol=0, atol=1e-12)
    assert stage_scores["reason_1"].str.contains(" (?:raises|lowers) risk$").all()
    saved = json.loads((root / "reports" / "churn.json").read_text())
    assert set(saved["champion"]["validation"]) >= {"bgnbd", "recency_rule", "log_rfm", "lightgbm"}
    assert "## Champion: log_rfm" in (root / "reports" / "churn.md").read_text()


def test_tracking_uri_is_anchored_on_dvc_root(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("DVC_ROOT", str(tmp_path))
    assert tracking.tracking_uri({}) == f"sqlite:///{(tmp_path / 'mlflow.db').resolve().as_posix()}"
    assert tracking.tracking_uri({"tracking_uri": "sqlite:///x.db"}) == "sqlite:///x.db"
    assert tracking.artifact_location(tracking.tracking_uri({})).endswith("/mlartifacts")


def test_fingerprint_changes_with_content(tmp_path: Path) -> None:
    a, b = tmp_path / "a.parquet", tmp_path / "b.parquet"
    a.write_bytes(b"one")
    b.write_bytes(b"two")
    first = tracking.fingerprint([a, b])
    b.write_bytes(b"three")
    assert tracking.fingerprint([a, b]) != first and len(first) == 16


def test_two_runs_with_different_settings_are_told_apart_and_compared(stage) -> None:
    """Reviewer's view through the client: names say what ran and differ with the settings; same metric keys;
    durations start at the stage start."""
    import time

    import mlflow
    from mlflow.tracking import MlflowClient

    _, params, report = stage
    store = {"tracking_uri": report["mlflow"]["tracking_uri"], "experiment_name": "reviewer-check"}
    ids = []
    for leaves, auc in ((7, 0.71), (31, 0.74)):
        settings = {"churn": {"params": {"num_leaves": leaves}}}
        name = tracking.run_name("train_churn", params, "1998-06-30", "lightgbm", settings=settings)
        with tracking.start_run(store, name, {"stage": "train_churn"}, started_at=time.time() - 90) as run:
            mlflow.log_params({"churn.params.num_leaves": leaves})
            mlflow.log_metrics({"champion.roc_auc": auc, "champion.log_loss": 0.5})
        ids.append(run.info.run_id)
    client = MlflowClient(store["tracking_uri"])
    runs = [client.get_run(i) for i in ids]
    names = [r.info.run_name for r in runs]
    assert names[0] != names[1]
    assert all(n.startswith("train_churn cdnow as_of=1998-06-30 h=181d lightgbm cfg=") for n in names)
    assert set(runs[0].data.metrics) == set(runs[1].data.metrics) == {"champion.roc_auc", "champion.log_loss"}
    assert all(r.info.end_time - r.info.start_time >= 90_000 for r in runs)
    found = client.search_runs([runs[0].info.experiment_id], order_by=["metrics.`champion.roc_auc` DESC"])
    assert [r.info.run_name for r in found] == names[::-1]
    from pipelines.scoring_models import resolved_version

    uri = store["tracking_uri"]
    versions = sorted(int(v.version) for v in client.search_model_versions("name='churn'"))
    assert resolved_version("models:/churn/latest", uri) == f"churn/{versions[-1]}"
    assert resolved_version("models:/churn@champion", uri) == (
        f"churn/{client.get_model_version_by_alias('churn', 'champion').version}")
    assert resolved_version("models:/churn/1", uri) == "churn/1"
    with pytest.raises(ValueError, match="cannot resolve model 'models:/churn@nobody'"):
        resolved_version("models:/churn@nobody", uri)
