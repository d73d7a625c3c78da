"""What a file job would do: every selected file compared with its state row and the target.

For each source file under a ``files:`` entry, in this order:

- no state row, or code 0 -> ``copy`` (new);
- code 2 -> ``locked`` (never copied; a locked file's target is never deleted either);
- missing on the target, or a size there other than the one copied -> ``update``;
- size changed -> ``update``; size and mtime as recorded -> ``unchanged`` (nothing is read),
  unless the store has version tags (S3 ETags) and the file's differs from the one recorded;
- a new mtime under the recorded version tag -> ``unchanged`` (touched; nothing is read);
- mtime changed, same size: ``size_mtime`` -> ``update``; a checksum compare reads the file
  and compares with the recorded checksum: equal -> ``unchanged`` (touched; the run records
  the new mtime), else ``update``.

With ``delete: true`` a target file that matches the entry's globs and has no source file is a
``delete``; more deletes than ``max_delete`` make the plan refused (exit 6 when run).
Planning reads listings, the state store and (for touched files) file contents; it writes
nothing.
"""

from __future__ import annotations

import hashlib
import json
import os
import posixpath
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from runner.connectors.fs import TEMP_PREFIX
from runner.errors import TaskError
from runner.files.match import selected
from runner.files.state import COPY, LOCKED, FileRow
from runner.files.store import FileStore, Listing, Stat
from runner.spec.models import Job

if TYPE_CHECKING:
    from runner.state.store import StateStore

ACTIONS = ("copy", "update", "delete", "locked", "unchanged")
"""Everything a plan can say about a file; the first three are changes."""
CHANGES = ("copy", "update", "delete")


@dataclass(frozen=True)
class FileAction:
    action: str
    path: str
    """Under the source URL (a delete: the path its source file had)."""
    target: str
    """Under the target URL."""
    size: int
    reason: str
    entry: int
    mtime: float | None = None
    checksum: str | None = None
    """The source's checksum when the plan knows it (unchanged files)."""
    touched: bool = False
    """Unchanged content under a new mtime: the run records the new mtime."""
    etag: str | None = None
    """The source's version tag (S3 ETag) as listed, where its store has one."""


@dataclass
class FilePlan:
    job: str
    mode: str
    source: str
    target: str
    spec_hash: str
    workers: int
    entries: list[dict[str, Any]]
    actions: list[FileAction] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)
    """Why a run would refuse (max_delete exceeded): exit 6, nothing done."""
    temps: list[str] = field(default_factory=list)
    """Temporary files a killed run of this job left on the target (removed by a run)."""

    kind = "files"

    def of(self, action: str) -> list[FileAction]:
        return [a for a in self.actions if a.action == action]

    def totals(self) -> dict[str, dict[str, int]]:
        out = {name: {"files": 0, "bytes": 0} for name in ACTIONS}
        for a in self.actions:
            out[a.action]["files"] += 1
            out[a.action]["bytes"] += a.size
        return out

    @property
    def has_changes(self) -> bool:
        return any(a.action in CHANGES for a in self.actions)

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "job": self.job,
            "mode": self.mode,
            "source": self.source,
            "target": self.target,
            "spec_hash": self.spec_hash,
            "workers": self.workers,
            "entries": self.entries,
            "totals": self.totals(),
            "refused": self.refused,
            "temps": self.temps,
            "files": [
                {k: v for k, v in asdict(a).items() if k not in ("touched",)} for a in self.actions
            ],
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True, default=str) + "\n"

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FilePlan:
        """The plan :meth:`to_dict` wrote (a saved plan); ``totals`` are derived again."""
        return cls(
            job=data["job"],
            mode=data["mode"],
            source=data["source"],
            target=data["target"],
            spec_hash=data["spec_hash"],
            workers=data["workers"],
            entries=data["entries"],
            actions=[FileAction(**f) for f in data["files"]],
            refused=list(data["refused"]),
            temps=list(data["temps"]),
        )

    @property
    def fingerprint(self) -> str:
        return hashlib.sha256(self.to_json().encode()).hexdigest()[:16]


def read_state(url: str | None) -> StateStore | None:
    """The state store at ``url`` to read, or None when it does not exist (not created)."""
    from runner.state.store import DEFAULT_URL, StateStore

    url = url or os.environ.get("ETLRUN_STATE") or DEFAULT_URL
    if url.startswith("sqlite:///") and not Path(url.removeprefix("sqlite:///")).exists():
        return None
    return StateStore(url)


def entry_folders(job: Job, index: int) -> tuple[str, str]:
    entry = (job.files or [])[index]
    source = entry.path or ""
    return source, entry.to if entry.to is not None else source


