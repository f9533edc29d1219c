"""Progress of long stages: a live line on a terminal, plain lines in CI logs (rows, chunks, elapsed, rate)."""

from __future__ import annotations

import sys
import time
from typing import TextIO


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

    def step(self, text: str) -> None:
        """Report a named step (not a chunk) with the elapsed time."""
        elapsed = time.perf_counter() - self.started
        if self.live and self.chunks:
            self.stream.write("\n")
        self.stream.write(f"{self.stage}: {text} ({elapsed:.1f}s)\n")
        self.stream.flush()

    def close(self) -> None:
        """End the live line."""
        if self.live and self.chunks:
            self.stream.write("\n")
            self.stream.flush()
