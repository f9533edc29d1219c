"""Stage train_clv on a small synthetic tree: outputs, no NaN/inf/negative values, MLflow round trip, bad input."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from features import synthetic
from models.clv import ClvModel
from pipelines import features as features_stage
from pipelines import paths
from pipelines.io import write_parquet
from pipelines.train_clv import ClvConfig, check_holdout, run, stage_files
from tests.conftest import compose_params, load_registered

HORIZON = 90
POINT_COLUMNS = ("p_alive", f"expected_purchases_{HORIZON}d", f"p_no_purchase_{HORIZON}d", "expected_aov", "clv_12m")
SIGNED_LABELS = ("future_revenue",)  # actual net revenue: returns may make it negative


def build_features_under(root: Path, params: dict[str, Any]) -> None:
    """train/eval/score feature tables under root from its data/interim tables (the features stage)."""
    features_stage.run(params, root)


def stage_params(root: Path, *overrides: str) -> dict[str, Any]:
    """conf/ composed for a quick stage run, tracked in a sqlite store under root."""
    return compose_params([f"windows.horizon_days={HORIZON}", "clv.n_draws=40",
                           "clv.challenger.fixed_num_boost_round=50",
                           f"mlflow.tracking_uri=sqlite:///{(root / 'mlflow.db').as_posix()}", *overrides])


@pytest.fixture(scope="module")
def tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Synthetic transactions (3,000 customers, two years) and their feature tables under a temporary root."""
    root = tmp_path_factory.mktemp("clv_tree")
    data = synthetic.generate(3000, 5, "2023-01-01", "2024-12-31")
    write_parquet(data.transactions, paths.rebase(paths.TRANSACTIONS, root))
    build_features_under(root, stage_params(root))
    return root


@pytest.fixture(scope="module")
def staged(tree: Path) -> dict[str, Any]:
    """The stage run once on the tree, with MLflow tracking; the tracking URI is restored afterwards."""
    import mlflow

    before = mlflow.get_tracking_uri()
    try:
        report = run(stage_params(tree), tree, track=True)
    finally:
        mlflow.set_tracking_uri(before)
    return {"report": report, "files": stage_files(tree), "root": tree}


def copy_tree(tree: Path, dest: Path) -> Path:
    """A copy of the tree's input data under dest."""
    shutil.copytree(tree / "data", dest / "data")
    return dest


def test_stage_writes_every_output(staged) -> None:
    for name, path in staged["files"].items():
        assert path.exists(), name


def test_report_is_strict_json_with_the_headline_sections(staged) -> None:
    def reject(token: str) -> None:
        raise AssertionError(f"non-JSON number {token} in clv.json")

    report = json.loads(staged["files"]["report"].read_text(), parse_constant=reject)
    assert {"btyd", "ml", "comparison", "champion", "conditional_expectation", "coverage", "fit", "challenger",
            "tracking"} <= set(report)
    for key in ("revenue_mae", "revenue_rmse", "revenue_spearman", "revenue_gini", "revenue_total_error_pct"):
        assert set(report["comparison"][key]) == {"btyd", "ml"}
    assert report["champion"]["chosen"] in ("btyd", "ml") and report["champion"]["metric"] == "revenue_mae"
    assert list(report["conditional_expectation"])[-1] == "7+"


def _numbers(tree: Any) -> list[float]:
    """Every number in a nested JSON document."""
    if isinstance(tree, dict):
        return [n for v in tree.values() for n in _numbers(v)]
    if isinstance(tree, list):
        return [n for v in tree for n in _numbers(v)]
    return [float(tree)] if isinstance(tree, int | float) and not isinstance(tree, bool) else []


