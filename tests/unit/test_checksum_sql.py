"""Segment checksum SQL (runner/plan/checksum.py): its text per dialect, and that the same rows
give the same checksum in SQLite and DuckDB here (PostgreSQL and MariaDB: tests/integration/
test_check.py)."""

from __future__ import annotations

import sqlite3

import duckdb
import pytest

from runner.plan.checksum import checksum_sql, column_text, hashable, row_text, sqlite_functions

COLUMNS = [
    ("id", "int64"),
    ("amount", "decimal128(10, 2)"),
    ("flag", "bool"),
    ("day", "date32[day]"),
    ("at", "timestamp[us]"),
    ("name", "string"),
    ("ratio", "double"),
]
ROWS = [
    (1, "12.50", 1, "2024-01-02", "2024-01-02 03:04:05.123456", "a|b", 0.1),
    (2, "-3.00", 0, "1999-12-31", "1999-12-31 23:59:59.000000", "é", None),
    (3, None, None, None, None, None, 2.5),
]


def test_sql_text_per_dialect() -> None:
    assert column_text("at", "timestamp[us, tz=UTC]", "postgres") == (
        "to_char(\"at\" AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS.US')"
    )
    assert (
        column_text("at", "timestamp[us]", "mysql") == "DATE_FORMAT(`at`, '%Y-%m-%d %H:%i:%s.%f')"
    )
    assert column_text("amount", "decimal128(10, 2)", "sqlite") == (
        'CASE WHEN "amount" IS NULL THEN NULL ELSE printf(\'%.2f\', "amount") END'
    )
    assert column_text("flag", "bool", "duckdb") == (
        "CASE WHEN \"flag\" IS NULL THEN NULL WHEN \"flag\" THEN '1' ELSE '0' END"
    )
    assert row_text([("a", "int64"), ("b", "string")], "mysql") == (
        "CONCAT(COALESCE(CAST(`a` AS CHAR), '\\\\N'), '|', COALESCE(CAST(`b` AS CHAR), '\\\\N'))"
    )
    assert not hashable("double") and hashable("int32")
    sql = checksum_sql("t", [("a", "int64")], "postgres")
    assert sql.startswith("SELECT COUNT(*), COALESCE(SUM(('x' || substr(h, 1, 8))::bit(32)")
    assert "md5(COALESCE(CAST(\"a\" AS VARCHAR), '\\N'))" in sql
    assert "etlrun_md5(" in checksum_sql("t", [("a", "int64")], "sqlite")


def _sqlite() -> tuple[int, int, int]:
    conn = sqlite3.connect(":memory:")
    sqlite_functions(conn)
    conn.execute(
        "CREATE TABLE t (id INTEGER PRIMARY KEY, amount DECIMAL(10,2), flag BOOLEAN, day DATE, "
        "at TIMESTAMP, name TEXT, ratio REAL)"
    )
    conn.executemany(
        "INSERT INTO t VALUES (?, ?, ?, ?, ?, ?, ?)",
        [(r[0], None if r[1] is None else float(r[1]), *r[2:]) for r in ROWS],
    )
    return tuple(conn.execute(checksum_sql("t", COLUMNS, "sqlite")).fetchone())


def _duckdb() -> tuple[int, int, int]:
    conn = duckdb.connect()
    conn.execute(
        "CREATE TABLE t (id BIGINT PRIMARY KEY, amount DECIMAL(10,2), flag BOOLEAN, day DATE, "
        '"at" TIMESTAMP, name VARCHAR, ratio DOUBLE)'
    )
    conn.executemany(
        "INSERT INTO t VALUES (?, ?, ?, ?, ?, ?, ?)",
        [(r[0], r[1], None if r[2] is None else bool(r[2]), *r[3:]) for r in ROWS],
    )
    return tuple(int(v) for v in conn.execute(checksum_sql("t", COLUMNS, "duckdb")).fetchone())


def test_same_rows_same_checksum_sqlite_duckdb() -> None:
    assert _sqlite() == _duckdb()
    assert _sqlite()[0] == 3


@pytest.mark.parametrize("change", ["UPDATE t SET name = 'x' WHERE id = 1", "DELETE FROM t"])
def test_a_change_changes_the_checksum(change: str) -> None:
    conn = sqlite3.connect(":memory:")
    sqlite_functions(conn)
    conn.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT)")
    conn.executemany("INSERT INTO t VALUES (?, ?)", [(1, "a"), (2, "b")])
    sql = checksum_sql("t", [("id", "int64"), ("name", "string")], "sqlite")
    before = conn.execute(sql).fetchone()
    conn.execute(change)
    assert conn.execute(sql).fetchone() != before
