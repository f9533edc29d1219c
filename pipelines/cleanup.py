"""What a killed run leaves behind, removed by the next run of the same stage.

* temporary files beside outputs (.<name>.<random>.tmp of pipelines/io.atomic_path; the score stage's sinks use
  the same helper, pipelines/sinks/files.remove_stale),
* hidden work folders named <prefix><pid>... (ingest's DuckDB spill folder, the features stage's per-cutoff
  parts, a training stage's model staging folder) whose process is gone,
* MLflow runs still RUNNING although the process that started them (tags churn_clv.pid / churn_clv.host) is gone:
  ended as FAILED.
"""

from __future__ import annotations

import os
import shutil
import socket
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from pipelines import paths
from pipelines.sinks.files import TEMP_SUFFIX, remove_stale

PID_TAG, HOST_TAG = "churn_clv.pid", "churn_clv.host"


def alive(pid: int) -> bool:
    """True when a process with this id exists on this machine."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def owner_tag(prefix: str) -> str:
    """A folder-name prefix carrying this process id: <prefix><pid>-."""
    return f"{prefix}{os.getpid()}-"


def remove_dead_folders(parent: Path, prefix: str) -> list[Path]:
    """Remove folders <prefix><pid>[-...] in parent whose process is gone (or that name no process)."""
    removed = []
    for path in sorted(Path(parent).glob(f"{prefix}*")) if Path(parent).is_dir() else []:
        pid = path.name[len(prefix):].split("-")[0]
        if path.is_dir() and not (pid.isdigit() and (int(pid) == os.getpid() or alive(int(pid)))):
            shutil.rmtree(path, ignore_errors=True)
            removed.append(path)
    return removed


def remove_temp_files(targets: Iterable[Path]) -> list[Path]:
    """The temporary files left beside these outputs by a killed writer."""
    return [path for target in targets for path in remove_stale(Path(target))]


def remove_temp_files_under(folders: Iterable[Path]) -> list[Path]:
    """Every hidden temporary file (.<name>.<random>.tmp) anywhere under these stage-owned output folders."""
    found = [tmp for folder in folders if Path(folder).is_dir() for tmp in Path(folder).rglob(f".*{TEMP_SUFFIX}")]
    for tmp in found:
        tmp.unlink(missing_ok=True)
    return found


# Hidden work folders (prefix + pid) and output folders a stage owns alone, relative to the repository root.
WORK_FOLDERS = {"ingest": [(None, "ingest-duckdb-")], "features": [(paths.FEATURES, ".features-")]}
OWNED = {"ingest": [paths.INTERIM], "features": [paths.FEATURES],
         "train_churn": [paths.ARTIFACTS / "churn", paths.PLOTS / "churn"], "train_clv": [paths.ARTIFACTS / "clv"]}
REPORTS = {"ingest": ["ingest.json"], "features": ["features.json"],
           "train_churn": ["churn.json", "churn.md", "churn_table.csv"],
           "train_clv": ["clv.json", *(f"plots/clv_{n}.csv" for n in ("calibration", "tracking", "p_alive",
                                                                       "frequency_recency"))]}


def before_stage(stage: str, root: Path = paths.ROOT) -> list[Path]:
    """Remove what a killed earlier run of `stage` left under root (and in the temp dir); returns it."""
    removed = []
    for parent, prefix in WORK_FOLDERS.get(stage, []):
        removed += remove_dead_folders(tempfile.gettempdir() if parent is None else paths.rebase(parent, root), prefix)
    removed += remove_temp_files_under(paths.rebase(folder, root) for folder in OWNED.get(stage, []))
    removed += remove_temp_files(paths.rebase(paths.REPORTS, root) / name for name in REPORTS.get(stage, []))
    return removed


def run_tags() -> dict[str, str]:
    """Tags naming the process that owns an MLflow run (to end it as FAILED if that process dies)."""
    return {PID_TAG: str(os.getpid()), HOST_TAG: socket.gethostname()}


def end_killed_runs(client: Any, experiment_id: str) -> list[str]:
    """End as FAILED every RUNNING run of the experiment started on this host by a process that is gone."""
    ended = []
    host = socket.gethostname()
    for run in client.search_runs([experiment_id], "attributes.status = 'RUNNING'", max_results=1000):
        pid = run.data.tags.get(PID_TAG, "")
        if run.data.tags.get(HOST_TAG) == host and pid.isdigit() and not alive(int(pid)):
            client.set_terminated(run.info.run_id, status="FAILED")
            ended.append(run.info.run_id)
    return ended