def test_no_nan_inf_or_negative_value_in_any_output(staged) -> None:
    files = staged["files"]
    predictions = pd.read_parquet(files["predictions"])
    numeric = predictions.select_dtypes("number")
    assert np.isfinite(numeric.to_numpy()).all()
    assert (numeric.drop(columns=list(SIGNED_LABELS)).to_numpy() >= 0).all()
    clv_columns = [c for c in predictions.columns if c.startswith("clv_")]
    assert len(clv_columns) >= 4 and (predictions[clv_columns].to_numpy() >= 0).all()
    for name in ("clv_calibration", "clv_tracking", "clv_p_alive", "clv_frequency_recency"):
        values = pd.read_csv(files[name]).select_dtypes("number").to_numpy()
        assert np.isfinite(values).all() and (values >= 0).all(), name
    assert np.isfinite(_numbers(json.loads(files["report"].read_text()))).all()
    assert np.isfinite(_numbers(json.loads(files["params"].read_text()))).all()


def test_predictions_cover_every_eval_customer_once(staged) -> None:
    predictions = pd.read_parquet(staged["files"]["predictions"])
    evaluation = pd.read_parquet(staged["files"]["eval"])
    assert predictions["customer_id"].tolist() == evaluation["customer_id"].tolist()
    assert (predictions["clv_low"] <= predictions["clv_high"]).all()


def test_params_json_rebuilds_the_stage_predictions(staged) -> None:
    model = ClvModel.from_dict(json.loads(staged["files"]["params"].read_text()))
    evaluation = pd.read_parquet(staged["files"]["eval"])
    predictions = pd.read_parquet(staged["files"]["predictions"])
    again = model.predict(evaluation, HORIZON, 12, 0.01)
    for col in POINT_COLUMNS:
        # params.json keeps 10 significant digits (runinfo.stable_float: the same bytes on every run)
        assert again[col].to_numpy() == pytest.approx(predictions[col].to_numpy(), rel=1e-8, abs=1e-300)


def test_registered_pyfunc_is_the_as_of_refit(staged) -> None:
    info = json.loads(staged["files"]["mlflow"].read_text())
    assert info["registered_model"] == f"clv-{staged['report']['model']}"
    loaded = load_registered(info)
    score = pd.read_parquet(staged["files"]["score"])
    production = ClvModel.from_dict(json.loads(staged["files"]["production"].read_text()))
    backtest = ClvModel.from_dict(json.loads(staged["files"]["params"].read_text()))
    assert production.purchases.params != backtest.purchases.params  # refit on more history
    assert production.purchases.n_customers == len(score)
    scores = loaded.predict(score[["customer_id", "frequency", "recency", "T", "monetary_value"]])
    expected = production.predict(score, HORIZON, 12, 0.01)
    assert scores["customer_id"].tolist() == score["customer_id"].tolist()
    for col in POINT_COLUMNS:
        assert scores[col].to_numpy() == pytest.approx(expected[col].to_numpy(), rel=1e-12, abs=1e-300)


def test_production_draws_round_trip(staged) -> None:
    from models.clv.uncertainty import draws_from_dict

    draws = draws_from_dict(json.loads(staged["files"]["production_draws"].read_text()))
    assert draws.model == staged["report"]["model"]
    assert draws.n_draws >= 20 and draws.purchases.shape[1] == 4
    assert staged["report"]["production"]["customers"] == len(pd.read_parquet(staged["files"]["score"]))


def test_auto_selection_records_every_candidate_on_the_training_window(staged) -> None:
    from models.clv import MODELS

    report = staged["report"]
    section = report["selection"]
    assert set(section["candidates"]) == set(MODELS)
    assert section["chosen"] == report["model"] == report["fit"]["purchases"]["model"]
    assert section["candidates"][section["chosen"]]["status"] == "fitted"
    assert section["window"]["source"] == "training_cutoff"
    cutoff = section["window"]["note"].split()[3].rstrip(":")
    assert cutoff < report["eval_cutoff"]  # chosen on a training cutoff, never on c_e
    for name, cand in section["candidates"].items():
        assert cand["status"] in ("fitted", "skipped") and cand["reason"], name
        if cand["status"] == "fitted":
            assert np.isfinite(cand["validation"]["no_purchase_log_loss"]), name
    fitted = {n: c["validation"]["no_purchase_log_loss"] for n, c in section["candidates"].items()
              if c["status"] == "fitted"}
    assert fitted[section["chosen"]] <= min(fitted.values()) * (1 + 1e-3)


