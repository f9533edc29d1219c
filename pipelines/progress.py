"""Progress of long stages: a live line on a terminal, plain lines in CI logs (rows, chunks, elapsed, rate), and a
heartbeat that prints the current step with the elapsed time whenever a stage has been silent for 10 s."""

from __future__ import annotations

import os
import sys
import threading
import time
from typing import TextIO

EVERY_ENV = "CHURN_CLV_PROGRESS_SECONDS"  # heartbeat interval (default 10 s); 0 turns the heartbeat off


def process_age() -> float:
    """Seconds since this process started (Linux /proc; 0 elsewhere): imports count as stage time."""
    try:
        with open("/proc/self/stat", encoding="ascii") as fh:
            started_ticks = int(fh.read().rsplit(")", 1)[1].split()[19])
        with open("/proc/uptime", encoding="ascii") as fh:
            uptime = float(fh.read().split()[0])
        return max(0.0, uptime - started_ticks / os.sysconf("SC_CLK_TCK"))
    except (OSError, ValueError, IndexError):
        return 0.0


class Heartbeat:
    """Prints '<stage>: <step> (<total>s)' on each note, and '... still working' after `every` silent seconds.

    started_before: seconds already spent when it is created (None = since the process started, imports included).
    """

    def __init__(self, stage: str, every: float | None = None, stream: TextIO | None = None,
                 started_before: float | None = 0.0) -> None:
        self.stage, self.stream = stage, stream or sys.stderr
        self.every = float(os.environ.get(EVERY_ENV, 10) if every is None else every)
        self.last = self.step_started = time.perf_counter()
        self.started = self.last - (process_age() if started_before is None else started_before)
        self.current = "parameters checked"
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def _write(self, text: str) -> None:
        with self._lock:
            self.stream.write(text + "\n")
            self.stream.flush()
            self.last = time.perf_counter()

    def note(self, text: str) -> None:
        """A new step: print it with the elapsed time."""
        now = time.perf_counter()
        self.current, self.step_started = text, now
        self._write(f"{self.stage}: {text} ({now - self.started:.0f}s)")

    def touch(self) -> None:
        """Something else printed progress: the silence timer restarts."""
        self.last = time.perf_counter()

    def beat(self) -> None:
        """One heartbeat line when the stage has been silent for `every` seconds."""
        now = time.perf_counter()
        if now - self.last >= self.every:
            self._write(f"{self.stage}: ... still working, {now - self.step_started:.0f}s since '{self.current}' "
                        f"({now - self.started:.0f}s in total)")

    def start(self) -> Heartbeat:
        """Beat from a daemon thread until stop()."""
        if self.every > 0 and self._thread is None:
            self._thread = threading.Thread(target=self._loop, name=f"heartbeat-{self.stage}", daemon=True)
            self._thread.start()
        return self

    def _loop(self) -> None:
        while not self._stop.wait(min(1.0, self.every / 4)):
            self.beat()

    def stop(self) -> None:
        """End the heartbeat thread."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=2)
            self._thread = None


_ACTIVE: list[Heartbeat] = []


def heartbeat(stage: str, every: float | None = None, stream: TextIO | None = None) -> Heartbeat:
    """Start the process's heartbeat for a stage run from the command line (once; later calls return it)."""
    if not _ACTIVE:
        _ACTIVE.append(Heartbeat(stage, every, stream, started_before=None).start())  # elapsed from process start
        _ACTIVE[0].note("started")
    return _ACTIVE[0]


def stop_heartbeat() -> None:
    """Stop and forget the process's heartbeat (tests; a stage's end needs nothing: the thread is a daemon)."""
    while _ACTIVE:
        _ACTIVE.pop().stop()


def note(text: str) -> None:
    """Report a step of a long stage (no-op when no heartbeat runs, e.g. a stage called from a test)."""
    if _ACTIVE:
        _ACTIVE[0].note(text)


def _touch() -> None:
    if _ACTIVE:
        _ACTIVE[0].touch()


class Progress:
    """Counts rows and chunks; on a TTY rewrites one line, otherwise prints one line per update."""

    def __init__(self, stage: str, total_rows: int, unit: str = "rows", stream: TextIO | None = None,
                 live: bool | None = None) -> None:
        self.stage, self.total, self.unit = stage, int(total_rows), unit
        self.stream = stream or sys.stderr
        self.live = self.stream.isatty() if live is None else live
        self.rows = self.chunks = 0
        self.started = time.perf_counter()

    def line(self, note: str = "") -> str:
        """The current status text."""
        elapsed = time.perf_counter() - self.started
        rate = self.rows / elapsed if elapsed > 0 else 0.0
        share = f" ({self.rows / self.total:.0%})" if self.total else ""
        text = (f"{self.stage}: chunk {self.chunks}, {self.rows:,}/{self.total:,} {self.unit}{share}, "
                f"{elapsed:.1f}s, {rate:,.0f} {self.unit}/s")
        return f"{text} {note}".rstrip()

    def update(self, rows: int, note: str = "") -> None:
        """Add one chunk of rows and report it."""
        self.rows += int(rows)
        self.chunks += 1
        if self.live:
            self.stream.write("\r\033[K" + self.line(note))
        else:
            self.stream.write(self.line(note) + "\n")
        self.stream.flush()
        _touch()

    def step(self, text: str) -> None:
        """Report a named step (not a chunk) with the elapsed time."""
        elapsed = time.perf_counter() - self.started
        if self.live and self.chunks:
            self.stream.write("\n")
        self.stream.write(f"{self.stage}: {text} ({elapsed:.1f}s)\n")
        self.stream.flush()
        _touch()

    def close(self) -> None:
        """End the live line."""
        if self.live and self.chunks:
            self.stream.write("\n")
            self.stream.flush()
