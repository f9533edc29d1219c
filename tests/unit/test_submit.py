"""pipelines/submit.py (the spark-submit / Databricks entry): workspace, arguments, which conf it fills in."""

from __future__ import annotations

import pytest

from pipelines import submit


def test_workspace_is_the_nearest_folder_with_dvc_yaml(tmp_path):
    (tmp_path / "dvc.yaml").write_text("stages: {}\n")
    inner = tmp_path / "data" / "raw"
    inner.mkdir(parents=True)
    assert submit.workspace(inner) == tmp_path
    assert submit.workspace(inner, str(inner)) == inner.resolve()  # --workspace wins


def test_workspace_falls_back_to_the_checkout(tmp_path):
    assert submit.workspace(tmp_path) == submit.CHECKOUT
    assert (submit.CHECKOUT / "pipelines" / "submit.py").exists()


def test_parse_splits_workspace_stage_and_overrides():
    assert submit.parse(["features", "engine=spark", "windows.as_of=2024-06-30"]) == (
        None, ["features"], ["engine=spark", "windows.as_of=2024-06-30"])
    assert submit.parse(["--workspace", "/w", "score", "engine=spark"]) == ("/w", ["score"], ["engine=spark"])
    assert submit.parse(["--workspace=/w", "ingest,features"]) == ("/w", ["ingest", "features"], [])
    for bad in ([], ["engine=spark"], ["--workspace", "/w"], ["../x"], ["ingest,"]):
        with pytest.raises(ValueError, match="usage: submit.py"):
            submit.parse(bad)


def test_submitted_conf_wins_over_engine_conf():
    wanted = {"spark.sql.shuffle.partitions": "8", "spark.sql.session.timeZone": "UTC", "spark.ui.enabled": False}
    present = {"spark.sql.shuffle.partitions": "400", "spark.master": "yarn"}
    assert submit.missing_conf(wanted, present) == {"spark.sql.session.timeZone": "UTC", "spark.ui.enabled": "false"}


def test_unknown_stage_and_duckdb_engine_are_one_line_errors(capsys, monkeypatch):
    monkeypatch.chdir(submit.CHECKOUT)
    assert submit.main(["features,no_such_stage"]) == 2
    assert capsys.readouterr().err.strip() == (
        "submit: no stage module pipelines.no_such_stage (e.g. ingest, features, train_churn, train_clv, score)")
    assert submit.main(["features", "engine=duckdb"]) == 2
    assert capsys.readouterr().err.strip() == "submit: engine is 'duckdb'; add the override engine=spark"
