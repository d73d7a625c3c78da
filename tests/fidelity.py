"""The type-fidelity table: edge values, one per row, created natively in each backend.

``EDGE_VALUES`` lists ``(column, label, value)``; row ``i`` of the table holds its value in that
one column and NULL in every other. ``create_fidelity(url, name)`` makes the table with the
backend's own DDL and driver, leaving out what the backend cannot hold at all (``holds``), and
``read_values(url, name)`` reads any table of these columns back with the backend's own driver
into canonical Python values (``canonical``), so source and target compare by value per key.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import struct
import uuid
from decimal import Decimal
from typing import Any

from cases import backend_of, native_connection, quote

KINDS = (
    "i8", "i16", "i32", "i64", "f64", "f32", "dec", "num", "d", "ts", "tstz",
    "txt", "b", "js", "u", "flag",
)  # fmt: skip

NATIVE: dict[str, dict[str, str | None]] = {
    "sqlite": {
        "i8": None, "i16": "SMALLINT", "i32": "INT", "i64": "BIGINT", "f64": "DOUBLE",
        "f32": None, "dec": "DECIMAL(38,10)", "num": None, "d": "DATE", "ts": "DATETIME",
        "tstz": "TIMESTAMP WITH TIME ZONE", "txt": "TEXT", "b": "BLOB", "js": "TEXT",
        "u": "TEXT", "flag": "BOOLEAN",
    },
    "duckdb": {
        "i8": "TINYINT", "i16": "SMALLINT", "i32": "INTEGER", "i64": "BIGINT", "f64": "DOUBLE",
        "f32": "REAL", "dec": "DECIMAL(38,10)", "num": None, "d": "DATE", "ts": "TIMESTAMP",
        "tstz": "TIMESTAMPTZ", "txt": "VARCHAR", "b": "BLOB", "js": "JSON", "u": "UUID",
        "flag": "BOOLEAN",
    },
    "postgres": {
        "i8": None, "i16": "smallint", "i32": "integer", "i64": "bigint",
        "f64": "double precision", "f32": "real", "dec": "numeric(38,10)", "num": "numeric",
        "d": "date", "ts": "timestamp", "tstz": "timestamptz", "txt": "text", "b": "bytea",
        "js": "jsonb", "u": "uuid", "flag": "boolean",
    },
    "mariadb": {
        "i8": "TINYINT", "i16": "SMALLINT", "i32": "INT", "i64": "BIGINT", "f64": "DOUBLE",
        "f32": "FLOAT", "dec": "DECIMAL(38,10)", "num": None, "d": "DATE", "ts": "DATETIME(6)",
        "tstz": "TIMESTAMP(6) NULL", "txt": "LONGTEXT", "b": "LONGBLOB", "js": "JSON",
        "u": "UUID", "flag": "BOOLEAN",
    },
}  # fmt: skip
"""How an application declares each column in each backend (None: the backend has no such type)."""


def f32(value: float) -> float:
    """``value`` rounded to the nearest float4, as a Python float."""
    return struct.unpack("<f", struct.pack("<f", value))[0]


NAN, INF = float("nan"), float("inf")
F32_MAX, F32_TINY = 3.4028234663852886e38, f32(1.401298464324817e-45)
DEC_MAX = Decimal("9" * 28 + "." + "9" * 10)
DEC_MIN = Decimal("-" + "9" * 28 + "." + "9" * 10)  # not -DEC_MAX: that rounds to 28 digits
UTC = dt.UTC


def _tz(hours: int, minutes: int = 0) -> dt.timezone:
    return dt.timezone(dt.timedelta(hours=hours, minutes=minutes))


EDGE_VALUES: list[tuple[str, str, Any]] = [
    *[("i8", f"i8 {v}", v) for v in (-128, 127, 0)],
    *[("i16", f"i16 {v}", v) for v in (-32768, 32767)],
    *[("i32", f"i32 {v}", v) for v in (-(2**31), 2**31 - 1)],
    *[("i64", f"i64 {v}", v) for v in (-(2**63), 2**63 - 1)],
    *[
        ("f64", f"f64 {v!r}", v)
        for v in (NAN, INF, -INF, -0.0, 5e-324, 1.7976931348623157e308, 0.1)
    ],
    *[
        ("f32", f"f32 {v!r}", v)
        for v in (NAN, INF, -INF, -0.0, f32(0.1), F32_MAX, F32_TINY)
    ],
    *[
        ("dec", f"dec {v}", v)
        for v in (DEC_MAX, DEC_MIN, Decimal("0.0000000001"), Decimal("1.10"), Decimal(0))
    ],
    ("num", "numeric 40 digits", Decimal("1234567890123456789012345678901234567890")),
    ("num", "numeric long fraction", Decimal("0." + "1234567890" * 5)),
    *[
        ("d", f"date {v}", dt.date.fromisoformat(v))
        for v in (
            "0001-01-01", "0009-12-04", "1582-10-10", "1970-01-01", "2000-02-29", "9999-12-31",
        )  # fmt: skip
    ],
    ("ts", "ts .999999", dt.datetime(2000, 1, 1, 23, 59, 59, 999999)),
    ("ts", "ts 0001", dt.datetime(1, 1, 1)),
    ("ts", "ts 9999", dt.datetime(9999, 12, 31, 23, 59, 59, 999999)),
    ("ts", "ts NY DST gap", dt.datetime(2021, 3, 14, 2, 30)),  # no such wall clock in New York
    ("ts", "ts NY DST fold", dt.datetime(2021, 11, 7, 1, 30)),  # twice in New York
    ("tstz", "tstz +14:00", dt.datetime(2021, 6, 1, 12, 0, 0, 999999, tzinfo=_tz(14))),
    ("tstz", "tstz -12:00", dt.datetime(2021, 6, 1, 12, 0, 0, 1, tzinfo=_tz(-12))),
    ("tstz", "tstz +05:45", dt.datetime(2021, 6, 1, 12, 0, tzinfo=_tz(5, 45))),
    *[
        ("txt", f"txt {v!r}", v)
        for v in (
            "", " ", "a\x00b", "😀", "👨\u200d👩\u200d👧", "\u00e9", "e\u0301",
            "שלום עולם", "\\N", "NULL", "it's \"quoted\"", "a,b", "a\r\nb", "a\tb",
        )
    ],
    ("txt", "txt SQL NULL", None),
    *[("b", f"bytes {v!r}", v) for v in (b"", b"\x00", b"\xff\xfe", b"\xc3\x28\xa0\xa1")],
    ("js", "json unicode", '{"k": "\u00fc\U0001f600"}'),
    ("js", "json nested", '{"a": {"b": [1, {"c": null}]}}'),
    ("js", "json big number", '{"big": 123456789012345678901234567890}'),
    ("js", "json null", "null"),
    ("js", "json SQL NULL", None),
    ("u", "uuid", uuid.UUID("0e2d8a64-9c8a-4c8e-9a1e-2d9e0c6b5f0a")),
    ("flag", "true", True),
    ("flag", "false", False),
]  # fmt: skip

BIG = 16 * 1024 * 1024
BIG_VALUES: list[tuple[str, str, Any]] = [
    ("txt", "16 MB text", ("0123456789abcdé😀" * (BIG // 16))[:BIG]),
    ("b", "16 MB blob", bytes(range(256)) * (BIG // 256)),
]


MARIADB_PACKET = 16 * 1024 * 1024
"""The test server's max_allowed_packet (MariaDB's default)."""


def packet_bytes(value: Any) -> int:
    """The bytes a text or bytes value takes in a MariaDB statement, escaped."""
    if not isinstance(value, str | bytes):
        return 0
    raw = value.encode() if isinstance(value, str) else value
    return len(raw) + sum(raw.count(c) for c in (b"\x00", b"\n", b"\r", b"\x1a", b"'", b'"', b"\\"))


def holds(backend: str, kind: str, value: Any) -> bool:
    """Whether ``backend`` can hold ``value`` natively at all (what an application could store)."""
    if NATIVE[backend][kind] is None:
        return False
    if isinstance(value, float) and kind in ("f64", "f32"):
        if backend == "mariadb" and not math.isfinite(value):
            return False  # MariaDB has no NaN or infinity
        if backend == "sqlite" and math.isnan(value):
            return False  # SQLite stores a NaN as NULL
    if backend == "postgres" and isinstance(value, str) and "\x00" in value:
        return False  # PostgreSQL text cannot hold U+0000
    if backend == "mariadb" and packet_bytes(value) > MARIADB_PACKET - 4096:
        return False  # a statement cannot be longer than max_allowed_packet (16 MiB by default)
    if backend == "sqlite" and isinstance(value, Decimal):
        digits = "".join(map(str, value.as_tuple().digits)).strip("0")
        if len(digits) > 15:
            return False  # SQLite turns a DECIMAL into a REAL at the application's INSERT
    return True


def _bind(backend: str, kind: str, value: Any) -> Any:
    if value is None:
        return None
    if backend == "sqlite":
        if isinstance(value, bool):
            return int(value)
        if isinstance(value, Decimal | uuid.UUID):
            return str(value)
        if isinstance(value, dt.datetime):
            return value.isoformat(sep=" ")
        if isinstance(value, dt.date):
            return value.isoformat()
    if backend == "mariadb":
        if isinstance(value, dt.datetime) and value.tzinfo is not None:
            return value.astimezone(UTC).replace(tzinfo=None)  # the session runs in UTC
        if isinstance(value, uuid.UUID):
            return str(value)
    if backend == "postgres" and kind == "js":
        return value
    return value


def rows_for(backend: str, values: list[tuple[str, str, Any]]) -> list[tuple[int, str, Any]]:
    """``(id, kind, value)`` for each value ``backend`` can hold; ids are stable across backends."""
    return [
        (i + 1, kind, value)
        for i, (kind, _label, value) in enumerate(values)
        if holds(backend, kind, value)
    ]


def create_fidelity(url: str, name: str, values: list[tuple[str, str, Any]] = EDGE_VALUES) -> None:
    backend = backend_of(url)
    kinds = [k for k in KINDS if NATIVE[backend][k] is not None]
    key = {"postgres": "bigint", "sqlite": "INTEGER"}.get(backend, "BIGINT")
    columns = ", ".join(
        [f"{quote(backend, 'id')} {key} PRIMARY KEY"]
        + [f"{quote(backend, k)} {NATIVE[backend][k]}" for k in kinds]
    )
    suffix = " ENGINE=InnoDB DEFAULT CHARSET=utf8mb4" if backend == "mariadb" else ""
    ph = "%s" if backend in ("postgres", "mariadb") else "?"
    with native_connection(url) as conn:
        cursor = conn.cursor()
        cursor.execute(f"CREATE TABLE {quote(backend, name)} ({columns}){suffix}")
        cursor.execute("BEGIN")
        for row_id, kind, value in rows_for(backend, values):
            cast = "::jsonb" if backend == "postgres" and kind == "js" else ""
            cursor.execute(
                f"INSERT INTO {quote(backend, name)} ({quote(backend, 'id')}, "
                f"{quote(backend, kind)}) VALUES ({ph}, {ph}{cast})",
                (row_id, _bind(backend, kind, value)),
            )
        cursor.execute("COMMIT")


def _select_item(backend: str, kind: str, declared: str) -> str:
    column = quote(backend, kind)
    if backend == "postgres" and kind in ("js", "u"):
        return f"{column}::text"
    if backend == "mariadb" and kind == "f32":
        return f"CAST({column} AS DOUBLE)"  # the stored float, not its 6-digit text
    if backend == "duckdb" and kind in ("js", "u"):
        return f"CAST({column} AS VARCHAR)"
    return column


def read_values(url: str, name: str) -> dict[int, dict[str, Any]]:
    """Every row of ``name`` by ``id``: ``{column: canonical value}`` for the columns present."""
    backend = backend_of(url)
    with native_connection(url) as conn:
        if backend == "duckdb":
            names = [
                r[0]
                for r in conn.execute(
                    "SELECT column_name FROM information_schema.columns "
                    "WHERE table_name = ? ORDER BY ordinal_position",
                    [name],
                ).fetchall()
            ]
        else:
            cursor = conn.cursor()
            cursor.execute(f"SELECT * FROM {quote(backend, name)} WHERE 1 = 0")
            names = [d[0] for d in cursor.description]
        kinds = [n for n in names if n in KINDS]
        select = ", ".join([quote(backend, "id")] + [_select_item(backend, k, "") for k in kinds])
        sql = f"SELECT {select} FROM {quote(backend, name)}"
        if backend == "duckdb":
            table = conn.sql(sql).to_arrow_table()
            raw = [tuple(r.values()) for r in table.to_pylist()]
        else:
            cursor = conn.cursor()
            cursor.execute(sql)
            raw = [tuple(r) for r in cursor.fetchall()]
    return {int(r[0]): {k: canonical(k, v) for k, v in zip(kinds, r[1:], strict=True)} for r in raw}


def canonical(kind: str, value: Any) -> Any:
    """A value as the Python value it means, whatever the backend's storage convention."""
    if value is None:
        return None
    if isinstance(value, memoryview | bytearray):
        value = bytes(value)
    if kind.startswith("i"):
        return int(value)
    if kind in ("f64", "f32"):
        value = float(value)
        return f32(value) if kind == "f32" and math.isfinite(value) else value
    if kind in ("dec", "num"):
        return Decimal(repr(value) if isinstance(value, float) else str(value))
    if kind == "d":
        return dt.date.fromisoformat(value) if isinstance(value, str) else value
    if kind in ("ts", "tstz"):
        if isinstance(value, str):
            value = dt.datetime.fromisoformat(value)
        if kind == "tstz":
            # a naive instant is a UTC wall clock (MariaDB TIMESTAMP, or a flagged DATETIME)
            tz = value.tzinfo or UTC
            return value.replace(tzinfo=tz).astimezone(UTC)
        return value
    if kind == "txt":
        return value.decode() if isinstance(value, bytes) else value
    if kind == "b":
        return bytes(value)
    if kind == "js":
        text = value.decode() if isinstance(value, bytes) else value
        if not isinstance(text, str):
            text = json.dumps(text)
        return ("json", json.loads(text, parse_float=Decimal))
    if kind == "u":
        if isinstance(value, bytes) and len(value) == 16:
            return str(uuid.UUID(bytes=value))
        return str(uuid.UUID(str(value)))
    if kind == "flag":
        return bool(value)
    return value


