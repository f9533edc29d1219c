"""The `input_dep` resolver: the files ingest reads, as dvc.yaml dependency paths (unset inputs -> a placeholder)."""

from __future__ import annotations

from typing import Any

from omegaconf import OmegaConf

PLACEHOLDER = "conf/data/no_input"  # a tracked, never-changing file: the dependency of an input that is not set


def input_dep(value: Any) -> str:
    """A configured input path as a DVC dependency: itself, or PLACEHOLDER when it is null or empty."""
    return PLACEHOLDER if value is None or str(value).strip() == "" else str(value)


def register() -> None:
    """Register `${input_dep:...}` with OmegaConf (idempotent): conf/config.yaml's `inputs` block uses it."""
    if not OmegaConf.has_resolver("input_dep"):
        OmegaConf.register_new_resolver("input_dep", input_dep)