def test_configured_model_skips_selection(tree: Path, tmp_path: Path) -> None:
    root = copy_tree(tree, tmp_path)
    report = run(stage_params(root, "clv.model=mbgnbd", "clv.n_draws=10"), root, track=False)
    assert report["model"] == "mbgnbd" and report["selection"]["rule"].startswith("configured")
    assert "candidates" not in report["selection"]


def test_one_tiny_training_cutoff_falls_back_and_still_runs(tree: Path, tmp_path: Path) -> None:
    root = copy_tree(tree, tmp_path)
    target = paths.rebase(paths.FEATURE_FILES["train"], root)
    train = pd.read_parquet(target)
    latest = train[train["cutoff"] == train["cutoff"].max()]
    write_parquet(latest.head(25), target)  # one training cutoff, 25 customers: too few to fit or to challenge
    report = run(stage_params(root, "clv.n_draws=10"), root, track=False)
    section = report["selection"]
    assert section["window"]["source"] == "eval_cutoff_in_sample" and section["metric"] == "in_sample_bic"
    assert "no label" in section["rule"]
    assert report["challenger"]["skipped"].startswith("ML challenger not fitted")
    assert report["champion"]["chosen"] == "btyd" and report["comparison"]["revenue_mae"]["ml"] is None
    assert stage_files(root)["production"].exists()


def test_main_turns_fit_failures_into_one_line(monkeypatch, capsys) -> None:
    from models.clv import FitError
    from pipelines import train_clv

    for exc in (FitError("no usable fit; attempts: a\nb"), FloatingPointError("non-finite CLV outputs")):
        def boom(*_args, exc=exc, **_kwargs):
            raise exc
        monkeypatch.setattr(train_clv, "run", boom)
        monkeypatch.setattr(train_clv, "load_params", lambda argv: {})
        assert train_clv.main([]) == 2
        err = capsys.readouterr().err
        assert err.startswith("train_clv: error: ") and "Traceback" not in err


def test_challenger_never_trains_on_the_evaluation_cutoff(staged) -> None:
    report = staged["report"]
    assert all(c < report["eval_cutoff"] for c in report["challenger"]["fit_cutoffs"])


def test_tracking_curve_ends_at_the_holdout_labels(staged) -> None:
    evaluation = pd.read_parquet(staged["files"]["eval"])
    tracking = pd.read_csv(staged["files"]["clv_tracking"])
    assert len(tracking) == HORIZON + 1
    assert tracking["actual"].iloc[-1] == evaluation["future_purchases"].sum()


def test_intervals_cover_as_reported(staged) -> None:
    coverage = staged["report"]["coverage"]
    assert coverage["revenue_parameter"] < coverage["revenue_predictive"]
    assert 0.8 <= coverage["revenue_predictive"] <= 1.0


def test_fewer_than_30_repeat_customers_is_a_clear_error(tree: Path, tmp_path: Path) -> None:
    root = copy_tree(tree, tmp_path)
    target = paths.rebase(paths.FEATURE_FILES["eval"], root)
    frame = pd.read_parquet(target)
    repeat = frame.index[frame["frequency"] > 0][20:]
    frame.loc[repeat, ["frequency", "recency", "monetary_value"]] = 0.0
    write_parquet(frame, target)
    with pytest.raises(ValueError, match="only 20 repeat customers"):  # one model: the check does not need selection
        run(stage_params(root, "clv.model=bgnbd", "clv.n_draws=10"), root, track=False)
    assert not paths.rebase(paths.REPORTS / "clv.json", root).exists()


def test_all_zero_spend_is_a_clear_error(tree: Path, tmp_path: Path) -> None:
    root = copy_tree(tree, tmp_path)
    target = paths.rebase(paths.FEATURE_FILES["eval"], root)
    write_parquet(pd.read_parquet(target).assign(monetary_value=0.0), target)
    with pytest.raises(ValueError, match="all-zero spend"):
        run(stage_params(root, "clv.model=bgnbd", "clv.n_draws=10"), root, track=False)


