"""Progress lines: one plain line per chunk in logs, one rewritten line on a terminal."""

from __future__ import annotations

import io
import re
import time

from pipelines import progress
from pipelines.progress import Heartbeat, Progress


def test_plain_lines_in_logs_name_rows_chunks_and_elapsed() -> None:
    out = io.StringIO()
    progress = Progress("score", 1000, "customers", stream=out)
    progress.update(400)
    progress.update(600)
    lines = out.getvalue().splitlines()
    assert len(lines) == 2
    assert lines[0].startswith("score: chunk 1, 400/1,000 customers (40%), ")
    assert lines[1].startswith("score: chunk 2, 1,000/1,000 customers (100%), ")
    assert all("s, " in line and line.endswith("customers/s") for line in lines)


def test_a_terminal_gets_one_rewritten_line() -> None:
    out = io.StringIO()
    progress = Progress("score", 10, "rows", stream=out, live=True)
    progress.update(5)
    progress.update(5)
    progress.close()
    text = out.getvalue()
    assert text.count("\r") == 2 and text.count("\n") == 1 and "chunk 2, 10/10 rows" in text


def test_heartbeat_speaks_after_silence_and_names_the_step() -> None:
    out = io.StringIO()
    beat = Heartbeat("train_churn", every=0.05, stream=out)
    beat.note("candidate 2/9 lightgbm")
    beat.beat()  # not silent long enough: nothing
    time.sleep(0.06)
    beat.beat()
    lines = out.getvalue().splitlines()
    assert len(lines) == 2
    assert lines[0] == "train_churn: candidate 2/9 lightgbm (0s)"
    assert lines[1] == "train_churn: ... still working, 0s since 'candidate 2/9 lightgbm' (0s in total)"


def test_heartbeat_thread_beats_until_stopped_and_other_progress_resets_it() -> None:
    out = io.StringIO()
    beat = progress.heartbeat("score", every=0.04, stream=out)
    try:
        time.sleep(0.25)
        assert re.match(r"score: started \((\d+)s\)\n", out.getvalue())  # elapsed since the process started
        assert out.getvalue().count("score: ... still working, 0s since 'started'") >= 2
        before = beat.last
        Progress("score", 1, stream=io.StringIO()).update(1)
        assert beat.last > before
    finally:
        progress.stop_heartbeat()
    after = out.getvalue()
    time.sleep(0.1)
    assert out.getvalue() == after
    progress.note("no heartbeat: silent")
    assert out.getvalue() == after
