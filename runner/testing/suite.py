"""The connector conformance suite: every test a backend must pass, in one importable class.

A connector gets the whole suite by subclassing what :func:`connector_suite` returns, naming
where a fresh, empty database comes from (a pytest fixture, or a function of ``tmp_path``)::

    # tests/connectors/test_postgres.py
    import pytest
    from runner.testing import connector_suite

    @pytest.mark.postgres
    class TestPostgres(connector_suite("pg_url")):
        pass

    # a file-based backend
    class TestSqlite(connector_suite(lambda tmp_path: f"sqlite:///{tmp_path}/suite.db")):
        pass

Everything goes through the public :class:`~runner.connectors.base.Connector` API only
(``connect(url)``, ``list_tables``, ``table_exists``, ``describe``, ``execute``, ``write`` with
``before=``, ``read`` with an Arrow schema, ``scalar`` / ``rows``), and tables are created with the
DDL etlrun itself would write for the backend (:func:`runner.plan.types.target_type`). Values are
compared row by row, by primary key and by value; the only normalisation is the one the type
mapping declares lossy (e.g. MariaDB has no time zone type: an instant lands as its UTC wall clock).

The suite needs pytest, so it is meant for test code only.
"""

from __future__ import annotations

import datetime as dt
import socket
import time
from collections.abc import Callable, Iterable, Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from sqlalchemy.engine import make_url
from sqlglot import exp

from runner.connectors import connect
from runner.connectors.base import Connector
from runner.errors import ConnectError, EtlrunError, TaskError
from runner.plan.catalog import quote_ident, quote_table, table_expr
from runner.plan.types import source_type, target_type

UTC = dt.UTC

COMMON_SCHEMA = pa.schema(
    [
        pa.field("id", pa.int64(), nullable=False),
        ("i32", pa.int32()),
        ("i64", pa.int64()),
        ("dec12", pa.decimal128(12, 2)),
        ("dec38", pa.decimal128(38, 10)),
        ("f64", pa.float64()),
        ("txt", pa.string()),
        ("flag", pa.bool_()),
        ("d", pa.date32()),
        ("ts", pa.timestamp("us")),
        ("tstz", pa.timestamp("us", tz="UTC")),
        ("b", pa.binary()),
        ("t", pa.time64("us")),
    ]
)
"""The common types every backend keeps: key ``id``, then one column per kind of value."""


def _tz(hours: int) -> dt.timezone:
    return dt.timezone(dt.timedelta(hours=hours))


