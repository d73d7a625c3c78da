"""The connector suite's tests of what goes wrong: a failed chunk rolls back all of itself, and
driver errors arrive as etlrun's (TaskError, ConnectError), a refused connection fast."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from runner.connectors import connect
from runner.connectors.base import Connector
from runner.errors import ConnectError, EtlrunError, TaskError
from runner.plan.catalog import quote_ident, quote_table
from runner.testing._suite_base import SuiteBase
from runner.testing.helpers import (
    assert_rows_equal,
    create_table_sql,
    described_schema,
    read_sql,
    read_table,
    unreachable,
)
from runner.testing.values import COMMON_SCHEMA, common_types_table


class FailureTests(SuiteBase):
    """Transactions and errors."""

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
