"""SQLite: files on disk, read and written through the standard library's sqlite3.

SQLite has no date, timestamp or decimal types: etlrun writes dates and timestamps as ISO text
(so they sort and compare as they should) and decimals as their text, which a column declared
DECIMAL(p,s) stores as a REAL: exact up to 15 significant digits, which is why `etlrun plan` flags
wider decimals into SQLite, and a value with more than 15 significant digits is rejected
(``runner/rejects.py``), never rounded. A REAL without fraction is stored as an integer, so -0.0
comes back as 0 (flagged too), and NaN would be stored as NULL (rejected).
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterable, Iterator
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import Engine

from runner.connectors import sqlite_adbc
from runner.connectors.base import (
    Capabilities,
    Column,
    TableInfo,
    WriteResult,
    map_driver_errors,
)
from runner.connectors.sql import SqlConnector
from runner.errors import ConnectError, TaskError


class SqliteConnector(SqlConnector, schemes=("sqlite",)):
    dialect = "sqlite"
    placeholder = "?"
    capabilities = Capabilities(
        max_identifier_length=128, transactional_ddl=True, parallel_writes=False
    )

    @property
    def path(self) -> str | None:
        database = self.sqlalchemy_url().database
        return None if not database or database == ":memory:" else database

    def _missing(self) -> bool:
        return self.path is not None and not os.path.exists(self.path)

    def table_exists(self, name: str) -> bool:
        # asking must not create the database file (sqlite3 would): plans write nothing
        return False if self._missing() else super().table_exists(name)

    def list_tables(self) -> list[str]:
        self._require_file()
        return super().list_tables()

    def _require_file(self) -> None:
        if self._missing():
            raise ConnectError(f"no SQLite database at {self.path} ({self.display_url})")

    def create_engine(self) -> Engine:
        # A long busy timeout: parallel chunk writers queue for SQLite's single write lock.
        engine = sa.create_engine(
            self.sqlalchemy_url(), connect_args={"timeout": 300, "check_same_thread": False}
        )

        @event.listens_for(engine, "connect")
        def _connect(dbapi_connection: Any, _record: Any) -> None:
            # take transaction control from the sqlite3 module so DDL is transactional too
            dbapi_connection.isolation_level = None
            dbapi_connection.execute("PRAGMA foreign_keys=OFF")
            # md5 for segment checksums, which SQLite lacks (see plan/checksum.py)
            from runner.plan.checksum import sqlite_functions

            sqlite_functions(dbapi_connection)

        @event.listens_for(engine, "begin")
        def _begin(conn: Any) -> None:
            conn.exec_driver_sql("BEGIN IMMEDIATE" if conn.info.get("write", True) else "BEGIN")

        return engine

    def describe(self, name: str) -> TableInfo:
        # PRAGMA gives the declared type text as written; SQLAlchemy would guess at unknown ones.
        self._require_file()
        _, table = self._split(name)
        quoted = self.engine.dialect.identifier_preparer.quote(table)
        with map_driver_errors(f"reading the columns of {name}"), self.engine.connect() as conn:
            info = conn.exec_driver_sql(f"PRAGMA table_info({quoted})").fetchall()
            if not info:
                raise TaskError(f"table '{name}' does not exist in {self.display_url}")
            fks = conn.exec_driver_sql(f"PRAGMA foreign_key_list({quoted})").fetchall()
        columns = tuple(Column(row[1], row[2] or "", not row[3]) for row in info)
        pk = tuple(row[1] for row in sorted((r for r in info if r[5]), key=lambda r: r[5]))
        return TableInfo(None, table, columns, pk, tuple(sorted({row[2] for row in fks})))

    def encode(self, column: pa.Array) -> list[Any]:
        return self.encode_arrow(column).to_pylist()

    def encode_arrow(self, column: pa.Array) -> pa.Array:
        """Dates, times, timestamps and decimals as the text SQLite stores; the rest as is."""
        typ = column.type
        if pa.types.is_timestamp(typ):
            # Arrow's cast writes 'YYYY-MM-DD HH:MM:SS.ffffff' (10x faster than strftime);
            # instants are stored as their UTC wall clock with an explicit +00:00
            text = column.cast(pa.timestamp(typ.unit)).cast(pa.string())
            if typ.tz is not None:
                text = pc.binary_join_element_wise(text, "+00:00", "")
            return text
        if pa.types.is_decimal(typ) or pa.types.is_date(typ) or pa.types.is_time(typ):
            return column.cast(pa.string())
        return column

    def write(
        self,
        table: str,
        schema: pa.Schema,
        batches: Iterable[pa.RecordBatch],
        before: Iterable[Any] = (),
    ) -> WriteResult:
        """Through ADBC (Arrow bound in C, see sqlite_adbc) when installed, else sqlite3.

        The first batch is awaited before choosing: by then a chunk's reader has opened its
        source, and a source that is this very file (read by the sqlite3 module) means sqlite3
        writes too, as two SQLite libraries must never use one file at once (sqlite_adbc)."""
        if self.path is None or not sqlite_adbc.available(table):
            return super().write(table, schema, batches, before)
        iterator = iter(batches)
        first = next(iterator, None)
        rest = itertools.chain([] if first is None else [first], iterator)
        if sqlite_adbc.reading(self.path):
            return super().write(table, schema, rest, before)
        with map_driver_errors(f"writing {table}"):
            return sqlite_adbc.write(self.path, table, schema, rest, before, self.encode_arrow)

    def read(self, sql: str, schema: pa.Schema, batch_rows: int) -> Iterator[pa.RecordBatch]:
        with sqlite_adbc.read_by_sqlite3(self.path):
            yield from super().read(sql, schema, batch_rows)
