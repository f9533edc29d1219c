"""pipelines.io.write_behind: chunks written in order on a thread while the next one is made."""

from __future__ import annotations

import threading
import time

import pyarrow as pa
import pytest

from pipelines.io import write_behind


def chunks(n: int, made: list[int]):
    """n one-row tables, noting when each is made."""
    for i in range(n):
        made.append(i)
        yield pa.table({"i": [i]}), f"part{i}"


def test_writes_run_in_chunk_order_on_another_thread_while_the_next_chunk_is_made() -> None:
    made, written, threads = [], [], set()

    def write(table: pa.Table) -> None:
        time.sleep(0.05)
        threads.add(threading.get_ident())
        written.append((table["i"][0].as_py(), len(made)))

    out = [part for _, part in write_behind(chunks(3, made), write)]
    assert out == ["part0", "part1", "part2"]
    assert [i for i, _ in written] == [0, 1, 2]
    assert written[0][1] == 2  # chunk 1 was made while chunk 0 was being written
    assert threads and threading.get_ident() not in threads


def test_a_failed_write_is_raised_before_the_next_write_starts() -> None:
    written = []

    def write(table: pa.Table) -> None:
        if table["i"][0].as_py() == 1:
            raise OSError("disk full")
        written.append(table["i"][0].as_py())

    with pytest.raises(OSError, match="disk full"):
        list(write_behind(chunks(4, []), write))
    assert written == [0]


def test_worker_count_keeps_small_batches_in_the_stage_process() -> None:
    from pipelines.score_pool import worker_count

    params = {"scoring": {"workers": 2, "workers_min_rows": 1000}}
    assert worker_count(params, 4, 999) == 1
    assert worker_count(params, 4, 1000) == 2
    assert worker_count(params, 1, 5000) == 1  # never more workers than chunks
    assert worker_count({"scoring": {"workers": 2}}, 6, 10) == 2  # no threshold set


def test_thread_count_and_split_jobs_keep_rows_in_order() -> None:
    import numpy as np
    import pandas as pd

    from pipelines.score_pool import split_jobs, thread_count

    params = {"scoring": {"threads": 2, "threads_min_rows": 1000}}
    assert thread_count(params, 999) == 1
    assert thread_count(params, 1000) == 2
    assert thread_count({"scoring": {"threads": 0}}, 10) >= 1  # one per core
    batch = pa.record_batch({"i": list(range(5))})
    clv, prior = pd.DataFrame({"v": np.arange(5) * 10}), np.arange(5) * 100
    parts = list(split_jobs([(batch, clv, prior), (batch.slice(0, 0), clv.iloc[:0], None)], 2))
    assert [p[0]["i"].to_pylist() for p in parts] == [[0, 1, 2], [3, 4], []]
    assert [p[1]["v"].tolist() for p in parts[:2]] == [[0, 10, 20], [30, 40]]
    assert [p[2].tolist() for p in parts[:2]] == [[0, 100, 200], [300, 400]] and parts[2][2] is None
