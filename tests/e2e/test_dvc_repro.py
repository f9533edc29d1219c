"""End to end: `dvc repro` and `dvc exp run -S data=synthetic` in a fresh temporary copy of the repo."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from tests.conftest import ROOT, record_panel_row
from tests.e2e import test_panel as panel

pytestmark = pytest.mark.slow
BIN = Path(sys.executable).parent
LOCAL_STATE = ("dvc.lock", "reports/", "data/", "outputs/", "artifacts/")  # results of local runs: not copied
GIT_IDENTITY = {"GIT_AUTHOR_NAME": "churn-clv test", "GIT_AUTHOR_EMAIL": "test@churn-clv.invalid",
                "GIT_COMMITTER_NAME": "churn-clv test", "GIT_COMMITTER_EMAIL": "test@churn-clv.invalid"}


def run(cmd: list[str], cwd: Path) -> subprocess.CompletedProcess:
    """Run a command with the test interpreter's bin/ first on PATH; fail with its output."""
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}", **GIT_IDENTITY}
    env.pop("DVC_ROOT", None)
    done = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, f"{' '.join(cmd)} failed:\n{done.stdout[-4000:]}\n{done.stderr[-4000:]}"
    return done


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh git + DVC copy of the working tree (tracked and untracked, not ignored, files)."""
    dest = tmp_path_factory.mktemp("repo")
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                            cwd=ROOT, capture_output=True, text=True, check=True).stdout.split("\0")
    for rel in filter(None, listed):
        if (ROOT / rel).is_file() and not rel.startswith(LOCAL_STATE):
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / rel, dest / rel)
    run(["git", "init", "-q"], dest)
    run(["git", "config", "user.email", GIT_IDENTITY["GIT_AUTHOR_EMAIL"]], dest)
    run(["git", "config", "user.name", GIT_IDENTITY["GIT_AUTHOR_NAME"]], dest)
    run(["git", "add", "-A"], dest)
    run(["git", "commit", "-qm", "copy"], dest)
    return dest


def test_dvc_repro_on_cdnow(repo: Path, request: pytest.FixtureRequest) -> None:
    started = time.perf_counter()
    run([str(BIN / "dvc"), "repro"], repo)
    ingest = json.loads((repo / "reports/ingest.json").read_text())
    assert ingest["transactions"]["rows_read"] == 69_659
    score = pd.read_parquet(repo / "data/features/score.parquet")
    assert len(score) == 23_570 and score["customer_id"].is_unique
    evaluation = pd.read_parquet(repo / "data/features/eval.parquet")
    assert str(evaluation["cutoff"].iloc[0])[:10] == "1997-12-31"
    assert evaluation["churned"].mean() == pytest.approx(0.7720, abs=5e-4)  # majority class, REFERENCE.md
    scored = json.loads((repo / "reports/score.json").read_text())
    assert scored["rows_in"] == scored["rows_out"] == 23_570 and scored["as_of"] == "1998-06-30"
    csv = pd.read_csv(repo / "outputs/customer_scores.csv", dtype={"customer_id": str})
    assert len(csv) == 23_570 and csv["customer_id"].is_unique
    assert csv.drop(columns=[c for c in csv.columns if c.startswith("reason_")]).notna().all().all()
    assert len(pd.read_parquet(repo / "outputs/customer_scores.parquet")) == 23_570
    assert (repo / "outputs/warehouse.duckdb").stat().st_size > 0
    assert "Cohort" in (repo / "reports/index.html").read_text(encoding="utf-8")
    status = run([str(BIN / "dvc"), "status"], repo).stdout
    assert "up to date" in status.lower()
    # the data panel's member "cdnow" (default settings): the same checks as every other member
    member = panel.Run(panel.Member("cdnow (dvc repro)", ()), repo, {"score": scored},
                       seconds=round(time.perf_counter() - started, 1))
    record_panel_row(request.config, panel.summary_row(member))
    for check in (panel.check_completes, panel.check_clv_selection, panel.check_champion, panel.check_out_of_time):
        check(member)


def test_dvc_exp_run_synthetic(repo: Path) -> None:
    run([str(BIN / "dvc"), "exp", "run", "-S", "data=synthetic", "-S", "data.n_customers=3000"], repo)
    features = json.loads((repo / "reports/features.json").read_text())
    assert features["cutoffs"][-1]["customers"] > 1000
    score = pd.read_parquet(repo / "data/features/score.parquet")
    assert score["page_view_90d"].sum() > 0  # behavioural events reached the features
