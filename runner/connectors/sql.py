"""The portable connector: any SQLAlchemy dialect, rows fetched in batches and turned into Arrow.

Backends with a faster native path subclass this and override ``read`` / ``write``; everything
else (catalog, transactions, error mapping) stays here.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator
from typing import Any

import pyarrow as pa
import sqlalchemy as sa
from sqlalchemy.engine import Engine, make_url

from runner.connectors.base import Column, Connector, TableInfo, WriteResult, map_driver_errors

VERBATIM: dict[str, Any] = {"no_parameters": True}
"""Execution options for SQL without parameters: the driver gets it as it is, so a ``%`` in a
quoted name is not taken for a placeholder (psycopg and PyMySQL format only given parameters)."""


def decode(values: list[Any], typ: pa.DataType) -> pa.Array:
    """A DB-API column -> Arrow array of ``typ``; text and numbers from loosely typed drivers
    (SQLite dates as text, MySQL booleans as 0/1) go through Arrow's own casts."""
    try:
        return pa.array(values, type=typ)
    except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError, ValueError, OverflowError):
        pass
    if pa.types.is_boolean(typ):
        return pa.array([None if v is None else _as_bool(v) for v in values], type=typ)
    if pa.types.is_string(typ) or pa.types.is_large_string(typ):
        return pa.array([None if v is None else _as_text(v) for v in values], type=typ)
    if pa.types.is_time(typ):
        return pa.array([_as_time(v) for v in values], type=typ)
    text = pa.array([None if v is None else _as_text(v) for v in values], type=pa.string())
    return text.cast(typ)


def _as_text(value: Any) -> str:
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value).decode("utf-8")
    if isinstance(value, float):
        return repr(value)
    return str(value)


def _as_bool(value: Any) -> bool:
    if isinstance(value, bytes | bytearray):  # MySQL BIT(1) comes back as b"\x00" / b"\x01"
        return int.from_bytes(value, "big") != 0
    return bool(value)


def _as_time(value: Any) -> Any:
    import datetime as dt

    if isinstance(value, dt.timedelta):  # MySQL TIME comes back as a duration
        if not dt.timedelta(0) <= value < dt.timedelta(days=1):
            # MySQL TIME spans -838:59:59..838:59:59; a time of day cannot hold it
            raise ValueError(f"TIME value {value} is not a time of day")
        return (dt.datetime.min + value).time()
    if isinstance(value, str):
        return dt.time.fromisoformat(value)
    return value


def encode(column: pa.Array) -> list[Any]:
    """An Arrow column -> Python values the DB-API driver accepts."""
    return column.to_pylist()


