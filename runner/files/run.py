"""The file-job driver: plan, then copy and update on a pool of threads, then delete.

The run holds the job's lock (exit 5 while another live run has it) and is recorded in the
state store like a table run (``etlrun history`` / ``show``), ``rows`` counting files. Files are
independent: each is recorded as soon as it is in place, so a killed run resumes where it
stopped (its unfinished run record is taken up again) and sends no completed file twice.
Deletes run last, and only when every copy succeeded and no signal came, so an interrupted or
failing run never leaves the target with fewer files than it found.
"""

from __future__ import annotations

import hashlib
import json
import posixpath
import sys
import time
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from typing import Any

from loguru import logger
from rich.console import Console

from runner.errors import EtlrunError, InterruptedError_, SafetyError
from runner.files import saved as fsaved
from runner.files import state as fstate
from runner.files.plan import FileAction, FilePlan, entry_folders, make_plan, read_state
from runner.files.progress import FileProgress, FileRunResult, summary_table
from runner.files.store import FileStore
from runner.files.transfer import Stopped, copy_file
from runner.secrets import scrub
from runner.signals import StopSignals
from runner.spec.models import Job
from runner.state.store import StateStore, new_run_id, now


def temp_tag(job: str) -> str:
    """Marks the job's temporary files, so a run removes its own leftovers and no one else's."""
    return hashlib.sha256(job.encode()).hexdigest()[:8]


def spec_hash(job: Job) -> str:
    from runner.plan.compiler import spec_hash as table_spec_hash

    return table_spec_hash(job)


def plan_job(job: Job, state_url: str | None) -> FilePlan:
    """The plan of a file job (``etlrun plan``): reads the stores and the state, writes
    nothing; a state store that does not exist yet is not created."""
    store = read_state(state_url)
    source, target = FileStore(job.source), FileStore(job.target)
    try:
        source.connect()
        target.connect()
        state = fstate.rows(store, job.name) if store is not None else {}
        return make_plan(job, source, target, state, spec_hash(job), temp_tag(job.name))
    finally:
        source.close()
        target.close()


def stale_files(job: Job, saved: FilePlan, state_url: str | None) -> list[str]:
    """How the planned changes of a saved plan no longer hold (``etlrun apply``'s check)."""
    store = read_state(state_url)
    resume = store.resumable(job.name, spec_hash(job)) if store is not None else None
    return fsaved.differences(saved, plan_job(job, state_url), fsaved.done_by(resume))


def run(
    job: Job,
    job_path: str,
    state_url: str | None,
    workers: int | None = None,
    fresh: bool = False,
    saved: FilePlan | None = None,
) -> int:
    """Run the file job; returns its exit code (DESIGN §4). ``fresh``: a new run record even
    when the last one did not finish (files already recorded are still not sent again).
    ``saved``: run exactly that plan (``etlrun apply``), checked again under the lock."""
    from runner import crash

    console = Console()
    store = StateStore(state_url)
    key = spec_hash(job)
    resume = None if fresh else store.resumable(job.name, key)
    run_id = resume.run_id if resume else new_run_id(job.name)
    crash.note(job=job.name, spec_hash=key, run_id=run_id, spec=job_path)
    started = time.monotonic()
    with StopSignals() as signals:
        store.acquire_lock(job.name, run_id)
        source, target = FileStore(job.source), FileStore(job.target)
        recorded = False
        try:
            source.connect()
            target.connect()
            tag = temp_tag(job.name)
            plan = make_plan(job, source, target, fstate.rows(store, job.name), key, tag)
            if saved is not None:
                done = fsaved.done_by(resume)
                changes = fsaved.differences(saved, plan, done)
                if changes:
                    from runner.apply import stale_error

                    raise stale_error(job.name, job_path, fsaved.listing(changes))
                plan = fsaved.to_run(saved, plan, done)
            record: dict[str, Any] = {
                "kind": "files", "job": job.name, "tables": [], "totals": plan.totals(),
            }  # fmt: skip
            if saved is not None:
                record["saved_plan"] = saved.fingerprint
            store.start_run(run_id, job.name, key, key, json.dumps(record), resumed=bool(resume))
            recorded = True
            if resume:
                copied = sum(1 for d in resume.done.values() if d.get("kind") == "file")
                print(
                    f"resuming run {run_id}: {copied} files were copied by an earlier attempt",
                    file=sys.stderr,
                )
            if plan.refused:
                raise SafetyError("; ".join(plan.refused) + "; nothing was copied or deleted")
            result = _execute(
                job, plan, source, target, store, run_id, console, signals, tag,
                workers or job.workers,
            )  # fmt: skip
        except EtlrunError as exc:
            if recorded:
                status = "interrupted" if isinstance(exc, InterruptedError_) else "failed"
                fstate.finish(store, run_id, status, exc.exit_code, str(exc))
            raise
        finally:
            store.release_lock(job.name, run_id)
            source.close()
            target.close()
    crash.reset()
    result.seconds = time.monotonic() - started
    console.print(summary_table(result))
    if result.error:
        print(f"error: {scrub(result.error)}", file=sys.stderr)
    return result.exit_code


