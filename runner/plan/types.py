"""Types across the data path: source SQL type -> Arrow type -> target DDL type.

Source types are parsed with sqlglot in the source's dialect, so ``numeric(12,2)``,
``DECIMAL(12, 2)`` and ``NUMERIC(12,2)`` all mean the same thing. Target DDL is written from the
Arrow type by a small table per dialect: sqlglot's own transpilation turns DECIMAL into REAL for
SQLite, which is exactly the kind of silent change etlrun refuses.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import pyarrow as pa
from sqlglot import exp
from sqlglot.errors import ParseError

T = exp.DataType.Type

_INTS = {
    T.TINYINT: pa.int8(),
    T.UTINYINT: pa.uint8(),
    T.SMALLINT: pa.int16(),
    T.USMALLINT: pa.uint16(),
    T.MEDIUMINT: pa.int32(),
    T.UMEDIUMINT: pa.uint32(),
    T.INT: pa.int32(),
    T.UINT: pa.uint32(),
    T.BIGINT: pa.int64(),
    T.UBIGINT: pa.uint64(),
    T.YEAR: pa.int16(),
    T.SERIAL: pa.int32(),
    T.BIGSERIAL: pa.int64(),
    T.SMALLSERIAL: pa.int16(),
}
_TEXT = {
    T.CHAR,
    T.NCHAR,
    T.VARCHAR,
    T.NVARCHAR,
    T.TEXT,
    T.TINYTEXT,
    T.MEDIUMTEXT,
    T.LONGTEXT,
    T.NAME,
    T.ENUM,
    T.SET,
    T.BPCHAR,
}
_BINARY = {
    T.BINARY,
    T.VARBINARY,
    T.BLOB,
    T.TINYBLOB,
    T.MEDIUMBLOB,
    T.LONGBLOB,
}
_VIA_TEXT = {
    T.UUID: "uuid carried as text",
    T.INTERVAL: "interval carried as text",
    T.ARRAY: "array carried as text",
    T.INET: "inet carried as text",
}


@dataclass(frozen=True)
class SourceType:
    """How one source column travels: its Arrow type, and whether to read it as text."""

    arrow: pa.DataType
    read_as_text: bool = False
    note: str | None = None
    length: int | None = None


def parse_type(type_sql: str, dialect: str) -> exp.DataType | None:
    try:
        return exp.DataType.build(type_sql, dialect=dialect)
    except (ParseError, ValueError):
        return None


def _int_arg(dt: exp.DataType, index: int) -> int | None:
    try:
        return int(dt.expressions[index].this.this)
    except (IndexError, AttributeError, ValueError, TypeError):
        return None


def _sqlite_affinity(type_sql: str) -> SourceType:
    # https://www.sqlite.org/datatype3.html#determination_of_column_affinity
    upper = type_sql.upper()
    if "INT" in upper:
        return SourceType(pa.int64())
    if any(word in upper for word in ("CHAR", "CLOB", "TEXT")):
        return SourceType(pa.string())
    if "BLOB" in upper:
        return SourceType(pa.binary())
    if any(word in upper for word in ("REAL", "FLOA", "DOUB")):
        return SourceType(pa.float64())
    return SourceType(
        pa.string(), read_as_text=True, note=f"'{type_sql or 'untyped'}' carried as text"
    )


def source_type(type_sql: str, dialect: str) -> SourceType:
    """Map a source column's declared type to the Arrow type it travels as.

    Example:
        >>> source_type("numeric(12,2)", "postgres").arrow
        Decimal128Type(decimal128(12, 2))
    """
    dt = parse_type(type_sql, dialect) if type_sql else None
    if dt is None:
        if dialect == "sqlite":
            return _sqlite_affinity(type_sql)
        return SourceType(pa.string(), read_as_text=True, note=f"'{type_sql}' carried as text")
    kind = dt.this
    if dialect == "sqlite" and kind in (T.INT, T.BIGINT, T.SMALLINT, T.TINYINT, T.MEDIUMINT):
        return SourceType(pa.int64())  # every SQLite integer is 64-bit, whatever it was declared as
    if dialect == "mysql" and kind == T.TINYINT and _int_arg(dt, 0) == 1:
        return SourceType(pa.bool_())  # MySQL's BOOLEAN is TINYINT(1)
    if kind == T.BIT and (_int_arg(dt, 0) or 1) == 1:
        return SourceType(pa.bool_())
    if kind == T.BOOLEAN:
        return SourceType(pa.bool_())
    if kind in _INTS:
        return SourceType(_INTS[kind])
    if kind in (T.INT128, T.UINT128):
        return SourceType(pa.decimal128(38, 0))
    if kind in (T.DECIMAL, T.BIGDECIMAL, T.MONEY):
        precision, scale = _int_arg(dt, 0), _int_arg(dt, 1) or 0
        if precision is None:
            if dialect == "mysql":
                return SourceType(pa.decimal128(10, 0))
            return SourceType(pa.string(), note="unbounded numeric carried as text")
        if precision <= 38:
            return SourceType(pa.decimal128(precision, scale))
        return SourceType(pa.decimal256(min(precision, 76), scale))
    if kind == T.FLOAT:
        if dialect == "sqlite":
            return SourceType(pa.float64())
        return SourceType(pa.float32())
    if kind in (T.DOUBLE,):
        return SourceType(pa.float64())
    if kind in _TEXT:
        return SourceType(pa.string(), length=_int_arg(dt, 0) if kind != T.ENUM else None)
    if kind in _BINARY:
        return SourceType(pa.binary())
    if kind == T.DATE:
        return SourceType(pa.date32())
    # DuckDB's TIMESTAMP / DATETIME parse as TIMESTAMPNTZ: a wall clock, like the others
    naive = (T.DATETIME, T.DATETIME64, T.TIMESTAMP, T.TIMESTAMPNTZ, T.TIMESTAMP_S, T.TIMESTAMP_MS)
    if kind in naive:
        if dialect == "mysql" and kind == T.TIMESTAMP:
            # MySQL TIMESTAMP is an instant, shown in the session time zone (we set UTC)
            return SourceType(pa.timestamp("us", tz="UTC"))
        return SourceType(pa.timestamp("us"))
    if kind == T.TIMESTAMP_NS:
        # Arrow's safe cast refuses a value with nanoseconds: the read fails loudly, never rounds
        return SourceType(
            pa.timestamp("us"), note="carried as microseconds: a value with nanoseconds fails"
        )
    if kind in (T.TIMESTAMPTZ, T.TIMESTAMPLTZ):
        return SourceType(pa.timestamp("us", tz="UTC"))
    if kind in (T.TIME,):
        return SourceType(pa.time64("us"))
    if kind in (T.JSON, T.JSONB):
        # read as its text (exact: jsonb's own normal form), carried as Arrow's JSON type, and
        # written as the target's JSON type where it has one
        return SourceType(pa.json_(), read_as_text=True)
    if kind in _VIA_TEXT:
        return SourceType(pa.string(), read_as_text=True, note=_VIA_TEXT[kind])
    return SourceType(pa.string(), read_as_text=True, note=f"'{type_sql}' carried as text")


@dataclass(frozen=True)
class TargetType:
    ddl: str
    lossy: str | None = None


def _string_ddl(dialect: str, length: int | None, is_key: bool) -> TargetType:
    if dialect == "mysql":
        if length and length <= 16383:
            return TargetType(f"VARCHAR({length})")
        if is_key:
            return TargetType("VARCHAR(255)", "key text longer than 255 characters is rejected")
        return TargetType("LONGTEXT")
    if dialect == "duckdb":
        return TargetType("VARCHAR")
    if dialect == "postgres":
        base = f"VARCHAR({length})" if length else "TEXT"
        # a text key is ordered by code point, so staging range deletes match the chunk bounds
        return TargetType(f'{base} COLLATE "C"' if is_key else base)
    return TargetType("TEXT")


def target_type(
    arrow: pa.DataType,
    dialect: str,
    *,
    length: int | None = None,
    is_key: bool = False,
    source_dialect: str | None = None,
    source_sql: str | None = None,
) -> TargetType:
    """The DDL type for ``arrow`` in the target ``dialect``, and what it loses, if anything.

    Values a target cannot hold are flagged here and rejected row by row at run time (see
    :mod:`runner.rejects`, which checks exactly these): NaN/±Infinity into MariaDB, NaN into
    SQLite, U+0000 in text into PostgreSQL, decimals wider than 15 digits into SQLite."""
    if pa.types.is_boolean(arrow):
        return TargetType("BOOLEAN")
    if isinstance(arrow, pa.JsonType):
        if dialect == source_dialect == "postgres" and (source_sql or "").lower() == "json":
            return TargetType("JSON")  # json keeps its text as written; jsonb would normalize it
        # SQLite has no JSON type (a column declared JSON would turn '1' into the number 1)
        return TargetType(
            {"postgres": "JSONB", "mysql": "JSON", "duckdb": "JSON"}.get(dialect, "TEXT")
        )
    if pa.types.is_integer(arrow):
        return _int_ddl(arrow, dialect)
    if pa.types.is_floating(arrow):
        single = arrow.bit_width == 32
        ddl = {
            "postgres": "REAL" if single else "DOUBLE PRECISION",
            "mysql": "FLOAT" if single else "DOUBLE",
            "sqlite": "REAL",
            "duckdb": "REAL" if single else "DOUBLE",
        }.get(dialect, "DOUBLE PRECISION")
        lossy = {
            "mysql": "NaN and ±Infinity are rejected by MariaDB/MySQL; -0.0 is stored as 0",
            "sqlite": "NaN is rejected (SQLite would store it as NULL); -0.0 is stored as 0",
        }.get(dialect)
        return TargetType(ddl, lossy)
    if pa.types.is_decimal(arrow):
        p, s = arrow.precision, arrow.scale
        if dialect == "sqlite" and p > 15:
            return TargetType(
                f"DECIMAL({p},{s})",
                "SQLite keeps 15 significant digits of a decimal: wider values are rejected",
            )
        if dialect == "mysql" and p > 65:
            return TargetType(
                "LONGTEXT", f"decimal({p},{s}) carried as text (MySQL allows 65 digits)"
            )
        if dialect == "duckdb" and p > 38:
            return TargetType(
                "VARCHAR", f"decimal({p},{s}) carried as text (DuckDB allows 38 digits)"
            )
        return TargetType(f"DECIMAL({p},{s})" if dialect != "postgres" else f"NUMERIC({p},{s})")
    if pa.types.is_string(arrow) or pa.types.is_large_string(arrow):
        text = _string_ddl(dialect, length, is_key)
        if dialect == "postgres" and source_dialect not in (None, "postgres"):
            return TargetType(text.ddl, "text with U+0000 is rejected (PostgreSQL cannot hold it)")
        return text
    if pa.types.is_binary(arrow) or pa.types.is_large_binary(arrow):
        if dialect == "mysql" and is_key:  # a BLOB cannot be a MariaDB key without a prefix length
            return TargetType("VARBINARY(255)", "key bytes longer than 255 are rejected")
        return TargetType({"postgres": "BYTEA", "mysql": "LONGBLOB"}.get(dialect, "BLOB"))
    if pa.types.is_date(arrow):
        return TargetType("DATE")
    if pa.types.is_timestamp(arrow):
        if arrow.tz is None:
            return TargetType(
                {"mysql": "DATETIME(6)", "postgres": "TIMESTAMP(6)"}.get(dialect, "TIMESTAMP")
            )
        if dialect == "mysql":
            return TargetType("DATETIME(6)", "time zone dropped: instants stored as UTC")
        return TargetType("TIMESTAMPTZ" if dialect != "postgres" else "TIMESTAMPTZ(6)")
    if pa.types.is_time(arrow):
        return TargetType({"mysql": "TIME(6)", "postgres": "TIME(6)"}.get(dialect, "TIME"))
    return TargetType("TEXT", f"{arrow} carried as text")


def _int_ddl(arrow: pa.DataType, dialect: str) -> TargetType:
    width, signed = arrow.bit_width, pa.types.is_signed_integer(arrow)
    if dialect == "sqlite":
        lossy = None if signed or width < 64 else "values above 2^63-1 are rejected by SQLite"
        return TargetType("INTEGER", lossy)
    if dialect == "mysql":
        name = {8: "TINYINT", 16: "SMALLINT", 32: "INT", 64: "BIGINT"}[width]
        return TargetType(name if signed else f"{name} UNSIGNED")
    if dialect == "duckdb":
        name = {8: "TINYINT", 16: "SMALLINT", 32: "INTEGER", 64: "BIGINT"}[width]
        return TargetType(name if signed else f"U{name}")
    # PostgreSQL has no unsigned or 1-byte integers: widen so every value fits
    if not signed:
        width *= 2
    name = {8: "SMALLINT", 16: "SMALLINT", 32: "INTEGER", 64: "BIGINT", 128: "NUMERIC(20,0)"}[width]
    return TargetType(name)


_ARROW_NAMES = {
    "bool": pa.bool_(),
    "int8": pa.int8(),
    "int16": pa.int16(),
    "int32": pa.int32(),
    "int64": pa.int64(),
    "uint8": pa.uint8(),
    "uint16": pa.uint16(),
    "uint32": pa.uint32(),
    "uint64": pa.uint64(),
    "float": pa.float32(),
    "double": pa.float64(),
    "string": pa.string(),
    "binary": pa.binary(),
    "date32[day]": pa.date32(),
    "time64[us]": pa.time64("us"),
    "timestamp[us]": pa.timestamp("us"),
    "timestamp[us, tz=UTC]": pa.timestamp("us", tz="UTC"),
    "large_string": pa.large_string(),
    "large_binary": pa.large_binary(),
    "extension<arrow.json>": pa.json_(),
}
_DECIMAL = re.compile(r"decimal(128|256)\((\d+), (\d+)\)")


def arrow_from_str(name: str) -> pa.DataType:
    """The inverse of ``str(arrow_type)`` for the types etlrun carries:
    plans store types as text."""
    if name in _ARROW_NAMES:
        return _ARROW_NAMES[name]
    match = _DECIMAL.fullmatch(name)
    if match:
        bits, p, s = match.groups()
        return (pa.decimal128 if bits == "128" else pa.decimal256)(int(p), int(s))
    raise ValueError(f"unsupported arrow type {name!r}")


def override_type(type_sql: str, target_dialect: str) -> tuple[pa.DataType, str]:
    """A ``types:`` override: the Arrow type it implies, and its DDL in the target's dialect."""
    mapped = source_type(type_sql, target_dialect)
    dt = parse_type(type_sql, target_dialect)
    ddl = dt.sql(dialect=target_dialect) if dt is not None else type_sql
    return mapped.arrow, ddl
