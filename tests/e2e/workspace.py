"""Temporary git + DVC copies of the repo for the e2e tests, and running commands in them."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

from tests.conftest import ROOT

BIN = Path(sys.executable).parent
LOCAL_STATE = ("dvc.lock", "reports/", "data/", "outputs/", "artifacts/")  # results of local runs: not copied
GIT_IDENTITY = {"GIT_AUTHOR_NAME": "churn-clv test", "GIT_AUTHOR_EMAIL": "test@churn-clv.invalid",
                "GIT_COMMITTER_NAME": "churn-clv test", "GIT_COMMITTER_EMAIL": "test@churn-clv.invalid"}


def run(cmd: list[str] | str, cwd: Path, timeout: float = 900) -> subprocess.CompletedProcess:
    """Run a command (a string: through bash) with the test interpreter's bin/ first on PATH; fail with its output."""
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}", **GIT_IDENTITY}
    env.pop("DVC_ROOT", None)
    for key in [k for k in env if k.startswith("MLFLOW_")]:  # mlflow.set_*_uri in earlier tests export these
        env.pop(key)
    shell = ["bash", "-c", cmd] if isinstance(cmd, str) else cmd
    shown = cmd if isinstance(cmd, str) else " ".join(cmd)
    with subprocess.Popen(shell, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                          start_new_session=True) as proc:  # own process group: a timeout stops the stages too
        try:
            out, err = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            out, err = proc.communicate()
            raise AssertionError(f"{shown} timed out after {timeout:.0f} s (process group killed):\n"
                                 f"{out[-4000:]}\n{err[-4000:]}") from None
    done = subprocess.CompletedProcess(shell, proc.returncode, out, err)
    assert done.returncode == 0, f"{shown} failed:\n{done.stdout[-4000:]}\n{done.stderr[-4000:]}"
    return done


def copy_repo(dest: Path) -> Path:
    """dest: a fresh git + DVC copy of the working tree (tracked and untracked, not ignored, files), one commit."""
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


def reproduce(repo: Path) -> float:
    """`dvc repro` in the copy (seconds it took)."""
    started = time.perf_counter()
    run([str(BIN / "dvc"), "repro"], repo)
    return round(time.perf_counter() - started, 1)
