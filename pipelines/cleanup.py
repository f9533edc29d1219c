"""What a killed run leaves behind, removed by the next run of the same stage.

* temporary files beside outputs (.<name>.<random>.tmp of pipelines/io.atomic_path; the score stage's sinks use
  the same helper, pipelines/io.remove_stale),
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

from pipelines.catalog import DATASETS, Catalog
from pipelines.io import TEMP_SUFFIX, remove_stale, temp_files

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
    """The temporary files left beside these outputs by a killed writer (folders: remove_catalog_leftovers)."""
    return [path for target in map(Path, targets)
            for path in remove_stale(target, keep={t for t in temp_files(target) if t.is_dir()})]


def remove_temp_files_under(folders: Iterable[Path]) -> list[Path]:
    """Every hidden temporary file (.<name>.<random>.tmp) anywhere under these stage-owned output folders."""
    found = [tmp for folder in folders if Path(folder).is_dir() for tmp in Path(folder).rglob(f".*{TEMP_SUFFIX}")]
    for tmp in found:
        tmp.unlink(missing_ok=True)
    return found


# Hidden work folders (prefix + pid) of a stage, relative to the repository root (None: the system temp dir).
FEATURES_SPILL = "features-duckdb-"  # DuckDB spill folders of the feature connections: <prefix><pid>-<hex>
WORK_FOLDERS = {"ingest": [(None, "ingest-duckdb-")],
                "features": [("data/features", ".features-"), (None, FEATURES_SPILL)]}


def remove_catalog_leftovers(target: Path) -> list[Path]:
    """A dead writer's catalog temporaries beside target (.<name>.<pid>-<hex>.tmp/.old, pipelines/catalog.py);
    a .old copy is renamed back when the target itself is missing (killed between the two renames)."""
    found = []
    for path in sorted(target.parent.glob(f".{target.name}.*")) if target.parent.is_dir() else []:
        pid = path.name[len(target.name) + 2:].split("-")[0]
        if not path.name.endswith((".tmp", ".old")) or not pid.isdigit() or alive(int(pid)):
            continue
        if path.name.endswith(".old") and not target.exists():
            os.replace(path, target)
            continue
        shutil.rmtree(path) if path.is_dir() and not path.is_symlink() else path.unlink(missing_ok=True)
        found.append(path)
    return found


def before_stage(stage: str, root: Path | None = None) -> list[Path]:
    """Remove what a killed earlier run of `stage` left beside or inside the catalog datasets it writes (and its
    work folders, in the temp dir too); returns it."""
    cat = Catalog(root)
    removed = []
    for parent, prefix in WORK_FOLDERS.get(stage, []):
        removed += remove_dead_folders(Path(tempfile.gettempdir()) if parent is None else cat.root / parent, prefix)
    for entry in (d for d in DATASETS.values() if d.writer == stage):
        path = cat.path(entry.name)
        removed += remove_catalog_leftovers(path) + remove_temp_files([path])
        if entry.format == "dir":
            removed += remove_temp_files_under([path])
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
