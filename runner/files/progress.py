"""Progress of a file run: a bar per file in flight and one for the whole run with its bytes/s
(rich, on a terminal), or one log line per file (CI logs, pipes); the summary table at the end."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

from loguru import logger
from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)
from rich.table import Table

from runner.execute.progress import human_bytes


@dataclass
class Tally:
    files: int = 0
    bytes: int = 0
    seconds: float = 0.0


@dataclass
class FileRunResult:
    run_id: str
    job: str
    status: str
    exit_code: int
    seconds: float
    error: str | None = None
    actions: dict[str, Tally] = field(default_factory=dict)

    def add(self, action: str, nbytes: int, seconds: float) -> None:
        tally = self.actions.setdefault(action, Tally())
        tally.files += 1
        tally.bytes += nbytes
        tally.seconds += seconds


class FileProgress:
    """Thread-safe: transfers report from the worker threads."""

    def __init__(self, console: Console, files: int, nbytes: int) -> None:
        self.rich = console.is_terminal
        self.files, self.total = files, nbytes
        self.done_files = 0
        self.sent = 0
        self.started = time.monotonic()
        self._lock = threading.Lock()
        self._bars: dict[str, TaskID] = {}
        self.progress: Progress | None = None
        if self.rich:
            self.progress = Progress(
                TextColumn("{task.description:<32}", markup=False),
                BarColumn(),
                DownloadColumn(),
                TransferSpeedColumn(),
                TimeRemainingColumn(),
                console=console,
                transient=False,
            )
            self._overall = self.progress.add_task(f"{files} files", total=max(nbytes, 1))

    def start(self) -> None:
        if self.progress is not None:
            self.progress.start()

    def file_started(self, path: str, size: int) -> None:
        if self.progress is not None:
            name = path if len(path) <= 32 else "..." + path[-29:]
            with self._lock:
                self._bars[path] = self.progress.add_task(name, total=max(size, 1))

    def advance(self, path: str, nbytes: int) -> None:
        with self._lock:
            self.sent += nbytes
            bar = self._bars.get(path)
        if self.progress is not None:
            self.progress.advance(self._overall, nbytes)
            if bar is not None:
                self.progress.advance(bar, nbytes)

    def file_done(self, action: str, path: str, size: int, seconds: float, error: str = "") -> None:
        with self._lock:
            self.done_files += 1
            bar = self._bars.pop(path, None)
            done, sent = self.done_files, self.sent
        if self.progress is not None and bar is not None:
            self.progress.remove_task(bar)
        if self.progress is not None and not error:
            return
        if error:
            logger.error("{} {}: {}", action, path, error)
            return
        elapsed = max(time.monotonic() - self.started, 1e-6)
        rate = f", {human_bytes(size / seconds)}/s" if seconds > 0 and size else ""
        logger.info(
            "{} {} ({}{}) [{}/{} files, {} of {}, {}/s]",
            "copied" if action == "copy" else "updated" if action == "update" else action,
            path,
            human_bytes(size),
            rate,
            done,
            self.files,
            human_bytes(sent),
            human_bytes(self.total),
            human_bytes(sent / elapsed),
        )

    def stop(self) -> None:
        if self.progress is not None:
            self.progress.stop()


def summary_table(result: FileRunResult) -> Table:
    table = Table(
        title=f"{result.job}: {result.status} in {result.seconds:.1f}s (run {result.run_id})"
    )
    for name in ("files", "count", "bytes", "seconds", "bytes/s"):
        table.add_column(name, justify="left" if name == "files" else "right")
    moved = Tally()
    for action in ("copied", "updated", "deleted", "unchanged", "locked", "failed"):
        tally = result.actions.get(action)
        if tally is None:
            continue
        busy = action in ("copied", "updated")
        rate = human_bytes(tally.bytes / tally.seconds) + "/s" if busy and tally.seconds else ""
        table.add_row(
            action,
            f"{tally.files:,}",
            human_bytes(tally.bytes),
            f"{tally.seconds:.2f}" if busy else "",
            rate,
        )
        if busy:
            moved.files += tally.files
            moved.bytes += tally.bytes
    overall = moved.bytes / result.seconds if result.seconds else 0
    table.add_row(
        "sent",
        f"{moved.files:,}",
        human_bytes(moved.bytes),
        f"{result.seconds:.2f}",
        f"{human_bytes(overall)}/s",
        style="bold",
    )
    return table