# Edge values. Decimals stay within 15 significant digits (what SQLite's REAL keeps exactly);
# tz-aware instants stay in MariaDB TIMESTAMP's 1970..2038, so every backend holds them natively.
_EDGE_ROWS: list[dict[str, Any]] = [
    {
        "i32": 2**31 - 1,
        "i64": 2**63 - 1,
        "dec12": Decimal("9999999999.99"),
        "dec38": Decimal("12345.0123456789"),
        "f64": 1.7976931348623157e308,
        "txt": "Zoë",
        "flag": True,
        "d": dt.date(9999, 12, 31),
        "ts": dt.datetime(9999, 12, 31, 23, 59, 59, 999999),
        "tstz": dt.datetime(2037, 12, 31, 23, 59, 59, 999999, tzinfo=UTC),
        "b": b"\xff\xfe",
        "t": dt.time(23, 59, 59, 999999),
    },
    {
        "i32": -(2**31),
        "i64": -(2**63),
        "dec12": Decimal("-9999999999.99"),
        "dec38": Decimal("-0.0000000001"),
        "f64": -2.2250738585072014e-308,
        "txt": "😀",
        "flag": False,
        "d": dt.date(1000, 1, 1),
        "ts": dt.datetime(1000, 1, 1, 0, 0, 0),
        "tstz": dt.datetime(1970, 1, 1, 0, 0, 1, tzinfo=UTC),
        "b": b"",
        "t": dt.time(0, 0, 0),
    },
    {
        "i32": 0,
        "i64": 0,
        "dec12": Decimal("0.00"),
        "dec38": Decimal("0E-10"),
        "f64": 0.0,
        "txt": "",
        "flag": True,
        "d": dt.date(1970, 1, 1),
        "ts": dt.datetime(1970, 1, 1),
        "tstz": dt.datetime(2024, 6, 1, 12, 0, 0, 500000, tzinfo=_tz(2)),
        "b": b"\x00",
        "t": dt.time(12, 34, 56, 500000),
    },
    {},  # NULL in every column
    {
        "i32": 42,
        "i64": 1,
        "dec12": Decimal("0.01"),
        "dec38": Decimal("99999.9999999999"),
        "f64": 0.1,
        "txt": 'it\'s "quoted", a,b\nline2\ttab \\ back\\slash',
        "d": dt.date(2000, 2, 29),
        "ts": dt.datetime(2024, 2, 29, 12, 0, 0, 123456),
        "tstz": dt.datetime(2000, 1, 1, 0, 0, 0, tzinfo=_tz(-5)),
        "b": b"abc\x00\xff\n\\N",
    },
    {
        "i32": -1,
        "i64": -1,
        "dec12": Decimal("-0.01"),
        "dec38": Decimal("1234567890.12345"),
        "f64": -1.5e300,
        "txt": "👨‍👩‍👧",
        "flag": False,
        "d": dt.date(1969, 12, 31),
        "ts": dt.datetime(1969, 12, 31, 23, 59, 59, 999999),
        "tstz": dt.datetime(2038, 1, 19, 3, 14, 7, tzinfo=UTC),
        "b": b"\x00\x00",
        "t": dt.time(0, 0, 0, 1),
    },
    {"txt": "李", "f64": 3.141592653589793, "dec12": Decimal("1234567890.10")},
    {"txt": "NULL", "i64": 9007199254740993, "d": dt.date(2024, 2, 29)},
    {"txt": "\\N", "f64": 5e-324, "b": b"\\N"},
    {"txt": "  padded  ", "f64": -0.5, "i32": 7},
]


def _ordinary_row(i: int) -> dict[str, Any]:
    """Row ``i`` past the edge rows: varied values, and one column NULL in turn."""
    row: dict[str, Any] = {
        "i32": i * 1000 - 7,
        "i64": -(i * 10**15) - i,
        "dec12": Decimal(i * 12345 - 50000).scaleb(-2),
        "dec38": Decimal(i * 1234567).scaleb(-7),
        "f64": i / 7,
        "txt": f"row {i} Zoë ✓",
        "flag": i % 2 == 0,
        "d": dt.date(2000, 1, 1) + dt.timedelta(days=i * 37),
        "ts": dt.datetime(2020, 1, 1) + dt.timedelta(seconds=i * 86399, microseconds=i * 7919),
        "tstz": dt.datetime(2021, 3, 28, 0, 30, tzinfo=UTC)
        + dt.timedelta(hours=i * 5, microseconds=i),
        "b": bytes([i % 256, 255 - i % 256, 0]),
        "t": dt.time((i * 7) % 24, (i * 13) % 60, (i * 17) % 60, (i * 7919) % 10**6),
    }
    names = [f.name for f in COMMON_SCHEMA][1:]
    row[names[i % len(names)]] = None
    return row


def common_types_table(rows: int | None = None, first_id: int = 1, id_step: int = 1) -> pa.Table:
    """The common-types table: the edge rows, then ordinary rows up to ``rows`` in all.

    ``id`` runs ``first_id, first_id + id_step, ...``; rows are in ``id`` order.
    """
    count = len(_EDGE_ROWS) if rows is None else rows
    records = []
    for i in range(count):
        row = dict(_EDGE_ROWS[i]) if i < len(_EDGE_ROWS) else _ordinary_row(i)
        records.append({"id": first_id + i * id_step, **row})
    columns = {
        f.name: pa.array([r.get(f.name) for r in records], type=f.type) for f in COMMON_SCHEMA
    }
    return pa.table(columns, schema=COMMON_SCHEMA)


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


