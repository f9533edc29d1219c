"""`dvc exp run` with the overrides validated first (nothing written on a mistake) and a dry run that works."""

from __future__ import annotations

import itertools
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

from pipelines import paths
from pipelines.config import VALIDATED, compose, parse_overrides, read_params
from pipelines.config_schema import ConfigError, validate

SET_PARAM = ("-S", "--set-param")
USAGE = "usage: python -m pipelines.exp run [-S key=value ...] [--dry] [other `dvc exp run` options]"


def split_args(args: list[str]) -> tuple[list[str], list[str]]:
    """The Hydra overrides for params.yaml given with -S, and the other arguments."""
    overrides, rest, it = [], [], iter(args)
    for arg in it:
        if arg in SET_PARAM:
            overrides.append(next(it, ""))
        elif arg.startswith("--set-param="):
            overrides.append(arg.split("=", 1)[1])
        elif arg.startswith("-S") and len(arg) > 2:
            overrides.append(arg[2:])
        else:
            rest.append(arg)
    overrides = [o.removeprefix("params.yaml:") for o in overrides]  # DVC's explicit spelling of the Hydra file
    return [o for o in overrides if ":" not in o.split("=", 1)[0]], rest  # other.yaml:key=v is not Hydra's


def settings(overrides: list[str]) -> list[list[str]]:
    """Every combination of a sweep (`k=1,2` / choice / range), as plain override lists."""
    parsed = parse_overrides(overrides)
    options = []
    for override in parsed:
        if override.is_sweep_override():
            key = override.get_key_element()
            options.append([f"{key}={v}" for v in override.sweep_string_iterator()])
        else:
            options.append([override.input_line])
    return [list(combo) for combo in itertools.product(*options)]


def check(overrides: list[str]) -> list[dict[str, Any]]:
    """Compose and validate every setting the overrides ask for (ConfigError on the first bad one)."""
    composed = []
    for setting in settings(overrides):
        params = compose(setting)
        validate(params)
        composed.append(params)
    return composed


def flat(tree: Any, prefix: str = "") -> dict[str, Any]:
    """{'churn.params.num_leaves': 7, ...}."""
    if not isinstance(tree, dict):
        return {prefix: tree}
    out: dict[str, Any] = {}
    for key, value in tree.items():
        out.update(flat(value, f"{prefix}.{key}" if prefix else str(key)))
    return out


def stages_to_run(params: dict[str, Any], status: dict[str, Any]) -> list[tuple[str, str]]:
    """(stage, cmd) in dvc.yaml order that `dvc exp run` would run: changed per `dvc status`, reading a changed
    param, or downstream of one of those (the validate stage's output never changes, so it starts no stage)."""
    current = flat(read_params(paths.PARAMS))
    changed = {k for k, v in flat(params).items() if current.get(k, object()) != v} | (set(current) - set(flat(params)))
    stages = yaml.safe_load((paths.ROOT / "dvc.yaml").read_text(encoding="utf-8"))["stages"]
    running: list[tuple[str, str]] = []
    produced: set[str] = set()

    def name(item: Any) -> str:
        return item if isinstance(item, str) else next(iter(item))

    for stage, spec in stages.items():
        keys = [name(p) for p in spec.get("params", [])]
        reads = any(k == "params.yaml" and changed or any(c == k or c.startswith(k + ".") for c in changed)
                    for k in keys)
        upstream = any(str(d) in produced or any(str(d).startswith(p + "/") for p in produced)
                       for d in spec.get("deps", []))
        if _changed(stage, status) or reads or upstream:
            running.append((stage, spec["cmd"]))
            produced |= {name(o) for o in spec.get("outs", []) + spec.get("metrics", [])} - {str(VALIDATED)}
    return running


def _changed(stage: str, status: dict[str, Any]) -> bool:
    """Whether `dvc status` lists the stage for anything but the validate stage's output (recreated as is)."""
    entries = status.get(stage) or []
    if stage == "validate" or not entries:
        return bool(entries)
    names = {path for entry in entries if isinstance(entry, dict) for group in entry.values()
             if isinstance(group, dict) for path in group}
    return bool(names - {str(VALIDATED)}) or any(not isinstance(entry, dict) for entry in entries)


def dvc() -> str:
    """The dvc next to this interpreter (a venv not on PATH), else the one on PATH."""
    beside = Path(sys.executable).parent / "dvc"
    return str(beside) if beside.exists() else "dvc"


def dvc_status() -> dict[str, Any]:
    """`dvc status --json` (changed stages)."""
    done = subprocess.run([dvc(), "status", "--json"], cwd=paths.ROOT, capture_output=True, text=True)
    if done.returncode != 0:
        raise ConfigError(f"dvc status failed: {done.stderr.strip().splitlines()[-1:]}")
    return json.loads(done.stdout or "{}")


def main(argv: list[str] | None = None) -> int:
    """Validate the -S overrides, then hand the same arguments to `dvc exp run` (or print the dry run)."""
    args = list(sys.argv[1:] if argv is None else argv)
    if args[:1] != ["run"]:
        print(USAGE, file=sys.stderr)
        return 2
    overrides, rest = split_args(args[1:])
    try:
        composed = check(overrides)
        if "--dry" in rest:
            status = dvc_status()
            for i, params in enumerate(composed):
                label = " ".join(settings(overrides)[i]) or "params.yaml"
                plan = stages_to_run(params, status)
                print(f"exp ({label}): params valid; would run {len(plan)} stage(s)")
                for stage, cmd in plan:
                    print(f"  {stage}: {cmd}")
            return 0
    except ConfigError as err:
        print(f"exp: config error: {err}", file=sys.stderr)
        return 2
    print(f"exp: params valid for {len(composed)} setting(s); running dvc exp run", file=sys.stderr)
    return subprocess.call([dvc(), "exp", "run", *args[1:]], cwd=paths.ROOT)


if __name__ == "__main__":
    sys.exit(main())
