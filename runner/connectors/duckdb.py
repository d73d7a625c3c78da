"""DuckDB: Arrow in and out natively, no per-row Python at all.

One ``duckdb`` database object per connector; every operation takes its own cursor, which is
DuckDB's way of sharing one database between threads.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterable, Iterator
from typing import Any

import pyarrow as pa

from runner.connectors.base import (
    Capabilities,
    Column,
    Connector,
    TableInfo,
    WriteResult,
    describe_driver_error,
    map_driver_errors,
    require_driver,
)
from runner.errors import ConnectError, TaskError


def _path_of(url: str) -> str:
    # duckdb:///relative.duckdb, duckdb:////abs/path.duckdb, duckdb:///:memory:
    rest = url.split(":", 1)[1]
    rest = rest[3:] if rest.startswith("///") else rest.lstrip("/")
    return rest.split("?", 1)[0] or ":memory:"


class DuckDBConnector(Connector, schemes=("duckdb",)):
    dialect = "duckdb"
    extra = "duckdb"
    capabilities = Capabilities(max_identifier_length=255, transactional_ddl=True)

    def __init__(self, url: str) -> None:
        super().__init__(url)
        self.path = _path_of(url)
        self._db: Any = None
        self._lock = threading.Lock()

    def _cursor(self) -> Any:
        with self._lock:
            if self._db is None:
                require_driver("duckdb", self.extra)
                import duckdb

                try:
                    self._db = duckdb.connect(self.path)
                except duckdb.Error as exc:  # opening the file is DuckDB's "connect"
                    raise ConnectError(
                        f"cannot open {self.display_url}: {describe_driver_error(exc)}"
                    ) from exc
        cursor = self._db.cursor()
        cursor.execute("SET TimeZone = 'UTC'")
        return cursor

    def close(self) -> None:
        with self._lock:
            if self._db is not None:
                self._db.close()
                self._db = None

    placeholder = "?"

    def encode(self, column: pa.Array) -> list[Any]:
        return column.to_pylist()

    def check(self) -> None:
        self._cursor().close()

    def _split(self, name: str) -> tuple[str, str]:
        schema, _, table = name.rpartition(".")
        return schema or "main", table

    def list_tables(self) -> list[str]:
        if self._missing():
            raise ConnectError(f"no DuckDB database at {self.path} ({self.display_url})")
        rows = self.rows(
            "SELECT table_name FROM information_schema.tables "
            "WHERE table_schema = 'main' AND table_type = 'BASE TABLE' ORDER BY table_name"
        )
        return [r[0] for r in rows if "__etlrun_" not in r[0]]

    def _missing(self) -> bool:
        return self.path != ":memory:" and not os.path.exists(self.path)

    def table_exists(self, name: str) -> bool:
        if self._missing():  # asking must not create the database file: plans write nothing
            return False
        schema, table = self._split(name)
        return bool(
            self._query(
                "SELECT count(*) FROM information_schema.tables "
                "WHERE table_schema = ? AND table_name = ?",
                [schema, table],
            )[0][0]
        )

    def describe(self, name: str) -> TableInfo:
        if self._missing():
            raise ConnectError(f"no DuckDB database at {self.path} ({self.display_url})")
        schema, table = self._split(name)
        info = self._query(
            "SELECT column_name, data_type, is_nullable FROM information_schema.columns "
            "WHERE table_schema = ? AND table_name = ? ORDER BY ordinal_position",
            [schema, table],
        )
        if not info:
            raise TaskError(f"table '{name}' does not exist in {self.display_url}")
        constraints = self._query(
            "SELECT constraint_type, constraint_column_names, referenced_table "
            "FROM duckdb_constraints() WHERE schema_name = ? AND table_name = ?",
            [schema, table],
        )
        pk = next((tuple(c[1]) for c in constraints if c[0] == "PRIMARY KEY"), ())
        refs = tuple(sorted({c[2] for c in constraints if c[0] == "FOREIGN KEY" and c[2]}))
        columns = tuple(Column(r[0], r[1], r[2] == "YES") for r in info)
        return TableInfo(None if schema == "main" else schema, table, columns, pk, refs)

    def _query(self, sql: str, params: list[Any] | None = None) -> list[tuple[Any, ...]]:
        # Through Arrow: DuckDB's own conversion of TIMESTAMPTZ values to Python needs pytz.
        with map_driver_errors("query failed"):
            cursor = self._cursor()
            try:
                relation = cursor.sql(sql, params=params or None)
                if relation is None:  # a statement without a result
                    return []
                to_arrow = getattr(relation, "to_arrow_table", None) or relation.arrow
                table = to_arrow()
            finally:
                cursor.close()
        return list(zip(*(column.to_pylist() for column in table.columns), strict=True))

    def scalar(self, sql: str) -> Any:
        rows = self._query(sql)
        return rows[0][0] if rows else None

    def rows(self, sql: str) -> list[tuple[Any, ...]]:
        return self._query(sql)

    def read(self, sql: str, schema: pa.Schema, batch_rows: int) -> Iterator[pa.RecordBatch]:
        with map_driver_errors("reading from the source"):
            cursor = self._cursor()
            try:
                relation = cursor.sql(sql)
                reader = (
                    relation.to_arrow_reader(batch_rows)
                    if hasattr(relation, "to_arrow_reader")
                    else relation.fetch_arrow_reader(batch_rows)
                )
                for batch in reader:
                    yield _conform(batch, schema)
            finally:
                cursor.close()

    def execute(self, statements: Iterable[str]) -> None:
        with map_driver_errors("executing statements on the target"):
            cursor = self._cursor()
            try:
                cursor.execute("BEGIN TRANSACTION")
                for statement in statements:
                    cursor.execute(statement)
                cursor.execute("COMMIT")
            except BaseException:
                cursor.execute("ROLLBACK")
                raise
            finally:
                cursor.close()

    def write(
        self,
        table: str,
        schema: pa.Schema,
        batches: Iterable[pa.RecordBatch],
        before: Iterable[str] = (),
    ) -> WriteResult:
        result = WriteResult()
        columns = ", ".join('"' + f.name.replace('"', '""') + '"' for f in schema)
        with map_driver_errors(f"writing {table}"):
            cursor = self._cursor()
            try:
                cursor.execute("BEGIN TRANSACTION")
                for statement in before:
                    sql, params = (statement, []) if isinstance(statement, str) else statement
                    cursor.execute(sql, list(params))
                for batch in batches:
                    if not batch.num_rows:
                        continue
                    cursor.register("__etlrun_batch", batch)
                    cursor.execute(
                        f"INSERT INTO {table} ({columns}) SELECT {columns} FROM __etlrun_batch"
                    )
                    cursor.unregister("__etlrun_batch")
                    result.rows += batch.num_rows
                    result.bytes += batch.nbytes
                cursor.execute("COMMIT")
            except BaseException:
                cursor.execute("ROLLBACK")
                raise
            finally:
                cursor.close()
        return result


def _conform(batch: pa.RecordBatch, schema: pa.Schema) -> pa.RecordBatch:
    """DuckDB's Arrow types -> the plan's (e.g. its UTC zone name, or large strings)."""
    if batch.schema.equals(schema):
        return batch
    arrays = [batch.column(i).cast(f.type) for i, f in enumerate(schema)]
    return pa.RecordBatch.from_arrays(arrays, schema=schema)
