"""A model's files and their provenance as one set: staged in a hidden folder, hashed, renamed into place.

A training stage writes the model files into `stage(folder)` (.staging-<pid>-model/<folder name>/ in it),
logs and registers them from there, then `commit` removes the old provenance.json, renames the files into
`folder` and writes the new provenance.json last: {files: {name: sha256}, digest} of the model files. The run
records (RUN_RECORDS: MLflow run id, registered version) are moved with the set but neither hashed nor written
into provenance.json, so the files DVC hashes are the same bytes on every run (a clean `git status` after
`make repro`; .dvcignore excludes the run records); `verify` trusts a run record only when its model_sha256
is the set's digest.
`verify` recomputes the hashes, so scores never name a model other than the files they were computed with:
a set torn by a kill has no provenance, or hashes that do not match, and is refused with one line.
Staging folders of killed runs are removed by the next `stage`.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from pipelines.cleanup import owner_tag, remove_dead_folders
from pipelines.io import write_json

PROVENANCE = "provenance.json"
RUN_RECORDS = ("mlflow_run.json", "mlflow.json")  # per-run (run ids): not part of the set's hashes
STAGING = ".staging-"


def sha256(path: Path) -> str:
    """sha256 of a file's bytes."""
    with open(path, "rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()


def digest(hashes: Mapping[str, str]) -> str:
    """One sha256 over a set of (file name, file hash) pairs."""
    return hashlib.sha256("".join(f"{n}:{h}\n" for n, h in sorted(hashes.items())).encode()).hexdigest()


def hashes(folder: Path, names: Iterable[str] | None = None) -> dict[str, str]:
    """{file name: sha256} of the named files (default: every regular file) directly in folder."""
    chosen = sorted(p.name for p in Path(folder).iterdir() if p.is_file()) if names is None else sorted(names)
    return {name: sha256(Path(folder) / name) for name in chosen}


def stage(folder: Path) -> Path:
    """A fresh, empty staging folder for the next set of `folder` (stale ones of dead processes removed)."""
    folder.mkdir(parents=True, exist_ok=True)
    remove_dead_folders(folder, STAGING)
    outer = folder / f"{owner_tag(STAGING)}model"
    shutil.rmtree(outer, ignore_errors=True)
    path = outer / folder.name  # same base name as the folder: MLflow stores a logged folder under its base name
    path.mkdir(parents=True)
    return path


def commit(staging: Path, folder: Path, mlflow: Mapping[str, Any] | None, replaces: Iterable[str] = ()) -> dict:
    """Move the staged files into folder (old provenance first removed, the new one written last).

    `replaces`: other file names of earlier sets (removed when this set has no such file). Returns the provenance.
    """
    staged = sorted(p.name for p in staging.iterdir() if p.is_file())
    files = hashes(staging, [n for n in staged if n not in RUN_RECORDS])
    record = {"files": files, "digest": digest(files)}
    (folder / PROVENANCE).unlink(missing_ok=True)
    for name in staged:
        os.replace(staging / name, folder / name)
    for name in set(replaces) - set(staged):
        (folder / name).unlink(missing_ok=True)
    write_json(record, folder / PROVENANCE)
    shutil.rmtree(staging.parent if staging.parent.name.startswith(STAGING) else staging, ignore_errors=True)
    return {**record, "mlflow": dict(mlflow) if mlflow else None}


def verify(folder: Path, what: str) -> dict[str, Any]:
    """The provenance of the set in folder after checking every file's hash; ValueError (one line) otherwise."""
    path = Path(folder) / PROVENANCE
    if not path.exists():
        raise ValueError(f"{path}: missing, so the model files in {folder} cannot be trusted (the last {what} "
                         f"run did not finish); rerun {what}")
    record = json.loads(path.read_text(encoding="utf-8"))
    for name, expected in record["files"].items():
        target = Path(folder) / name
        if not target.exists() or sha256(target) != expected:
            raise ValueError(f"{target}: does not match {path} (sha256 {expected[:12]}); the model files were "
                             f"changed after {what} wrote them; rerun {what}")
    record.setdefault("mlflow", None)
    for name in RUN_RECORDS:  # the registration of exactly these files, if this folder holds its record
        run = Path(folder) / name
        if record["mlflow"] is None and run.exists():
            info = json.loads(run.read_text(encoding="utf-8"))
            record["mlflow"] = info if info.get("model_sha256") == record["digest"] else None
    return record


def verify_logged(name: str, version: str | int, inside: str, expected: Mapping[str, str]) -> str:
    """The set's digest after checking that registered version `name`/`version` holds exactly these file hashes
    under `inside` (e.g. 'artifacts/churn'); ValueError (one line) when the registered copy differs."""
    import tempfile

    import mlflow

    uri = f"models:/{name}/{version}"
    with tempfile.TemporaryDirectory(prefix="verify-model-") as tmp:
        local = Path(mlflow.artifacts.download_artifacts(artifact_uri=f"{uri}/{inside}", dst_path=tmp))
        got = {n: sha256(local / n) if (local / n).is_file() else None for n in expected}
    if got != dict(expected):
        wrong = sorted(n for n in expected if got[n] != expected[n])
        raise ValueError(f"{uri}: the registered copy of {', '.join(wrong)} does not match the files the stage "
                         "wrote (sha256); the version was not made champion")
    return digest(expected)
