"""bulk: guarded full reload, old target kept as ``<table>__prev_<n>``, atomic swap.

Readers polling the target see the old rows or the new ones, never a mix (the approach of
test_atomic_replace.py); a reload killed at 70% leaves the old data readable; an empty or much
smaller source is refused with exit 6; backups rotate by ``keep_backups``.
"""

from __future__ import annotations

import sqlite3
from contextlib import closing
from pathlib import Path

import pytest
import servers
from conftest import run_cli
from test_atomic_replace import NEW, NEW_ROWS, OLD, OLD_ROWS, QUERY, check, replace_while_reading

from runner.modes.bulk import guard


def spec(folder: Path, source: Path, target: str, extra: str = "") -> Path:
    path = folder / "bulk.yaml"
    path.write_text(
        f"job: reload\nsource: sqlite:///{source}\ntarget: {target}\nworkers: 2\n"
        f"defaults: {{mode: bulk, chunk_rows: 5000{extra}}}\ntables: [readings]\n"
    )
    return path


def make_sqlite(path: Path, rows: int, v: str) -> Path:
    with closing(sqlite3.connect(path)) as conn:
        conn.execute("CREATE TABLE readings (id INTEGER PRIMARY KEY, v TEXT NOT NULL, pad TEXT)")
        conn.execute(
            "WITH RECURSIVE g(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM g WHERE i < ?) "
            "INSERT INTO readings SELECT i, ?, printf('%040d', i) FROM g WHERE ? > 0",
            (max(rows, 1), v, rows),
        )
        conn.commit()
    return path


def tables(path: Path) -> list[str]:
    with closing(sqlite3.connect(path)) as conn:
        rows = conn.execute("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")
        return [r[0] for r in rows]


def observe_sqlite(path: Path, table: str = "readings") -> tuple:
    with closing(sqlite3.connect(path)) as conn:
        return conn.execute(QUERY.replace("readings", table)).fetchone()


@pytest.fixture
def source_db(tmp_path: Path) -> Path:
    return make_sqlite(tmp_path / "source.db", NEW_ROWS, "new")


def test_guard_rules() -> None:
    guard(10, None, 50, False)
    guard(10, 20, 50, False)
    with pytest.raises(Exception, match="0 rows"):
        guard(0, 20, 50, False)
    guard(0, 20, 100, True)
    with pytest.raises(Exception, match="shrank by 60.0%"):
        guard(4, 10, 50, False)


