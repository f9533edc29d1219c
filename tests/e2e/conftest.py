"""The CDNOW `dvc repro` workspace (every default setting), run once per worker and read by test_dvc_repro.py,
test_churn_stage.py and test_clv_stage.py (tests/conftest.py keeps the three modules in one xdist worker)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.e2e.workspace import copy_repo, reproduce


@dataclass(frozen=True)
class Repro:
    """A repo copy after `dvc repro` and the seconds the repro took."""

    root: Path
    seconds: float


@pytest.fixture(scope="session")
def cdnow_repro(tmp_path_factory: pytest.TempPathFactory) -> Repro:
    """`dvc repro` on CDNOW in a fresh copy of the repo. Read-only for its users: a test that changes files
    restores them or works on a copy of its own."""
    root = copy_repo(tmp_path_factory.mktemp("repo"))
    return Repro(root, reproduce(root))
