"""Temporary files beside an output: created hidden, published by rename, and cleaned when stale."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

TEMP_SUFFIX = ".tmp"


def temp_beside(target: Path, kind: str = "") -> Path:
    """A new, empty hidden temporary file in target's folder: .<name>.<random>[.<kind>].tmp."""
    target.parent.mkdir(parents=True, exist_ok=True)
    suffix = f".{kind}{TEMP_SUFFIX}" if kind else TEMP_SUFFIX
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=suffix, dir=target.parent)
    os.close(fd)
    return Path(tmp)


def temp_files(target: Path) -> list[Path]:
    """Every temporary file of target that exists now (ours or left by a killed run)."""
    return sorted(target.parent.glob(f".{target.name}.*{TEMP_SUFFIX}"))


def remove_stale(target: Path, keep: set[Path] | frozenset[Path] = frozenset()) -> list[Path]:
    """Delete target's temporary files except `keep`; returns the deleted paths."""
    removed = []
    for path in temp_files(target):
        if path not in keep:
            path.unlink(missing_ok=True)
            removed.append(path)
    return removed


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
