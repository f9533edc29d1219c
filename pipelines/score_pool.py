"""engine=duckdb: chunks of customers scored on threads (scoring.threads) or in worker processes (scoring.workers),
handed back in input order.

Threads (default 2 from scoring.threads_min_rows customers): each chunk is split into that many consecutive parts
scored side by side in the stage's own process (no second copy of the models or the CLV frame). TreeSHAP's numpy
work and LightGBM's predict release the GIL; each thread caches TreeSHAP values in a plan set of its own, so the
outputs are the same bits as on one thread.

Worker processes are opt-in (scoring.workers, default 1 = none); with workers > 1, batches under
scoring.workers_min_rows (2M) customers still stay in the stage's process, because each spawned worker pays ~5 s CPU
of imports and its own tree compile and TreeSHAP caches (1M, 4 chunks of 250k: CPU 102.8 -> 127.8 s, process tree
4.13 GiB). At 10M, 2 workers x 250k rows: 967 CPU s and a 5.85 GiB process-tree peak (stage 3.50, workers 1.06 +
1.26), over the 5.5 GiB budget (bench/README.md "Score at 10M scale (session 17)").

Worker processes: with one per core the chunks are scored side by side while this process writes the sinks. Each
worker gets the models, decile edges and settings once (spawned, so no OpenMP/DuckDB state is forked); a chunk
travels as an Arrow batch and comes back as the contract-checked Arrow table plus its summary sums. At most
workers + 1 chunks are in flight, so memory stays bounded by the chunk size.
"""

from __future__ import annotations

import multiprocessing
import os
from collections import deque
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor, ThreadPoolExecutor
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from features import privacy
from models.scoring.summary import summary_parts
from pipelines.sinks.writer import checked_table

_STATE: dict[str, Any] = {}


def worker_count(params: dict[str, Any], chunks: int, rows: int | None = None) -> int:
    """scoring.workers (default 1; 0 = one per core), never more than the chunks to score; 1 for a batch of fewer
    than scoring.workers_min_rows customers (spawning and compiling the trees costs each worker ~5 CPU s)."""
    block = params.get("scoring") or {}
    if rows is not None and rows < int(block.get("workers_min_rows") or 0):
        return 1
    wanted = int(block.get("workers", 1)) or (os.cpu_count() or 1)
    return max(1, min(wanted, chunks))


def thread_count(params: dict[str, Any], rows: int) -> int:
    """scoring.threads (0 = one per core) scoring parts of a chunk side by side in this process; 1 for a batch of
    fewer than scoring.threads_min_rows customers or with worker processes (scoring.workers > 1)."""
    block = params.get("scoring") or {}
    if rows < int(block.get("threads_min_rows") or 0):
        return 1
    return max(1, int(block.get("threads", 1)) or (os.cpu_count() or 1))


def split_jobs(jobs: Iterable[tuple], parts: int) -> Iterator[tuple]:
    """Each (batch, CLV rows, prior) job as `parts` consecutive jobs of (nearly) equal rows, in order."""
    for batch, clv, prior in jobs:
        step = max(1, -(-batch.num_rows // parts))
        for start in range(0, max(batch.num_rows, 1), step):
            stop = start + step
            yield batch.slice(start, step), clv.iloc[start:stop], None if prior is None else prior[start:stop]


def _in_order(pool: Any, jobs: Iterable[tuple], depth: int) -> Iterator[Any]:
    """score_job of every job on the pool, at most `depth` in flight, results in job order."""
    pending: deque[Future] = deque()
    for job in jobs:
        pending.append(pool.submit(score_job, job))
        if len(pending) >= depth:
            yield pending.popleft().result()
    while pending:
        yield pending.popleft().result()


def _init(models: Any, edges: np.ndarray, context: dict[str, Any], params: dict[str, Any]) -> None:
    """Worker set-up: what every chunk needs (the pseudonymiser is rebuilt here: closures do not pickle)."""
    _STATE.update(models=models, edges=edges, context={**context, "pseudonymise": privacy.pseudonymiser(params)})


def score_job(job: tuple[pa.RecordBatch, pd.DataFrame, np.ndarray | None]) -> tuple[pa.Table, pd.DataFrame]:
    """One chunk: features batch, its CLV rows and prior -> (checked customer_scores table, summary sums)."""
    from pipelines.score import score_rows

    batch, clv, prior = job
    context = _STATE["context"]
    rows = score_rows(batch.to_pandas(), clv, prior, _STATE["edges"], _STATE["models"], context)
    return checked_table(rows, context["layout"], context["stamp"][0]), summary_parts(rows, context["layout"])


def scored(jobs: Iterable[tuple], models: Any, edges: np.ndarray, context: dict[str, Any], params: dict[str, Any],
           workers: int, threads: int = 1) -> Iterator[tuple[pa.Table, pd.DataFrame]]:
    """(table, summary sums) per job, in job order; in this process when workers == 1, each job split into
    `threads` parts scored on that many threads (numpy and LightGBM release the GIL; TreeSHAP caches per thread)."""
    if workers <= 1:
        _STATE.update(models=models, edges=edges, context=context)
        try:
            if threads <= 1:
                yield from map(score_job, jobs)
                return
            models.churn.trees()  # compile the trees once, before the threads share them
            with ThreadPoolExecutor(threads, thread_name_prefix="score-chunk") as pool:
                yield from _in_order(pool, split_jobs(jobs, threads), threads)
        finally:
            _STATE.clear()
        return
    state = {k: v for k, v in context.items() if k != "pseudonymise"}
    with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"), initializer=_init,
                             initargs=(models, edges, state, params)) as pool:
        yield from _in_order(pool, jobs, workers + 1)
