"""A file store as a file job sees it: list a folder, stat, read, write under a temporary name,
rename, remove, set a modification time, hash.

``file://`` goes straight to the operating system (nanosecond mtimes, ``os.replace``, fsync);
``sftp://`` uses paramiko through :class:`~runner.connectors.fs.FsConnector` (one SSH
connection per thread, host keys checked strictly, POSIX rename, pipelined writes); ``s3://``,
``sharepoint://`` (msgraphfs, an optional extra) and any other fsspec URL go through fsspec.
Object stores have no rename: there a file is written under its final name in one upload,
which readers see whole or not at all.

How each kind of store lists a folder is :mod:`runner.files._walk`.
"""

from __future__ import annotations

import contextlib
import os
import posixpath
import stat as stat_mode
import uuid
from collections.abc import Iterator
from typing import IO, Any

from runner.connectors import scheme_of
from runner.connectors.fs import TEMP_PREFIX, FsConnector
from runner.errors import ConnectError
from runner.files._walk import walk_fsspec, walk_local, walk_sftp
from runner.files.listing import (  # noqa: F401 - Stat, Listing, CHUNK are used from here too
    CHUNK,
    Listing,
    Stat,
    etag_of,
    local_root,
    mtime_of,
    new_hash,
)
from runner.secrets import mask_url


