"""SQLite's ADBC bulk write stores exactly what the sqlite3 path stores, in one transaction."""

from __future__ import annotations

import datetime as dt
import sqlite3
import threading
from decimal import Decimal
from pathlib import Path

import pyarrow as pa
import pytest

from runner.connectors.sql import SqlConnector
from runner.connectors.sqlite import SqliteConnector
from runner.errors import TaskError

DDL = (
    'CREATE TABLE "t" (id INTEGER PRIMARY KEY, flag BOOLEAN, small SMALLINT, u INTEGER, '
    "f4 REAL, f8 DOUBLE, dec DECIMAL(38,10), d DATE, tm TIME, ts TIMESTAMP, "
    "tstz TIMESTAMP WITH TIME ZONE, txt TEXT, big TEXT, b BLOB, js TEXT)"
)
UTC = dt.UTC
BATCH = pa.record_batch(
    {
        "id": pa.array([1, 2, 3], pa.int64()),
        "flag": pa.array([True, False, None]),
        "small": pa.array([-32768, 32767, None], pa.int16()),
        "u": pa.array([0, 4294967295, None], pa.uint32()),
        "f4": pa.array([1.5, -0.0, None], pa.float32()),
        "f8": pa.array([5e-324, 1.7976931348623157e308, 0.1]),
        "dec": pa.array(
            [Decimal("123456.7890123456"), Decimal("-0.0000000001"), None], pa.decimal128(38, 10)
        ),  # fmt: skip
        "d": pa.array([dt.date(1, 1, 1), dt.date(9999, 12, 31), None]),
        "tm": pa.array([dt.time(0, 0), dt.time(23, 59, 59, 999999), None], pa.time64("us")),
        "ts": pa.array(
            [dt.datetime(1, 1, 1), dt.datetime(2000, 2, 29, 1, 2, 3, 999999), None],
            pa.timestamp("us"),
        ),  # fmt: skip
        "tstz": pa.array(
            [dt.datetime(2020, 1, 1, tzinfo=UTC), None, None], pa.timestamp("us", tz="UTC")
        ),  # fmt: skip
        "txt": pa.array(["", "a\x00b 😀 👨\u200d👩\u200d👧", None]),
        "big": pa.array(["x" * 100_000, "e\u0301", None], pa.large_string()),
        "b": pa.array([b"", b"\x00\xff\xfe", None], pa.large_binary()),
        "js": pa.array(['{"a": [1, 2]}', "null", None], pa.json_()),
    }
)


def stored(path: Path) -> list[tuple[object, ...]]:
    """Every value with its storage class, as SQLite holds it."""
    with sqlite3.connect(path) as conn:
        names = [r[1] for r in conn.execute('PRAGMA table_info("t")')]
        select = ", ".join(f'"{n}", typeof("{n}")' for n in names)
        return conn.execute(f'SELECT {select} FROM "t" ORDER BY id').fetchall()


def make(path: Path) -> SqliteConnector:
    with sqlite3.connect(path) as conn:
        conn.execute(DDL)
    return SqliteConnector(f"sqlite:///{path}")


def test_stores_what_the_sqlite3_path_stores(tmp_path: Path) -> None:
    fast, slow = make(tmp_path / "fast.db"), make(tmp_path / "slow.db")
    written = fast.write('"t"', BATCH.schema, [BATCH.slice(0, 2), BATCH.slice(2)])
    SqlConnector.write(slow, '"t"', BATCH.schema, [BATCH])
    assert written.rows == 3
    assert stored(tmp_path / "fast.db") == stored(tmp_path / "slow.db")
    rows = stored(tmp_path / "fast.db")
    assert rows[1][rows[1].index("a\x00b 😀 👨\u200d👩\u200d👧")] == "a\x00b 😀 👨\u200d👩\u200d👧"


def test_before_statements_and_rows_commit_together_or_not_at_all(tmp_path: Path) -> None:
    target = make(tmp_path / "t.db")
    target.write('"t"', BATCH.schema, [BATCH])

    def failing() -> object:
        yield BATCH.slice(1, 1)  # id 2, deleted first
        raise RuntimeError("the reader broke")

    delete = ('DELETE FROM "t" WHERE id > ?', [1])
    with pytest.raises(TaskError, match="reader broke"):
        target.write('"t"', BATCH.schema, failing(), before=[delete])
    assert [r[0] for r in stored(tmp_path / "t.db")] == [1, 2, 3]  # rolled back, delete too
    target.write('"t"', BATCH.schema, [BATCH.slice(1)], before=[delete])
    assert [r[0] for r in stored(tmp_path / "t.db")] == [1, 2, 3]


def test_a_uint64_beyond_int64_is_refused_not_wrapped(tmp_path: Path) -> None:
    target = make(tmp_path / "t.db")
    batch = pa.record_batch({"id": pa.array([1, 2]), "u": pa.array([1, 2**64 - 1], pa.uint64())})
    with pytest.raises(TaskError, match="too large"):
        target.write('"t"', batch.schema, [batch])
    assert stored(tmp_path / "t.db") == []


def test_parallel_writers_queue_for_the_lock(tmp_path: Path) -> None:
    target = make(tmp_path / "t.db")
    errors: list[BaseException] = []

    def write(start: int) -> None:
        ids = pa.array(range(start, start + 20_000), pa.int64())
        batch = pa.record_batch({"id": ids, "txt": pa.array(["x" * 50] * len(ids))})
        try:
            target.write('"t"', batch.schema, [batch] + [batch.slice(0, 0)])
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(k * 20_000,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    with sqlite3.connect(tmp_path / "t.db") as conn:
        assert conn.execute('SELECT count(*), count(DISTINCT id) FROM "t"').fetchone() == (
            80_000,
            80_000,
        )
