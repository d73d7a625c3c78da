"""Helpers for connector tests: the DDL and SELECTs etlrun writes, value comparison, bad URLs."""

from __future__ import annotations

import datetime as dt
import socket
from collections.abc import Callable, Iterable, Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pyarrow as pa
from sqlalchemy.engine import make_url
from sqlglot import exp

from runner.connectors.base import Connector
from runner.plan.catalog import quote_ident, quote_table, table_expr
from runner.plan.types import source_type, target_type
from runner.testing.values import UTC


# --- helpers a suite (or any connector test) can use -------------------------------------------
def create_table_sql(
    connector: Connector,
    name: str,
    schema: pa.Schema,
    key: Iterable[str] = ("id",),
    not_null: Iterable[str] = (),
) -> str:
    """CREATE TABLE for ``schema`` with the DDL types etlrun writes for this backend."""
    d, keys = connector.dialect, list(key)
    required = set(keys) | set(not_null)
    lines = [
        f"{quote_ident(f.name, d)} {target_type(f.type, d, is_key=f.name in keys).ddl}"
        + (" NOT NULL" if f.name in required else "")
        for f in schema
    ]
    if keys:
        lines.append(f"PRIMARY KEY ({', '.join(quote_ident(k, d) for k in keys)})")
    suffix = ""
    if d == "mysql":
        suffix = " ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_nopad_bin"
    return f"CREATE TABLE {quote_table(name, d)} ({', '.join(lines)}){suffix}"


def select_sql(connector: Connector, name: str, columns: Iterable[str], order_by: str) -> str:
    d = connector.dialect
    projection = ", ".join(quote_ident(c, d) for c in columns)
    return f"SELECT {projection} FROM {quote_table(name, d)} ORDER BY {quote_ident(order_by, d)}"


def read_sql(connector: Connector, name: str, schema: pa.Schema, order_by: str) -> str:
    """The SELECT etlrun would read ``schema`` with: each column as the connector projects it."""
    d = connector.dialect
    projection = [connector.read_expression(f.name, f.type, False) for f in schema]
    query = exp.select(*projection).from_(table_expr(name))
    return query.order_by(exp.column(order_by, quoted=True)).sql(dialect=d, identify=True)


def read_table(
    connector: Connector, name: str, schema: pa.Schema, order_by: str, batch_rows: int = 1000
) -> pa.Table:
    batches = list(connector.read(read_sql(connector, name, schema, order_by), schema, batch_rows))
    for batch in batches:
        assert batch.schema.equals(schema), f"read gave {batch.schema}, asked for {schema}"
    return pa.Table.from_batches(batches, schema=schema)


def described_schema(connector: Connector, name: str) -> pa.Schema:
    """The Arrow schema etlrun would read ``name`` with, from the backend's own description."""
    info = connector.describe(name)
    return pa.schema(
        [(c.name, source_type(c.type_sql, connector.dialect).arrow) for c in info.columns]
    )


def utc_wall_clock(value: Any) -> Any:
    """An aware datetime as the naive UTC wall clock a zone-less backend stores."""
    if isinstance(value, dt.datetime) and value.tzinfo is not None:
        return value.astimezone(UTC).replace(tzinfo=None)
    return value


def assert_same_kind(
    written: pa.DataType, read: pa.DataType, lossy: str | None, where: str
) -> None:
    """A column reads back as the type it was written as, up to integer widening and lossy flags."""
    if pa.types.is_integer(written):
        assert pa.types.is_integer(read) and read.bit_width >= written.bit_width, where
    elif pa.types.is_timestamp(written) and written.tz and lossy and "time zone" in lossy:
        assert pa.types.is_timestamp(read), where
    else:
        assert read.equals(written), f"{where}: wrote {written}, reads back as {read}"


def assert_rows_equal(
    actual: pa.Table,
    expected: pa.Table,
    key: str = "id",
    normalize: dict[str, Callable[[Any], Any]] | None = None,
) -> None:
    """Row by row by ``key``, value by value; ``normalize`` maps an expected value per column."""
    normalize = normalize or {}
    got = {row[key]: row for row in actual.to_pylist()}
    want = {row[key]: row for row in expected.to_pylist()}
    assert sorted(got, key=repr) == sorted(want, key=repr), "different keys"
    problems = []
    for k, row in want.items():
        for column, value in row.items():
            value = normalize.get(column, lambda v: v)(value)
            other = got[k][column]
            if not same_value(value, other):
                problems.append(f"{key}={k!r} {column}: expected {value!r}, got {other!r}")
    assert not problems, f"{len(problems)} values differ:\n" + "\n".join(problems[:40])


def same_value(a: Any, b: Any) -> bool:
    """Equal as values: NULL only to NULL, a bool only to a bool, datetimes only when both or
    neither carry a zone, Decimal and int by number, anything else by type and value."""
    if a is None or b is None:
        return a is None and b is None
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    if isinstance(a, dt.datetime) and isinstance(b, dt.datetime):
        return (a.tzinfo is None) == (b.tzinfo is None) and a == b
    if isinstance(a, float) and isinstance(b, float):
        return a == b or (a != a and b != b)
    if isinstance(a, Decimal | int) and isinstance(b, Decimal | int):
        return Decimal(a) == Decimal(b)
    return type(a) is type(b) and a == b


def closed_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def unreachable(url: str, tmp_path: Path) -> str:
    """``url`` pointed where nothing answers: a closed port, or a file in a missing folder."""
    parsed = make_url(url)
    if parsed.host:
        return parsed.set(host="127.0.0.1", port=closed_port()).render_as_string(
            hide_password=False
        )
    return parsed.set(database=str(tmp_path / "missing" / "folder" / "db")).render_as_string(
        hide_password=False
    )


def split_batches(table: pa.Table, sizes: Iterable[int]) -> Iterator[pa.RecordBatch]:
    start = 0
    for size in sizes:
        yield (
            table.slice(start, size).to_batches()[0]
            if size
            else pa.RecordBatch.from_pylist([], schema=table.schema)
        )
        start += size