class FileStore:
    """One end of a file job, rooted at its URL's folder."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.display_url = mask_url(url)
        scheme = scheme_of(url)
        self.kind = scheme if scheme in ("file", "sftp") else "fsspec"
        # Microsoft Graph: an upload commits when its last part is sent, also when the block
        # writing it ends in an error; so a temporary name, then a move (untested live)
        self.graph = scheme == "sharepoint"
        self._connector: FsConnector | None = None
        self._fs: Any = None
        if self.kind == "file":
            self.root = local_root(url)
        elif scheme in ("sftp", "s3", "sharepoint"):
            self._connector = FsConnector(url)
            self.root = ""  # known once connected
        else:
            import fsspec

            try:
                self._fs, self.root = fsspec.core.url_to_fs(url)
            except (ImportError, ValueError) as exc:
                raise ConnectError(f"{self.display_url}: {exc}") from exc
            self.root = self.root.rstrip("/")

    # --- plumbing -------------------------------------------------------------------------------
    @property
    def fs(self) -> Any:
        """The fsspec filesystem (this thread's SSH connection for SFTP)."""
        if self._connector is not None:
            fs = self._connector.fs
            if not self.root:
                self.root = self._connector.root.rstrip("/") or "/"
            return fs
        return self._fs

    @property
    def atomic_rename(self) -> bool:
        """Whether a temporary name plus rename is how a file appears whole (not on S3)."""
        return self.kind in ("file", "sftp") or self.graph or "file" in _protocols(self.fs)

    @property
    def keeps_mtime(self) -> bool:
        """Whether a written file can be given its source's mtime (not on S3, where an object's
        time is when it was uploaded, nor on SharePoint)."""
        return self.atomic_rename and not self.graph

    @property
    def hashes_cheaply(self) -> bool:
        """Whether reading a written file back costs no network (so uploads verify by hash)."""
        return self.kind == "file"

    def full(self, relative: str) -> str:
        if self._connector is not None:
            _ = self.fs
        return posixpath.join(self.root, relative) if relative else self.root

    def connect(self) -> None:
        """Open the connection now, so a refused host key or login fails before planning."""
        fs = self.fs
        if self.graph:
            from runner.connectors._sharepoint import sign_in

            sign_in(fs, self.root, self.display_url)

    def close(self) -> None:
        if self._connector is not None:
            self._connector.close()

    # --- reading ------------------------------------------------------------------------------
    def is_dir(self, relative: str = "") -> bool:
        path = self.full(relative)
        if self.kind == "file":
            return os.path.isdir(path)
        if self.kind == "sftp":
            try:
                return stat_mode.S_ISDIR(self.fs.ftp.stat(path).st_mode or 0)
            except OSError:
                return False
        return bool(self.fs.isdir(path))

    def walk(self, folder: str, recursive: bool) -> Listing:
        """Every file under ``folder`` (relative to it); an absent folder lists as empty."""
        listing = Listing()
        if self.kind == "file":
            walk_local(self.full(folder), "", recursive, listing)
        elif self.kind == "sftp":
            walk_sftp(self.fs.ftp, self.full(folder), "", recursive, listing)
        else:
            walk_fsspec(self.fs, self.full(folder), recursive, listing, self._s3)
        return listing

    @property
    def _s3(self) -> bool:
        return bool({"s3", "s3a"} & set(_protocols(self.fs)))

    def stat(self, relative: str) -> Stat | None:
        path = self.full(relative)
        try:
            if self.kind == "file":
                st = os.stat(path)
                return Stat(st.st_size, st.st_mtime_ns / 1e9, st.st_mtime_ns)
            if self.kind == "sftp":
                attr = self.fs.ftp.stat(path)
                return Stat(attr.st_size or 0, float(attr.st_mtime or 0))
            # not from the listing fsspec cached (s3fs answers info() from it): a stat is asked
            # for to see whether the file changed since it was listed
            self.fs.invalidate_cache(path)
            info = self.fs.info(path)
        except FileNotFoundError:
            return None
        if info.get("type") == "directory":
            return None
        return Stat(int(info.get("size") or 0), mtime_of(info, self._s3), etag=etag_of(info))

    @contextlib.contextmanager
    def open_read(self, relative: str) -> Iterator[IO[bytes]]:
        path = self.full(relative)
        if self.kind == "file":
            with open(path, "rb") as f:
                yield f
        elif self.kind == "sftp":
            with self.fs.ftp.open(path, "rb") as f:
                # requests ahead of the reader: a round trip per block would cap the throughput
                f.prefetch(max_concurrent_requests=64)
                yield f
        else:
            with self.fs.open(path, "rb") as f:
                yield f

    def hash(self, relative: str, algo: str, stopped: Any = None) -> str:
        digest = new_hash(algo)
        with self.open_read(relative) as f:
            while chunk := f.read(CHUNK):
                digest.update(chunk)
                if stopped is not None and stopped():
                    raise InterruptedError
        return str(digest.hexdigest())

    # --- writing ------------------------------------------------------------------------------
    def temp_name(self, relative: str, tag: str) -> str:
        folder, name = posixpath.split(relative)
        return posixpath.join(folder, f"{TEMP_PREFIX}{tag}-{uuid.uuid4().hex[:8]}-{name}")

    @contextlib.contextmanager
    def open_write(self, relative: str) -> Iterator[IO[bytes]]:
        """``relative`` opened for writing (its folder made), gone again if anything fails.

        On a local store the data is fsync'ed before the file is closed, so a rename after it
        never exposes a file whose blocks a power cut could lose. On an object store the upload
        is committed only when the block ends without an error (else discarded), so the
        previous version of the object stays.
        """
        path = self.full(relative)
        self.makedirs(posixpath.dirname(relative))
        if self.kind == "fsspec" and not self.atomic_rename:
            with self._open_uncommitted(path) as f:
                yield f
            return
        try:
            if self.kind == "file":
                with open(path, "wb") as f:
                    yield f
                    f.flush()
                    os.fsync(f.fileno())
            elif self.kind == "sftp":
                with self.fs.ftp.open(path, "wb") as f:
                    # no round trip per write; errors of any write are raised at close
                    f.set_pipelined(True)
                    yield f
            else:
                with self.fs.open(path, "wb") as f:
                    yield f
        except BaseException:
            with contextlib.suppress(Exception):
                self.remove(relative)
            raise

    @contextlib.contextmanager
    def _open_uncommitted(self, path: str) -> Iterator[IO[bytes]]:
        try:
            f = self.fs.open(path, "wb", autocommit=False)
        except (NotImplementedError, TypeError, ValueError):
            # no transactional upload here: a file closed after an error holds part of the data,
            # so it is removed (the next run copies it again)
            try:
                with self.fs.open(path, "wb") as plain:
                    yield plain
            except BaseException:
                with contextlib.suppress(Exception):
                    self.fs.rm_file(path)
                raise
            return
        try:
            yield f
            f.close()
            f.commit()
        except BaseException:
            with contextlib.suppress(Exception):
                f.discard()
            raise

    def makedirs(self, folder: str) -> None:
        path = self.full(folder)
        if self.kind == "file":
            os.makedirs(path, exist_ok=True)
            return
        for attempt in range(5):
            try:
                if self.kind == "sftp":
                    self._sftp_makedirs(path)
                else:
                    self.fs.makedirs(path, exist_ok=True)
                return
            except OSError:
                # another thread (its own SSH connection) made the same folder just now
                if self.is_dir(folder) or attempt == 4:
                    if self.is_dir(folder):
                        return
                    raise

    def _sftp_makedirs(self, path: str) -> None:
        ftp = self.fs.ftp
        missing = []
        while path not in ("", "/"):
            try:
                ftp.stat(path)
                break
            except FileNotFoundError:
                missing.append(path)
                path = posixpath.dirname(path)
        for folder in reversed(missing):
            ftp.mkdir(folder)

    def rename(self, old: str, new: str) -> None:
        """Atomic on POSIX file systems and over SFTP (posix-rename@openssh.com)."""
        src, dst = self.full(old), self.full(new)
        if self.kind == "file":
            os.replace(src, dst)
        elif self.kind == "sftp":
            ftp = self.fs.ftp
            try:
                ftp.posix_rename(src, dst)
            except OSError as exc:
                if "unsupported" not in str(exc).lower():
                    raise
                # a server without posix-rename@openssh.com (SFTP v3 rename refuses to replace):
                # the old file goes first, so for a moment neither is there, never a partial one
                with contextlib.suppress(FileNotFoundError):
                    ftp.remove(dst)
                ftp.rename(src, dst)
        elif self.graph:
            # msgraphfs moves onto an existing name as into a folder: the old file goes first
            # (for a moment neither is there, never a partial one)
            with contextlib.suppress(FileNotFoundError):
                self.fs.rm_file(dst)
            self.fs.mv(src, dst)
        else:
            self.fs.mv(src, dst)

    def set_mtime(self, relative: str, source: Stat) -> None:
        """Give the written file its source's modification time (not on object stores)."""
        path = self.full(relative)
        if self.kind == "file":
            ns = source.mtime_ns if source.mtime_ns is not None else round(source.mtime * 1e9)
            os.utime(path, ns=(ns, ns))
        elif self.kind == "sftp":
            self.fs.ftp.utime(path, (int(source.mtime), int(source.mtime)))

    @property
    def has_folders(self) -> bool:
        """Whether folders exist apart from the files in them (not on object stores)."""
        return self.kind in ("file", "sftp")

    def remove_empty_folder(self, relative: str) -> bool:
        """Remove the folder if it is empty; False when it is not (or is gone, or refused).

        The store itself refuses a folder that holds anything (rmdir), so a file that
        appeared in it since it was listed, or one no job selects, keeps it."""
        path = self.full(relative)
        try:
            if self.kind == "file":
                os.rmdir(path)
            elif self.kind == "sftp":
                self.fs.ftp.rmdir(path)
            else:
                return False
        except OSError:
            return False
        return True

    def remove(self, relative: str) -> None:
        path = self.full(relative)
        with contextlib.suppress(FileNotFoundError):
            if self.kind == "file":
                os.remove(path)
            elif self.kind == "sftp":
                self.fs.ftp.remove(path)
            else:
                self.fs.rm_file(path)


def _protocols(fs: Any) -> tuple[str, ...]:
    protocol = getattr(fs, "protocol", ())
    return (protocol,) if isinstance(protocol, str) else tuple(protocol)
