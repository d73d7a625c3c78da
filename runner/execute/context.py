"""What a task body gets to work with, and what it gives back; shared by every executor."""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa

from runner.connectors.base import Connector
from runner.errors import EtlrunError
from runner.sanitize import apply as apply_sanitize


class Cancelled(EtlrunError):
    """Raised inside a task when the run is being stopped; its transaction rolls back."""


@dataclass
class TaskResult:
    rows: int = 0
    bytes: int = 0
    seconds: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)


def _ignore(task_id: str, table: str, rows: int, nbytes: int) -> None:
    pass


@dataclass
class RunContext:
    """Connections and run-wide facts for task bodies. Connectors are opened by whoever runs
    the task (a thread here, a Dask worker there) from URLs, never shipped with the task."""

    source: Connector
    target: Connector
    cancel: threading.Event = field(default_factory=threading.Event)
    batch_rows: int = 10_000
    queue_batches: int = 2
    """Batches buffered between a chunk's reader and writer: memory is workers x this x batch."""
    resumed: bool = False
    done: frozenset[str] = frozenset()
    """Task ids an earlier attempt of this run committed."""
    results: dict[str, TaskResult] = field(default_factory=dict)
    progress: Callable[[str, str, int, int], None] = _ignore
    run_id: str = ""
    """The run's id; backup files, manifests and reject files are named by it (Dask ships it)."""
    state_url: str | None = None
    """The state store's URL, for task bodies that keep an audit trail (purge)."""
    assemble: bool = False
    """True when every task of the run runs in this process (the threads executor)."""
    unkeyed: set[str] = field(default_factory=set)
    """Staging tables this process created without their primary key (added once loaded)."""
    _attempted: set[str] = field(default_factory=set)
    _attempted_lock: threading.Lock = field(default_factory=threading.Lock)

    def first_attempt(self, task_id: str) -> bool:
        """True the first time it is asked about ``task_id`` in this process (a retry: False)."""
        with self._attempted_lock:
            if task_id in self._attempted:
                return False
            self._attempted.add(task_id)
            return True

    def check_cancel(self) -> None:
        if self.cancel.is_set():
            raise Cancelled("stopped before this chunk committed; it was rolled back")

    def stream(
        self,
        batches: Iterator[pa.RecordBatch],
        task_id: str,
        table: str,
        sanitize: dict[str, Any] | None = None,
    ) -> Iterator[pa.RecordBatch]:
        """Read ``batches`` in a second thread so reading overlaps writing, through a bounded queue.

        Cancellation is checked between batches; an error on the reading side is re-raised here,
        in the writer, so the write transaction rolls back. ``sanitize`` is the task's
        ``params["sanitize"]``: its rules are applied on the reading thread, so no raw value of a
        sanitized column ever reaches the writer (:func:`runner.sanitize.apply`).
        """
        buffer: queue.Queue[Any] = queue.Queue(maxsize=self.queue_batches)
        done = object()
        stop = threading.Event()

        def produce() -> None:
            try:
                for batch in apply_sanitize(batches, sanitize):
                    while not stop.is_set():
                        try:
                            buffer.put(batch, timeout=0.2)
                            break
                        except queue.Full:
                            continue
                    if stop.is_set():
                        return
                buffer.put(done)
            except BaseException as exc:  # noqa: BLE001 - handed to the consumer
                buffer.put(exc)
            finally:
                close = getattr(batches, "close", None)
                if close and stop.is_set():
                    close()

        reader = threading.Thread(target=produce, name=f"read {task_id}", daemon=True)
        reader.start()
        try:
            while True:
                self.check_cancel()
                try:
                    item = buffer.get(timeout=0.2)
                except queue.Empty:
                    continue
                if item is done:
                    return
                if isinstance(item, BaseException):
                    raise item
                self.progress(task_id, table, item.num_rows, item.nbytes)
                yield item
        finally:
            stop.set()
            reader.join(timeout=30)
