"""File stores through fsspec (``file://``, ``sftp://``, ``s3://``) and the formats etlrun
writes there (Parquet, CSV, JSON Lines), all through pyarrow.

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

import base64
import contextlib
import hashlib
import io
import json
import os
import posixpath
import threading
import uuid
from collections.abc import Iterable, Iterator
from typing import IO, Any, ClassVar
from urllib.parse import unquote, urlsplit

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from runner.connectors import scheme_of
from runner.connectors.base import Capabilities, Connector, TableInfo, WriteResult
from runner.errors import ConnectError, SpecError, TaskError

FORMATS = {"parquet": "parquet", "csv": "csv", "jsonl": "jsonl"}
"""Format name -> file extension."""
TEMP_PREFIX = ".etlrun-tmp-"
"""Temporary files start with this, so a listing (and a restore) never mistakes one for data."""


# --- formats ---------------------------------------------------------------------------------
class FormatWriter:
    """Batches into an open binary file in one of ``FORMATS``, one batch at a time.

    Parquet row groups are gathered up to ``ROW_GROUP_ROWS`` rows (a reader's unit of work and
    of statistics), whatever the size of the batches written.
    """

    ROW_GROUP_ROWS = 65_536

    def __init__(
        self,
        out: IO[bytes],
        fmt: str,
        schema: pa.Schema,
        compression: str | None = None,
        header: bool = True,
    ) -> None:
        if fmt not in FORMATS:
            raise SpecError(f"unknown format '{fmt}' (use one of: {', '.join(FORMATS)})")
        self.out, self.fmt, self.schema, self.rows = out, fmt, schema, 0
        self._pending: list[pa.RecordBatch] = []
        self._pending_rows = 0
        self._writer: Any = None
        self._compression = compression or "snappy"
        if fmt == "csv":
            options = pacsv.WriteOptions(include_header=header)
            self._writer = pacsv.CSVWriter(out, _csv_schema(schema), write_options=options)

    def write(self, batch: pa.RecordBatch) -> None:
        self.rows += batch.num_rows
        if self.fmt == "parquet":
            self._pending.append(batch)
            self._pending_rows += batch.num_rows
            if self._pending_rows >= self.ROW_GROUP_ROWS:
                self._flush_group()
        elif self.fmt == "csv":
            self._writer.write_batch(_csv_batch(batch))
        else:
            for row in batch.to_pylist():
                self.out.write(json.dumps(row, default=_json_value, ensure_ascii=False).encode())
                self.out.write(b"\n")

    def _flush_group(self) -> None:
        if self._pending:
            table = pa.Table.from_batches(self._pending, self.schema)
            if self._writer is None:
                self._writer = pq.ParquetWriter(
                    self.out, self.schema, compression=self._compression,
                    use_dictionary=dictionary_columns(table),
                )  # fmt: skip
            self._writer.write_table(table, row_group_size=max(table.num_rows, 1))
            self._pending, self._pending_rows = [], 0

    def close(self) -> None:
        if self.fmt == "parquet":
            self._flush_group()
            if self._writer is None:  # no rows: a file with the schema only
                compression = self._compression
                self._writer = pq.ParquetWriter(self.out, self.schema, compression=compression)
        if self._writer is not None:
            self._writer.close()
            self._writer = None

    def abort(self) -> None:
        """Drop the writer of a file being thrown away (its own close would write a footer)."""
        writer, self._writer, self._pending = self._writer, None, []
        with contextlib.suppress(Exception):
            if writer is not None:
                writer.close()


def dictionary_columns(sample: pa.Table) -> list[str]:
    """The columns worth dictionary encoding: fewer distinct values than half the rows of the
    first row group. pyarrow's default tries a dictionary for every column and falls back to
    plain encoding for the rest, which doubled the encoding time of the bench's ``events``
    table (1.9 s against 0.9 s for 1M rows, and a file 15% larger)."""
    chosen = []
    for name, column in zip(sample.column_names, sample.columns, strict=True):
        if isinstance(column.type, pa.BaseExtensionType):
            column = pa.chunked_array([c.storage for c in column.chunks], column.type.storage_type)
        try:
            distinct = pc.count_distinct(column).as_py()
        except (pa.ArrowNotImplementedError, pa.ArrowInvalid):
            chosen.append(name)  # no kernel to count with: pyarrow's default
            continue
        if distinct * 2 < max(sample.num_rows, 1):
            chosen.append(name)
    return chosen


def write_batches(
    out: IO[bytes],
    fmt: str,
    schema: pa.Schema,
    batches: Iterable[pa.RecordBatch],
    compression: str | None = None,
    header: bool = True,
) -> int:
    """Write ``batches`` to the open binary file ``out`` in ``fmt``; the rows written."""
    writer = FormatWriter(out, fmt, schema, compression, header)
    try:
        for batch in batches:
            writer.write(batch)
        writer.close()
    except BaseException:
        writer.abort()
        raise
    return writer.rows


def _is_binary(typ: pa.DataType) -> bool:
    return bool(pa.types.is_binary(typ) or pa.types.is_large_binary(typ))


def _csv_type(typ: pa.DataType) -> pa.DataType:
    if _is_binary(typ):
        return pa.string()
    if isinstance(typ, pa.BaseExtensionType):  # JSON: its text
        return typ.storage_type
    return typ


def _csv_schema(schema: pa.Schema) -> pa.Schema:
    """CSV holds text: binary columns are written as base64, JSON as its text."""
    return pa.schema([(f.name, _csv_type(f.type)) for f in schema])


def _csv_batch(batch: pa.RecordBatch) -> pa.RecordBatch:
    if all(_csv_type(f.type) == f.type for f in batch.schema):
        return batch
    columns = [
        pa.array(
            [None if v is None else base64.b64encode(v).decode() for v in column.to_pylist()],
            pa.string(),
        )
        if _is_binary(column.type)
        else column.storage
        if isinstance(column.type, pa.BaseExtensionType)
        else column
        for column in batch.columns
    ]
    return pa.record_batch(columns, schema=_csv_schema(batch.schema))


def _json_value(value: Any) -> Any:
    if isinstance(value, bytes):
        return base64.b64encode(value).decode()
    return str(value)  # dates, times, decimals: ISO / exact text


def read_table(
    data: bytes, fmt: str, schema: pa.Schema | None = None, header: bool = True
) -> pa.Table:
    """A whole file's rows back as a table, typed by ``schema`` when given (CSV, JSON Lines);
    ``header=False``: a CSV part without a header line (``schema`` names the columns)."""
    if fmt == "parquet":
        return pq.read_table(io.BytesIO(data))
    if fmt == "csv":
        if not data:
            return schema.empty_table() if schema is not None else pa.table({})
        if schema is None:
            return pacsv.read_csv(io.BytesIO(data))
        text = _csv_schema(schema)
        # NULL is what the writer writes for it: an empty unquoted field. pyarrow's default
        # null spellings would also read a float's "nan" (and "NULL", "N/A") back as NULL
        options = pacsv.ConvertOptions(
            column_types=text, strings_can_be_null=True, quoted_strings_can_be_null=False,
            null_values=[""],
        )  # fmt: skip
        names = None if header else [f.name for f in schema]
        table = pacsv.read_csv(
            io.BytesIO(data),
            read_options=pacsv.ReadOptions(column_names=names),
            convert_options=options,
        )
        for i, field in enumerate(schema):
            if _is_binary(field.type):
                values = [None if v is None else base64.b64decode(v) for v in table[i].to_pylist()]
                table = table.set_column(i, field.name, pa.array(values, field.type))
        return table
    if fmt == "jsonl":
        rows = [json.loads(line) for line in data.decode().splitlines() if line.strip()]
        if schema is None:
            return pa.Table.from_pylist(rows)
        columns = {f.name: _from_json([r.get(f.name) for r in rows], f.type) for f in schema}
        return pa.table(columns, schema=schema)
    raise SpecError(f"unknown format '{fmt}' (use one of: {', '.join(FORMATS)})")


def _from_json(values: list[Any], typ: pa.DataType) -> pa.Array:
    if pa.types.is_binary(typ) or pa.types.is_large_binary(typ):
        values = [None if v is None else base64.b64decode(v) for v in values]
        return pa.array(values, typ)
    if pa.types.is_temporal(typ) or pa.types.is_decimal(typ):
        # written as text (ISO, exact decimals): parsed back by Arrow's cast
        return pa.array(values, pa.string()).cast(typ)
    return pa.array(values, typ)


def row_count(data: bytes, fmt: str) -> int:
    if fmt == "parquet":
        return int(pq.ParquetFile(io.BytesIO(data)).metadata.num_rows)
    return read_table(data, fmt).num_rows


# --- file systems ----------------------------------------------------------------------------
def _known_hosts_keys(path: str) -> Any:
    import paramiko

    keys = paramiko.HostKeys()
    if os.path.exists(path):
        keys.load(path)
    return keys


def fingerprint(key: Any) -> str:
    """OpenSSH's ``SHA256:...`` fingerprint of a paramiko key."""
    digest = hashlib.sha256(key.asbytes()).digest()
    return "SHA256:" + base64.b64encode(digest).decode().rstrip("=")


