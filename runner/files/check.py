"""``etlrun check`` for a file job: every selected source file compared with its target file.

``size_mtime`` compares sizes and modification times (within a second: SFTP keeps whole
seconds; an S3 object carries its upload time, so there a source modified after the upload
differs); ``sha256`` / ``md5`` read both sides (the source's checksum comes from the state
when its size and mtime are as recorded). ``--update-state`` then writes a state row for each
file found equal, so a first run after it copies nothing that is already there (oeleo's
``check(update_db=True)``); a file recorded as in sync that differs is set back to code 0.
Nothing is copied.
"""

from __future__ import annotations

import json
import posixpath
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass

from runner.execute.progress import human_bytes
from runner.files import state as fstate
from runner.files.match import selected
from runner.files.plan import entry_folders, read_state
from runner.files.store import FileStore, Stat
from runner.spec.models import Job
from runner.state.store import StateStore

MTIME_WINDOW = 1.0
"""Seconds two mtimes may differ by and count as equal (SFTP keeps whole seconds)."""


@dataclass
class Compared:
    path: str
    target: str
    status: str
    """equal, differs, missing (on the target), extra (on the target only), locked"""
    detail: str = ""
    size: int = 0
    entry: int = 0
    checksum: str | None = None
    mtime: float | None = None
    target_size: int | None = None
    etag: str | None = None


@dataclass
class CheckResult:
    job: str
    compare: list[str]
    files: list[Compared]
    written: int = 0
    reset: int = 0

    @property
    def equal(self) -> bool:
        return all(c.status in ("equal", "locked") for c in self.files if c.status != "extra-ok")

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for c in self.files:
            out[c.status] = out.get(c.status, 0) + 1
        return out


def check(job: Job, state_url: str | None, update_state: bool = False) -> CheckResult:
    # without --update-state nothing is written: a store that does not exist is not made
    store = StateStore(state_url) if update_state else read_state(state_url)
    rows = fstate.rows(store, job.name) if store is not None else {}
    source, target = FileStore(job.source), FileStore(job.target)
    try:
        source.connect()
        target.connect()
        pairs: list[tuple[int, str, str, Stat, Stat | None]] = []
        extra: list[Compared] = []
        claimed: set[str] = set()
        for index, entry in enumerate(job.files or []):
            src_folder, dst_folder = entry_folders(job, index)
            listing = source.walk(src_folder, entry.recursive)
            there = target.walk(dst_folder, entry.recursive)
            for rel in sorted(listing.files):
                path = posixpath.join(src_folder, rel)
                if path in claimed or not selected(rel, entry.include, entry.exclude):
                    continue
                claimed.add(path)
                tpath = posixpath.join(dst_folder, rel)
                pairs.append((index, path, tpath, listing.files[rel], there.files.get(rel)))
            for rel in sorted(set(there.files) - set(listing.files)):
                if selected(rel, entry.include, entry.exclude):
                    tpath = posixpath.join(dst_folder, rel)
                    # only a sync that deletes promises the target has nothing else
                    status = "extra" if entry.delete else "extra-ok"
                    extra.append(Compared("", tpath, status, "on the target only", entry=index))

        def compare(item: tuple[int, str, str, Stat, Stat | None]) -> Compared:
            index, path, tpath, st, there = item
            how = (job.files or [])[index].compare
            row = rows.get(path)
            found = Compared(
                path, tpath, "equal", size=st.size, entry=index, mtime=st.mtime, etag=st.etag
            )
            if there is None:
                found.status, found.detail = "missing", "not on the target"
            elif there.size != st.size:
                found.status = "differs"
                found.detail = f"size {st.size} on the source, {there.size} on the target"
            elif how == "size_mtime" and target.keeps_mtime:
                if abs(there.mtime - st.mtime) > MTIME_WINDOW:
                    found.status, found.detail = "differs", "modification times differ"
            elif how == "size_mtime":
                # an object's time is its upload's: a source changed after it is what differs
                if st.mtime > there.mtime + MTIME_WINDOW:
                    found.status, found.detail = "differs", "source modified after the upload"
            else:
                cached = (
                    row is not None
                    and row.algo == how
                    and row.checksum
                    and (row.size, row.mtime, row.etag) == (st.size, st.mtime, st.etag)
                )
                mine = row.checksum if cached and row else source.hash(path, how)
                theirs = target.hash(tpath, how)
                found.checksum = mine
                if mine != theirs:
                    found.status, found.detail = "differs", f"{how} differs"
            if there is not None:
                found.target_size = there.size
            if row is not None and row.code == fstate.LOCKED:
                found.detail = f"locked; {found.status}" + (
                    f" ({found.detail})" if found.detail else ""
                )
                found.status = "locked"
            return found

        with ThreadPoolExecutor(max_workers=max(1, job.workers)) as pool:
            compared = list(pool.map(compare, pairs))
        result = CheckResult(job.name, [e.compare for e in job.files or []], compared + extra, 0, 0)
        if update_state and store is not None:
            _update(store, job, result, rows, target)
        return result
    finally:
        source.close()
        target.close()


def _update(
    store: StateStore,
    job: Job,
    result: CheckResult,
    rows: dict[str, fstate.FileRow],
    target: FileStore,
) -> None:
    new: list[fstate.FileRow] = []
    for c in result.files:
        if not c.path:
            continue
        old = rows.get(c.path)
        if c.status == "equal":
            new.append(
                fstate.FileRow(
                    path=c.path,
                    size=c.size,
                    mtime=c.mtime,
                    algo=result.compare[c.entry],
                    checksum=c.checksum,
                    remote_path=target.full(c.target),
                    target_size=c.target_size,
                    copied_at=old.copied_at if old else None,
                    run_id=old.run_id if old else None,
                    code=fstate.IF_CHANGED,
                    etag=c.etag,
                )
            )
        elif c.status in ("differs", "missing") and old is not None and old.code != fstate.COPY:
            new.append(fstate.FileRow(**{**old.__dict__, "code": fstate.COPY}))
            result.reset += 1
    result.written = len(new) - result.reset
    fstate.put(store, job.name, new)


def render_text(result: CheckResult, update_state: bool) -> str:
    counts = result.counts()
    shown = [c for c in result.files if c.status not in ("equal", "extra-ok")]
    total = sum(1 for c in result.files if c.path)
    lines = [
        f"check {result.job}: {total} files compared ({', '.join(sorted(set(result.compare)))})"
        + ("; source and target are equal" if result.equal else "; source and target differ")
    ]
    for status in ("equal", "differs", "missing", "extra", "extra-ok", "locked"):
        if counts.get(status):
            label = "extra (kept)" if status == "extra-ok" else status
            lines.append(f"  {label:<12}{counts[status]:>8,}")
    for c in shown[:200]:
        name = c.path or c.target
        size = human_bytes(c.size) if c.path else ""
        lines.append(f"  {c.status:<9} {name}  {size}  {c.detail}".rstrip())
    if len(shown) > 200:
        lines.append(f"  ... and {len(shown) - 200} more (--format json)")
    if update_state:
        lines.append(
            f"state: {result.written} file(s) recorded as in sync"
            + (f", {result.reset} set back to code 0 (copy)" if result.reset else "")
            + "; nothing was copied"
        )
    return "\n".join(lines) + "\n"


def render_json(result: CheckResult) -> str:
    data = {
        "job": result.job,
        "kind": "files",
        "equal": result.equal,
        "counts": result.counts(),
        "state_written": result.written,
        "state_reset": result.reset,
        "files": [asdict(c) for c in result.files],
    }
    return json.dumps(data, indent=2, sort_keys=True, default=str) + "\n"