class SqlConnector(Connector):
    """Reads and writes through SQLAlchemy: the fallback for dialects without a fast path."""

    driver: str = ""
    """SQLAlchemy ``dialect+driver`` scheme the URL is rewritten to, e.g. ``postgresql+psycopg``."""
    driver_module: str = ""
    engine_options: dict[str, Any] = {}

    def __init__(self, url: str) -> None:
        super().__init__(url)
        self._engine: Engine | None = None
        self._engine_lock = threading.Lock()

    # --- plumbing -------------------------------------------------------------------------
    def sqlalchemy_url(self) -> sa.URL:
        url = make_url(self.url)
        if self.driver:
            url = url.set(drivername=self.driver)
        return url

    @property
    def engine(self) -> Engine:
        with self._engine_lock:
            if self._engine is None:
                if self.driver_module:
                    from runner.connectors.base import require_driver

                    require_driver(self.driver_module, self.extra)
                with map_driver_errors(f"cannot open {self.display_url}"):
                    self._engine = self.create_engine()
            return self._engine

    def create_engine(self) -> Engine:
        return sa.create_engine(self.sqlalchemy_url(), **self.engine_options)

    def close(self) -> None:
        if self._engine is not None:
            self._engine.dispose()
            self._engine = None

    def check(self) -> None:
        """Connect once, so a wrong URL fails before any work starts."""
        with map_driver_errors(f"cannot connect to {self.display_url}"):
            with self.engine.connect() as conn:
                conn.exec_driver_sql("SELECT 1")

    placeholder = "%s"

    # --- catalog --------------------------------------------------------------------------
    def _split(self, name: str) -> tuple[str | None, str]:
        schema, _, table = name.rpartition(".")
        return (schema or None), table

    def list_tables(self) -> list[str]:
        with map_driver_errors(f"listing tables of {self.display_url}"):
            names = sa.inspect(self.engine).get_table_names()
        return sorted(n for n in names if "__etlrun_" not in n)

    def table_exists(self, name: str) -> bool:
        schema, table = self._split(name)
        with map_driver_errors(f"looking up {name}"):
            with self.engine.connect() as conn:
                return bool(sa.inspect(conn).has_table(table, schema=schema))

    def column_type_sql(self, info: dict[str, Any]) -> str:
        return str(info["type"].compile(dialect=self.engine.dialect))

    def describe(self, name: str) -> TableInfo:
        schema, table = self._split(name)
        with map_driver_errors(f"reading the columns of {name}"):
            inspector = sa.inspect(self.engine)
            if not inspector.has_table(table, schema=schema):
                from runner.errors import TaskError

                raise TaskError(f"table '{name}' does not exist in {self.display_url}")
            columns = tuple(
                Column(
                    c["name"],
                    self.column_type_sql(c),
                    bool(c.get("nullable", True)),
                    str((c.get("computed") or {}).get("sqltext") or "") or None,
                )  # fmt: skip
                for c in inspector.get_columns(table, schema=schema)
            )
            pk = tuple(
                inspector.get_pk_constraint(table, schema=schema).get("constrained_columns") or ()
            )
            refs = tuple(
                sorted(
                    {
                        (
                            f"{fk['referred_schema']}.{fk['referred_table']}"
                            if fk.get("referred_schema") and schema
                            else fk["referred_table"]
                        )
                        for fk in inspector.get_foreign_keys(table, schema=schema)
                    }
                )
            )
        return TableInfo(schema, table, columns, pk, refs)

    def scalar(self, sql: str) -> Any:
        with map_driver_errors("query failed"), self.engine.connect() as conn:
            return conn.exec_driver_sql(sql, execution_options=VERBATIM).scalar()

    def rows(self, sql: str) -> list[tuple[Any, ...]]:
        with map_driver_errors("query failed"), self.engine.connect() as conn:
            return [tuple(r) for r in conn.exec_driver_sql(sql, execution_options=VERBATIM)]

    # --- reading --------------------------------------------------------------------------
    def read(self, sql: str, schema: pa.Schema, batch_rows: int) -> Iterator[pa.RecordBatch]:
        with map_driver_errors("reading from the source"), self.engine.connect() as conn:
            result = conn.execution_options(
                stream_results=True, max_row_buffer=batch_rows
            ).exec_driver_sql(sql, execution_options=VERBATIM)
            finished = False
            try:
                while True:
                    rows = result.fetchmany(batch_rows)
                    if not rows:
                        break
                    yield self.to_batch(rows, schema)
                finished = True
            finally:
                if not finished:
                    # stopped early (a failed or cancelled chunk): close the streamed result
                    # before the connection goes back to the pool, or PyMySQL warns on its next use
                    result.close()

    def to_batch(self, rows: list[Any], schema: pa.Schema) -> pa.RecordBatch:
        columns = list(zip(*rows, strict=True)) if rows else [[] for _ in schema]
        arrays = [decode(list(values), f.type) for values, f in zip(columns, schema, strict=True)]
        return pa.RecordBatch.from_arrays(arrays, schema=schema)

    # --- writing --------------------------------------------------------------------------
    def execute(self, statements: Iterable[str]) -> None:
        with map_driver_errors("executing statements on the target"), self.engine.begin() as conn:
            for statement in statements:
                conn.exec_driver_sql(statement, execution_options=VERBATIM)

    def insert_sql(self, table_sql: str, schema: pa.Schema) -> str:
        # the dialect's quoting already doubles a % in a column name where the driver's
        # paramstyle needs it; the table comes quoted from the plan, so it is escaped here
        quote = self.engine.dialect.identifier_preparer.quote
        if self.engine.dialect.identifier_preparer._double_percents:
            table_sql = table_sql.replace("%", "%%")
        head = f"INSERT INTO {table_sql} ({', '.join(quote(f.name) for f in schema)})"
        return f"{head} VALUES ({', '.join(self.placeholder for _ in schema)})"

    def encode_batch(self, batch: pa.RecordBatch) -> list[tuple[Any, ...]]:
        columns = [self.encode(batch.column(i)) for i in range(batch.num_columns)]
        return list(zip(*columns, strict=True))

    def encode(self, column: pa.Array) -> list[Any]:
        return encode(column)

    def write(
        self,
        table: str,
        schema: pa.Schema,
        batches: Iterable[pa.RecordBatch],
        before: Iterable[str] = (),
    ) -> WriteResult:
        result = WriteResult()
        insert = self.insert_sql(table, schema)
        with map_driver_errors(f"writing {table}"), self.engine.begin() as conn:
            for statement in before:
                sql, params = (statement, None) if isinstance(statement, str) else statement
                if params is None:
                    conn.exec_driver_sql(sql, execution_options=VERBATIM)
                else:
                    conn.exec_driver_sql(sql, tuple(params))
            for batch in batches:
                if batch.num_rows:
                    conn.exec_driver_sql(insert, self.encode_batch(batch))
                    result.rows += batch.num_rows
                    result.bytes += batch.nbytes
        return result