def sftp_filesystem(url: str) -> Any:
    """An fsspec SFTP filesystem whose connection was made with a strict host-key policy."""
    try:
        import paramiko
        from fsspec.implementations.sftp import SFTPFileSystem
    except ImportError as exc:
        raise ConnectError('SFTP needs paramiko: pip install "etlrun[sftp]"') from exc

    parts = urlsplit(url)
    query = _query(parts.query)
    host, port = parts.hostname or "", parts.port or 22
    pinned = (query.get("host_key_fingerprint") or "").strip()
    known_hosts = os.path.expanduser(query.get("known_hosts", "~/.ssh/known_hosts"))

    class _Strict(SFTPFileSystem):  # type: ignore[misc]
        def _connect(self) -> None:
            client = paramiko.SSHClient()
            if pinned:

                class _Pinned(paramiko.MissingHostKeyPolicy):
                    def missing_host_key(self, _client: Any, hostname: str, key: Any) -> None:
                        if fingerprint(key) != pinned:
                            raise paramiko.SSHException(
                                f"host key of {hostname} is {fingerprint(key)}, "
                                f"not the pinned {pinned}"
                            )

                client.set_missing_host_key_policy(_Pinned())
            else:
                client._host_keys = _known_hosts_keys(known_hosts)
                client._host_keys_filename = None
                client.set_missing_host_key_policy(paramiko.RejectPolicy())
            self.client = client
            client.connect(self.host, **self.ssh_kwargs)
            self.ftp = client.open_sftp()

    kwargs: dict[str, Any] = {"port": port, "look_for_keys": False, "allow_agent": False}
    if parts.username:
        kwargs["username"] = unquote(parts.username)
    if parts.password:
        kwargs["password"] = unquote(parts.password)
    key_file = query.get("key_file") or os.environ.get("ETLRUN_SFTP_KEY_FILE")
    if key_file:
        kwargs["key_filename"] = os.path.expanduser(key_file)
    elif not parts.password and os.environ.get("ETLRUN_SFTP_PASSWORD"):
        kwargs["password"] = os.environ["ETLRUN_SFTP_PASSWORD"]
    try:
        return _Strict(host, skip_instance_cache=True, timeout=30, **kwargs)
    except paramiko.BadHostKeyException as exc:
        raise ConnectError(
            f"SFTP host key of {host}:{port} does not match known_hosts ({known_hosts}); "
            "refused before authenticating"
        ) from exc
    except paramiko.AuthenticationException as exc:
        raise ConnectError(f"SFTP {host}:{port}: authentication failed ({exc})") from exc
    except paramiko.SSHException as exc:
        raise ConnectError(f"SFTP {host}:{port}: {exc}; refused before authenticating") from exc
    except OSError as exc:
        raise ConnectError(f"SFTP {host}:{port}: {exc}") from exc