def make_plan(
    job: Job,
    source: FileStore,
    target: FileStore,
    state: dict[str, FileRow],
    spec_hash: str,
    temp_tag: str,
) -> FilePlan:
    """Compare every selected source file with ``state`` and the target's listing."""
    plan = FilePlan(
        job=job.name,
        mode=job.mode or "copy",
        source=source.display_url,
        target=target.display_url,
        spec_hash=spec_hash,
        workers=job.workers,
        entries=[e.model_dump() for e in job.files or []],
    )
    claimed: set[str] = set()
    claimed_targets: set[str] = set()
    listings: list[tuple[Listing, Listing]] = []
    for index, entry in enumerate(job.files or []):
        src_folder, dst_folder = entry_folders(job, index)
        if not source.is_dir(src_folder):
            where = f" (files[{index}].path)" if src_folder else ""
            raise TaskError(
                f"source folder {posixpath.join(source.display_url, src_folder)}{where} does not "
                "exist or is not a folder; nothing was copied"
            )
        listing = _walk(source, src_folder, entry.recursive)
        there = _walk(target, dst_folder, entry.recursive)
        listings.append((listing, there))
        plan.temps += [
            posixpath.join(dst_folder, t)
            for t in there.temps
            if posixpath.basename(t).startswith(f"{TEMP_PREFIX}{temp_tag}-")
        ]
        for rel in sorted(listing.files):
            path = posixpath.join(src_folder, rel)
            if path in claimed or not selected(rel, entry.include, entry.exclude):
                continue
            claimed.add(path)
            tpath = posixpath.join(dst_folder, rel)
            claimed_targets.add(tpath)
            st, row = listing.files[rel], state.get(path)
            action = _decide(index, path, tpath, st, there.files.get(rel), row, entry.compare)
            if action is None:  # the checksum decides: read the file (its size alone did not)
                action = _by_checksum(index, path, tpath, st, row, entry.compare, source)
            plan.actions.append(action)
    # deletes once every entry's files are known, so no entry deletes what another one copies
    for index, entry in enumerate(job.files or []):
        if entry.delete:
            _deletes(plan, job, index, listings[index], state, claimed_targets)
    return plan


def _walk(store: FileStore, folder: str, recursive: bool) -> Listing:
    try:
        return store.walk(folder, recursive)
    except OSError as exc:
        where = posixpath.join(store.display_url, folder)
        raise TaskError(f"cannot list {where}: {exc}; nothing was copied") from exc


def _deletes(
    plan: FilePlan,
    job: Job,
    index: int,
    listings: tuple[Listing, Listing],
    state: dict[str, FileRow],
    claimed_targets: set[str],
) -> None:
    entry = (job.files or [])[index]
    src_folder, dst_folder = entry_folders(job, index)
    listing, there = listings
    deletes = 0
    for rel in sorted(there.files):
        tpath = posixpath.join(dst_folder, rel)
        if rel in listing.files or tpath in claimed_targets:
            continue
        if not selected(rel, entry.include, entry.exclude):
            continue  # not this entry's file: never deleted
        claimed_targets.add(tpath)
        path = posixpath.join(src_folder, rel)
        row = state.get(path)
        size = there.files[rel].size
        if row is not None and row.code == LOCKED:
            plan.actions.append(
                FileAction("locked", path, tpath, size, "locked; source gone, kept", index)
            )
            continue
        deletes += 1
        plan.actions.append(FileAction("delete", path, tpath, size, "source gone", index))
    if entry.max_delete is not None and deletes > entry.max_delete:
        plan.refused.append(
            f"files[{index}]: {deletes} target files would be deleted, more than max_delete "
            f"{entry.max_delete} (is the source folder complete? raise max_delete if so)"
        )


def _decide(
    index: int,
    path: str,
    tpath: str,
    st: Stat,
    there: Stat | None,
    row: FileRow | None,
    compare: str,
) -> FileAction | None:
    """The action the state and the listings decide alone; None: the checksum must decide."""

    def act(action: str, reason: str, **extra: Any) -> FileAction:
        return FileAction(
            action, path, tpath, st.size, reason, index, st.mtime, etag=st.etag, **extra
        )

    if row is None or row.code == COPY:
        if row is not None:
            return act("copy", "marked to copy (code 0)")
        return act("copy", "new" if there is None else "not in the state; replaces the target's")
    if row.code == LOCKED:
        return act("locked", "locked (code 2)")
    if there is None:
        return act("update", "missing on the target")
    if row.target_size is not None and there.size != row.target_size:
        reason = f"changed on the target ({there.size} bytes there, {row.target_size} copied)"
        return act("update", reason)
    if st.size != row.size:
        return act("update", f"size changed ({row.size} -> {st.size} bytes)")
    # a version tag (S3 ETag) on both sides settles what size and mtime cannot: a rewrite
    # within the same second, or a new upload time over the same content
    versions = st.etag is not None and row.etag is not None
    if st.mtime == row.mtime and not (versions and st.etag != row.etag):
        return act("unchanged", "size and mtime as copied", checksum=row.checksum)
    if versions and st.etag == row.etag:
        return act("unchanged", "touched: mtime changed, ETag equal", checksum=row.checksum,
                   touched=True)  # fmt: skip
    if compare == "size_mtime":
        return act("update", "ETag changed" if versions else "mtime changed")
    if row.algo != compare or not row.checksum:
        return act("update", f"mtime changed; no {compare} recorded to compare")
    return None


def _by_checksum(
    index: int,
    path: str,
    tpath: str,
    st: Stat,
    row: FileRow | None,
    compare: str,
    source: FileStore,
) -> FileAction:
    """Same size, new mtime: the content decides (the file is read once, here)."""
    checksum = source.hash(path, compare)
    if row is not None and checksum == row.checksum:
        reason = f"touched: mtime changed, {compare} equal"
        return FileAction(
            "unchanged", path, tpath, st.size, reason, index, st.mtime, checksum, touched=True,
            etag=st.etag,
        )  # fmt: skip
    return FileAction(
        "update", path, tpath, st.size, f"content changed ({compare})", index, st.mtime,
        etag=st.etag,
    )  # fmt: skip
