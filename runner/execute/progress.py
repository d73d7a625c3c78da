"""Progress while a run works (rich bars on a terminal, plain log lines elsewhere), the summary
table at the end, and loguru's configuration (text or JSON, secrets scrubbed)."""

from __future__ import annotations

import sys
import threading
from typing import TYPE_CHECKING, Any

from loguru import logger
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table

from runner.secrets import scrub

if TYPE_CHECKING:
    from runner.execute.context import TaskResult
    from runner.execute.run import RunResult
    from runner.plan.plan import Plan, Task


def configure_logging(fmt: str = "text", debug: bool = False) -> None:
    logger.remove()
    level = "DEBUG" if debug else "INFO"

    def scrubbed(record: Any) -> None:
        record["message"] = scrub(record["message"])

    logger.configure(patcher=scrubbed)
    if fmt == "json":
        logger.add(sys.stderr, level=level, serialize=True)
    else:
        logger.add(
            sys.stderr, level=level, format="<level>{level: <7}</level> {message}", colorize=None
        )


def human_bytes(n: float) -> str:
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if abs(n) < 1000 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} TB"


class LineReporter:
    """One log line per finished chunk: for CI logs and pipes."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._totals: dict[str, int] = {}
        self._expected: dict[str, int] = {}

    def start(self, plan: Plan, skipped: dict[str, TaskResult]) -> None:
        for table in plan.tables:
            self._expected[table.target] = table.rows
            self._totals[table.target] = 0
        for task_id, result in skipped.items():
            table = task_id.split(":", 1)[0]
            if ":chunk:" in task_id and table in self._totals:
                self._totals[table] += result.rows
        if skipped:
            logger.info("resuming: {} tasks were committed by an earlier attempt", len(skipped))

    def advance(self, task_id: str, table: str, rows: int, nbytes: int) -> None:
        pass

    def task_done(self, task: Task, result: TaskResult | None, error: str | None) -> None:
        if result is None:
            return
        with self._lock:
            if task.kind == "chunk":
                self._totals[task.table] += result.rows
                logger.info(
                    "{} chunk {}/{}: {} rows in {:.2f}s ({}/{} rows)",
                    task.table,
                    task.params["chunk"],
                    task.params["chunks"],
                    result.rows,
                    result.seconds,
                    self._totals[task.table],
                    # the planned rows may be an estimate the run has passed
                    max(self._expected.get(task.table, 0), self._totals[task.table]),
                )
            elif task.kind == "finalize":
                logger.info("{}: committed", task.table)

    def stop(self) -> None:
        pass


class RichReporter:
    """A bar per table, advancing batch by batch."""

    def __init__(self, console: Console) -> None:
        self.progress = Progress(
            TextColumn("{task.description:<24}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("rows"),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            console=console,
            transient=False,
        )
        self._bars: dict[str, TaskID] = {}
        self._pending: dict[str, int] = {}
        self._lock = threading.Lock()

    def start(self, plan: Plan, skipped: dict[str, TaskResult]) -> None:
        for table in plan.tables:
            self._bars[table.target] = self.progress.add_task(
                table.target, total=max(table.rows, 1)
            )
        for task_id, result in skipped.items():
            table = task_id.split(":", 1)[0]
            if ":chunk:" in task_id and table in self._bars:
                self.progress.advance(self._bars[table], result.rows)
        self.progress.start()

    def advance(self, task_id: str, table: str, rows: int, nbytes: int) -> None:
        with self._lock:
            self._pending[task_id] = self._pending.get(task_id, 0) + rows
        self.progress.advance(self._bars[table], rows)

    def task_done(self, task: Task, result: TaskResult | None, error: str | None) -> None:
        if task.kind == "chunk" and result is None:
            with self._lock:  # a rolled-back chunk's rows are not there any more
                back = self._pending.pop(task.id, 0)
            self.progress.advance(self._bars[task.table], -back)
        elif task.kind == "chunk":
            with self._lock:
                self._pending.pop(task.id, None)
        if task.kind == "finalize" and result is not None:
            bar = self._bars[task.table]
            self.progress.update(
                bar,
                completed=self.progress.tasks[bar].completed,
                total=self.progress.tasks[bar].completed or 1,
            )

    def stop(self) -> None:
        self.progress.stop()


def reporter_for(console: Console) -> LineReporter | RichReporter:
    return RichReporter(console) if console.is_terminal else LineReporter()


def summary_table(result: RunResult) -> Table:
    table = Table(
        title=f"{result.job}: {result.status} in {result.seconds:.1f}s (run {result.run_id})"
    )
    for name, justify in (
        ("table", "left"),
        ("rows", "right"),
        ("bytes", "right"),
        ("seconds", "right"),
        ("rows/s", "right"),
        ("chunks", "right"),
    ):
        table.add_column(name, justify=justify)  # type: ignore[arg-type]
    total_rows = total_bytes = 0
    for name, stats in result.tables.items():
        rate = stats.rows / stats.seconds if stats.seconds else 0
        chunks = f"{stats.chunks}" + (f" (+{stats.skipped} resumed)" if stats.skipped else "")
        table.add_row(
            name,
            f"{stats.rows:,}",
            human_bytes(stats.bytes),
            f"{stats.seconds:.2f}",
            f"{rate:,.0f}",
            chunks,
        )
        total_rows += stats.rows
        total_bytes += stats.bytes
    rate = total_rows / result.seconds if result.seconds else 0
    table.add_row(
        "total",
        f"{total_rows:,}",
        human_bytes(total_bytes),
        f"{result.seconds:.2f}",
        f"{rate:,.0f}",
        "",
        style="bold",
    )
    return table
