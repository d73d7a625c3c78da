"""The formats etlrun writes to file stores (Parquet, CSV, JSON Lines) and reads back."""

from __future__ import annotations

import base64
import contextlib
import hashlib
import io
import json
from collections.abc import Iterable
from typing import IO, Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from runner.errors import SpecError

FORMATS = {"parquet": "parquet", "csv": "csv", "jsonl": "jsonl"}
"""Format name -> file extension."""


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
                    use_dictionary=dictionary_columns(table.slice(0, DICTIONARY_SAMPLE_ROWS)),
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


DICTIONARY_SAMPLE_ROWS = 8192
"""Rows of the first row group that decide which columns get a dictionary. Counting distinct
values of all 65,536 rows of the bench's ``events`` took 0.6 s while the chunks were reading
(the file's writer, and so every chunk streaming into it, waited): 8,192 rows tell as well."""


def dictionary_columns(sample: pa.Table) -> list[str]:
    """The columns worth dictionary encoding: fewer distinct values than half the rows of
    ``sample`` (the start of the first row group). pyarrow's default tries a dictionary for every
    column and falls back to plain encoding for the rest, which doubled the encoding time of the
    bench's ``events`` table (1.9 s against 0.9 s for 1M rows, and a file 15% larger)."""
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


class FileResult:
    def __init__(self, path: str, rows: int, size: int, sha256: str) -> None:
        self.path, self.rows, self.size, self.sha256 = path, rows, size, sha256


class HashingWriter(io.RawIOBase):
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
