"""The committed params.yaml is exactly the Hydra composition of conf/ (what `dvc repro` runs with)."""

from __future__ import annotations

import yaml

from tests.conftest import ROOT, compose_params


def test_params_yaml_equals_composed_conf() -> None:
    committed = yaml.safe_load((ROOT / "params.yaml").read_text(encoding="utf-8"))
    assert committed == compose_params(), "params.yaml is stale: run `make params` and commit it"


def test_overrides_compose(params: dict) -> None:
    synthetic = compose_params(["data=synthetic", "windows.horizon_days=90"])
    assert synthetic["data"]["source"] == "synthetic"
    assert synthetic["windows"]["horizon_days"] == 90
    assert params["data"]["source"] == "cdnow"
