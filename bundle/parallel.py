"""Per-scan work in a pool of processes, results in order and few in memory at once.

Reading a whole 2018-challenge scan (gzip-compressed NRRD, 88 x 640 x 640) and deriving its wall takes 1-3 s on one
core and is independent of every other scan, so planning and caching a dataset read scans in ``workers`` processes
while this one goes on with the scans already read.
"""

from __future__ import annotations

import multiprocessing
import os
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from typing import Any

_END = object()

PARALLEL_MIN_ITEMS = 8
"""Fewer items than this run in this process: starting a worker (importing torch, ~2 s) would cost more than it
saves on a test-sized dataset."""


def one_thread() -> None:
    """A worker's initialiser: one thread for torch and SimpleITK (one scan per core; more would only compete)."""
    import SimpleITK as sitk
    import torch

    torch.set_num_threads(1)
    sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(1)


def default_workers(n_items: int, workers: int | None = None) -> int:
    """``workers`` when given (at least 1), else one per core (at most 4: each holds a whole scan) for
    :data:`PARALLEL_MIN_ITEMS` items or more, else 1."""
    if workers is not None:
        return max(1, int(workers))
    if n_items < PARALLEL_MIN_ITEMS:
        return 1
    return max(1, min(4, os.cpu_count() or 1, n_items))


def ordered_map(fn: Callable[[Any], Any], items: Iterable, workers: int = 1
                ) -> Iterator[tuple[Any, Any, Exception | None]]:
    """``(item, fn(item), None)``, or ``(item, None, error)`` when ``fn`` raised, for each item in order.

    With ``workers`` > 1, ``fn`` (a module-level function or a ``functools.partial`` of one) runs in that many
    spawned processes, at most ``workers + 1`` items ahead of the consumer, so memory stays at a few results
    whatever the number of items. An error of one item is returned with it, and the others go on.
    """
    items = list(items)
    if workers <= 1 or len(items) < 2:
        for item in items:
            try:
                yield item, fn(item), None
            except Exception as err:  # noqa: BLE001 - handed to the caller with its item
                yield item, None, err
        return
    context = multiprocessing.get_context("spawn")  # never fork a process whose OpenMP threads may run
    with ProcessPoolExecutor(workers, mp_context=context, initializer=one_thread) as pool:
        todo = iter(items)
        pending: deque[tuple[Any, Future]] = deque()
        for item in todo:
            pending.append((item, pool.submit(fn, item)))
            if len(pending) > workers:
                break
        while pending:
            item, future = pending.popleft()
            following = next(todo, _END)
            if following is not _END:
                pending.append((following, pool.submit(fn, following)))
            error = future.exception()
            yield item, (None if error else future.result()), error
