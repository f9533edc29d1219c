"""A throwaway PostgreSQL server for tests: initdb in a temporary folder, a Unix socket only, removed after.

Used by tests/e2e/test_postgres_sink.py through `server()`. When the server binaries are missing or do
not start, the tests are skipped with the exact reason; on CI (environment variable CI set) they fail
instead, because .ci/system-packages installs PostgreSQL.
"""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

SERVER_USER = "postgres"  # initdb/postgres refuse to run as root


def bin_dir() -> Path | None:
    """The newest PostgreSQL bin folder holding initdb and pg_ctl (Debian layout first, then PATH)."""
    candidates = sorted(Path("/usr/lib/postgresql").glob("*/bin"), key=lambda p: int(p.parent.name), reverse=True) \
        if Path("/usr/lib/postgresql").is_dir() else []
    which = shutil.which("pg_ctl")
    candidates += [Path(which).parent] if which else []
    return next((d for d in candidates if (d / "initdb").exists() and (d / "pg_ctl").exists()), None)


def unavailable(reason: str) -> None:
    """Skip (fail on CI) with the reason the server cannot run."""
    message = f"PostgreSQL tests need a local server: {reason}"
    if os.environ.get("CI"):
        pytest.fail(message + " (CI installs PostgreSQL through .ci/system-packages, so this is an error)")
    pytest.skip(message)


def free_port() -> int:
    """A TCP port number nobody listens on (names the Unix socket file)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def run(cmd: list[str], as_user: list[str]) -> subprocess.CompletedProcess:
    """Run a server command (as the server user when we are root), capturing its output."""
    return subprocess.run([*as_user, *cmd], capture_output=True, text=True, timeout=120, check=False)


@contextmanager
def server() -> Iterator[str]:
    """Start a fresh server; yield the SQLAlchemy URL of its `postgres` database; stop and delete it after."""
    bindir = bin_dir()
    if bindir is None:
        unavailable("initdb/pg_ctl not found in /usr/lib/postgresql/*/bin or on PATH (apt-get install postgresql)")
    as_user: list[str] = []
    base = Path(tempfile.mkdtemp(prefix="pg-"))
    if os.geteuid() == 0:
        try:
            user = pwd.getpwnam(SERVER_USER)
        except KeyError:
            shutil.rmtree(base)
            unavailable(f"running as root and there is no {SERVER_USER!r} OS user to run initdb/postgres as")
        if not shutil.which("runuser"):
            shutil.rmtree(base)
            unavailable("running as root and `runuser` is missing")
        os.chown(base, user.pw_uid, user.pw_gid)
        as_user = ["runuser", "-u", SERVER_USER, "--"]
    data, port = base / "data", free_port()
    init = run([str(bindir / "initdb"), "-D", str(data), "-U", "postgres", "-A", "trust", "-E", "UTF8",
                "--locale=C", "--no-sync"], as_user)
    if init.returncode != 0:
        shutil.rmtree(base, ignore_errors=True)
        unavailable(f"{bindir / 'initdb'} failed ({init.returncode}): {init.stderr.strip()[-500:]}")
    options = f"-p {port} -k {base} -c listen_addresses='' -F"
    start = run([str(bindir / "pg_ctl"), "-D", str(data), "-o", options, "-l", str(base / "server.log"),
                 "-w", "-t", "60", "start"], as_user)
    if start.returncode != 0:
        log = (base / "server.log").read_text(errors="replace")[-500:] if (base / "server.log").exists() else ""
        shutil.rmtree(base, ignore_errors=True)
        unavailable(f"pg_ctl start failed ({start.returncode}): {start.stderr.strip()[-300:]} {log}")
    try:
        yield f"postgresql+psycopg://postgres@/postgres?host={base}&port={port}"
    finally:
        run([str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop"], as_user)
        shutil.rmtree(base, ignore_errors=True)


def create_database(url: str, name: str) -> str:
    """Create an empty database on the server of `url`; its URL."""
    import sqlalchemy as sa

    engine = sa.create_engine(url, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            conn.execute(sa.text(f"CREATE DATABASE {name}"))
    finally:
        engine.dispose()
    return sa.engine.make_url(url).set(database=name).render_as_string(hide_password=False)
