"""Stage reports without run noise: wall-clock values go to reports/runs/<stage>.json (git-ignored), floats rounded.

Tracked files (reports/*.json, dvc.lock) must come out identical from every `dvc repro` of the same commit, so
durations, timestamps and run ids are split off into an untracked file, and floats are rounded to SIGNIFICANT
digits (sums taken in a different order differ around 1e-15).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from pipelines.io import write_json

RUNS_DIR = Path("reports/runs")
VOLATILE = frozenset({"seconds", "timings", "scored_at", "started_at", "finished_at", "run_id", "elapsed_s"})
SIGNIFICANT = 10


def stable_float(value: float) -> float:
    """value rounded to SIGNIFICANT significant digits (non-finite values unchanged)."""
    if value == 0 or not math.isfinite(value):
        return value
    return round(value, SIGNIFICANT - 1 - math.floor(math.log10(abs(value))))


def split_volatile(tree: Any, prefix: str = "") -> tuple[Any, dict[str, Any]]:
    """(tree without VOLATILE keys and with stable floats, {dotted.path: removed value})."""
    removed: dict[str, Any] = {}
    if isinstance(tree, dict):
        kept = {}
        for key, value in tree.items():
            path = f"{prefix}{key}"
            if key in VOLATILE:
                removed[path] = value
                continue
            kept[key], inner = split_volatile(value, f"{path}.")
            removed.update(inner)
        return kept, removed
    if isinstance(tree, list):
        items = []
        for i, value in enumerate(tree):
            item, inner = split_volatile(value, f"{prefix}{i}.")
            items.append(item)
            removed.update(inner)
        return items, removed
    if isinstance(tree, float):
        return stable_float(tree), removed
    return tree, removed


def write_report(report: dict[str, Any], target: Path, stage: str) -> dict[str, Any]:
    """Write the tracked report to target and its wall-clock values to runs/<stage>.json beside it."""
    tracked, volatile = split_volatile(report)
    write_json(tracked, Path(target))
    write_json(volatile, Path(target).parent / RUNS_DIR.name / f"{stage}.json")
    return tracked
