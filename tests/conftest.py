"""Shared fixtures: Hydra-composed params and tiny contract-shaped frames; the data panel's summary table."""

from __future__ import annotations

import json
import os
import warnings
from importlib import resources
from pathlib import Path

import pandas as pd
import pytest
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

ROOT = Path(__file__).resolve().parents[1]

# One OpenMP/BLAS thread per test process. Two xdist workers share two cores, and LightGBM's OpenMP threads spin
# waiting for a peer that the other worker holds off the core. Set in the xdist controller before it starts the
# workers, so they and the stages they start (dvc repro, dvc exp run) have it before numpy or lightgbm load (with
# -n 0 it reaches lightgbm, imported later). A 15,000 x 90 booster, 300 rounds, on a busy box: 2.6 CPU s with one
# thread, 29-32 CPU s with two, same predictions (deterministic=True). A value set in the environment is kept.
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

warnings.filterwarnings("ignore", module="lifetimes")


def compose_params(overrides: list[str] | None = None) -> dict:
    """conf/ composed through Hydra's compose API, as a plain dict."""
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base=None):
        cfg = compose(config_name="config", overrides=overrides or [])
    return OmegaConf.to_container(cfg, resolve=True)


@pytest.fixture
def params() -> dict:
    """The default composed configuration."""
    return compose_params()


def tx_frame(rows: list[tuple]) -> pd.DataFrame:
    """Transactions in the contract shape from (customer_id, ts, amount[, channel, category]) tuples."""
    full = [(*r, *([None] * (5 - len(r)))) for r in rows]
    df = pd.DataFrame(full, columns=["customer_id", "ts", "amount", "channel", "category"])
    df["ts"] = pd.to_datetime(df["ts"], utc=True, format="ISO8601")
    df["amount"] = df["amount"].astype(float)
    df["order_id"] = None
    df["quantity"] = 1.0
    return df[["customer_id", "ts", "amount", "order_id", "quantity", "channel", "category"]]


def event_frame(rows: list[tuple]) -> pd.DataFrame:
    """Events in the contract shape from (customer_id, ts, event_type[, value]) tuples."""
    full = [(*r, *([None] * (4 - len(r)))) for r in rows]
    df = pd.DataFrame(full, columns=["customer_id", "ts", "event_type", "value"])
    df["ts"] = pd.to_datetime(df["ts"], utc=True, format="ISO8601")
    df["value"] = df["value"].astype(float)
    df["channel"] = None
    df["session_id"] = None
    return df[["customer_id", "ts", "event_type", "channel", "session_id", "value"]]


def cdnow_summary_rfm() -> pd.DataFrame:
    """lifetimes' CDNOW sample summary (cent-rounded mean repeat spend) in our RFM shape, in weeks."""
    path = resources.files("lifetimes").joinpath("datasets", "cdnow_customers_summary_with_transactions.csv")
    df = pd.read_csv(str(path))
    return pd.DataFrame({"customer_id": df["ID"].astype(str), "frequency": df["x"].astype(float),
                         "recency": df["t_x"], "T": df["T"], "monetary_value": df["zbar"]})


def load_registered(info: dict) -> object:
    """The pyfunc a stage registered (its mlflow JSON record), the global tracking URI restored afterwards."""
    import mlflow

    before = mlflow.get_tracking_uri()
    mlflow.set_tracking_uri(info["tracking_uri"])
    try:
        return mlflow.pyfunc.load_model(f"models:/{info['registered_model']}/{info['registered_version']}")
    finally:
        mlflow.set_tracking_uri(before)


# ---------------------------------------------------------------- data panel summary (tests/e2e/test_panel.py)
PANEL_ROWS = pytest.StashKey[list]()
PANEL_SUMMARY = "panel_summary.md"


def record_panel_row(config: pytest.Config, row: dict) -> None:
    """Keep one panel member's summary row for the end-of-session table."""
    config.stash.setdefault(PANEL_ROWS, []).append(row)


def panel_table(rows: list[dict]) -> str:
    """The panel rows as a Markdown table (columns of the first row), ordered by data set."""
    rows = sorted(rows, key=lambda r: str(r.get("data set")))
    header = list(rows[0])
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(r.get(k, "")).replace("|", "/") for k in header) + " |" for r in rows]
    return "\n".join(lines)


