"""What runs on a Dask worker for :mod:`runner.execute.dask`: the chunk payload (plain data, no
secret), the chunk body with its own connections, the cancel flag that asks the scheduler, the
preload hook of ``dask-local`` workers, and the check a ``dask://`` run makes of every worker.
"""

from __future__ import annotations

import importlib.metadata
import math
import os
import signal
import threading
import time
from dataclasses import dataclass
from typing import Any

from runner.errors import ConnectError, TaskError
from runner.execute._endpoints import Endpoint
from runner.execute.context import RunContext, TaskResult
from runner.execute.run import run_task
from runner.plan.plan import Task

CANCEL_POLL = 0.5  # seconds between a running chunk's questions about the cancel event


@dataclass(frozen=True)
class ChunkPayload:
    """Everything a worker gets for one chunk; plain data, no secret (see the module doc)."""

    task: Task
    source: Endpoint
    target: Endpoint
    batch_rows: int
    queue_batches: int
    resumed: bool
    run_id: str
    """Reject and backup files are named by it, wherever the chunk runs."""
    cancel_event: str
    """Name of this run's Dask ``Event``; set when the run stops."""


def run_chunk(payload: ChunkPayload) -> TaskResult:
    """Run one chunk on a Dask worker: its own connections, the driver's cancel flag watched."""
    from runner.connectors import connect

    source = connect(payload.source.resolve(os.environ))
    target = connect(payload.target.resolve(os.environ))
    try:
        ctx = RunContext(
            source=source,
            target=target,
            cancel=ClusterCancel(payload.cancel_event),
            batch_rows=payload.batch_rows,
            queue_batches=payload.queue_batches,
            resumed=payload.resumed,
            run_id=payload.run_id,
        )
        return run_task(payload.task, ctx)
    finally:
        target.close()
        source.close()


class ClusterCancel(threading.Event):
    """A chunk's cancel flag on a worker: also set once the driver sets the run's Dask Event.

    The chunk asks the scheduler when it checks the flag (between batches), at most every
    :data:`CANCEL_POLL` seconds, from its own thread: no helper thread, and one small message
    every half second while it runs.
    """

    def __init__(self, name: str) -> None:
        super().__init__()
        self._name = name
        self._next_ask = 0.0

    def is_set(self) -> bool:
        if super().is_set():
            return True
        now = time.monotonic()
        if now >= self._next_ask:
            self._next_ask = now + CANCEL_POLL
            try:
                from distributed import Event

                if Event(self._name).is_set():
                    self.set()
            except Exception:  # noqa: BLE001 - no scheduler to ask: the chunk ends on its own
                self._next_ask = math.inf
        return super().is_set()


def dask_setup(worker: Any) -> None:
    """Dask's preload hook, for the ``dask-local`` worker processes this module starts.

    Ctrl-C reaches every process of the terminal's group; the driver alone handles it (it tells
    the chunks to roll back), so the workers ignore SIGINT instead of dying mid-chunk.
    """
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, signal.SIG_IGN)


def check_worker(
    source: Endpoint, target: Endpoint, sanitize_key_id: str | None = None
) -> tuple[str, str | None]:
    """Run on every worker before a ``dask://`` run: its etlrun version, and what is missing."""
    try:
        version = importlib.metadata.version("etlrun")
    except importlib.metadata.PackageNotFoundError:
        version = "?"
    try:
        source.resolve(os.environ)
        target.resolve(os.environ)
        if sanitize_key_id:
            from runner.sanitize import key_for

            key_for(sanitize_key_id)
    except (ConnectError, TaskError) as exc:
        return version, str(exc)
    return version, None
