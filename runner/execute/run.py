"""The driver: walks a plan's DAG, hands ready tasks to an executor, records every outcome.

The driver (this process) owns the order, the state store and the lock; an executor only runs
task bodies. Transient errors are retried with backoff; any other failure stops new work, lets
the tasks in flight finish or roll back, and fails the run with the failing error's exit code.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from loguru import logger

from runner.errors import EtlrunError, InterruptedError_, RejectedRowsError, TaskError
from runner.execute.context import Cancelled, RunContext, TaskResult
from runner.execute.memory import trim as trim_memory
from runner.modes import mode_module
from runner.plan.plan import Plan, Task
from runner.secrets import scrub
from runner.state.store import StateStore

MAX_ATTEMPTS = 4
BACKOFF_SECONDS = (1.0, 4.0, 15.0)


class Executor(Protocol):
    name: str
    workers: int

    def submit(self, fn: Callable[..., Any], *args: Any) -> Any: ...
    def wait(self, futures: Any, timeout: float) -> set[Any]: ...
    def shutdown(self) -> None: ...


class Reporter(Protocol):
    def start(self, plan: Plan, skipped: dict[str, TaskResult]) -> None: ...
    def advance(self, task_id: str, table: str, rows: int, nbytes: int) -> None: ...
    def task_done(self, task: Task, result: TaskResult | None, error: str | None) -> None: ...
    def stop(self) -> None: ...


@dataclass
class TableStats:
    rows: int = 0
    bytes: int = 0
    seconds: float = 0.0
    chunks: int = 0
    skipped: int = 0


@dataclass
class RunResult:
    run_id: str
    job: str
    status: str
    exit_code: int
    seconds: float
    error: str | None = None
    tables: dict[str, TableStats] = field(default_factory=dict)


def run_task(task: Task, ctx: RunContext) -> TaskResult:
    """Run one task body and time it. This is what a worker (thread or Dask) executes."""
    started = time.monotonic()
    if task.kind == "sql":  # a before:/after: step, whatever the table's mode
        from runner import steps

        result: TaskResult = steps.run(task, ctx)
    else:
        result = mode_module(task.mode).run(task, ctx)
    result.seconds = time.monotonic() - started
    return result


def execute(
    plan: Plan,
    executor: Executor,
    state: StateStore,
    run_id: str,
    ctx: RunContext,
    reporter: Reporter,
    signal_received: Callable[[], int | None] = lambda: None,
) -> RunResult:
    started = time.monotonic()
    tasks = {t.id: t for t in plan.tasks}
    # prepare steps always run again: they check that what earlier attempts built still exists
    completed = {tid for tid in ctx.done if tid in tasks and tasks[tid].kind != "prepare"}
    skipped = {tid: ctx.results[tid] for tid in completed if tid in ctx.results}
    pending = [t for t in plan.tasks if t.id not in completed]
    reporter.start(plan, skipped)
    stats = {t.target: TableStats() for t in plan.tables}
    for tid, res in skipped.items():
        if tasks[tid].kind == "chunk":
            stats[tasks[tid].table].rows += res.rows
            stats[tasks[tid].table].bytes += res.bytes
            stats[tasks[tid].table].skipped += 1
    first_start: dict[str, float] = {}
    attempts: dict[str, int] = {}
    not_before: dict[str, float] = {}
    running: dict[Any, Task] = {}
    failure: EtlrunError | None = None
    signum: int | None = None
    rejected = 0  # rows written to reject files (on_error: reject)

    serial = not getattr(ctx.target.capabilities, "parallel_writes", True)

    def ready(task: Task) -> bool:
        if serial and running:
            return False  # one task at a time (SQLite): see Capabilities.parallel_writes
        return all(d in completed for d in task.deps) and time.monotonic() >= not_before.get(
            task.id, 0
        )

    try:
        while pending or running:
            if signum is None and (sig := signal_received()):
                signum = sig
                ctx.cancel.set()
                logger.warning("stopping on signal {}: rolling back the chunks in flight", sig)
            stopping = failure is not None or signum is not None
            if not stopping:
                for task in [t for t in pending if ready(t)]:
                    if len(running) >= executor.workers:
                        break
                    if serial and not ready(task):  # a task was just started
                        continue
                    attempts[task.id] = attempts.get(task.id, 0) + 1
                    first_start.setdefault(task.table, time.monotonic())
                    state.task_started(run_id, task.id, task.table, task.kind, attempts[task.id])
                    running[executor.submit(run_task, task, ctx)] = task
                    pending.remove(task)
            if not running:
                if stopping or not pending:
                    break
                time.sleep(0.05)  # only retries waiting out their backoff are left
                continue
            for future in executor.wait(running, timeout=0.2):
                task = running.pop(future)
                try:
                    result: TaskResult = future.result()
                except Cancelled as exc:
                    state.task_finished(run_id, task.id, "cancelled", error=str(exc))
                    reporter.task_done(task, None, "cancelled")
                    continue
                except BaseException as exc:  # noqa: BLE001 - every failure is recorded
                    error = exc if isinstance(exc, EtlrunError) else _unexpected(exc, task, run_id)
                    message = scrub(str(error))
                    if (
                        error.retryable
                        and attempts[task.id] < MAX_ATTEMPTS
                        and failure is None
                        and signum is None
                    ):
                        delay = BACKOFF_SECONDS[
                            min(attempts[task.id] - 1, len(BACKOFF_SECONDS) - 1)
                        ]
                        logger.warning(
                            "{} failed (attempt {}), retrying in {:.0f}s: {}",
                            task.id,
                            attempts[task.id],
                            delay,
                            message,
                        )
                        state.task_finished(run_id, task.id, "retrying", error=message)
                        not_before[task.id] = time.monotonic() + delay
                        pending.insert(0, task)
                        continue
                    state.task_finished(run_id, task.id, "failed", error=message)
                    reporter.task_done(task, None, message)
                    if failure is None:
                        failure = _explain(error, task, plan, completed)
                        ctx.cancel.set()
                    continue
                _crash_point(task.id)
                if (mark := result.extra.get("watermark")) is not None:
                    # after the target commit of the rows it covers, before the task is recorded
                    state.set_watermark(plan.job, task.table, mark["value"], mark["type"], run_id)
                completed.add(task.id)
                ctx.results[task.id] = result
                state.task_finished(
                    run_id,
                    task.id,
                    "done",
                    result.rows,
                    result.bytes,
                    result.seconds,
                    rejected=int(result.extra.get("rejected", 0)),
                )
                rejected += int(result.extra.get("rejected", 0))
                reporter.task_done(task, result, None)
                if task.kind == "chunk":
                    trim_memory()
                    stats[task.table].rows += result.rows
                    stats[task.table].bytes += result.bytes
                    stats[task.table].chunks += 1
                # wall time from the table's first task to now: chunks run in parallel
                stats[task.table].seconds = time.monotonic() - first_start[task.table]
    finally:
        reporter.stop()
    seconds = time.monotonic() - started
    if signum is not None and failure is None:
        failure = InterruptedError_(
            signum, _progress_note(plan, completed, f"stopped by signal {signum}")
        )
    if failure is not None:
        status = "interrupted" if isinstance(failure, InterruptedError_) else "failed"
        state.finish_run(run_id, status, failure.exit_code, str(failure))
        return RunResult(
            run_id, plan.job, status, failure.exit_code, seconds, scrub(str(failure)), stats
        )
    if rejected:
        # everything else committed; the rejected rows are in the reject files (exit 3)
        error = RejectedRowsError(
            f"{rejected} row(s) rejected: see .etlrun/rejects/{plan.job}/{run_id}/"
        )
        state.finish_run(run_id, "rejected", error.exit_code, str(error))
        return RunResult(run_id, plan.job, "rejected", error.exit_code, seconds, str(error), stats)
    state.finish_run(run_id, "succeeded", 0)
    return RunResult(run_id, plan.job, "succeeded", 0, seconds, None, stats)


def _crash_point(task_id: str) -> None:
    """Test-only fault hook: ETLRUN_TEST_CRASH_AFTER=<task id> kills this process right after
    that task committed and before anything about it reaches the state store (``os._exit``, or
    a real SIGKILL with ETLRUN_TEST_CRASH_SIGNAL=KILL)."""
    if os.environ.get("ETLRUN_TEST_CRASH_AFTER") == task_id:
        if os.environ.get("ETLRUN_TEST_CRASH_SIGNAL") == "KILL":
            os.kill(os.getpid(), signal.SIGKILL)
        os._exit(137)


def _unexpected(exc: BaseException, task: Task, run_id: str) -> EtlrunError:
    """A bug, not a database error: wrapped, and a crash report written (runner.crash)."""
    from runner import crash

    report = crash.write(exc, run_id=run_id, task=task.id)
    where = f" (crash report: {report})" if report else ""
    error = TaskError(f"{type(exc).__name__}: {exc}{where}")
    error.__cause__ = exc
    return error


def _progress_note(plan: Plan, completed: set[str], head: str) -> str:
    chunks = [t for t in plan.tasks if t.kind == "chunk"]
    done = sum(1 for t in chunks if t.id in completed)
    return (
        f"{head}. {done} of {len(chunks)} chunks are committed; "
        f"'etlrun run' of this job resumes from there ('--fresh' starts over)."
    )


def _explain(error: EtlrunError, task: Task, plan: Plan, completed: set[str]) -> EtlrunError:
    """The same error class, with where it happened and what happens next (STYLE §4)."""
    where = task.id
    if task.kind == "chunk":
        where = f"{task.table}[chunk {task.params['chunk']}/{task.params['chunks']}]"
    message = _progress_note(plan, completed, f"task {where} failed: {scrub(str(error))}")
    explained = type(error).__new__(type(error))
    explained.__dict__.update(error.__dict__)
    Exception.__init__(explained, message)
    explained.__cause__ = error.__cause__ or error
    return explained