def _batches(table: pa.Table, sizes: Iterable[int]) -> Iterator[pa.RecordBatch]:
    start = 0
    for size in sizes:
        yield (
            table.slice(start, size).to_batches()[0]
            if size
            else pa.RecordBatch.from_pylist([], schema=table.schema)
        )
        start += size


# --- the suite -------------------------------------------------------------------------------
class ConnectorSuite:
    """Conformance tests for one backend. Subclass it and override :meth:`url`, or use
    :func:`connector_suite`. Each test gets a fresh, empty database from ``url``."""

    table = "common_types"

    @pytest.fixture
    def url(self) -> str:
        raise NotImplementedError("override the `url` fixture, or use connector_suite(...)")

    @pytest.fixture
    def connector(self, url: str) -> Iterator[Connector]:
        conn = connect(url)
        try:
            yield conn
        finally:
            conn.close()

    # --- helpers ----------------------------------------------------------------------------
    def create(
        self, connector: Connector, name: str, schema: pa.Schema, key: Iterable[str] = ("id",)
    ) -> None:
        connector.execute([create_table_sql(connector, name, schema, key)])

    def write(
        self,
        connector: Connector,
        name: str,
        batches: Iterable[pa.RecordBatch],
        schema: pa.Schema,
        before: Iterable[Any] = (),
    ) -> int:
        result = connector.write(
            quote_table(name, connector.dialect), schema, batches, before=before
        )
        return result.rows

    def lossy(self, connector: Connector, schema: pa.Schema) -> dict[str, str]:
        found = {}
        for f in schema:
            note = target_type(f.type, connector.dialect).lossy
            if note:
                found[f.name] = note
        return found

    def normalizers(
        self, connector: Connector, schema: pa.Schema
    ) -> dict[str, Callable[[Any], Any]]:
        """Only where the type mapping declares a loss: a dropped time zone -> UTC wall clock."""
        return {
            name: utc_wall_clock
            for name, note in self.lossy(connector, schema).items()
            if "time zone" in note
        }

    def ids(self, connector: Connector, name: str, key: str = "id") -> list[Any]:
        return [r[0] for r in connector.rows(select_sql(connector, name, [key], key))]

    # --- round trips ------------------------------------------------------------------------
    def test_round_trip_common_types(self, connector: Connector) -> None:
        expected = common_types_table()
        self.create(connector, self.table, COMMON_SCHEMA)
        written = self.write(connector, self.table, expected.to_batches(), COMMON_SCHEMA)
        assert written == expected.num_rows
        schema = described_schema(connector, self.table)
        assert schema.names == COMMON_SCHEMA.names
        lossy = self.lossy(connector, COMMON_SCHEMA)
        for f in COMMON_SCHEMA:
            assert_same_kind(f.type, schema.field(f.name).type, lossy.get(f.name), f.name)
        actual = read_table(connector, self.table, schema, "id", batch_rows=4)
        assert_rows_equal(actual, expected, normalize=self.normalizers(connector, COMMON_SCHEMA))

    def test_read_with_the_written_schema(self, connector: Connector) -> None:
        """Reading with the Arrow types the data was written with gives the same values back."""
        expected = common_types_table()
        self.create(connector, self.table, COMMON_SCHEMA)
        self.write(connector, self.table, expected.to_batches(), COMMON_SCHEMA)
        schema = pa.schema(
            [
                (f.name, pa.timestamp("us"))
                if f.name in self.normalizers(connector, COMMON_SCHEMA)
                else f
                for f in COMMON_SCHEMA
            ]
        )
        actual = read_table(connector, self.table, schema, "id")
        assert_rows_equal(actual, expected, normalize=self.normalizers(connector, COMMON_SCHEMA))

    def test_rows_and_scalar(self, connector: Connector) -> None:
        expected = common_types_table()
        self.create(connector, self.table, COMMON_SCHEMA)
        self.write(connector, self.table, expected.to_batches(), COMMON_SCHEMA)
        d = connector.dialect
        table_sql = quote_table(self.table, d)
        assert connector.scalar(f"SELECT COUNT(*) FROM {table_sql}") == expected.num_rows
        assert (
            connector.scalar(f"SELECT MAX({quote_ident('id', d)}) FROM {table_sql}")
            == expected.num_rows
        )
        # every common type comes back as some Python value (min/max of keys and cursors use this)
        rows = connector.rows(select_sql(connector, self.table, COMMON_SCHEMA.names, "id"))
        assert len(rows) == expected.num_rows
        assert all(len(r) == len(COMMON_SCHEMA) for r in rows)
        assert [r[0] for r in rows] == expected.column("id").to_pylist()
        assert rows[3][1:] == (None,) * (len(COMMON_SCHEMA) - 1)

    def test_empty_table(self, connector: Connector) -> None:
        self.create(connector, self.table, COMMON_SCHEMA)
        assert self.write(connector, self.table, [], COMMON_SCHEMA) == 0
        empty = pa.RecordBatch.from_pylist([], schema=COMMON_SCHEMA)
        assert self.write(connector, self.table, [empty], COMMON_SCHEMA) == 0
        assert connector.table_exists(self.table)
        assert self.table in connector.list_tables()
        schema = described_schema(connector, self.table)
        actual = read_table(connector, self.table, schema, "id")
        assert actual.num_rows == 0
        assert actual.schema.names == COMMON_SCHEMA.names
        assert (
            connector.scalar(f"SELECT COUNT(*) FROM {quote_table(self.table, connector.dialect)}")
            == 0
        )
        assert connector.rows(select_sql(connector, self.table, ["id"], "id")) == []

    def test_chunk_boundaries(self, connector: Connector) -> None:
        expected = common_types_table(rows=23)
        self.create(connector, self.table, COMMON_SCHEMA)
        sizes = [5, 0, 1, 10, 7]
        written = self.write(connector, self.table, _batches(expected, sizes), COMMON_SCHEMA)
        assert written == 23
        schema = described_schema(connector, self.table)
        normalize = self.normalizers(connector, COMMON_SCHEMA)
        for batch_rows in (1, 4, 23, 100):
            sql = read_sql(connector, self.table, schema, "id")
            batches = list(connector.read(sql, schema, batch_rows))
            assert all(b.num_rows <= batch_rows for b in batches), [b.num_rows for b in batches]
            assert sum(b.num_rows for b in batches) == 23
            actual = pa.Table.from_batches(batches, schema=schema)
            assert actual.column("id").to_pylist() == expected.column("id").to_pylist()
            assert_rows_equal(actual, expected, normalize=normalize)

    def test_reading_stopped_early_releases_the_table(self, connector: Connector) -> None:
        """A reader abandoned after its first batch (a failed chunk) leaves the table usable."""
        expected = common_types_table(rows=20)
        self.create(connector, self.table, COMMON_SCHEMA)
        self.write(connector, self.table, expected.to_batches(), COMMON_SCHEMA)
        reader = connector.read(
            read_sql(connector, self.table, pa.schema([("id", pa.int64())]), "id"),
            pa.schema([("id", pa.int64())]),
            3,
        )
        assert next(iter(reader)).num_rows == 3
        reader.close()  # type: ignore[attr-defined]
        d = connector.dialect
        connector.execute(
            [f"DELETE FROM {quote_table(self.table, d)} WHERE {quote_ident('id', d)} > 10"]
        )
        assert self.ids(connector, self.table) == list(range(1, 11))

    # --- identifiers ------------------------------------------------------------------------
    odd_table = 'Odd "Table" 100% Zoë select'
    odd_columns = ("my key", 'quote"d', "it's", "MixedCase", "select", "Zoë 李", "100% sure", "a.b")

    def test_odd_identifiers(self, connector: Connector) -> None:
        key, *rest = self.odd_columns
        schema = pa.schema([(key, pa.int64()), *[(c, pa.string()) for c in rest]])
        rows = [{key: i, **{c: f"{c} {i}" for c in rest}} for i in range(1, 8)]
        rows[2][rest[0]] = None
        table = pa.Table.from_pylist(rows, schema=schema)
        self.create(connector, self.odd_table, schema, key=[key])
        assert connector.table_exists(self.odd_table)
        assert self.odd_table in connector.list_tables()
        info = connector.describe(self.odd_table)
        assert [c.name for c in info.columns] == list(self.odd_columns)
        assert info.primary_key == (key,)
        d, p = connector.dialect, connector.placeholder
        delete = f"DELETE FROM {quote_table(self.odd_table, d)} WHERE {quote_ident(key, d)} > 0"
        written = self.write(connector, self.odd_table, table.to_batches(3), schema, [delete])
        assert written == 7
        schema_read = described_schema(connector, self.odd_table)
        assert_rows_equal(read_table(connector, self.odd_table, schema_read, key, 2), table, key)
        # again over the rows just written, the range given as bound parameters: where the
        # placeholder is %s, a literal % in the statement is written %% (DB-API "format")
        ranged = f"{delete} AND {quote_ident(key, d)} <= {p}"
        if p == "%s":
            ranged = ranged.replace("%", "%%").replace("%%s", "%s")
        before = [(ranged, connector.encode(pa.array([100], pa.int64())))]
        assert self.write(connector, self.odd_table, table.to_batches(), schema, before) == 7
        assert self.ids(connector, self.odd_table, key) == list(range(1, 8))

    def _keyed_round_trip(self, connector: Connector, name: str, keys: list[Any], typ: Any) -> None:
        """Keys of ``typ`` round-trip, and a bound-parameter range delete (what a chunk runs)
        agrees with the backend's own ORDER BY."""
        schema = pa.schema([pa.field("k", typ, nullable=False), ("n", pa.int64())])
        table = pa.table({"k": keys, "n": list(range(len(keys)))}, schema=schema)
        self.create(connector, name, schema, key=["k"])
        self.write(connector, name, table.to_batches(3), schema)
        actual = read_table(connector, name, described_schema(connector, name), "k")
        assert_rows_equal(actual, table, key="k")
        ordered = self.ids(connector, name, "k")
        assert sorted(ordered) == sorted(keys)
        d, p = connector.dialect, connector.placeholder
        k = quote_ident("k", d)
        delete = f"DELETE FROM {quote_table(name, d)} WHERE {k} > {p} AND {k} <= {p}"
        bounds = connector.encode(pa.array([ordered[1], ordered[4]], typ))
        self.write(connector, name, [], schema, before=[(delete, list(bounds))])
        assert self.ids(connector, name, "k") == ordered[:2] + ordered[5:]

    def test_text_keys(self, connector: Connector) -> None:
        keys = ["a", "B", "b", "Zoë", "李", "😀", " a", "ab", "a-b", ""]
        self._keyed_round_trip(connector, "text_keys", keys, pa.string())

    def test_binary_keys(self, connector: Connector) -> None:
        keys = [b"", b"\x00", b"\x00\x00", b"\x01", b"\xff", b"\xff\xfe", b"a", b"A", b"ab"]
        self._keyed_round_trip(connector, "binary_keys", keys, pa.binary())

    def test_keys_differing_by_trailing_spaces(self, connector: Connector) -> None:
        keys = ["a", "a ", "a  ", " a", "b", "b "]
        self._keyed_round_trip(connector, "padded_keys", keys, pa.string())

    # --- transactions ------------------------------------------------------------------------
    def _seed(self, connector: Connector) -> pa.Table:
        seed = common_types_table(rows=12)
        self.create(connector, self.table, COMMON_SCHEMA)
        self.write(connector, self.table, seed.to_batches(), COMMON_SCHEMA)
        return seed

    def _range_delete(self, connector: Connector, lo: int, hi: int) -> tuple[str, list[Any]]:
        d, p = connector.dialect, connector.placeholder
        column = quote_ident("id", d)
        sql = f"DELETE FROM {quote_table(self.table, d)} WHERE {column} > {p} AND {column} <= {p}"
        ids = connector.encode(pa.array([lo, hi], pa.int64()))
        return sql, list(ids)

    def test_write_with_before_replaces_a_range(self, connector: Connector) -> None:
        seed = self._seed(connector)
        fresh = common_types_table(rows=12).slice(3, 5)  # ids 4..8, the same values
        written = self.write(
            connector,
            self.table,
            fresh.to_batches(2),
            COMMON_SCHEMA,
            before=[self._range_delete(connector, 2, 8)],
        )
        assert written == 5
        assert self.ids(connector, self.table) == [1, 2, 4, 5, 6, 7, 8, 9, 10, 11, 12]
        schema = described_schema(connector, self.table)
        actual = read_table(connector, self.table, schema, "id")
        expected = seed.filter(pa.array([i != 3 for i in range(1, 13)]))
        assert_rows_equal(actual, expected, normalize=self.normalizers(connector, COMMON_SCHEMA))

    def test_failed_batch_rolls_back_before_and_earlier_batches(self, connector: Connector) -> None:
        seed = self._seed(connector)
        more = common_types_table(rows=20, first_id=101)

        def batches() -> Iterator[pa.RecordBatch]:
            yield more.slice(0, 5).to_batches()[0]  # ids 101..105, fine
            yield more.slice(5, 5).to_batches()[0]  # ids 106..110, fine
            yield more.slice(3, 5).to_batches()[0]  # ids 104..108 again: duplicate key

        with pytest.raises(TaskError) as caught:
            self.write(
                connector,
                self.table,
                batches(),
                COMMON_SCHEMA,
                before=[self._range_delete(connector, 0, 12)],
            )
        assert not _is_driver_error(caught.value)
        assert self.ids(connector, self.table) == seed.column("id").to_pylist()

    def test_failing_reader_rolls_back(self, connector: Connector) -> None:
        """The reading side failing mid-chunk (re-raised in the writer) commits nothing."""
        seed = self._seed(connector)
        more = common_types_table(rows=10, first_id=101)

        def batches() -> Iterator[pa.RecordBatch]:
            yield more.slice(0, 5).to_batches()[0]
            raise TaskError("the source went away")

        with pytest.raises(TaskError, match="the source went away"):
            self.write(
                connector,
                self.table,
                batches(),
                COMMON_SCHEMA,
                before=[self._range_delete(connector, 0, 12)],
            )
        assert self.ids(connector, self.table) == seed.column("id").to_pylist()

    def test_execute_is_one_transaction(self, connector: Connector) -> None:
        seed = self._seed(connector)
        d = connector.dialect
        table = quote_table(self.table, d)
        with pytest.raises(TaskError):
            connector.execute(
                [f"DELETE FROM {table}", f"INSERT INTO {table} (no_such_column) VALUES (1)"]
            )
        assert self.ids(connector, self.table) == seed.column("id").to_pylist()

    # --- errors -------------------------------------------------------------------------------
    def test_missing_table_errors_are_wrapped(self, connector: Connector) -> None:
        self.create(connector, self.table, COMMON_SCHEMA)  # the database exists, the table not
        missing = "no_such_table"
        assert not connector.table_exists(missing)
        assert missing not in connector.list_tables()
        schema = pa.schema([("id", pa.int64())])
        with pytest.raises(TaskError) as caught:
            list(connector.read(read_sql(connector, missing, schema, "id"), schema, 10))
        assert not _is_driver_error(caught.value) and missing in str(caught.value) + str(
            caught.value.__cause__
        )
        with pytest.raises(TaskError):
            connector.describe(missing)
        with pytest.raises(TaskError):
            connector.scalar(f"SELECT COUNT(*) FROM {quote_table(missing, connector.dialect)}")
        with pytest.raises(TaskError):
            connector.rows(f"SELECT * FROM {quote_table(missing, connector.dialect)}")
        with pytest.raises(TaskError):
            self.write(connector, missing, common_types_table().to_batches(), COMMON_SCHEMA)

    def test_bad_sql_is_a_task_error(self, connector: Connector) -> None:
        with pytest.raises(TaskError) as caught:
            connector.execute(["CREATE TABLE"])
        assert caught.value.__cause__ is not None and not isinstance(caught.value, ConnectError)
        with pytest.raises(TaskError):
            connector.scalar("SELECT FROM WHERE")

    def test_wrong_value_is_a_task_error(self, connector: Connector) -> None:
        schema = pa.schema([pa.field("id", pa.int64(), nullable=False), ("v", pa.int32())])
        d = connector.dialect
        connector.execute([create_table_sql(connector, "narrow", schema, not_null=["v"])])
        # a NOT NULL column given a NULL: refused by every backend, and nothing of the batch stays
        batch = pa.RecordBatch.from_pylist([{"id": 1, "v": 1}, {"id": 2, "v": None}], schema=schema)
        with pytest.raises(TaskError) as caught:
            self.write(connector, "narrow", [batch], schema)
        assert not _is_driver_error(caught.value)
        assert connector.scalar(f"SELECT COUNT(*) FROM {quote_table('narrow', d)}") == 0

    def test_unreachable_database_is_a_connect_error(self, url: str, tmp_path: Path) -> None:
        bad = connect(unreachable(url, tmp_path))
        try:
            calls: list[Callable[[], object]] = [
                bad.list_tables,
                lambda: bad.describe(self.table),
                lambda: bad.scalar("SELECT 1"),
                lambda: bad.execute(["SELECT 1"]),
            ]
            for call in calls:
                started = time.monotonic()
                with pytest.raises(ConnectError):
                    call()
                assert time.monotonic() - started < 10, "a refused connection must fail fast"
        finally:
            bad.close()

    def test_unreachable_database_read_is_a_connect_error(self, url: str, tmp_path: Path) -> None:
        bad = connect(unreachable(url, tmp_path))
        schema = pa.schema([("x", pa.int64())])
        try:
            started = time.monotonic()
            with pytest.raises(ConnectError):
                list(bad.read("SELECT 1 AS x", schema, 10))
            assert time.monotonic() - started < 10, "a refused connection must fail fast"
        finally:
            bad.close()


