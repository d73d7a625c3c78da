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

import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from runner.connectors import connect
from runner.connectors.base import Connector
from runner.errors import ConnectError, EtlrunError, TaskError
from runner.plan.catalog import quote_ident, quote_table
from runner.plan.types import target_type
from runner.testing.helpers import (
    assert_rows_equal,
    assert_same_kind,
    create_table_sql,
    described_schema,
    read_sql,
    read_table,
    select_sql,
    split_batches,
    unreachable,
    utc_wall_clock,
)
from runner.testing.values import COMMON_SCHEMA, common_types_table


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
        written = self.write(connector, self.table, split_batches(expected, sizes), COMMON_SCHEMA)
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
