"""Stage parameters: params.yaml, or conf/ composed with command-line overrides, validated before any work."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import yaml

from pipelines import paths, progress
from pipelines.config_schema import ConfigError, did_you_mean, validate

VALIDATED = Path("artifacts/params_valid.json")  # the `validate` stage's output (constant content), under the root
QUOTING_HINT = ("quote a value with special characters (; , = : ' [ ] { } or spaces) for Hydra inside shell quotes, "
                "e.g. \"data.delimiter=';'\" or 'data.transactions=\"my file.csv\"'")


def compose(overrides: list[str] | None = None) -> dict[str, Any]:
    """Compose conf/ with Hydra overrides into a plain dict; bad overrides raise ConfigError (one line)."""
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    overrides = list(overrides or [])
    parsed = parse_overrides(overrides)
    try:
        return _hydra_compose(overrides)
    except (HydraException, OmegaConfBaseException) as exc:
        diagnose(parsed)  # raises the precise line when it can name the key or option
        raise ConfigError(f"cannot apply overrides {overrides}: {_first_line(exc)}") from None


def _hydra_compose(overrides: list[str]) -> dict[str, Any]:
    """Hydra's compose API on conf/ (no @hydra.main)."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from omegaconf import OmegaConf

    from pipelines.dvc_inputs import register

    register()  # ${input_dep:...} in conf/config.yaml (DVC's own composition: hydra_plugins/churn_clv_inputs.py)

    with initialize_config_dir(config_dir=str(paths.CONF_DIR), version_base=None):
        cfg = hydra_compose(config_name="config", overrides=overrides)
    return OmegaConf.to_container(cfg, resolve=True)  # type: ignore[return-value]


def _first_line(exc: BaseException) -> str:
    """The first non-empty line of an exception's message."""
    return next((line.strip() for line in str(exc).splitlines() if line.strip()), type(exc).__name__)


def parse_overrides(overrides: list[str]) -> list[Any]:
    """Hydra's parsed overrides; a line naming the override (and how to quote) when one cannot be read."""
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import OverrideParseException

    parser = OverridesParser.create()
    parsed = []
    for text in overrides:
        try:
            parsed.extend(parser.parse_overrides([text]))
        except OverrideParseException as exc:
            raise ConfigError(f"cannot read override {text!r} ({_first_line(exc)}); {QUOTING_HINT}") from None
    return parsed


def groups() -> dict[str, list[str]]:
    """Config groups of conf/ (sub-directories) and their options."""
    return {d.name: sorted(p.stem for p in d.glob("*.yaml")) for d in sorted(paths.CONF_DIR.iterdir()) if d.is_dir()}


def diagnose(parsed: list[Any]) -> None:
    """Raise ConfigError naming the first override whose group option or key does not exist."""
    options = groups()
    choices = [o for o in parsed if o.key_or_group in options and not o.is_delete()]
    for override in choices:
        name, value = override.key_or_group, override.value()
        if isinstance(value, str) and value not in options[name]:
            raise ConfigError(f"{name}={value!r} is not an option{did_you_mean(value, options[name])} "
                              f"(options in conf/{name}/: {', '.join(options[name])})")
    base = _hydra_compose([o.input_line for o in choices])
    for override in parsed:
        if override in choices or override.is_add() or override.is_force_add():
            continue
        node: Any = base
        seen: list[str] = []
        for part in override.key_or_group.split("."):
            if not isinstance(node, dict) or part not in node:
                where = ".".join(seen) or "the top level"
                known = sorted(node) if isinstance(node, dict) else []
                raise ConfigError(f"unknown key {override.key_or_group!r} in override {override.input_line!r}"
                                  f"{did_you_mean(part, known)} (known keys under {where}: {', '.join(known)})")
            node, seen = node[part], [*seen, part]


def load_params(argv: list[str] | None = None, exit_on_error: bool = True) -> dict[str, Any]:
    """params.yaml when no overrides are given, else conf/ composed with them; validated against the schema.

    A bad key or value prints one line on stderr and exits with code 2 (no traceback, nothing written):
    every stage calls this before any work. With exit_on_error=False the ConfigError is raised instead.
    Called from the command line (argv None) with valid params, it also starts the stage's progress heartbeat
    (a line at least every 10 s: pipelines/progress.py).
    """
    overrides = list(sys.argv[1:] if argv is None else argv)
    try:
        params = compose(overrides) if overrides else read_params(paths.PARAMS)
        validate(params)
    except ConfigError as err:
        if not exit_on_error:
            raise
        print(f"{_prog()}: config error: {err}", file=sys.stderr)
        raise SystemExit(2) from None
    if argv is None:
        progress.heartbeat(_prog())
    return params


def read_params(path: Path) -> dict[str, Any]:
    """params.yaml as a dict (ConfigError when missing or not YAML)."""
    try:
        with open(path, encoding="utf-8") as fh:
            params = yaml.safe_load(fh)
    except FileNotFoundError:
        raise ConfigError(f"{path} not found: run `python -m pipelines.config` to write it from conf/") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path} is not valid YAML: {_first_line(exc)}") from None
    return params


def _prog() -> str:
    """The running stage's name (train_churn for `python -m pipelines.train_churn`)."""
    return Path(sys.argv[0]).stem if sys.argv and sys.argv[0] not in ("", "-c") else "config"


def write_params(target: str | None = None) -> None:
    """Write the validated composition of conf/ to params.yaml (what `dvc exp run` does before running)."""
    params = compose([])
    validate(params)
    with open(target or paths.PARAMS, "w", encoding="utf-8") as fh:
        yaml.safe_dump(params, fh, sort_keys=False, allow_unicode=True)


def main(argv: list[str] | None = None) -> int:
    """`python -m pipelines.config` writes params.yaml; `... validate [overrides]` checks it (the DVC stage)."""
    args = list(sys.argv[1:] if argv is None else argv)
    try:
        if args[:1] == ["validate"]:
            load_params(args[1:], exit_on_error=False)
            target = paths.ROOT / VALIDATED
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text('{"params": "valid"}\n', encoding="utf-8")
            print(f"config: params valid ({'overrides ' + ' '.join(args[1:]) if args[1:] else paths.PARAMS.name})")
            return 0
        write_params()
    except ConfigError as err:
        print(f"config: error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
