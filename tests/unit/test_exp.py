"""pipelines.exp: -S overrides checked before `dvc exp run`, sweeps expanded, a dry run that needs no data."""

from __future__ import annotations

import pytest

from pipelines import exp, paths
from pipelines.config import compose, read_params
from pipelines.config_schema import ConfigError


def test_split_args_takes_every_spelling_of_set_param() -> None:
    overrides, rest = exp.split_args(["-S", "a.b=1", "--set-param", "c=2", "--set-param=d=3", "-Se=4", "--queue",
                                      "-S", "other.yaml:x=1", "-n", "name", "-S", "params.yaml:f=C:/x"])
    assert overrides == ["a.b=1", "c=2", "d=3", "e=4", "f=C:/x"]
    assert rest == ["--queue", "-n", "name"]


def test_sweeps_expand_to_every_setting() -> None:
    assert exp.settings(["churn.params.num_leaves=15,31", "data=synthetic"]) == [
        ["churn.params.num_leaves=15", "data=synthetic"], ["churn.params.num_leaves=31", "data=synthetic"]]


def test_a_bad_value_inside_a_sweep_is_refused() -> None:
    with pytest.raises(ConfigError, match="churn.params.num_leaves='abc' is not allowed"):
        exp.check(["churn.params.num_leaves=15,abc"])


def test_main_refuses_before_dvc_runs(capsys: pytest.CaptureFixture) -> None:
    assert exp.main(["run", "-S", "churn.parms.num_leaves=3"]) == 2
    assert "did you mean 'params'?" in capsys.readouterr().err


def test_dry_run_lists_the_stages_a_param_reaches() -> None:
    plan = exp.stages_to_run(compose(["churn.params.num_leaves=15"]), status={})
    stages = [stage for stage, _ in plan]
    assert stages[0] == "validate" and {"train_churn", "score", "report"} <= set(stages)
    assert not {"ingest", "features", "train_clv"} & set(stages)
    deleted_marker = {"ingest": [{"changed deps": {"artifacts/params_valid.json": "deleted"}}]}
    assert [stage for stage, _ in exp.stages_to_run(read_params(paths.PARAMS), deleted_marker)] == []
