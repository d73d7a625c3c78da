"""``etlrun run``: one job or a folder of them, with resume, locks and clean stops on signals."""

from __future__ import annotations

import argparse
import hashlib
import sys
from typing import Any

from rich.console import Console

from runner.cli._util import _job_files, _load, _split_tables
from runner.errors import UsageError
from runner.signals import StopSignals


def _plan_key(spec_hash: str, tables: list[str] | None) -> str:
    return hashlib.sha256(f"{spec_hash}|{','.join(tables or [])}".encode()).hexdigest()[:16]


def cmd_run(args: argparse.Namespace) -> int:
    files, many = _job_files(args.job, getattr(args, "changed_since", None))
    if not many:
        return run_job(_load(args.job), args.job, args)
    jobs = [(_load(str(f)), str(f)) for f in files]  # every spec valid before any job runs
    worst = 0
    for job, path in jobs:
        print(f"== {path} (job {job.name})", file=sys.stderr)
        code = run_job(job, path, args)
        worst = worst or code
    return worst


def run_job(job: Any, job_path: str, args: argparse.Namespace, saved: Any = None) -> int:
    """Run ``job`` (or exactly the plan ``saved``, for ``etlrun apply``)."""
    if job.files is not None:
        from runner.files.run import run as run_files

        if args.tables:
            raise UsageError(f"{job_path}: --tables applies to table jobs; this one moves files")
        fresh = getattr(args, "fresh", False)
        return run_files(job, job_path, args.state, args.workers, fresh, saved=saved)
    from runner import crash
    from runner.connectors import connect
    from runner.errors import InterruptedError_
    from runner.execute.context import RunContext, TaskResult
    from runner.execute.dask import choose_executor
    from runner.execute.progress import reporter_for, summary_table
    from runner.execute.run import execute
    from runner.execute.threads import ThreadExecutor
    from runner.plan.compiler import compile, spec_hash
    from runner.plan.plan import Plan
    from runner.state.store import StateStore, new_run_id

    choice = choose_executor(args.executor, job.executor)
    workers = job.workers if args.workers is None else args.workers
    if workers < 1:
        raise UsageError("--workers must be at least 1")
    tables = _split_tables(args.tables)
    console = Console()
    with StopSignals() as signals:
        state = StateStore(args.state)
        plan_hash = spec_hash(job)
        key = _plan_key(plan_hash, tables)
        resume = None if args.fresh else state.resumable(job.name, key)
        if (
            resume
            and saved is not None
            and Plan.from_json(resume.plan_json).fingerprint != saved.fingerprint
        ):
            resume = None  # apply runs the saved plan, not another unfinished one
        run_id = resume.run_id if resume else new_run_id(job.name)
        crash.note(job=job.name, spec_hash=plan_hash, run_id=run_id, spec=job_path)
        state.acquire_lock(job.name, run_id)
        source, target = connect(job.source), connect(job.target)
        executor: Any = None
        try:
            if choice.kind == "threads":
                executor = ThreadExecutor(workers)
            else:  # a dask-local cluster starts while the plan is made
                from runner.execute.dask import start

                hmac_key = job.sanitize.key if job.sanitize else None
                secret = hmac_key.get_secret_value() if hmac_key else None
                executor = start(choice, workers, source, target, job_path, sanitize_key=secret)
            if resume:
                plan = Plan.from_json(resume.plan_json)
                print(
                    f"resuming run {run_id}: {len(resume.done)} tasks already committed",
                    file=sys.stderr,
                )
            elif saved is not None:
                plan = saved
            else:
                plan = compile(job, source, target, tables, state=state, sizes=False)
            if signals():
                raise InterruptedError_(signals() or 2, "stopped before anything was written")
            state.start_run(
                run_id, job.name, plan.spec_hash, key, plan.to_json(), resumed=bool(resume)
            )
            done = resume.done if resume else {}
            ctx = RunContext(
                source=source,
                target=target,
                resumed=bool(resume),
                run_id=run_id,
                state_url=state.url,
                # chunk tasks share this process's memory: a file target's chunks can then
                # assemble one file while they run (modes/_assemble)
                assemble=executor.name == "threads",
                done=frozenset(done),
                results={
                    tid: TaskResult(
                        int(d["rows"] or 0), int(d["bytes"] or 0), float(d["seconds"] or 0)
                    )
                    for tid, d in done.items()
                },
            )
            reporter = reporter_for(console)
            ctx.progress = reporter.advance
            result = execute(plan, executor, state, run_id, ctx, reporter, signals)
        finally:
            if executor is not None:
                executor.shutdown()
            state.release_lock(job.name, run_id)
            source.close()
            target.close()
    crash.reset()  # the run is over: a later crash in this process is not about it
    console.print(summary_table(result))
    if result.error:
        print(f"error: {result.error}", file=sys.stderr)
    return result.exit_code
