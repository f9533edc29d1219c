"""Temporary files beside an output: created hidden, published by rename, and cleaned when stale."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from pipelines.io import TEMP_SUFFIX, remove_stale, temp_files

__all__ = ["TEMP_SUFFIX", "fsync_file", "publish", "remove_stale", "temp_beside", "temp_files"]


def temp_beside(target: Path, kind: str = "") -> Path:
    """A new, empty hidden temporary file in target's folder: .<name>.<random>[.<kind>].tmp."""
    target.parent.mkdir(parents=True, exist_ok=True)
    suffix = f".{kind}{TEMP_SUFFIX}" if kind else TEMP_SUFFIX
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=suffix, dir=target.parent)
    os.close(fd)
    return Path(tmp)


def fsync_file(path: Path) -> None:
    """Flush a file's data to disk (before it is renamed into place)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def publish(tmp: Path, target: Path) -> None:
    """Give tmp the usual file permissions and rename it onto target (atomic on one file system)."""
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)  # mkstemp creates 0600
    os.replace(tmp, target)
