"""Progress lines: one plain line per chunk in logs, one rewritten line on a terminal."""

from __future__ import annotations

import io

from pipelines.progress import Progress


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
