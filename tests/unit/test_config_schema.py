"""The typed params schema: every conf/ key is known, bad keys and values give one line, overrides are checked."""

from __future__ import annotations

import copy
import sys

import pytest
import yaml

from pipelines import config, config_schema
from pipelines.config_schema import ConfigError, validate
from tests.conftest import ROOT, compose_params


@pytest.fixture(scope="module")
def committed() -> dict:
    """params.yaml as committed (the composed default config)."""
    return yaml.safe_load((ROOT / "params.yaml").read_text(encoding="utf-8"))


def _with(params: dict, dotted: str, value: object) -> dict:
    """A deep copy of params with one key set."""
    out = copy.deepcopy(params)
    *parents, last = dotted.split(".")
    node = out
    for part in parents:
        node = node.setdefault(part, {})
    node[last] = value
    return out


def test_every_key_of_the_default_config_is_in_the_schema(committed: dict) -> None:
    validate(committed)


@pytest.mark.parametrize("group", ["data", "features", "churn", "clv", "scoring"])
def test_every_option_of_every_group_is_in_the_schema(group: str) -> None:
    for path in sorted((ROOT / "conf" / group).glob("*.yaml")):
        validate(compose_params([f"{group}={path.stem}"]))


@pytest.mark.parametrize(("key", "value", "expected"), [
    ("churn.parms", {"num_leaves": 3}, "unknown key 'churn.parms'; did you mean 'params'?"),
    ("churn.params.num_leaves", "abc", "churn.params.num_leaves='abc' is not allowed: "
                                       "expected an integer in [2, 131072]"),
    ("churn.calibration", "sigmoid", "churn.calibration='sigmoid' is not allowed: "
                                     "expected 'platt', 'isotonic' or 'none'"),
    ("windows.as_of", "1998-13-01", "windows.as_of='1998-13-01' is not allowed: expected a date YYYY-MM-DD"),
    ("windows.horizon_days", True, "windows.horizon_days=True is not allowed: expected an integer >= 1"),
    ("clv.model", "bgbd", "clv.model='bgbd' is not allowed: "
                          "expected 'auto', 'bgnbd', 'mbgnbd', 'pareto_nbd' or 'bgbb'"),
    ("featurs", {}, "unknown key 'featurs'; did you mean 'features'?"),
    ("data.timezone", "Mars/Olympus", "data.timezone='Mars/Olympus' is not allowed: expected an IANA time zone"),
    ("scoring.actions", [{"name": "a", "when": {"x": {"mn": 1}}, "en": "a", "zh": "b"}],
     "scoring.actions[0].when.x.mn=1 is not allowed: expected 'min', 'max' or 'in'"),
])
def test_bad_keys_and_values_give_one_line(committed: dict, key: str, value: object, expected: str) -> None:
    with pytest.raises(ConfigError) as caught:
        validate(_with(committed, key, value))
    message = str(caught.value)
    assert message.startswith(expected) and "\n" not in message


def test_risk_bands_must_cover_every_probability(committed: dict) -> None:
    with pytest.raises(ConfigError, match=r"^scoring: risk band upper bounds must increase .* got \[0.5\]$"):
        validate(_with(committed, "scoring.risk_bands", [{"name": "a", "upper": 0.5, "en": "a", "zh": "b"}]))


def test_added_lightgbm_keys_must_be_lightgbm_parameters(committed: dict) -> None:
    validate(_with(committed, "churn.params.max_bin", 63))
    with pytest.raises(ConfigError, match="unknown LightGBM parameter 'num_leave'; did you mean 'num_leaves'"):
        validate(_with(committed, "churn.params.num_leave", 3))


def test_static_allowed_lists_match_the_registries() -> None:
    from features.segments import LOCALES
    from features.synthetic import REGIMES
    from models.clv import MODELS
    from models.clv.challenger import CHAMPION_METRICS
    from models.clv.selection import METRICS
    from pipelines.sources import ENCODINGS

    assert config_schema.CLV_MODELS == tuple(MODELS)
    assert config_schema.REGIMES == tuple(REGIMES)
    assert config_schema.LOCALES == tuple(LOCALES)
    assert config_schema.SELECTION_METRICS == tuple(METRICS)
    assert config_schema.CLV_CHAMPION_METRICS == tuple(CHAMPION_METRICS)
    assert config_schema.ENCODINGS == tuple(ENCODINGS)


@pytest.mark.parametrize(("override", "expected"), [
    ("churn.parms.num_leaves=3", "unknown key 'churn.parms.num_leaves' in override 'churn.parms.num_leaves=3'; "
                                 "did you mean 'params'?"),
    ("data=synthetc", "data='synthetc' is not an option; did you mean 'synthetic'?"),
    ("data.delimiter=;", "cannot read override 'data.delimiter=;'"),
])
def test_override_mistakes_name_the_override(override: str, expected: str) -> None:
    with pytest.raises(ConfigError) as caught:
        config.compose([override])
    assert str(caught.value).startswith(expected)


def test_quoted_special_characters_compose() -> None:
    assert config.compose(["data=files", "data.delimiter=';'"])["data"]["delimiter"] == ";"


def test_load_params_exits_2_with_one_line(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture) -> None:
    monkeypatch.setattr(sys, "argv", [str(ROOT / "pipelines" / "train_churn.py")])
    with pytest.raises(SystemExit) as caught:
        config.load_params(["churn.params.num_leaves=abc"])
    assert caught.value.code == 2
    assert capsys.readouterr().err == ("train_churn: config error: churn.params.num_leaves='abc' is not allowed: "
                                       "expected an integer in [2, 131072]\n")


def test_validate_stage_command_exits_2_with_one_line(capsys: pytest.CaptureFixture) -> None:
    assert config.main(["validate", "churn.params.num_leaves=abc"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("config: error: churn.params.num_leaves='abc' is not allowed")


def test_every_stage_with_params_waits_for_the_validate_stage() -> None:
    """DVC removes a stage's outputs before running it: bad params must stop the DAG at `validate` first."""
    stages = yaml.safe_load((ROOT / "dvc.yaml").read_text(encoding="utf-8"))["stages"]
    validate_stage = stages["validate"]
    assert validate_stage["cmd"] == "python -m pipelines.config validate"
    assert validate_stage["params"] == [{"params.yaml": None}]  # the whole file
    marker = str(config.VALIDATED)
    assert [next(iter(o)) if isinstance(o, dict) else o for o in validate_stage["outs"]] == [marker]
    for name, stage in stages.items():
        if name != "validate" and stage.get("params"):
            assert marker in stage["deps"], f"stage {name} reads params but does not depend on {marker}"