def _is_driver_error(exc: BaseException) -> bool:
    return not isinstance(exc, EtlrunError)


def connector_suite(
    url: str | Callable[[Path], str], name: str | None = None
) -> type[ConnectorSuite]:
    """The conformance suite as a base class, its databases coming from ``url``.

    Args:
        url: the name of a pytest fixture that yields the URL of a fresh, empty database
            (e.g. ``"pg_url"``), or a function of pytest's ``tmp_path`` returning one
            (e.g. ``lambda tmp_path: f"sqlite:///{tmp_path}/t.db"``).
        name: the class name (shown in test ids); defaults from ``url``.

    Example:
        >>> class TestSqlite(connector_suite(lambda p: f"sqlite:///{p}/t.db")):  # doctest: +SKIP
        ...     pass
    """
    if isinstance(url, str):
        fixture_name = url

        @pytest.fixture
        def url_fixture(self: Any, request: pytest.FixtureRequest) -> str:
            return str(request.getfixturevalue(fixture_name))

    else:
        make = url

        @pytest.fixture
        def url_fixture(self: Any, tmp_path: Path) -> str:
            return make(tmp_path)

    label = name or (f"ConnectorSuite_{url}" if isinstance(url, str) else "ConnectorSuite_tmp")
    return type(label, (ConnectorSuite,), {"url": url_fixture, "__module__": __name__})
