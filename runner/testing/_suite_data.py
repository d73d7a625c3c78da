"""The connector suite's tests of what is written coming back: every common type, empty tables,
chunk boundaries, odd identifiers and the keys a chunk's range delete is bounded by."""

from __future__ import annotations

from typing import Any

import pyarrow as pa

from runner.connectors.base import Connector
from runner.plan.catalog import quote_ident, quote_table
from runner.testing._suite_base import SuiteBase
from runner.testing.helpers import (
    assert_rows_equal,
    assert_same_kind,
    described_schema,
    read_sql,
    read_table,
    select_sql,
    split_batches,
)
from runner.testing.values import COMMON_SCHEMA, common_types_table


class DataTests(SuiteBase):
    """Round trips: what a backend is given is what it gives back."""

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
