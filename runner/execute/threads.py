"""The default executor: a pool of threads. Task bodies spend their time in database drivers,
which release the GIL, so threads overlap reading, writing and network waits well."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from typing import Any


class ThreadExecutor:
    name = "threads"

    def __init__(self, workers: int) -> None:
        self.workers = workers
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="etlrun")

    def submit(self, fn: Callable[..., Any], *args: Any) -> Future[Any]:
        return self._pool.submit(fn, *args)

    def wait(self, futures: Iterable[Future[Any]], timeout: float) -> set[Future[Any]]:
        done, _ = wait(list(futures), timeout=timeout, return_when=FIRST_COMPLETED)
        return done

    def shutdown(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)
