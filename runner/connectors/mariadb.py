"""MariaDB and MySQL: connectorx streams Arrow batches out (Rust, no Python per row), PyMySQL
does everything else and is the fallback reader when connectorx is not installed.

Sessions run in UTC with strict SQL mode, so a value that does not fit is an error, never a
silently truncated or clamped value. TIMESTAMP columns are read as ``UNIX_TIMESTAMP(col)``:
MariaDB returns the stored instant itself, so no session time zone can shift it.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
from sqlglot import exp

from runner.connectors.base import Capabilities, map_driver_errors
from runner.connectors.sql import SqlConnector, decode
from runner.errors import EtlrunError

_INIT = (
    "SET time_zone = '+00:00', "
    "sql_mode = 'STRICT_ALL_TABLES,NO_ZERO_IN_DATE,NO_ZERO_DATE,ERROR_FOR_DIVISION_BY_ZERO,"
    "NO_ENGINE_SUBSTITUTION'"
)


def epoch_to_timestamp(values: pa.Array, typ: pa.DataType) -> pa.Array:
    """Seconds since 1970 (decimal, as UNIX_TIMESTAMP returns them) -> a timestamp[us] array."""
    seconds = values.cast(pa.decimal128(24, 6))
    micros = pc.multiply(seconds, pa.scalar(1_000_000, pa.decimal128(7, 0)))
    return micros.cast(pa.int64()).cast(typ)


class MariaDBConnector(SqlConnector, schemes=("mariadb", "mysql")):
    dialect = "mysql"
    extra = "mariadb"
    driver = "mysql+pymysql"
    driver_module = "pymysql"
    # RENAME TABLE is atomic in MariaDB; DDL inside a transaction is not (it commits implicitly).
    capabilities = Capabilities(max_identifier_length=64, transactional_ddl=False)
    engine_options: dict[str, Any] = {
        "pool_pre_ping": True,
        "connect_args": {"init_command": _INIT, "connect_timeout": 10, "charset": "utf8mb4"},
        # Chunks write disjoint key ranges of one staging table at the same time. Under
        # REPEATABLE READ each chunk's range DELETE takes gap locks that the others' INSERTs
        # wait on: deadlocks (1213) on nearly every parallel copy. READ COMMITTED takes none.
        "isolation_level": "READ COMMITTED",
    }

    def max_statement_bytes(self) -> int:
        """The server's max_allowed_packet: a row whose statement is longer cannot be sent
        (the server drops the connection), so such rows are rejected before the write."""
        if getattr(self, "_max_packet", None) is None:
            self._max_packet = int(self.scalar("SELECT @@max_allowed_packet"))
        return self._max_packet

    sample = SqlConnector.read  # through the pool's open connection: no driver to load

    def estimated_rows(self, name: str, where: str | None = None) -> int | None:
        """The optimizer's estimate (InnoDB's statistics, refreshed after 10% of rows change)."""
        from runner.plan.catalog import quote_table

        if where is not None:
            return None  # InnoDB keeps no distribution of an unindexed column: no estimate

        try:
            rows = self.rows(f"EXPLAIN SELECT 1 FROM {quote_table(name, 'mysql')}")
        except EtlrunError:
            return None
        # EXPLAIN's columns: id, select_type, table, type, possible_keys, key, key_len, ref, rows
        return int(rows[0][8]) if len(rows) == 1 and rows[0][8] is not None else None

    def read_expression(self, name: str, arrow: pa.DataType, as_text: bool) -> exp.Expression:
        if pa.types.is_timestamp(arrow) and arrow.tz is not None:
            column = exp.column(name, quoted=True)
            return exp.Anonymous(this="UNIX_TIMESTAMP", expressions=[column]).as_(name, quoted=True)
        if pa.types.is_decimal(arrow):
            # connectorx panics on a DECIMAL(p,s) value whose scale MariaDB sends shorter than
            # s (0 for a zero); its text is exact and Arrow's cast to decimal is vectorised
            column = exp.column(name, quoted=True)
            return exp.cast(column, exp.DataType.build("CHAR")).as_(name, quoted=True)
        return super().read_expression(name, arrow, as_text)

    def read(self, sql: str, schema: pa.Schema, batch_rows: int) -> Iterator[pa.RecordBatch]:
        try:
            import connectorx
        except ImportError:
            yield from super().read(sql, schema, batch_rows)
            return
        if not getattr(self, "_reachable", False):
            # connectorx retries a refused connection for 30 s; PyMySQL says so at once
            self.check()
            self._reachable = True
        url = self.sqlalchemy_url().set(drivername="mysql", query={})
        with map_driver_errors("reading from the source"):
            reader = connectorx.read_sql(
                url.render_as_string(hide_password=False), sql,
                return_type="arrow_stream", batch_size=batch_rows,
            )  # fmt: skip
            for batch in reader:
                yield self._conform(batch, schema)

    def _conform(self, batch: pa.RecordBatch, schema: pa.Schema) -> pa.RecordBatch:
        arrays = []
        for column, field in zip(batch.columns, schema, strict=True):
            if pa.types.is_timestamp(field.type) and field.type.tz is not None:
                column = epoch_to_timestamp(column, field.type)
            elif pa.types.is_boolean(field.type) and pa.types.is_integer(column.type):
                column = pc.not_equal(column, 0)  # BOOLEAN is TINYINT(1): vectorised
            elif pa.types.is_boolean(field.type) and not pa.types.is_boolean(column.type):
                column = decode(column.to_pylist(), field.type)  # BIT(1) arrives as bytes
            elif not column.type.equals(field.type):
                column = column.cast(field.type)
            arrays.append(column)
        return pa.RecordBatch.from_arrays(arrays, schema=schema)

    def to_batch(self, rows: list[Any], schema: pa.Schema) -> pa.RecordBatch:
        columns = list(zip(*rows, strict=True)) if rows else [[] for _ in schema]
        arrays = []
        for values, field in zip(columns, schema, strict=True):
            if pa.types.is_timestamp(field.type) and field.type.tz is not None:
                arrays.append(
                    epoch_to_timestamp(pa.array(list(values), pa.decimal128(24, 6)), field.type)
                )
            else:
                arrays.append(decode(list(values), field.type))
        return pa.RecordBatch.from_arrays(arrays, schema=schema)

    def encode(self, column: pa.Array) -> list[Any]:
        if pa.types.is_timestamp(column.type) and column.type.tz is not None:
            # DATETIME has no zone: store the UTC wall clock (the session runs in UTC)
            column = column.cast(pa.timestamp(column.type.unit))
        return column.to_pylist()
