"""``etlrun files list|lock|unlock JOB [PATTERN]``: the per-file state of a file job.

JOB is a job spec (its name is the job's; ``lock`` then also finds source files that were
never copied) or a job name as ``etlrun history`` shows it. PATTERN is a glob over the paths
under the source URL, as in ``files:`` (``*.csv`` matches a name in any folder).
"""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from runner.errors import UsageError
from runner.files import state as fstate
from runner.files.match import matches, selected
from runner.files.plan import entry_folders
from runner.files.store import FileStore
from runner.state.store import StateStore


def _job(given: str) -> tuple[str, Any]:
    """(job name, Job or None) for a spec path or a job name."""
    if given.endswith((".yaml", ".yml")) or Path(given).is_file():
        if not Path(given).is_file():
            raise UsageError(f"{given}: no such file")
        from runner.spec.load import load

        job = load(given)
        if job.files is None:
            raise UsageError(
                f"{given}: job '{job.name}' moves tables; 'etlrun files' is for files:"
            )
        return job.name, job
    return given, None


def _source_files(job: Any) -> list[str]:
    """Every source path the job's entries select (for locking files never copied)."""
    source = FileStore(job.source)
    found: list[str] = []
    try:
        for index, entry in enumerate(job.files):
            folder, _ = entry_folders(job, index)
            for rel in sorted(source.walk(folder, entry.recursive).files):
                if selected(rel, entry.include, entry.exclude):
                    found.append(f"{folder}/{rel}" if folder else rel)
    finally:
        source.close()
    return found


def command(args: Any) -> int:
    name, job = _job(args.job)
    store = StateStore(args.state)
    if args.files_verb == "list":
        return _list(store, name, args.pattern or "**", args.format)
    if not args.pattern:
        raise UsageError(
            f"etlrun files {args.files_verb} JOB PATTERN: give a PATTERN (e.g. '*.csv')"
        )
    code = fstate.LOCKED if args.files_verb == "lock" else fstate.IF_CHANGED
    known = _source_files(job) if job is not None and code == fstate.LOCKED else []
    matched, changed = fstate.set_code(store, name, args.pattern, code, known)
    if not matched:
        hint = "" if job is not None else " (give the job's spec to lock files never copied)"
        raise UsageError(f"no file of job '{name}' matches '{args.pattern}'{hint}")
    done = "locked" if code == fstate.LOCKED else "unlocked"
    for path in changed:
        print(f"{done} {path}")
    print(
        f"{len(changed)} file(s) {done}"
        + (f", {len(matched) - len(changed)} already were" if len(matched) > len(changed) else "")
        + (
            " (code 2: never copied again)"
            if code == fstate.LOCKED
            else " (code 1: copied if changed)"
        )
    )
    return 0


def _list(store: StateStore, job: str, pattern: str, fmt: str) -> int:
    rows = [r for p, r in sorted(fstate.rows(store, job).items()) if matches(pattern, p)]
    if fmt == "json":
        print(json.dumps([r.as_dict() for r in rows], indent=2, default=str))
        return 0
    console = Console() if sys.stdout.isatty() else Console(width=200)
    table = Table(title=f"files of job {job}: {len(rows)}")
    for column in ("path", "state", "size", "mtime (UTC)", "checksum", "copied (UTC)", "remote"):
        table.add_column(column, overflow="fold")
    for r in rows:
        mtime = (
            "" if r.mtime is None else f"{datetime.fromtimestamp(r.mtime, UTC):%Y-%m-%d %H:%M:%S}"
        )
        table.add_row(
            r.path,
            f"{r.code} {fstate.CODES.get(r.code, '?')}",
            "" if r.size is None else f"{r.size:,}",
            mtime,
            f"{r.algo}:{r.checksum[:12]}" if r.checksum else (r.algo or ""),
            "" if r.copied_at is None else f"{r.copied_at:%Y-%m-%d %H:%M:%S}",
            r.remote_path or "",
        )
    console.print(table)
    return 0
