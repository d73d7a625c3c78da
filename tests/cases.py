"""The table of common types, as Arrow and as a *native* table in each backend.

``common_types_table()`` is the Arrow form (the edge values live in :mod:`runner.testing.values`,
so third-party connector suites test the same values). ``create_native(url, name)`` makes that
table with the backend's own DDL and driver, the way an application would have made it, so a copy
test starts from a real native table and not from one etlrun wrote. ``read_native(url, name)``
reads a table back through the backend's own driver into plain Python values, so the check of
what etlrun wrote does not go through etlrun's reading code.
"""

from __future__ import annotations

import datetime as dt
import sqlite3
from collections.abc import Iterator
from contextlib import closing, contextmanager
from decimal import Decimal
from typing import Any

import pyarrow as pa
from sqlalchemy.engine import make_url

from runner.connectors import scheme_of
from runner.testing.values import COMMON_SCHEMA
from runner.testing.values import common_types_table as _suite_table

BACKENDS = ("sqlite", "duckdb", "postgres", "mariadb")

NATIVE_TYPES: dict[str, dict[str, str]] = {
    "sqlite": {
        "id": "INTEGER PRIMARY KEY",
        "i32": "INT",
        "i64": "BIGINT",
        "dec12": "DECIMAL(12,2)",
        "dec38": "NUMERIC(38,10)",
        "f64": "DOUBLE",
        "txt": "TEXT",
        "flag": "BOOLEAN",
        "d": "DATE",
        "ts": "DATETIME",
        "tstz": "TIMESTAMP WITH TIME ZONE",
        "b": "BLOB",
        "t": "TIME",
    },
    "duckdb": {
        "id": "BIGINT PRIMARY KEY",
        "i32": "INTEGER",
        "i64": "BIGINT",
        "dec12": "DECIMAL(12,2)",
        "dec38": "DECIMAL(38,10)",
        "f64": "DOUBLE",
        "txt": "VARCHAR",
        "flag": "BOOLEAN",
        "d": "DATE",
        "ts": "TIMESTAMP",
        "tstz": "TIMESTAMPTZ",
        "b": "BLOB",
        "t": "TIME",
    },
    "postgres": {
        "id": "bigint PRIMARY KEY",
        "i32": "integer",
        "i64": "bigint",
        "dec12": "numeric(12,2)",
        "dec38": "numeric(38,10)",
        "f64": "double precision",
        "txt": "text",
        "flag": "boolean",
        "d": "date",
        "ts": "timestamp",
        "tstz": "timestamptz",
        "b": "bytea",
        "t": "time",
    },
    "mariadb": {
        "id": "BIGINT PRIMARY KEY",
        "i32": "INT",
        "i64": "BIGINT",
        "dec12": "DECIMAL(12,2)",
        "dec38": "DECIMAL(38,10)",
        "f64": "DOUBLE",
        "txt": "TEXT",
        "flag": "BOOLEAN",
        "d": "DATE",
        "ts": "DATETIME(6)",
        "tstz": "TIMESTAMP(6) NULL",  # an instant; shown in the session's zone (UTC here)
        "b": "BLOB",
        "t": "TIME(6)",
    },
}
"""How an application would declare the common-types table in each backend."""


def common_types_table(rows: int = 60) -> pa.Table:
    """The issue's table of common types: the edge rows then ordinary ones, ``rows`` in all.

    Keys run -40, -37, ... (negative, with gaps), primary key ``id``.
    """
    return _suite_table(rows=rows, first_id=-40, id_step=3)


def backend_of(url: str) -> str:
    scheme = scheme_of(url)
    return {"postgresql": "postgres", "mysql": "mariadb"}.get(scheme, scheme)


def file_path(url: str) -> str:
    """The database file of a sqlite:/// or duckdb:/// URL."""
    rest = url.split(":", 1)[1]
    return rest[3:] if rest.startswith("///") else rest.lstrip("/")


