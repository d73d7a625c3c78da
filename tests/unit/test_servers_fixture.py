"""The server fixtures give each test a working, private database, and drop it afterwards."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import servers
from sqlalchemy.engine import make_url

# databases handed out so far in this module, per server, to check isolation and clean-up
_SEEN: dict[str, list[str]] = {"postgres": [], "mariadb": []}


def _pg_roundtrip(url: str) -> list[tuple[object, ...]]:
    with servers.postgres_connect(url) as conn:
        tables = conn.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'"
        ).fetchall()
        assert tables == [], f"{url} is not empty"
        conn.execute("CREATE TABLE probe (id INTEGER PRIMARY KEY, name TEXT)")
        conn.execute("INSERT INTO probe VALUES (1, 'Zoé'), (2, '李')")
        return conn.execute("SELECT id, name FROM probe ORDER BY id").fetchall()


def _mariadb_roundtrip(url: str) -> list[tuple[object, ...]]:
    conn = servers.mariadb_connect(url)
    try:
        with conn.cursor() as cur:
            cur.execute("SHOW TABLES")
            assert cur.fetchall() == (), f"{url} is not empty"
            cur.execute("CREATE TABLE probe (id INTEGER PRIMARY KEY, name TEXT)")
            cur.execute("INSERT INTO probe VALUES (1, 'Zoé'), (2, '李')")
            cur.execute("SELECT id, name FROM probe ORDER BY id")
            return list(cur.fetchall())
    finally:
        conn.close()


@pytest.mark.postgres
@pytest.mark.parametrize("round_", [1, 2])
def test_pg_url_is_fresh_private_and_dropped(pg_url: str, round_: int) -> None:
    url = make_url(pg_url)
    assert url.drivername == "postgresql"
    assert url.database.startswith(f"etlrun_test_{os.getpid()}_")
    assert _pg_roundtrip(pg_url) == [(1, "Zoé"), (2, "李")]
    # a second test got another database, and the first one's is gone
    assert url.database not in _SEEN["postgres"]
    for earlier in _SEEN["postgres"]:
        assert not servers.postgres_database_exists(earlier), f"{earlier} was not dropped"
    _SEEN["postgres"].append(url.database)


@pytest.mark.mariadb
@pytest.mark.parametrize("round_", [1, 2])
def test_mariadb_url_is_fresh_private_and_dropped(mariadb_url: str, round_: int) -> None:
    url = make_url(mariadb_url)
    assert url.drivername == "mariadb"
    assert url.database.startswith(f"etlrun_test_{os.getpid()}_")
    assert _mariadb_roundtrip(mariadb_url) == [(1, "Zoé"), (2, "李")]
    assert url.database not in _SEEN["mariadb"]
    for earlier in _SEEN["mariadb"]:
        assert not servers.mariadb_database_exists(earlier), f"{earlier} was not dropped"
    _SEEN["mariadb"].append(url.database)


@pytest.mark.postgres
def test_pg_server_is_a_session_database(pg_server: str, pg_url: str) -> None:
    session_db, test_db = make_url(pg_server).database, make_url(pg_url).database
    assert session_db != test_db
    assert servers.postgres_database_exists(session_db)
    with servers.postgres_connect(pg_server) as conn:
        assert conn.execute("SELECT current_database()").fetchone() == (session_db,)
        assert conn.execute("SHOW server_encoding").fetchone() == ("UTF8",)


@pytest.mark.mariadb
def test_mariadb_server_is_a_session_database(mariadb_server: str, mariadb_url: str) -> None:
    session_db, test_db = make_url(mariadb_server).database, make_url(mariadb_url).database
    assert session_db != test_db
    assert servers.mariadb_database_exists(session_db)
    conn = servers.mariadb_connect(mariadb_server)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT DATABASE(), @@character_set_database")
            assert cur.fetchone() == (session_db, "utf8mb4")
    finally:
        conn.close()


@pytest.mark.postgres
def test_pg_drop_closes_open_connections(pg_url: str) -> None:
    # a connector that forgot to close its pool must not make the fixture hang or fail
    leftover = servers.postgres_connect(pg_url, autocommit=False)
    leftover.execute("CREATE TABLE held (id INTEGER)")  # an open transaction holding locks
    servers.drop_postgres_database(pg_url)
    assert not servers.postgres_database_exists(make_url(pg_url).database)
    leftover.close()


@pytest.mark.mariadb
def test_mariadb_drop_kills_open_connections(mariadb_url: str) -> None:
    leftover = servers.mariadb_connect(mariadb_url)
    with leftover.cursor() as cur:
        cur.execute("CREATE TABLE held (id INTEGER) ENGINE=InnoDB")
        cur.execute("BEGIN")
        cur.execute("INSERT INTO held VALUES (1)")  # a metadata lock DROP DATABASE waits for
    servers.drop_mariadb_database(mariadb_url)
    assert not servers.mariadb_database_exists(make_url(mariadb_url).database)
    leftover.close()


@pytest.mark.postgres
def test_etlrun_connects_to_the_pg_url(pg_url: str) -> None:
    from runner.connectors import connect

    connector = connect(pg_url)
    try:
        assert connector.scalar("SELECT 1") == 1
    finally:
        connector.close()


@pytest.mark.mariadb
def test_etlrun_connects_to_the_mariadb_url(mariadb_url: str) -> None:
    from runner.connectors import connect

    connector = connect(mariadb_url)
    try:
        assert connector.scalar("SELECT 1") == 1
    finally:
        connector.close()


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_stale_databases_are_those_of_dead_local_processes() -> None:
    dead, alive = _dead_pid(), os.getpid()
    names = [f"etlrun_test_{dead}_0badf00d", f"etlrun_test_{alive}_0badf00d", "postgres", "clinic"]
    local = "postgresql://postgres@127.0.0.1:5432/postgres"
    assert servers.stale_databases(names, local) == [f"etlrun_test_{dead}_0badf00d"]
    # elsewhere the pid says nothing: never sweep a remote server
    assert servers.stale_databases(names, "postgresql://u@db.example.org/postgres") == []


@pytest.mark.postgres
def test_pg_sweep_drops_databases_of_killed_sessions(pg_server: str) -> None:
    name = f"etlrun_test_{_dead_pid()}_0badf00d"
    with servers.postgres_connect() as conn:
        conn.execute(f'CREATE DATABASE "{name}" TEMPLATE template0')
    assert name in servers.sweep_postgres.__wrapped__(servers.POSTGRES_URL)
    assert not servers.postgres_database_exists(name)
    assert servers.postgres_database_exists(make_url(pg_server).database)


@pytest.mark.mariadb
def test_mariadb_sweep_drops_databases_of_killed_sessions(mariadb_server: str) -> None:
    name = f"etlrun_test_{_dead_pid()}_0badf00d"
    conn = servers.mariadb_connect()
    try:
        with conn.cursor() as cur:
            cur.execute(f"CREATE DATABASE `{name}`")
    finally:
        conn.close()
    assert name in servers.sweep_mariadb.__wrapped__(servers.MARIADB_URL)
    assert not servers.mariadb_database_exists(name)
    assert servers.mariadb_database_exists(make_url(mariadb_server).database)


def test_clean_env(clean_env: object) -> None:
    from conftest import KEEP_ENV

    assert os.environ["NO_COLOR"] == "1"
    assert os.environ["ETLRUN_STATE"].startswith("sqlite:///")
    etlrun_vars = {name for name in os.environ if name.startswith("ETLRUN_")}
    assert etlrun_vars <= {"ETLRUN_STATE", *KEEP_ENV}


def test_run_cli_runs_this_tree(run_cli, tmp_path) -> None:  # type: ignore[no-untyped-def]
    result = run_cli("--help", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "etlrun" in result.stdout


def test_unreachable_server_skips_the_tests_that_need_it(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    """End to end: by marker or by fixture, a test skips with the reason when nothing answers."""
    here = Path(__file__).resolve().parent.parent
    pytester.makeconftest((here / "conftest.py").read_text(encoding="utf-8"))
    pytester.makepyfile(
        servers=(here / "servers.py").read_text(encoding="utf-8"),
        cli_fork=(here / "cli_fork.py").read_text(encoding="utf-8"),
    )
    pytester.makeini("[pytest]\nmarkers =\n    postgres: pg\n    mariadb: mariadb\n")
    pytester.makepyfile(
        test_x="""
        import pytest

        @pytest.mark.mariadb
        def test_marked():
            pass

        def test_uses_fixture(pg_url):
            pass
        """
    )
    closed = "127.0.0.1:9"  # the discard port: nothing listens there
    monkeypatch.setenv("ETLRUN_TEST_POSTGRES_URL", f"postgresql://postgres@{closed}/postgres")
    monkeypatch.setenv("ETLRUN_TEST_MARIADB_URL", f"mariadb://root@{closed}/")
    monkeypatch.delenv(servers.REQUIRE_SERVERS_ENV, raising=False)
    result = pytester.runpytest_subprocess("-rs", "-p", "no:cacheprovider")
    result.assert_outcomes(skipped=2)
    result.stdout.fnmatch_lines(
        ["*MariaDB not reachable at 127.0.0.1:9 (set ETLRUN_TEST_MARIADB_URL)*"]
    )
    result.stdout.fnmatch_lines(
        ["*PostgreSQL not reachable at 127.0.0.1:9 (set ETLRUN_TEST_POSTGRES_URL)*"]
    )


@pytest.mark.parametrize("required", ["", "1"])
def test_require_servers_turns_the_skip_into_a_failure(
    monkeypatch: pytest.MonkeyPatch, required: str
) -> None:
    import conftest

    reason = "PostgreSQL not reachable at 127.0.0.1:9 (set ETLRUN_TEST_POSTGRES_URL)"
    monkeypatch.setitem(conftest._PROBLEM, "postgres", lambda: reason)
    monkeypatch.setenv(servers.REQUIRE_SERVERS_ENV, required)
    outcome = pytest.fail.Exception if required else pytest.skip.Exception
    with pytest.raises(outcome, match=r"PostgreSQL not reachable at 127\.0\.0\.1:9"):
        conftest.require_server("postgres")
