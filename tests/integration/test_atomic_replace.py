"""A reader of the target never sees a half-written table (DESIGN §6, README "How a copy runs").

The target holds an old row set (50,000 rows, all ``v = 'old'``); a replace copy brings a new
one (60,000 rows, all ``v = 'new'``) in 12 chunks on two workers. A reader polls
``count(*), min(v), max(v)`` on its own connection for the whole run: every observation must be
exactly the old set or exactly the new set, never a mix, an empty or missing table, and once
the new set has been seen the old one never comes back.

PostgreSQL swaps with DROP + RENAME in one transaction, SQLite likewise, MariaDB with one atomic
``RENAME TABLE``. (DuckDB is left out: a second process cannot open its file while the run has it.)
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Callable
from contextlib import closing
from pathlib import Path

import pytest
import servers

OLD_ROWS = 50_000
NEW_ROWS = 60_000
OLD = (OLD_ROWS, "old", "old")
NEW = (NEW_ROWS, "new", "new")
QUERY = "SELECT count(*), min(v), max(v) FROM readings"

Observe = Callable[[], tuple]


@pytest.fixture(scope="module")
def source_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A SQLite source with the new row set (the source backend does not matter here)."""
    path = tmp_path_factory.mktemp("source") / "source.db"
    with closing(sqlite3.connect(path)) as conn:
        conn.execute("CREATE TABLE readings (id INTEGER PRIMARY KEY, v TEXT NOT NULL, pad TEXT)")
        conn.execute(
            "WITH RECURSIVE g(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM g WHERE i < ?) "
            "INSERT INTO readings SELECT i, 'new', printf('%040d', i) FROM g",
            (NEW_ROWS,),
        )
        conn.commit()
    return path


def write_spec(folder: Path, source: Path, target: str) -> Path:
    spec = folder / "replace.yaml"
    spec.write_text(
        f"version: 1\njob: atomic-replace\nsource: sqlite:///{source}\ntarget: {target}\n"
        "workers: 2\ndefaults:\n  chunk_rows: 5000\n  if_exists: replace\n"
        "tables:\n  - readings\n"
    )
    return spec


class Reader(threading.Thread):
    """Polls the target until stopped, keeping every observation and every error."""

    def __init__(self, observe: Observe, retry: Callable[[Exception], bool], pause: float) -> None:
        super().__init__(name="reader", daemon=True)
        self.observe, self.retry, self.pause = observe, retry, pause
        self.stop = threading.Event()
        self.seen: list[tuple] = []
        self.errors: list[str] = []
        self.retries = 0

    def run(self) -> None:
        while not self.stop.is_set():
            try:
                self.seen.append(tuple(self.observe()))
            except Exception as exc:  # noqa: BLE001 - every failure is a finding
                if self.retry(exc):
                    self.retries += 1
                else:
                    self.errors.append(f"{type(exc).__name__}: {exc}")
            time.sleep(self.pause)


def replace_while_reading(
    run_cli,
    folder: Path,
    spec: Path,
    observe: Observe,
    *,
    retry: Callable[[Exception], bool] = lambda exc: False,
    pause: float = 0.0,
) -> Reader:
    assert tuple(observe()) == OLD
    reader = Reader(observe, retry, pause)
    reader.start()
    try:
        time.sleep(0.1)  # the reader is at work before the run starts
        result = run_cli("run", spec, cwd=folder)
        time.sleep(0.1)
    finally:
        reader.stop.set()
        reader.join(timeout=30)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "60,000" in result.stdout
    return reader


def check(reader: Reader) -> None:
    assert reader.errors == [], f"the reader failed {len(reader.errors)} times: {reader.errors[:3]}"
    odd = [seen for seen in reader.seen if seen not in (OLD, NEW)]
    assert odd == [], f"a half-written table was visible: {odd[:5]}"
    assert reader.seen[0] == OLD and reader.seen[-1] == NEW
    first_new = reader.seen.index(NEW)
    assert OLD not in reader.seen[first_new:], "the old rows came back after the swap"
    assert len(reader.seen) >= 20, f"only {len(reader.seen)} observations"


