"""File stores through fsspec (``file://``, ``sftp://``, ``s3://``) as a target connector.

The formats written there (Parquet, CSV, JSON Lines) are in :mod:`runner.connectors.formats`,
the file systems behind the URLs in :mod:`runner.connectors.stores`; both are re-exported here.

A file store is a target of copy and backup jobs: each table becomes files under the target
URL. Every file is written under a temporary name and renamed when it is complete, so no file
under its final name is ever partial; an error while writing, flushing or closing (a full disk)
fails the task and removes the temporary file.

SFTP verifies the server's host key before any credential is sent: against known_hosts
(``~/.ssh/known_hosts``, or ``?known_hosts=PATH`` in the URL) or a pinned
``?host_key_fingerprint=SHA256:...``. An unknown or changed key is refused (fsspec's own SFTP
filesystem auto-adds unknown keys, so it is not used for connecting).
"""

from __future__ import annotations

import contextlib
import io
import os
import posixpath
import threading
import uuid
from collections.abc import Iterable, Iterator
from typing import IO, Any, ClassVar

import pyarrow as pa

from runner.connectors import scheme_of
from runner.connectors.base import Capabilities, Connector, TableInfo, WriteResult
from runner.connectors.formats import (  # noqa: F401 - re-exported
    FORMATS,
    FileResult,
    FormatWriter,
    HashingWriter,
    dictionary_columns,
    read_table,
    row_count,
    sha256_of,
    write_batches,
)
from runner.connectors.stores import filesystem, fingerprint, sftp_filesystem  # noqa: F401
from runner.errors import TaskError

TEMP_PREFIX = ".etlrun-tmp-"
"""Temporary files start with this, so a listing (and a restore) never mistakes one for data."""


class FsConnector(Connector, schemes=("file", "sftp", "s3")):
    """A folder of a file store, as a target: one or more files per table."""

    dialect = ""
    extra = "sftp"
    file_store: ClassVar[bool] = True
    capabilities = Capabilities(modes=("copy", "backup"), max_identifier_length=255)

    def __init__(self, url: str) -> None:
        super().__init__(url)
        self._fs: Any = None
        self._root = ""
        self._local = threading.local()
        self._opened: list[Any] = []
        self._lock = threading.Lock()

    @property
    def fs(self) -> Any:
        if self._fs is None:
            self._fs, self._root = filesystem(self.url)
            self._opened.append(self._fs)
            self._local.fs = self._fs
        if scheme_of(self.url) != "sftp":
            return self._fs
        # one SSH connection per thread: paramiko's SFTP client deadlocks when threads
        # wait for responses on one channel at once
        fs = getattr(self._local, "fs", None)
        if fs is None:
            fs, _ = filesystem(self.url)
            with self._lock:
                self._opened.append(fs)
            self._local.fs = fs
        return fs

    @property
    def root(self) -> str:
        _ = self.fs
        return self._root

    def path(self, relative: str) -> str:
        return posixpath.join(self.root, relative.lstrip("/"))

    # catalog: a file target has no tables; "exists" means the final file is there
    def table_exists(self, name: str) -> bool:
        return False

    def exists(self, relative: str) -> bool:
        return bool(self.fs.exists(self.path(relative)))

    def list_tables(self) -> list[str]:
        raise TaskError(f"{self.display_url} is a file store; it cannot be a table source")

    def describe(self, name: str) -> TableInfo:
        raise TaskError(f"{self.display_url} is a file store; it cannot be a table source")

    def execute(self, statements: Iterable[str]) -> None:
        raise TaskError(f"{self.display_url} is a file store; it runs no SQL")

    def write(
        self,
        table: str,
        schema: pa.Schema,
        batches: Iterable[pa.RecordBatch],
        before: Iterable[Any] = (),
    ) -> WriteResult:
        raise TaskError("write to a file store with write_file()")

    # files
    def temp_name(self, relative: str) -> str:
        folder, name = posixpath.split(relative)
        return posixpath.join(folder, f"{TEMP_PREFIX}{uuid.uuid4().hex[:12]}-{name}")

    @contextlib.contextmanager
    def open_temp(self, relative: str) -> Iterator[tuple[str, IO[bytes]]]:
        """A new temporary file next to ``relative``; removed again if anything fails."""
        temp = self.temp_name(relative)
        full = self.path(temp)
        self._makedirs(posixpath.dirname(full))
        try:
            with self.fs.open(full, "wb") as out:
                yield temp, out
                out.flush()
                if hasattr(out, "fileno") and self.fs.protocol in ("file", ("file", "local")):
                    with contextlib.suppress(OSError, io.UnsupportedOperation):
                        os.fsync(out.fileno())
        except BaseException:
            with contextlib.suppress(Exception):
                self.fs.rm_file(full)
            raise

    def write_file(
        self,
        relative: str,
        fmt: str,
        schema: pa.Schema,
        batches: Iterable[pa.RecordBatch],
        compression: str | None = None,
        header: bool = True,
        temp_only: bool = False,
    ) -> FileResult:
        """Write ``batches`` to ``relative`` (under a temporary name, renamed when complete).

        With ``temp_only`` the file stays under its temporary name, which is returned.
        """
        hasher = HashingWriter()
        with self.open_temp(relative) as (temp, out):
            hasher.out = out
            rows = write_batches(hasher, fmt, schema, batches, compression, header)  # type: ignore[arg-type]
        if temp_only:
            return FileResult(temp, rows, hasher.size, hasher.hexdigest())
        self.rename(temp, relative)
        return FileResult(relative, rows, hasher.size, hasher.hexdigest())

    def rename(self, old: str, new: str) -> None:
        """Atomic where the store allows it: POSIX rename locally and over SFTP."""
        src, dst = self.path(old), self.path(new)
        self._makedirs(posixpath.dirname(dst))
        if self.fs.protocol in ("file", ("file", "local")) or "file" in self.fs.protocol:
            os.replace(src, dst)
        elif hasattr(self.fs, "ftp"):
            self.fs.ftp.posix_rename(src, dst)
        else:
            self.fs.mv(src, dst)

    def _makedirs(self, folder: str) -> None:
        # chunks on other threads (other SFTP connections) create the same folder at once:
        # SFTP's mkdir then fails with a bare "Failure" although the folder is there
        for attempt in range(5):
            try:
                self.fs.makedirs(folder, exist_ok=True)
                return
            except OSError:
                if self.fs.isdir(folder):
                    return
                if attempt == 4:
                    raise

    def read_bytes(self, relative: str) -> bytes:
        with self.fs.open(self.path(relative), "rb") as f:
            data: bytes = f.read()
        return data

    def remove(self, relative: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.fs.rm_file(self.path(relative))

    def close(self) -> None:
        for fs in self._opened:
            if hasattr(fs, "client"):
                with contextlib.suppress(Exception):
                    fs.client.close()
        self._opened.clear()
