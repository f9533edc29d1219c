"""pipelines.tune: a 2-trial Optuna search on a tiny synthetic frame, nested MLflow runs, -S overrides."""

from __future__ import annotations

import pytest

from pipelines import tune
from tests.conftest import compose_params
from tests.unit.test_churn_frames import CUTOFFS, churn_frame, stacked

pytest.importorskip("optuna")

FAST = [
    "churn.params.num_boost_round=40",
    "churn.params.early_stopping_rounds=5",
    "churn.prior=none",
]


def test_two_trials_log_nested_runs_and_print_dvc_overrides(tmp_path) -> None:
    import mlflow

    params = compose_params([f"mlflow.tracking_uri=sqlite:///{(tmp_path / 'mlflow.db').as_posix()}", *FAST])
    summary = tune.tune(stacked(CUTOFFS[:2], n=300), params, n_trials=2, seed=0, track=True)
    assert len(summary["trials"]) == 2 and set(summary["best_params"]) == {
        "learning_rate", "num_leaves", "min_child_samples", "feature_fraction", "bagging_fraction", "lambda_l2"
    }
    best = min(t[tune.OBJECTIVE] for t in summary["trials"])
    assert summary["best"][tune.OBJECTIVE] == best
    assert all(o.startswith("-S 'churn.params.") and o.endswith("'") for o in summary["overrides"])
    runs = mlflow.search_runs(experiment_names=[params["mlflow"]["experiment_name"]], output_format="list")
    parent = [r for r in runs if r.info.run_id == summary["mlflow_run_id"]]
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == summary["mlflow_run_id"]]
    assert len(parent) == 1 and len(children) == 2
    assert all(tune.OBJECTIVE in r.data.metrics for r in children)


def test_fixed_mode_frame_is_tuned_on_grouped_cross_validation() -> None:
    params = compose_params(FAST)
    summary = tune.tune(churn_frame(400), params, n_trials=2, seed=1, track=False)
    assert summary["mlflow_run_id"] is None and len(summary["trials"]) == 2
    assert summary["best"]["validation_rows"] == 400  # every row scored out of fold


def test_overrides_are_formatted_for_dvc_exp_run() -> None:
    assert tune.dvc_overrides({"learning_rate": 0.071234, "num_leaves": 9}) == [
        "-S 'churn.params.learning_rate=0.07123'",
        "-S 'churn.params.num_leaves=9'",
    ]


def test_search_never_reads_the_evaluation_table(tmp_path, monkeypatch) -> None:
    opened = []
    real = tune.pd.read_parquet
    monkeypatch.setattr(tune.pd, "read_parquet", lambda path, *a, **k: opened.append(str(path)) or real(path, *a, **k))
    path = tmp_path / "data" / "features" / "train.parquet"
    path.parent.mkdir(parents=True)
    stacked(CUTOFFS[:2], n=200).to_parquet(path, index=False)
    (tmp_path / "data" / "features" / "eval.parquet").write_text("not parquet")
    frame = tune.read_training(tmp_path)
    assert len(frame) == 400 and opened == [str(path)]