def test_horizon_other_than_the_feature_tables_is_a_clear_error(tree: Path) -> None:
    with pytest.raises(ValueError, match="rerun the features stage"):
        run(stage_params(tree, "windows.horizon_days=60"), tree, track=False)


def test_horizon_longer_than_the_history_is_a_clear_error() -> None:
    frame = pd.DataFrame({"T": [10.0, 30.0], "future_purchases": [0.0, 1.0], "future_revenue": [0.0, 5.0]})
    cutoff = pd.Timestamp("2024-01-01").date()
    with pytest.raises(ValueError, match="longer than the data"):
        check_holdout(frame, cutoff, cutoff + pd.Timedelta(days=60), 60, time_unit_days=1.0)


def test_missing_inputs_name_the_file(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="train.parquet"):
        run(stage_params(tmp_path), tmp_path, track=False)


def test_unknown_clv_model_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="unknown clv model 'foo'"):
        ClvConfig.from_params({"model": "foo"})


@pytest.mark.parametrize("model", ["pareto_nbd", "mbgnbd"])
def test_other_purchase_models_run_through_the_stage(tree: Path, tmp_path: Path, model: str) -> None:
    root = copy_tree(tree, tmp_path)
    report = run(stage_params(root, f"clv.model={model}", "clv.n_draws=10"), root, track=False)
    assert report["model"] == model and report["fit"]["purchases"]["model"] == model
    predictions = pd.read_parquet(stage_files(root)["predictions"])
    assert np.isfinite(predictions.select_dtypes("number").to_numpy()).all()


def test_without_amounts_only_purchases_are_modelled(tree: Path, tmp_path: Path) -> None:
    root = copy_tree(tree, tmp_path)
    for role in ("train", "eval", "score"):
        target = paths.rebase(paths.FEATURE_FILES[role], root)
        frame = pd.read_parquet(target)
        spend = [c for c in ("monetary_value", "future_revenue") if c in frame.columns]
        write_parquet(frame.assign(**{c: np.nan for c in spend}), target)
    report = run(stage_params(root, "clv.n_draws=10"), root, track=False)
    assert report["spend"]["available"] is False and "no amounts" in report["spend"]["reason"]
    assert report["fit"]["spend"] is None and report["production"]["spend"] is None
    assert "revenue" not in report["btyd"] and "comparison" not in report
    assert report["challenger"]["skipped"].startswith("ML challenger not fitted")
    assert np.isfinite(report["btyd"]["purchases"]["mae"])
    predictions = pd.read_parquet(stage_files(root)["predictions"])
    assert not [c for c in predictions.columns if "clv" in c or "revenue" in c or c == "expected_aov"]
    assert np.isfinite(predictions.select_dtypes("number").to_numpy()).all()
    production = ClvModel.from_dict(json.loads(stage_files(root)["production"].read_text()))
    assert production.spend is None


def test_run_and_registered_version_tell_reviewers_what_ran(staged) -> None:
    from mlflow.tracking import MlflowClient

    info = json.loads(staged["files"]["mlflow"].read_text())
    client = MlflowClient(info["tracking_uri"])
    run = client.get_run(info["run_id"])
    report = staged["report"]
    assert run.info.run_name.startswith(f"train_clv cdnow as_of={report['as_of'][:10]} h={HORIZON}d "
                                        f"{report['model']} cfg=")
    assert "horizon_days" not in run.data.metrics and run.data.params["windows.horizon_days"] == str(HORIZON)
    assert {d.dataset.name for d in run.inputs.dataset_inputs} == {
        "features/train", "features/eval", "features/score", "interim/transactions"}
    version = client.get_model_version_by_alias(info["registered_model"], "champion")
    assert str(version.version) == str(info["registered_version"]) == info["aliases"]["champion"]
    assert version.description.startswith(f"{report['model']} refit on all history to {report['as_of']}")
    assert version.tags["as_of"] == report["as_of"] and float(version.tags["purchases_mae"]) > 0