@contextmanager
def native_connection(url: str) -> Iterator[Any]:
    """A DB-API connection through the backend's own driver (autocommit where it has one)."""
    backend = backend_of(url)
    if backend == "sqlite":
        with closing(sqlite3.connect(file_path(url), isolation_level=None)) as conn:
            yield conn
    elif backend == "duckdb":
        import duckdb

        with closing(duckdb.connect(file_path(url))) as conn:
            conn.execute("SET TimeZone = 'UTC'")
            yield conn
    elif backend == "postgres":
        import psycopg

        u = make_url(url)
        params = {k: v for k, v in u.query.items() if isinstance(v, str)}
        with psycopg.connect(
            host=u.host,
            port=u.port or 5432,
            user=u.username,
            password=u.password or "",
            dbname=u.database,
            autocommit=True,
            **params,
        ) as conn:
            conn.execute("SET TIME ZONE 'UTC'")
            yield conn
    elif backend == "mariadb":
        import pymysql

        u = make_url(url)
        conn = pymysql.connect(
            host=u.host,
            port=u.port or 3306,
            user=u.username,
            password=u.password or "",
            database=u.database,
            charset="utf8mb4",
            autocommit=True,
            init_command="SET time_zone = '+00:00'",
        )
        try:
            yield conn
        finally:
            conn.close()
    else:
        raise ValueError(f"no native driver for {url}")


def quote(backend: str, name: str) -> str:
    if backend == "mariadb":
        return "`" + name.replace("`", "``") + "`"
    return '"' + name.replace('"', '""') + '"'


def _native_value(backend: str, value: Any) -> Any:
    """A Python value as an application would bind it with this backend's driver."""
    if backend == "sqlite":
        if isinstance(value, bool):
            return int(value)
        if isinstance(value, Decimal):
            return str(value)
        if isinstance(value, dt.datetime):
            if value.tzinfo is not None:  # stored with an offset, as an application might
                value = value.astimezone(dt.timezone(dt.timedelta(hours=5, minutes=30)))
            return value.isoformat(sep=" ")
        if isinstance(value, dt.date | dt.time):
            return value.isoformat()
    if backend == "mariadb" and isinstance(value, dt.datetime) and value.tzinfo is not None:
        return value.astimezone(dt.UTC).replace(tzinfo=None)  # the session runs in UTC
    return value


def create_native(
    url: str,
    name: str,
    data: pa.Table | None = None,
    types: dict[str, str] | None = None,
    primary_key: bool = True,
) -> pa.Table:
    """CREATE TABLE ``name`` with the backend's own types and INSERT ``data`` (default: the
    common-types table) through the backend's own driver. Returns the data inserted."""
    backend = backend_of(url)
    data = common_types_table() if data is None else data
    declared = dict(types or NATIVE_TYPES[backend])
    if not primary_key:
        declared = {k: v.replace(" PRIMARY KEY", "") for k, v in declared.items()}
    columns = ", ".join(f"{quote(backend, c)} {declared[c]}" for c in data.column_names)
    suffix = " ENGINE=InnoDB DEFAULT CHARSET=utf8mb4" if backend == "mariadb" else ""
    ph = "%s" if backend in ("postgres", "mariadb") else "?"
    insert = (
        f"INSERT INTO {quote(backend, name)} "
        f"({', '.join(quote(backend, c) for c in data.column_names)}) "
        f"VALUES ({', '.join(ph for _ in data.column_names)})"
    )
    if backend in ("postgres", "mariadb"):
        insert = insert.replace("%", "%%").replace("%%s", "%s")
    rows = [
        tuple(_native_value(backend, row[c]) for c in data.column_names) for row in data.to_pylist()
    ]
    with native_connection(url) as conn:
        cursor = conn.cursor()
        cursor.execute(f"CREATE TABLE {quote(backend, name)} ({columns}){suffix}")
        if rows:  # one transaction: a commit per row costs a disk flush per row
            cursor.execute("BEGIN")
            cursor.executemany(insert, rows)
            cursor.execute("COMMIT")
    return data