def same(a: Any, b: Any) -> bool:
    """Equal as values; floats by their repr, so NaN equals NaN and -0.0 differs from 0.0."""
    if isinstance(a, float) and isinstance(b, float):
        return repr(a) == repr(b)
    return type(a) is type(b) and a == b


FILE_FORMATS = ("parquet", "csv")
"""File formats a copy can write (``target: file://...``, ``format:``): targets of the matrix."""


def read_file_values(path: str, fmt: str, schema: Any) -> dict[int, dict[str, Any]]:
    """A file etlrun wrote, read back with pyarrow alone (CSV typed by the plan's ``schema``,
    as any reader of a CSV file must be told its types), by ``id``, canonical values."""
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    if fmt == "parquet":
        table = pq.read_table(path)
    else:
        import pyarrow as pa

        text = pa.schema(
            [(f.name, pa.string() if pa.types.is_binary(f.type) or
              isinstance(f.type, pa.BaseExtensionType) else f.type) for f in schema]
        )  # fmt: skip
        options = pacsv.ConvertOptions(
            column_types=text, strings_can_be_null=True, quoted_strings_can_be_null=False,
            null_values=[""],  # what the writer writes for NULL; "nan" is a float
        )  # fmt: skip
        table = pacsv.read_csv(path, convert_options=options)
    kinds = [n for n in table.column_names if n in KINDS]
    rows = table.to_pylist()
    out = {}
    for row in rows:
        values = {}
        for k in kinds:
            value = row[k]
            if fmt == "csv" and k == "b" and value is not None:
                import base64

                value = base64.b64decode(value)  # CSV holds bytes as base64 (README, format)
            values[k] = canonical(k, value)
        out[int(row["id"])] = values
    return out