# --- PostgreSQL ---------------------------------------------------------------------------------


def test_postgres_readers_see_old_or_new(
    run_cli, pg_url: str, source_db: Path, tmp_path: Path
) -> None:
    with servers.postgres_connect(pg_url) as conn:
        conn.execute("CREATE TABLE readings (id bigint PRIMARY KEY, v text NOT NULL, pad text)")
        conn.execute(
            "INSERT INTO readings SELECT g, 'old', lpad(g::text, 40, '0') "
            f"FROM generate_series(1, {OLD_ROWS}) g"
        )
    reader_conn = servers.postgres_connect(pg_url)
    try:

        def observe() -> tuple:
            return reader_conn.execute(QUERY).fetchone()

        reader = replace_while_reading(
            run_cli, tmp_path, write_spec(tmp_path, source_db, pg_url), observe
        )
        check(reader)
        tables = reader_conn.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public'"
        ).fetchall()
        assert tables == [("readings",)], "staging or old tables were left behind"
        # the new table has its primary key under the usual name
        (index,) = reader_conn.execute(
            "SELECT indexname FROM pg_indexes WHERE tablename = 'readings'"
        ).fetchall()
        assert index == ("readings_pkey",)
    finally:
        reader_conn.close()


# --- SQLite -------------------------------------------------------------------------------------


def test_sqlite_readers_see_old_or_new(run_cli, source_db: Path, tmp_path: Path) -> None:
    target = tmp_path / "target.db"
    with closing(sqlite3.connect(target)) as conn:
        conn.execute("CREATE TABLE readings (id INTEGER PRIMARY KEY, v TEXT NOT NULL, pad TEXT)")
        conn.execute(
            "WITH RECURSIVE g(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM g WHERE i < ?) "
            "INSERT INTO readings SELECT i, 'old', printf('%040d', i) FROM g",
            (OLD_ROWS,),
        )
        conn.commit()
    reader_conn = sqlite3.connect(target, timeout=0.05, check_same_thread=False)
    try:

        def observe() -> tuple:
            return reader_conn.execute(QUERY).fetchone()

        def locked(exc: Exception) -> bool:  # a writer holds the file: ask again
            return isinstance(exc, sqlite3.OperationalError) and "locked" in str(exc)

        spec = write_spec(tmp_path, source_db, f"sqlite:///{target}")
        # short pauses between reads, so the reader does not starve the writer of the file
        reader = replace_while_reading(run_cli, tmp_path, spec, observe, retry=locked, pause=0.005)
        check(reader)
        names = reader_conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
        assert names.fetchall() == [("readings",)], "staging or old tables were left behind"
    finally:
        reader_conn.close()


# --- MariaDB ------------------------------------------------------------------------------------


def test_mariadb_readers_see_old_or_new(
    run_cli, mariadb_url: str, source_db: Path, tmp_path: Path
) -> None:
    with closing(servers.mariadb_connect(mariadb_url)) as conn, conn.cursor() as cursor:
        cursor.execute(
            "CREATE TABLE readings (id bigint PRIMARY KEY, v varchar(10) NOT NULL, pad text)"
        )
        cursor.execute(
            f"INSERT INTO readings SELECT seq, 'old', lpad(seq, 40, '0') FROM seq_1_to_{OLD_ROWS}"
        )
    reader_conn = servers.mariadb_connect(mariadb_url)
    try:

        def observe() -> tuple:
            with reader_conn.cursor() as cursor:
                cursor.execute(QUERY)
                count, low, high = cursor.fetchone()
                return int(count), low, high

        spec = write_spec(tmp_path, source_db, mariadb_url)
        check(replace_while_reading(run_cli, tmp_path, spec, observe))
        with reader_conn.cursor() as cursor:
            cursor.execute("SHOW TABLES")
            assert cursor.fetchall() == (("readings",),), "staging or old tables were left behind"
    finally:
        reader_conn.close()
