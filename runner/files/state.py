"""The per-file state of file jobs (table ``etlrun_files``), and their run records.

One row per source file a job has copied, checked or locked: its size, mtime and checksum at
that time (the cache that spares re-reading an unchanged file), where it went, when, and its
code: 0 copy, 1 copy if changed (what a copy leaves), 2 locked (never copied again).

A copied file's row and its task row (what ``etlrun show`` lists) are written in one
transaction right after the file is renamed into place, so a killed run leaves the state
matching the target, and the next run does not send that file again.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from runner.errors import TaskError
from runner.files.match import matches
from runner.secrets import scrub
from runner.state.store import StateStore, files, now, runs, tasks

COPY, IF_CHANGED, LOCKED = 0, 1, 2
CODES = {COPY: "copy", IF_CHANGED: "copy-if-changed", LOCKED: "locked"}


@dataclass(frozen=True)
class FileRow:
    path: str
    size: int | None
    mtime: float | None
    algo: str | None
    checksum: str | None
    remote_path: str | None
    target_size: int | None
    copied_at: datetime | None
    run_id: str | None
    code: int
    updated_at: datetime | None = None
    etag: str | None = None
    """The source's version tag when copied, where its store has one (an S3 ETag)."""

    def as_dict(self) -> dict[str, Any]:
        return {**self.__dict__, "state": CODES.get(self.code, str(self.code))}


def rows(store: StateStore, job: str) -> dict[str, FileRow]:
    with store.engine.connect() as conn:
        found = conn.execute(sa.select(files).where(files.c.job == job)).mappings()
        return {r["path"]: FileRow(**{k: v for k, v in r.items() if k != "job"}) for r in found}


def _put(conn: Any, job: str, row: FileRow) -> None:
    key = (files.c.job == job) & (files.c.path == row.path)
    conn.execute(files.delete().where(key))
    values = {**row.__dict__, "updated_at": now()}
    conn.execute(files.insert().values(job=job, **values))


def _task(
    conn: Any,
    run_id: str,
    task_id: str,
    status: str,
    nbytes: int,
    seconds: float,
    error: str = "",
    count: int = 1,
) -> None:
    """One file's task row; ``count`` (rows) is 1 for a file copied, 0 for a delete."""
    task_id = task_id if len(task_id) <= 512 else task_id[:500] + "..." + task_id[-9:]
    # which attempt of the run did the work: `etlrun show` tells resumed files apart
    attempt = conn.execute(sa.select(runs.c.attempts).where(runs.c.run_id == run_id)).scalar()
    values = {
        "status": status,
        "rows": count if status == "done" else 0,
        "bytes": nbytes,
        "seconds": round(seconds, 3),
        "error": scrub(error) if error else None,
        "finished_at": now(),
        "run_attempt": attempt or 1,
    }
    key = (tasks.c.run_id == run_id) & (tasks.c.task_id == task_id)
    tried = tasks.c.attempts + 1
    if not conn.execute(tasks.update().where(key).values(attempts=tried, **values)).rowcount:
        conn.execute(
            tasks.insert().values(
                run_id=run_id,
                task_id=task_id,
                table_name="files",
                kind="file",
                attempts=1,
                started_at=now(),
                **values,
            )
        )


class Recorder:
    """Records copied and failed files from the transfer threads, on one writer thread.

    A commit of the state store costs an fsync (a few ms); one per file made small files
    wait on the store. The writer takes every record that arrived while it was committing and
    writes them in one transaction, so a file is recorded a commit's time after it was renamed
    into place. A kill inside that window can only make the next run send those few files
    again, whole and atomically, as a kill between rename and commit always could.
    """

    def __init__(self, store: StateStore, job: str, run_id: str) -> None:
        self.store, self.job, self.run_id = store, job, run_id
        self._pending: list[Callable[[Any], None]] = []
        self._changed = threading.Condition()
        self._closed = False
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._write, name="file-state", daemon=True)
        self._thread.start()

    def copied(self, action: str, row: FileRow, seconds: float) -> None:
        """A file is in place on the target: its state row and its task."""

        def write(conn: Any) -> None:
            _put(conn, self.job, row)
            _task(conn, self.run_id, f"{action}:{row.path}", "done", row.size or 0, seconds)

        self._add(write)

    def failed(self, action: str, path: str, error: str) -> None:
        self._add(
            lambda conn: _task(conn, self.run_id, f"{action}:{path}", "failed", 0, 0.0, error)
        )

    def _add(self, write: Callable[[Any], None]) -> None:
        with self._changed:
            if self._error is not None:
                raise TaskError(f"the state store refused a file record: {self._error}")
            self._pending.append(write)
            self._changed.notify()

    def _write(self) -> None:
        while True:
            with self._changed:
                while not self._pending and not self._closed:
                    self._changed.wait()
                batch, self._pending = self._pending, []
                if not batch:
                    return  # closed, and everything written
            try:
                with self.store.engine.begin() as conn:
                    for write in batch:
                        write(conn)
            except Exception as exc:  # noqa: BLE001 - reported by close() and the next _add()
                with self._changed:
                    self._error = exc
                return

    def close(self) -> None:
        """Wait until every record is written; raise if the store refused one."""
        with self._changed:
            self._closed = True
            self._changed.notify()
        self._thread.join()
        if self._error is not None:
            raise TaskError(f"the state store refused a file record: {self._error}") from (
                self._error
            )


def record_failure(store: StateStore, run_id: str, action: str, path: str, error: str) -> None:
    with store.engine.begin() as conn:
        _task(conn, run_id, f"{action}:{path}", "failed", 0, 0.0, error)


def record_delete(store: StateStore, job: str, run_id: str, path: str, remote: str) -> None:
    """The target file is gone: so is the state row of its source file."""
    with store.engine.begin() as conn:
        conn.execute(files.delete().where((files.c.job == job) & (files.c.path == path)))
        _task(conn, run_id, f"delete:{remote}", "done", 0, 0.0, count=0)


def put(store: StateStore, job: str, new: list[FileRow]) -> None:
    """Write rows without a run (``check --update-state``, a touched but unchanged file)."""
    if not new:
        return
    with store.engine.begin() as conn:
        for row in new:
            _put(conn, job, row)


def set_code(
    store: StateStore, job: str, pattern: str, code: int, known: list[str]
) -> tuple[list[str], list[str]]:
    """Give every file of ``job`` matching ``pattern`` the ``code``; ``known`` are source paths
    to add a row for when they have none (a file locked before it was ever copied).

    Returns the paths that matched and the paths whose code changed.
    """
    matched, changed = [], []
    with store.engine.begin() as conn:
        have = {
            r.path: r
            for r in conn.execute(sa.select(files.c.path, files.c.code).where(files.c.job == job))
        }
        for path in sorted(set(have) | set(known)):
            if not matches(pattern, path):
                continue
            matched.append(path)
            if path in have:
                if have[path].code == code:
                    continue
                conn.execute(
                    files.update()
                    .where((files.c.job == job) & (files.c.path == path))
                    .values(code=code, updated_at=now())
                )
            elif code == LOCKED:
                conn.execute(files.insert().values(job=job, path=path, code=code, updated_at=now()))
            else:
                continue  # unlocking a file with no row: it is copied anyway
            changed.append(path)
    return matched, changed


def finish(store: StateStore, run_id: str, status: str, exit_code: int, error: str | None) -> None:
    """Close the run record: ``rows`` counts the files copied, ``bytes`` their bytes."""
    store.finish_run(run_id, status, exit_code, error, task_kind="file")