def pytest_sessionfinish(session: pytest.Session) -> None:
    """In an xdist worker: hand the panel rows to the controller."""
    workeroutput = getattr(session.config, "workeroutput", None)
    if workeroutput is not None:
        workeroutput["panel_rows"] = json.dumps(session.config.stash.get(PANEL_ROWS, []))


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node, error) -> None:  # noqa: ANN001 - xdist hook
    """In the xdist controller: collect a finished worker's panel rows."""
    rows = json.loads(getattr(node, "workeroutput", {}).get("panel_rows", "[]"))
    node.config.stash.setdefault(PANEL_ROWS, []).extend(rows)


def pytest_terminal_summary(terminalreporter, config: pytest.Config) -> None:  # noqa: ANN001
    """Print the panel table and write it to <basetemp>/panel_summary.md (never into the repo)."""
    rows = config.stash.get(PANEL_ROWS, [])
    if not rows or getattr(config, "workeroutput", None) is not None:
        return
    table = panel_table(rows)
    target = config._tmp_path_factory.getbasetemp() / PANEL_SUMMARY  # noqa: SLF001 - pytest's own tmp factory
    target.write_text(table + "\n", encoding="utf-8")
    terminalreporter.write_sep("=", "data panel")
    terminalreporter.write_line(table)
    terminalreporter.write_line(f"(written to {target})")


# ---------------------------------------------------------------- xdist work units (pyproject: -n 2 --dist loadscope)
# loadscope runs a work unit (a module, or a test class) in one worker. Regrouped here: every Spark test file is
# one unit (one JVM for the session, not one per worker); the stage e2e modules read the CDNOW `dvc repro`
# workspace (tests/e2e/conftest.py) and join its unit (one repro, not one per worker); the repro module's
# `dvc exp run` needs no repro and is a unit of its own (it can run beside the repro). Longest first: the repro
# unit, then the other e2e units and Spark, then the rest in collection order (short units fill the end evenly).
SPARK_UNIT = "spark"
CDNOW_REPRO_UNIT = "tests/e2e/cdnow-repro"
CDNOW_REPRO_MODULES = ("tests/e2e/test_dvc_repro.py", "tests/e2e/test_churn_stage.py", "tests/e2e/test_clv_stage.py")
OWN_UNITS = ("tests/e2e/test_dvc_repro.py::test_dvc_exp_run_synthetic",)


def work_unit(nodeid: str) -> str | None:
    """The regrouped work unit of a test id, None for loadscope's own (its module, or its class)."""
    module = nodeid.split("::", 1)[0]
    if module.rsplit("/", 1)[-1].startswith("test_spark_"):
        return SPARK_UNIT
    if nodeid.split("[", 1)[0] in OWN_UNITS:
        return nodeid
    return CDNOW_REPRO_UNIT if module in CDNOW_REPRO_MODULES else None


def unit_rank(unit: str) -> int:
    """Order in which work units start: 0 first (long units early, so the two workers end together)."""
    if unit == CDNOW_REPRO_UNIT:
        return 0
    return 1 if unit.startswith("tests/e2e/") or unit == SPARK_UNIT else 2


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log):  # noqa: ANN001, ANN201 - xdist hook
    """--dist loadscope with the work units of `work_unit` (other modes: xdist's own scheduler)."""
    if config.getoption("dist") != "loadscope":
        return None
    from xdist.scheduler import LoadScopeScheduling

    class Scheduling(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return work_unit(nodeid) or super()._split_scope(nodeid)

        def _assign_work_unit(self, node) -> None:  # noqa: ANN001 - xdist WorkerController
            first = min(self.workqueue, key=unit_rank)  # the first of the lowest rank: collection order within
            self.workqueue.move_to_end(first, last=False)
            super()._assign_work_unit(node)

    return Scheduling(config, log)


# ---------------------------------------------------------------- Spark (engine=spark), one session per worker
@pytest.fixture(scope="session")
def spark():
    """A local SparkSession shared by every test of this xdist worker (JVM start-up ~10 s, paid once)."""
    from pipelines.spark import session

    engine = compose_params(["engine=spark"])["engine"]
    engine["spark"]["master"] = "local[2]"
    engine["spark"]["conf"]["spark.sql.shuffle.partitions"] = "2"  # tiny test tables: fewer, cheaper tasks
    # tiny queries: the C1 JIT only and a serial GC halve the JVM's CPU (start 23.5 -> 11.1 s, a small SQL/Arrow
    # workload 54 -> 26 s, measured by H6 with /proc/<jvm pid>/stat); results do not depend on the JIT
    engine["spark"]["conf"]["spark.driver.extraJavaOptions"] = "-XX:TieredStopAtLevel=1 -XX:+UseSerialGC"
    spark = session(engine)
    yield spark
    spark.stop()