def test_empty_source_is_refused_and_target_intact(tmp_path: Path) -> None:
    source = make_sqlite(tmp_path / "empty.db", 0, "new")
    target = make_sqlite(tmp_path / "target.db", 100, "old")
    result = run_cli("run", spec(tmp_path, source, f"sqlite:///{target}"), cwd=tmp_path)
    assert result.returncode == 6, result.stdout + result.stderr
    assert "0 rows" in result.stderr
    assert observe_sqlite(target) == (100, "old", "old")
    allowed = spec(tmp_path, source, f"sqlite:///{target}", ", allow_empty: true")
    result = run_cli("run", allowed, "--fresh", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert observe_sqlite(target) == (0, None, None)
    assert observe_sqlite(target, "readings__prev_1") == (100, "old", "old")


def test_shrunken_source_is_refused(tmp_path: Path) -> None:
    source = make_sqlite(tmp_path / "small.db", 40, "new")
    target = make_sqlite(tmp_path / "target.db", 100, "old")
    result = run_cli("run", spec(tmp_path, source, f"sqlite:///{target}"), cwd=tmp_path)
    assert result.returncode == 6 and "max_shrink_pct (50)" in result.stderr
    assert observe_sqlite(target) == (100, "old", "old")
    relaxed = spec(tmp_path, source, f"sqlite:///{target}", ", max_shrink_pct: 70")
    assert run_cli("run", relaxed, cwd=tmp_path).returncode == 0
    assert observe_sqlite(target) == (40, "new", "new")


def test_reload_killed_at_70_percent_leaves_old_data(source_db: Path, tmp_path: Path) -> None:
    target = make_sqlite(tmp_path / "target.db", OLD_ROWS, "old")
    job = spec(tmp_path, source_db, f"sqlite:///{target}")  # 12 chunks of 5,000
    env = {"ETLRUN_TEST_CRASH_AFTER": "readings:chunk:0008", "ETLRUN_TEST_CRASH_SIGNAL": "KILL"}
    killed = run_cli("run", job, cwd=tmp_path, env=env)
    assert killed.returncode in (-9, 137)
    assert observe_sqlite(target) == OLD  # intact and readable
    resumed = run_cli("run", job, cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    assert observe_sqlite(target) == NEW
    assert observe_sqlite(target, "readings__prev_1") == OLD


def test_backups_rotate(tmp_path: Path) -> None:
    target = make_sqlite(tmp_path / "target.db", 10, "v0")
    for number in range(1, 4):
        source = make_sqlite(tmp_path / f"s{number}.db", 10, f"v{number}")
        job = spec(tmp_path, source, f"sqlite:///{target}", ", keep_backups: 2")
        assert run_cli("run", job, cwd=tmp_path).returncode == 0
    assert tables(target) == ["readings", "readings__prev_2", "readings__prev_3"]
    assert observe_sqlite(target) == (10, "v3", "v3")
    assert observe_sqlite(target, "readings__prev_3") == (10, "v2", "v2")
    source = make_sqlite(tmp_path / "s4.db", 10, "v4")
    job = spec(tmp_path, source, f"sqlite:///{target}", ", keep_backups: 0")
    assert run_cli("run", job, cwd=tmp_path).returncode == 0
    assert tables(target) == ["readings"]


def test_sqlite_readers_see_old_or_new(source_db: Path, tmp_path: Path) -> None:
    target = make_sqlite(tmp_path / "target.db", OLD_ROWS, "old")
    reader_conn = sqlite3.connect(target, timeout=0.05, check_same_thread=False)
    try:

        def observe() -> tuple:
            return reader_conn.execute(QUERY).fetchone()

        def locked(exc: Exception) -> bool:
            return isinstance(exc, sqlite3.OperationalError) and "locked" in str(exc)

        job = spec(tmp_path, source_db, f"sqlite:///{target}")
        check(replace_while_reading(run_cli, tmp_path, job, observe, retry=locked, pause=0.005))
    finally:
        reader_conn.close()
    assert tables(target) == ["readings", "readings__prev_1"]


def test_postgres_readers_see_old_or_new(pg_url: str, source_db: Path, tmp_path: Path) -> None:
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

        check(replace_while_reading(run_cli, tmp_path, spec(tmp_path, source_db, pg_url), observe))
        names = reader_conn.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY 1"
        ).fetchall()
        assert names == [("readings",), ("readings__prev_1",)]
        indexes = reader_conn.execute(
            "SELECT tablename, indexname FROM pg_indexes WHERE schemaname = 'public' ORDER BY 1"
        ).fetchall()
        assert indexes == [
            ("readings", "readings_pkey"),
            ("readings__prev_1", "readings__prev_1_pkey"),
        ]
        # a second reload rotates the backup (keep_backups 1)
        result = run_cli("run", spec(tmp_path, source_db, pg_url), "--fresh", cwd=tmp_path)
        assert result.returncode == 0, result.stderr
        names = reader_conn.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY 1"
        ).fetchall()
        assert names == [("readings",), ("readings__prev_2",)]
    finally:
        reader_conn.close()


def test_mariadb_readers_see_old_or_new(mariadb_url: str, source_db: Path, tmp_path: Path) -> None:
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

        check(
            replace_while_reading(
                run_cli, tmp_path, spec(tmp_path, source_db, mariadb_url), observe
            )
        )
        with reader_conn.cursor() as cursor:
            cursor.execute("SHOW TABLES")
            assert sorted(cursor.fetchall()) == [("readings",), ("readings__prev_1",)]
    finally:
        reader_conn.close()


def test_crash_after_swap_before_state_write(tmp_path: Path) -> None:
    target = make_sqlite(tmp_path / "target.db", 10, "v0")
    source = make_sqlite(tmp_path / "s1.db", 10, "v1")
    job = spec(tmp_path, source, f"sqlite:///{target}")
    env = {"ETLRUN_TEST_CRASH_AFTER": "readings:finalize"}
    assert run_cli("run", job, cwd=tmp_path, env=env).returncode == 137
    assert observe_sqlite(target) == (10, "v1", "v1")
    resumed = run_cli("run", job, cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    assert tables(target) == ["readings", "readings__prev_1"]
    assert observe_sqlite(target, "readings__prev_1") == (10, "v0", "v0")