def _execute(
    job: Job,
    plan: FilePlan,
    source: FileStore,
    target: FileStore,
    store: StateStore,
    run_id: str,
    console: Console,
    signals: StopSignals,
    tag: str,
    workers: int,
) -> FileRunResult:
    result = FileRunResult(run_id, job.name, "succeeded", 0, 0.0)
    compare = {i: e.compare for i, e in enumerate(job.files or [])}
    for temp in plan.temps:  # left by a killed run of this job (the lock says none is live)
        target.remove(temp)
        logger.info("removed {} (a temporary file of an interrupted run)", temp)
    _record_touched(job, plan, store)
    for a in plan.actions:
        if a.action in ("unchanged", "locked"):
            result.add(a.action, a.size, 0.0)
    todo = sorted(plan.of("copy") + plan.of("update"), key=lambda a: (-a.size, a.path))
    progress = FileProgress(console, len(todo), sum(a.size for a in todo))
    failures: list[tuple[FileAction, BaseException]] = []

    def stopped() -> bool:
        return signals.received is not None

    def one(a: FileAction) -> None:
        if stopped():
            return
        progress.file_started(a.path, a.size)
        try:
            copied = copy_file(
                source, target, a.path, a.target, compare[a.entry], tag,
                on_bytes=lambda n: progress.advance(a.path, n), stopped=stopped,
            )  # fmt: skip
        except Stopped:
            progress.file_done(a.action, a.path, a.size, 0.0, "stopped by a signal; not copied")
            return
        except Exception as exc:  # noqa: BLE001 - one file's failure is reported, others go on
            message = (
                f"{type(exc).__name__}: {exc}" if not isinstance(exc, EtlrunError) else str(exc)
            )
            recorder.failed(a.action, a.path, message)
            progress.file_done(a.action, a.path, a.size, 0.0, scrub(message))
            failures.append((a, exc))
            result.add("failed", a.size, 0.0)
            return
        row = fstate.FileRow(
            path=a.path, size=copied.size, mtime=copied.mtime, algo=compare[a.entry],
            checksum=copied.checksum, remote_path=target.full(a.target),
            target_size=copied.target_size, copied_at=now(), run_id=run_id, code=fstate.IF_CHANGED,
            etag=copied.etag,
        )  # fmt: skip
        recorder.copied(a.action, row, copied.seconds)
        progress.file_done(a.action, a.path, copied.size, copied.seconds)
        result.add("copied" if a.action == "copy" else "updated", copied.size, copied.seconds)

    recorder = fstate.Recorder(store, job.name, run_id)
    progress.start()
    try:
        with ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="file") as pool:
            futures: set[Future[None]] = {pool.submit(one, a) for a in todo}
            while futures:
                # short waits, so the main thread sees a signal and a second one interrupts
                done, futures = wait(futures, timeout=0.2, return_when=FIRST_COMPLETED)
                for future in done:
                    future.result()
    finally:
        progress.stop()
        recorder.close()  # every file copied so far is recorded, whatever happens next
    if signals.received is not None:
        raise InterruptedError_(
            signals.received,
            f"stopped by signal {signals.received}: {_sent(result)}; nothing was deleted; the "
            "next run copies the rest",
        )
    if failures:
        first, exc = failures[0]
        code = exc.exit_code if isinstance(exc, EtlrunError) else 1
        more = f" (and {len(failures) - 1} more: etlrun show {run_id})" if len(failures) > 1 else ""
        result.error = (
            f"{len(failures)} file(s) not copied: {first.path}: {scrub(str(exc))}{more}; "
            f"{_sent(result)}; nothing was deleted; the next run copies the rest"
        )
        result.status, result.exit_code = "failed", code
        fstate.finish(store, run_id, "failed", code, result.error)
        return result
    failed, deleted = [], []
    for a in plan.of("delete"):
        try:
            target.remove(a.target)
        except OSError as exc:
            message = f"cannot delete {a.target}: {exc}"
            fstate.record_failure(store, run_id, "delete", a.target, message)
            logger.error(message)
            failed.append(message)
            result.add("failed", 0, 0.0)
            continue
        fstate.record_delete(store, job.name, run_id, a.path, a.target)
        deleted.append(a)
        logger.info("deleted {} (its source file is gone)", a.target)
        result.add("deleted", a.size, 0.0)
    _remove_emptied(job, target, deleted)
    if failed:
        result.error = f"{len(failed)} delete(s) failed: {failed[0]}; the next run tries again"
        result.status, result.exit_code = "failed", 1
    fstate.finish(store, run_id, result.status, result.exit_code, result.error)
    return result


