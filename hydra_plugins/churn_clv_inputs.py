"""Registers the `input_dep` resolver when `dvc exp run -S` composes conf/ (DVC imports hydra_plugins.* at the root)."""

from pipelines.dvc_inputs import register

register()
