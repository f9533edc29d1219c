"""Stage parameters: params.yaml, or conf/ composed with command-line overrides."""

from __future__ import annotations

import sys
from typing import Any

import yaml

from pipelines import paths


def compose(overrides: list[str] | None = None) -> dict[str, Any]:
    """Compose conf/ with Hydra overrides into a plain dict (no @hydra.main)."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from omegaconf import OmegaConf

    with initialize_config_dir(config_dir=str(paths.CONF_DIR), version_base=None):
        cfg = hydra_compose(config_name="config", overrides=list(overrides or []))
    return OmegaConf.to_container(cfg, resolve=True)  # type: ignore[return-value]


def load_params(argv: list[str] | None = None) -> dict[str, Any]:
    """params.yaml when no overrides are given, else conf/ composed with them."""
    overrides = list(sys.argv[1:] if argv is None else argv)
    if overrides:
        return compose(overrides)
    with open(paths.PARAMS, encoding="utf-8") as fh:
        return yaml.safe_load(fh)


def write_params(target: str | None = None) -> None:
    """Write the composition of conf/ to params.yaml (what `dvc exp run` does before running)."""
    with open(target or paths.PARAMS, "w", encoding="utf-8") as fh:
        yaml.safe_dump(compose([]), fh, sort_keys=False, allow_unicode=True)


if __name__ == "__main__":
    write_params()