def _remove_emptied(job: Job, target: FileStore, deleted: list[FileAction]) -> None:
    """Folders that the deletes left empty go too, deepest first, up to (not including) the
    entry's folder on the target: a mirror keeps no empty folders of gone runs. A folder
    that still holds anything stays (the store's rmdir refuses it)."""
    if not target.has_folders or not deleted:
        return
    folders: dict[str, str] = {}  # folder -> the entry's folder on the target, its limit
    for a in deleted:
        top = entry_folders(job, a.entry)[1]
        folder = posixpath.dirname(a.target)
        while folder != top and folder.startswith(f"{top}/" if top else ""):
            folders.setdefault(folder, top)
            folder = posixpath.dirname(folder)
    gone: set[str] = set()
    for folder in sorted(folders, key=lambda f: (-f.count("/"), f)):
        children = [f for f in folders if posixpath.dirname(f) == folder]
        if any(c not in gone for c in children):
            continue  # a sub-folder stayed, so this one is not empty
        if target.remove_empty_folder(folder):
            gone.add(folder)
            logger.info("removed {} (empty after the deletes)", target.full(folder))


def _sent(result: FileRunResult) -> str:
    files = sum(result.actions[k].files for k in ("copied", "updated") if k in result.actions)
    return f"{files} file(s) copied and recorded"


def _record_touched(job: Job, plan: FilePlan, store: StateStore) -> None:
    """Files whose mtime moved but whose content did not: the new mtime spares the next run
    from reading them again."""
    touched = [a for a in plan.of("unchanged") if a.touched]
    if not touched:
        return
    rows = fstate.rows(store, job.name)
    fresh = []
    for a in touched:
        old = rows.get(a.path)
        if old is not None:
            fresh.append(fstate.FileRow(**{**old.__dict__, "mtime": a.mtime, "etag": a.etag}))
    fstate.put(store, job.name, fresh)
