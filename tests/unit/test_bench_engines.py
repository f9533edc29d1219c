"""bench/bench_engines.py: which process of a step's tree is the driver, an executor or a worker."""

from __future__ import annotations

import importlib.util
from pathlib import Path

BENCH = Path(__file__).resolve().parents[2] / "bench" / "bench_engines.py"


def load():
    """The bench script as a module (bench/ is not a package)."""
    import sys

    sys.path.insert(0, str(BENCH.parent))
    try:
        spec = importlib.util.spec_from_file_location("bench_engines", BENCH)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(str(BENCH.parent))
    return module


def test_roles_local_cluster_and_local_mode():
    roles = load().roles
    me = 1
    # local-cluster: step 10 -> driver JVM 11 -> executor JVMs 12, 13 -> Python daemon 14 -> worker 15
    procs = {10: (me, "python", 0, 0), 11: (10, "java", 0, 0), 12: (11, "java", 0, 0), 13: (11, "java", 0, 0),
             14: (12, "python", 0, 0), 15: (14, "python", 0, 0)}
    assert roles(procs, me) == {10: "step", 11: "jvm", 12: "executor", 13: "executor", 14: "executor",
                                15: "executor"}
    # local[N]: the Python workers hang under the driver's JVM (no executor JVM); a DuckDB step has no JVM
    procs = {10: (me, "python", 0, 0), 11: (10, "java", 0, 0), 14: (11, "python", 0, 0), 20: (me, "python", 0, 0)}
    assert roles(procs, me) == {10: "step", 11: "jvm", 14: "worker", 20: "step"}
