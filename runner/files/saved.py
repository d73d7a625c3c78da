"""A file job's saved plan (``etlrun plan JOB --out plan.json``, then ``etlrun apply``).

The saved plan lists every file with its action and what the plan saw of it: size, mtime and,
where the store has one, its ETag (the reviewed plan is the :class:`FilePlan` JSON itself).
``apply`` plans again, compares, and runs the saved actions only when every planned change
still stands:

- a file to copy or update must still be on the source with the size, mtime and ETag the plan
  saw, and still need sending (not locked since, not copied by another run meanwhile);
- a file to delete must still be gone from the source, and its target file unchanged in size
  (one already gone from the target is simply not there to delete).

Anything else is a :class:`~runner.apply.StalePlanError` (exit 2) listing each file, and
nothing runs. Files that changed or appeared since the plan but were not in it are left for
the next run: ``apply`` does what was reviewed, not more. Files an interrupted ``apply`` (or
run) of the same spec already copied count as done, so applying again resumes it.
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

from runner.files.plan import CHANGES, FileAction, FilePlan

if TYPE_CHECKING:
    from runner.state.store import Resume

LISTED = 50
"""Stale files named in the error; the rest are counted."""


def done_by(resume: Resume | None) -> set[str]:
    """Source paths an unfinished run of the same spec copied (its task ids are
    ``copy:PATH`` / ``update:PATH``)."""
    if resume is None:
        return set()
    out = set()
    for task_id, task in resume.done.items():
        kind, _, path = task_id.partition(":")
        if task.get("kind") == "file" and kind in ("copy", "update"):
            out.add(path)
    return out


def differences(saved: FilePlan, fresh: FilePlan, done: set[str]) -> list[str]:
    """How the planned changes of ``saved`` no longer hold, one line per file."""
    now = {a.path: a for a in fresh.actions}
    out: list[str] = []
    for a in saved.actions:
        if a.action not in CHANGES:
            continue
        f = now.get(a.path)
        if a.action == "delete":
            if f is None or (f.action == "delete" and f.size == a.size):
                continue  # still to delete, or already gone from the target
            if f.action == "delete":
                out.append(f"{a.target}: planned to delete; its size on the target changed "
                           f"({a.size} -> {f.size} bytes)")  # fmt: skip
            else:
                would = f"a run would now {f.action} it" if f.action in CHANGES else f.reason
                out.append(f"{a.target}: planned to delete; its source file is back ({would})")
            continue
        if a.path in done and (f is None or f.action == "unchanged"):
            continue  # copied by the interrupted attempt this one resumes
        if f is None or f.action == "delete":
            out.append(f"{a.path}: planned to {a.action}; gone from the source")
        elif f.action == "locked":
            out.append(f"{a.path}: planned to {a.action}; locked since the plan")
        elif f.action == "unchanged":
            out.append(f"{a.path}: planned to {a.action}; already in sync (another run copied it)")
        elif (f.size, f.mtime, f.etag) != (a.size, a.mtime, a.etag):
            out.append(f"{a.path}: planned to {a.action}; changed since the plan ({_was(a, f)})")
    return out


def _was(a: FileAction, f: FileAction) -> str:
    parts = []
    if a.size != f.size:
        parts.append(f"size {a.size} -> {f.size} bytes")
    if a.mtime != f.mtime:
        parts.append(f"mtime {a.mtime} -> {f.mtime}")
    if a.etag != f.etag:
        parts.append(f"ETag {a.etag} -> {f.etag}")
    return ", ".join(parts)


def listing(changes: list[str]) -> list[str]:
    """The lines a stale-plan error shows: the first :data:`LISTED`, then a count."""
    if len(changes) <= LISTED:
        return changes
    return [*changes[:LISTED], f"... and {len(changes) - LISTED} more file(s)"]


def to_run(saved: FilePlan, fresh: FilePlan, done: set[str]) -> FilePlan:
    """The plan ``apply`` executes: the saved actions (less those an interrupted attempt
    finished), and the temporary files found now (a killed run's, removed first)."""
    actions = [
        replace(a, action="unchanged", reason="copied by the interrupted attempt")
        if a.action in ("copy", "update") and a.path in done
        else a
        for a in saved.actions
    ]
    return replace(saved, actions=actions, temps=list(fresh.temps))
