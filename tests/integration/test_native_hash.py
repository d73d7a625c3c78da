"""The native PostgreSQL row hash (plan/segments.py) across the type differences a PostgreSQL
source and target can have: int4 and int8, numeric(12,2) and numeric(14,4), real and double,
json and jsonb hash alike for equal values, and timestamptz alike whatever each session's
TimeZone. A NULL moved between two columns, values swapped between two columns, and values
swapped between two rows (which a sum of ``hash_record_extended`` rows cannot see) all change
the checksum; `etlrun check` between two databases finds each of them.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import servers
from conftest import run_cli
from sqlalchemy.engine import make_url

from runner.plan.segments import _mix, bucket_sql, row_hashes_sql

SOURCE_DDL = (
    "CREATE TABLE src (id INTEGER PRIMARY KEY, a INTEGER, b INTEGER, small SMALLINT, "
    "amount NUMERIC(12,2), f REAL, doc JSON, at TIMESTAMPTZ, flag BOOLEAN, day DATE, "
    "clock TIME, t TEXT, raw BYTEA)"
)
TARGET_DDL = (  # every type that may differ, differing
    "CREATE TABLE tgt (id BIGINT PRIMARY KEY, a BIGINT, b BIGINT, small BIGINT, "
    "amount NUMERIC(14,4), f DOUBLE PRECISION, doc JSONB, at TIMESTAMPTZ, flag BOOLEAN, "
    "day DATE, clock TIME, t TEXT, raw BYTEA)"
)
ROWS = [
    "(1, 1, 2, 3, 12.50, 1.1, '{\"b\": 1,  \"a\": [1, 2.50]}', '2024-03-01 10:00:00.123456+05', "
    "TRUE, '2024-03-01', '10:00:00.5', 'x', '\\x00ff')",
    "(2, -2147483648, 2147483647, -32768, -0.01, -0.0, '[]', 'infinity', FALSE, 'infinity', "
    "'00:00', '', '\\x')",
    "(3, 0, 0, 0, 0, 'NaN', 'null', '-infinity', NULL, '-infinity', '24:00', 'é', NULL)",
    "(4, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL)",
    "(5, 7, NULL, 1, 100, 3.4e38, '{\"k\": \"v\"}', '1999-12-31 23:59:59+00', TRUE, "
    "'1999-12-31', '23:59:59.999999', 'A', '\\x01')",
]
FILL = (
    "INSERT INTO src SELECT i, i % 7, i % 5, i % 3, i / 8.0, i / 3.0, '{{\"i\": 1}}', "
    "TIMESTAMPTZ '2024-01-01 00:00+00' + i * INTERVAL '1 minute', i % 2 = 0, "
    "DATE '2024-01-01' + i, TIME '00:00' + i * INTERVAL '1 second', 'n' || i, NULL "
    "FROM generate_series(6, {n}) i"
)
COLUMNS = [  # as the plan carries them: the source's Arrow types
    ("id", "int32"),
    ("a", "int32"),
    ("b", "int32"),
    ("small", "int16"),
    ("amount", "decimal128(12, 2)"),
    ("f", "float"),
    ("doc", "extension<arrow.json>"),
    ("at", "timestamp[us, tz=UTC]"),
    ("flag", "bool"),
    ("day", "date32[day]"),
    ("clock", "time64[us]"),
    ("t", "string"),
    ("raw", "binary"),
]
JSONB = frozenset({"doc"})  # json on one side, jsonb on the other


def sql(url: str, *statements: str, zone: str = "UTC") -> list[tuple[Any, ...]]:
    return servers.postgres_rows(url, *statements, zone=zone)


def hashes(url: str, table: str, columns: list[tuple[str, str]], zone: str) -> dict[int, int]:
    query = row_hashes_sql(table, columns, "postgres", "native-postgres", "id", "int32", None,
                           None, normalize=JSONB)  # fmt: skip
    return {k: h1 for k, h1, h2 in sql(url, query, zone=zone)}


def checksum(url: str, table: str) -> tuple[int, ...]:
    query = bucket_sql(table, COLUMNS, "postgres", "native-postgres", "id", "int32", None, None,
                       [], normalize=JSONB)  # fmt: skip
    return tuple(sql(url, query)[0][1:])


@pytest.fixture
def tables(pg_url: str) -> str:
    sql(pg_url, SOURCE_DDL, TARGET_DDL, f"INSERT INTO src VALUES {', '.join(ROWS)}",
        FILL.format(n=100), "INSERT INTO tgt SELECT * FROM src")  # fmt: skip
    assert sql(pg_url, "SELECT amount::text FROM tgt WHERE id = 1") == [("12.5000",)]
    return pg_url


def test_each_column_hashes_alike_across_types_and_time_zones(tables: str) -> None:
    for column in COLUMNS:
        source = hashes(tables, "src", [column], "UTC")
        assert len(set(source.values())) > 1 or column[0] == "id", column
        assert hashes(tables, "tgt", [column], "Asia/Kolkata") == source, column
    assert hashes(tables, "tgt", COLUMNS, "America/St_Johns") == hashes(
        tables, "src", COLUMNS, "Pacific/Chatham"
    )
    assert checksum(tables, "tgt") == checksum(tables, "src")


@pytest.mark.parametrize(
    "change",
    [
        "UPDATE tgt SET a = NULL, b = 7 WHERE id = 5",  # the NULL moved from b to a
        "UPDATE tgt SET a = 2, b = 1 WHERE id = 1",  # a and b swapped
        "UPDATE tgt SET raw = NULL WHERE id = 2",  # empty bytes are not NULL
        "UPDATE tgt SET t = NULL WHERE id = 2",  # nor is empty text
        "UPDATE tgt SET day = 'infinity' WHERE id = 3",
        "UPDATE tgt SET at = 'infinity' WHERE id = 3",
        'UPDATE tgt SET doc = \'{"b": 1, "a": [1, 2.51]}\' WHERE id = 1',
        # values swapped between two rows: hash_record_extended's rows, summed, missed this one
        "UPDATE tgt SET t = CASE id WHEN 6 THEN 'n7' ELSE 'n6' END WHERE id IN (6, 7)",
        "UPDATE tgt SET amount = NULL WHERE id = 3",  # 0 is not NULL
        "UPDATE tgt SET f = 0.0 WHERE id = 3",  # NaN is not 0
        "UPDATE tgt SET t = 'a' WHERE id = 5",  # bytes, not a collation, compare text
    ],
)
def test_a_changed_row_changes_the_checksum(tables: str, change: str) -> None:
    sql(tables, change)
    assert checksum(tables, "tgt") != checksum(tables, "src")


@pytest.fixture
def second_db() -> Iterator[str]:
    url = servers.create_postgres_database()
    yield url
    servers.drop_postgres_database(url)


def test_check_between_two_databases(pg_url: str, second_db: str, tmp_path: Path) -> None:
    name = make_url(second_db).database
    sql(second_db, f"ALTER DATABASE \"{name}\" SET TimeZone = 'Asia/Kolkata'")
    finite = [ROWS[0], ROWS[3], ROWS[4]]  # Arrow carries no infinite dates
    sql(pg_url, SOURCE_DDL, f"INSERT INTO src VALUES {', '.join(finite)}", FILL.format(n=5000))
    job = tmp_path / "job.yaml"
    job.write_text(f"source: {pg_url}\ntarget: {second_db}\ntables: [src]\n")
    first = run_cli("run", job, cwd=tmp_path)
    assert first.returncode == 0, first.stdout + first.stderr
    sql(second_db, "ALTER TABLE src ALTER id TYPE BIGINT, ALTER a TYPE BIGINT, ALTER amount "
        "TYPE NUMERIC(14,4), ALTER f TYPE DOUBLE PRECISION, ALTER doc TYPE JSONB")  # fmt: skip
    same = run_cli("check", job, cwd=tmp_path)
    assert same.returncode == 0, same.stdout + same.stderr
    assert "equal (source 4,998 rows, target 4,998 rows" in same.stdout
    for change, undo in [
        ("UPDATE src SET a = NULL, b = 7 WHERE id = 5", "UPDATE src SET a = 7, b = NULL "
         "WHERE id = 5"),
        ("UPDATE src SET a = 2, b = 1 WHERE id = 1", "UPDATE src SET a = 1, b = 2 WHERE id = 1"),
        (
            "UPDATE src SET t = CASE id WHEN 6 THEN 'n7' ELSE 'n6' END WHERE id IN (6, 7)",
            "UPDATE src SET t = 'n' || id WHERE id IN (6, 7)",
        ),
    ]:  # fmt: skip
        sql(second_db, change)
        differ = run_cli("check", job, cwd=tmp_path)
        assert differ.returncode == 4, change + differ.stdout + differ.stderr
        sql(second_db, undo)
    assert run_cli("check", job, cwd=tmp_path).returncode == 0


def test_seeds_and_null_constants_are_distinct() -> None:
    constants = [_mix(n) for n in range(2, 2 * 1600 + 2)]  # PostgreSQL's most columns: 1600
    assert len(set(constants)) == len(constants)
    assert all(-(2**63) < c < 2**63 for c in constants)  # a bigint literal, even negated


@pytest.mark.parametrize("key_type", ["int16", "int32", "int64"])
def test_width_bucket_puts_every_key_where_the_case_does(pg_url: str, key_type: str) -> None:
    """An integer key's range number comes from ``width_bucket`` on PostgreSQL: for keys at,
    just below and just above every bound, negative ones, the type's extremes and NULL, it is
    the number the one-by-one ``CASE`` (every other key and dialect) gives."""
    from runner.plan.segments import bucket_case

    kind = {"int16": "SMALLINT", "int32": "INTEGER", "int64": "BIGINT"}[key_type]
    top = {"int16": 32767, "int32": 2147483647, "int64": 9223372036854775807}[key_type]
    bounds = [-top + 5, -1, 0, 7, 1000, top - 1]
    keys = sorted({-top - 1, top, *(b + d for b in bounds for d in (-1, 0, 1))})
    values = ", ".join(f"({k})" for k in keys) + ", (NULL)"
    fast = bucket_case("k", key_type, bounds, "postgres")
    slow = bucket_case("k", "decimal", bounds, "postgres")  # not an integer key: the CASE
    assert "width_bucket" in fast and "width_bucket" not in slow
    keyed = f"SELECT CAST(column1 AS {kind}) AS k FROM (VALUES {values}) w"
    rows = sql(pg_url, f"SELECT k, {fast}, {slow} FROM ({keyed}) v ORDER BY k")
    assert len(rows) == len(keys) + 1
    assert [(k, a) for k, a, _ in rows] == [(k, b) for k, _, b in rows]
    assert {a for _, a, _ in rows} == set(range(len(bounds) + 1))