def _query(text: str) -> dict[str, str]:
    """URL query parameters; a '+' stays a '+' (fingerprints are base64)."""
    pairs = (item.partition("=") for item in text.split("&") if item)
    return {unquote(k): unquote(v) for k, _, v in pairs}


def filesystem(url: str) -> tuple[Any, str]:
    """(fsspec filesystem, root path) for a file store URL."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme == "file":
        from fsspec.implementations.local import LocalFileSystem

        return LocalFileSystem(), unquote(parts.netloc + parts.path) or "/"
    if scheme == "sftp":
        return sftp_filesystem(url), unquote(parts.path) or "/"
    if scheme == "s3":
        try:
            import s3fs
        except ImportError as exc:
            raise ConnectError('S3 needs s3fs: pip install "etlrun[s3]"') from exc
        query = _query(parts.query)
        client = {"endpoint_url": query["endpoint_url"]} if "endpoint_url" in query else {}
        fs = s3fs.S3FileSystem(client_kwargs=client, skip_instance_cache=True)
        return fs, f"{parts.netloc}{parts.path}".rstrip("/")
    raise SpecError(f"no file store for URL scheme '{scheme}'")


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
        hasher = _HashingWriter()
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


class FileResult:
    def __init__(self, path: str, rows: int, size: int, sha256: str) -> None:
        self.path, self.rows, self.size, self.sha256 = path, rows, size, sha256


class _HashingWriter(io.RawIOBase):
    """A write-only file that hashes and counts what passes through to ``out``."""

    def __init__(self) -> None:
        super().__init__()
        self.out: Any = None
        self.size = 0
        self._hash = hashlib.sha256()

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        view = memoryview(data).cast("B")
        self.out.write(view)
        self._hash.update(view)
        self.size += len(view)
        return len(view)

    def tell(self) -> int:
        return self.size

    def flush(self) -> None:
        self.out.flush()

    def close(self) -> None:  # the real file is closed by its owner, which reports its errors
        super().close()

    def hexdigest(self) -> str:
        return self._hash.hexdigest()


def sha256_of(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
