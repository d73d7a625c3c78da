"""One file from source to target: atomic, verified, and never recorded while it was changing.

The file is streamed in :data:`~runner.files.store.CHUNK` pieces into a temporary name beside
its final one, hashed as it is read (one read serves the copy and the checksum). Then:

1. the source is stat'ed again: a size, mtime or version tag (S3 ETag) other than before the
   copy, a byte count other than the size, or an object store refusing a read because the
   object was replaced (``FileExpired``) means it changed while being copied: the temporary
   file is removed and the copy retried (:data:`ATTEMPTS` in all, then
   :class:`FileChangedError`);
2. the temporary file's size on the target must equal the bytes sent, and where reading it back
   is cheap (a local target) its checksum must equal the one computed while sending;
3. it gets the source's mtime, and is renamed over the final name (atomic locally and over
   SFTP); object stores, which have no rename, get the object in one upload instead.

Only then does the caller record the file as in sync. A kill at any point leaves at most a
temporary file (removed by the next run), never a partial file under the final name.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from loguru import logger

from runner.errors import TaskError, VerifyError
from runner.files.store import CHUNK, FileStore, new_hash

ATTEMPTS = 3
"""Copies of a file that keeps changing before it is given up for this run."""
RETRY_WAIT = (0.5, 2.0)


class FileChangedError(TaskError):
    """The source file changed during every attempt to copy it."""


class Stopped(Exception):
    """A signal asked the run to stop; the file in flight was abandoned (temp file removed)."""


@dataclass
class Copied:
    size: int
    mtime: float
    checksum: str | None
    target_size: int
    attempts: int
    seconds: float
    etag: str | None = None
    """The source's version tag as copied (S3 ETag), where it has one."""


def copy_file(
    source: FileStore,
    target: FileStore,
    path: str,
    target_path: str,
    compare: str,
    temp_tag: str,
    on_bytes: Callable[[int], None] = lambda n: None,
    stopped: Callable[[], bool] = lambda: False,
) -> Copied:
    """Copy ``path`` (under the source) to ``target_path`` (under the target); see the module."""
    algo = None if compare == "size_mtime" else compare
    started = time.monotonic()
    for attempt in range(1, ATTEMPTS + 1):
        before = source.stat(path)
        if before is None:
            raise TaskError(f"{path}: the source file is gone")
        digest = new_hash(algo) if algo else None
        sent = 0
        name = target.temp_name(target_path, temp_tag) if target.atomic_rename else target_path
        try:
            with target.open_write(name) as out, source.open_read(path) as f:
                # no more than the size stat'ed: a file that grows while it is read (a log, a
                # running measurement) would otherwise be chased forever
                while sent < before.size:
                    chunk = f.read(min(CHUNK, before.size - sent))
                    if not chunk:
                        break  # it shrank: seen below
                    if stopped():
                        raise Stopped
                    out.write(chunk)
                    if digest is not None:
                        digest.update(chunk)
                    sent += len(chunk)
                    on_bytes(len(chunk))
        except BaseException as exc:
            if not _replaced(exc):
                on_bytes(-sent)
                raise
            expired = True  # the temporary file is gone already (open_write)
        else:
            expired = False
        after = source.stat(path)
        if expired or after != before or sent != before.size:
            target.remove(name)
            on_bytes(-sent)
            now = "gone" if after is None else f"{after.size} bytes, mtime {after.mtime:.3f}"
            if expired:
                now += "; the store refused the rest of the old version"
            elif after is not None and after.etag != before.etag:
                now += f"; ETag {before.etag} -> {after.etag}"
            logger.warning(
                "{}: changed while being copied (was {} bytes, mtime {:.3f}; now {}); "
                "attempt {} of {}",
                path,
                before.size,
                before.mtime,
                now,
                attempt,
                ATTEMPTS,
            )
            if after is None:
                raise TaskError(f"{path}: the source file was deleted while being copied")
            if attempt < ATTEMPTS:
                time.sleep(RETRY_WAIT[min(attempt - 1, len(RETRY_WAIT) - 1)])
            continue
        checksum = digest.hexdigest() if digest is not None else None
        try:
            target_size = _verify(target, name, sent, algo, checksum)
            if target.atomic_rename:
                target.set_mtime(name, before)
                target.rename(name, target_path)
        except BaseException:
            target.remove(name)
            raise
        return Copied(
            before.size, before.mtime, checksum, target_size, attempt,
            time.monotonic() - started, before.etag,
        )  # fmt: skip
    raise FileChangedError(
        f"{path}: kept changing while being copied ({ATTEMPTS} attempts); not recorded, the "
        "next run copies it"
    )


def _replaced(exc: BaseException) -> bool:
    """An object store refused the next range of a read because the object is no longer the
    version the first range came from (s3fs's ``FileExpired``, after an S3 If-Match; matched
    by name, as s3fs is an optional package)."""
    return isinstance(exc, OSError) and type(exc).__name__ == "FileExpired"


def _verify(target: FileStore, name: str, sent: int, algo: str | None, checksum: str | None) -> int:
    written = target.stat(name)
    if written is None or written.size != sent:
        got = "nothing" if written is None else f"{written.size} bytes"
        raise VerifyError(f"{name}: {sent} bytes were sent but the target has {got}")
    if algo and checksum and target.hashes_cheaply:
        back = target.hash(name, algo)
        if back != checksum:
            raise VerifyError(f"{name}: {algo} on the target is {back}, sent {checksum}")
    return written.size