def _declared_types(conn: Any, backend: str, name: str) -> dict[str, str]:
    cursor = conn.cursor()
    if backend == "sqlite":
        cursor.execute(f"PRAGMA table_info({quote(backend, name)})")
        return {r[1]: (r[2] or "").lower() for r in cursor.fetchall()}
    if backend == "mariadb":
        cursor.execute(
            "SELECT COLUMN_NAME, COLUMN_TYPE FROM information_schema.COLUMNS "
            "WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = %s",
            (name,),
        )
        return {r[0]: r[1].lower() for r in cursor.fetchall()}
    return {}


def read_native(
    url: str, name: str, schema: pa.Schema = COMMON_SCHEMA, key: str = "id"
) -> dict[Any, dict[str, Any]]:
    """Every row of ``name`` by ``key``, read with the backend's own driver and turned into the
    Python values of ``schema``'s types, following only the storage conventions of the backend
    (SQLite: ISO text for dates and times, 0/1 for booleans; MariaDB: TINYINT(1) booleans, TIME as
    a duration, TIMESTAMP in the session's UTC). Anything else is returned as the driver gave it,
    so a wrong type shows up in the comparison."""
    backend = backend_of(url)
    columns = schema.names
    select = f"SELECT {', '.join(quote(backend, c) for c in columns)} FROM {quote(backend, name)}"
    with native_connection(url) as conn:
        declared = _declared_types(conn, backend, name)
        if backend == "duckdb":
            raw = [tuple(r.values()) for r in conn.sql(select).to_arrow_table().to_pylist()]
        else:
            cursor = conn.cursor()
            cursor.execute(select)
            raw = [tuple(r) for r in cursor.fetchall()]
    out = {}
    for values in raw:
        row = {
            c: _canonical(backend, schema.field(c).type, declared.get(c, ""), v)
            for c, v in zip(columns, values, strict=True)
        }
        out[row[key]] = row
    return out


def _canonical(backend: str, typ: pa.DataType, declared: str, value: Any) -> Any:
    if value is None:
        return None
    if backend == "sqlite":
        if pa.types.is_decimal(typ) and isinstance(value, float | int | str):
            return Decimal(repr(value) if isinstance(value, float) else str(value))
        if pa.types.is_boolean(typ) and value in (0, 1):
            return bool(value)
        if pa.types.is_floating(typ) and isinstance(value, int):
            return float(value)
        if isinstance(value, str):
            if pa.types.is_date(typ):
                return dt.date.fromisoformat(value)
            if pa.types.is_timestamp(typ):
                return dt.datetime.fromisoformat(value)
            if pa.types.is_time(typ):
                return dt.time.fromisoformat(value)
    if backend == "mariadb":
        if declared.startswith("tinyint(1)") and value in (0, 1):
            return bool(value)
        if declared.startswith("time(") or declared == "time":
            if isinstance(value, dt.timedelta):
                return (dt.datetime.min + value).time()
        if declared.startswith("timestamp") and isinstance(value, dt.datetime):
            return value.replace(tzinfo=dt.UTC)  # an instant, shown in the session's UTC
    if backend == "postgres" and isinstance(value, memoryview):
        return bytes(value)
    return value


def execute_native(url: str, sql: str, params: tuple[Any, ...] = ()) -> None:
    """Run one statement through the backend's own driver (``%s`` or ``?`` placeholders as the
    driver wants them), committed."""
    with native_connection(url) as conn:
        conn.cursor().execute(sql, params)


def native_tables(url: str) -> set[str]:
    """Every table in the database (or the current schema), etlrun's own included."""
    backend = backend_of(url)
    sql = {
        "sqlite": "SELECT name FROM sqlite_master WHERE type = 'table'",
        "duckdb": "SELECT table_name FROM information_schema.tables WHERE table_schema = 'main'",
        "postgres": "SELECT table_name FROM information_schema.tables "
        "WHERE table_schema = current_schema()",
        "mariadb": "SELECT table_name FROM information_schema.tables "
        "WHERE table_schema = DATABASE()",
    }[backend]
    with native_connection(url) as conn:
        cursor = conn.cursor()
        cursor.execute(sql)
        return {r[0] for r in cursor.fetchall()}
