"""The common-types table: a column per mapped type, with the edge values a backend must carry."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

import pyarrow as pa

UTC = dt.UTC

COMMON_SCHEMA = pa.schema(
    [
        pa.field("id", pa.int64(), nullable=False),
        ("i32", pa.int32()),
        ("i64", pa.int64()),
        ("dec12", pa.decimal128(12, 2)),
        ("dec38", pa.decimal128(38, 10)),
        ("f64", pa.float64()),
        ("txt", pa.string()),
        ("flag", pa.bool_()),
        ("d", pa.date32()),
        ("ts", pa.timestamp("us")),
        ("tstz", pa.timestamp("us", tz="UTC")),
        ("b", pa.binary()),
        ("t", pa.time64("us")),
    ]
)
"""The common types every backend keeps: key ``id``, then one column per kind of value."""


def _tz(hours: int) -> dt.timezone:
    return dt.timezone(dt.timedelta(hours=hours))


# Edge values. Decimals stay within 15 significant digits (what SQLite's REAL keeps exactly);
# tz-aware instants stay in MariaDB TIMESTAMP's 1970..2038, so every backend holds them natively.
_EDGE_ROWS: list[dict[str, Any]] = [
    {
        "i32": 2**31 - 1,
        "i64": 2**63 - 1,
        "dec12": Decimal("9999999999.99"),
        "dec38": Decimal("12345.0123456789"),
        "f64": 1.7976931348623157e308,
        "txt": "Zoë",
        "flag": True,
        "d": dt.date(9999, 12, 31),
        "ts": dt.datetime(9999, 12, 31, 23, 59, 59, 999999),
        "tstz": dt.datetime(2037, 12, 31, 23, 59, 59, 999999, tzinfo=UTC),
        "b": b"\xff\xfe",
        "t": dt.time(23, 59, 59, 999999),
    },
    {
        "i32": -(2**31),
        "i64": -(2**63),
        "dec12": Decimal("-9999999999.99"),
        "dec38": Decimal("-0.0000000001"),
        "f64": -2.2250738585072014e-308,
        "txt": "😀",
        "flag": False,
        "d": dt.date(1000, 1, 1),
        "ts": dt.datetime(1000, 1, 1, 0, 0, 0),
        "tstz": dt.datetime(1970, 1, 1, 0, 0, 1, tzinfo=UTC),
        "b": b"",
        "t": dt.time(0, 0, 0),
    },
    {
        "i32": 0,
        "i64": 0,
        "dec12": Decimal("0.00"),
        "dec38": Decimal("0E-10"),
        "f64": 0.0,
        "txt": "",
        "flag": True,
        "d": dt.date(1970, 1, 1),
        "ts": dt.datetime(1970, 1, 1),
        "tstz": dt.datetime(2024, 6, 1, 12, 0, 0, 500000, tzinfo=_tz(2)),
        "b": b"\x00",
        "t": dt.time(12, 34, 56, 500000),
    },
    {},  # NULL in every column
    {
        "i32": 42,
        "i64": 1,
        "dec12": Decimal("0.01"),
        "dec38": Decimal("99999.9999999999"),
        "f64": 0.1,
        "txt": 'it\'s "quoted", a,b\nline2\ttab \\ back\\slash',
        "d": dt.date(2000, 2, 29),
        "ts": dt.datetime(2024, 2, 29, 12, 0, 0, 123456),
        "tstz": dt.datetime(2000, 1, 1, 0, 0, 0, tzinfo=_tz(-5)),
        "b": b"abc\x00\xff\n\\N",
    },
    {
        "i32": -1,
        "i64": -1,
        "dec12": Decimal("-0.01"),
        "dec38": Decimal("1234567890.12345"),
        "f64": -1.5e300,
        "txt": "👨‍👩‍👧",
        "flag": False,
        "d": dt.date(1969, 12, 31),
        "ts": dt.datetime(1969, 12, 31, 23, 59, 59, 999999),
        "tstz": dt.datetime(2038, 1, 19, 3, 14, 7, tzinfo=UTC),
        "b": b"\x00\x00",
        "t": dt.time(0, 0, 0, 1),
    },
    {"txt": "李", "f64": 3.141592653589793, "dec12": Decimal("1234567890.10")},
    {"txt": "NULL", "i64": 9007199254740993, "d": dt.date(2024, 2, 29)},
    {"txt": "\\N", "f64": 5e-324, "b": b"\\N"},
    {"txt": "  padded  ", "f64": -0.5, "i32": 7},
]


def _ordinary_row(i: int) -> dict[str, Any]:
    """Row ``i`` past the edge rows: varied values, and one column NULL in turn."""
    row: dict[str, Any] = {
        "i32": i * 1000 - 7,
        "i64": -(i * 10**15) - i,
        "dec12": Decimal(i * 12345 - 50000).scaleb(-2),
        "dec38": Decimal(i * 1234567).scaleb(-7),
        "f64": i / 7,
        "txt": f"row {i} Zoë ✓",
        "flag": i % 2 == 0,
        "d": dt.date(2000, 1, 1) + dt.timedelta(days=i * 37),
        "ts": dt.datetime(2020, 1, 1) + dt.timedelta(seconds=i * 86399, microseconds=i * 7919),
        "tstz": dt.datetime(2021, 3, 28, 0, 30, tzinfo=UTC)
        + dt.timedelta(hours=i * 5, microseconds=i),
        "b": bytes([i % 256, 255 - i % 256, 0]),
        "t": dt.time((i * 7) % 24, (i * 13) % 60, (i * 17) % 60, (i * 7919) % 10**6),
    }
    names = [f.name for f in COMMON_SCHEMA][1:]
    row[names[i % len(names)]] = None
    return row


def common_types_table(rows: int | None = None, first_id: int = 1, id_step: int = 1) -> pa.Table:
    """The common-types table: the edge rows, then ordinary rows up to ``rows`` in all.

    ``id`` runs ``first_id, first_id + id_step, ...``; rows are in ``id`` order.
    """
    count = len(_EDGE_ROWS) if rows is None else rows
    records = []
    for i in range(count):
        row = dict(_EDGE_ROWS[i]) if i < len(_EDGE_ROWS) else _ordinary_row(i)
        records.append({"id": first_id + i * id_step, **row})
    columns = {
        f.name: pa.array([r.get(f.name) for r in records], type=f.type) for f in COMMON_SCHEMA
    }
    return pa.table(columns, schema=COMMON_SCHEMA)
