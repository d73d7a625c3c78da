"""Where the test PostgreSQL and MariaDB servers are, and private databases on them.

The servers run on the machine (no Docker here): PostgreSQL at 127.0.0.1:5432 (user postgres,
trust auth) and MariaDB at 127.0.0.1:3306 (root, empty password), unless
``ETLRUN_TEST_POSTGRES_URL`` / ``ETLRUN_TEST_MARIADB_URL`` name others. ``.ci/run`` installs and
starts both where they are missing.

Every database a test gets is its own: ``create_*_database`` makes ``etlrun_test_<pid>_<random>``
(creating one takes ~20 ms on both servers, so each test can have a fresh one) and returns the
URL etlrun takes for it; ``drop_*_database`` drops it even if connections to it are still open.
The first one created in a test session also drops the idle test databases of sessions that
were killed before their teardown (``sweep_*``; only on a server on this machine, by pid).
The drivers are used directly (psycopg, PyMySQL), not etlrun's connectors, so a broken connector
cannot break the fixtures that test it.
"""

from __future__ import annotations

import functools
import os
import re
import secrets
from collections.abc import Iterable
from typing import Any

from sqlalchemy.engine import URL, make_url

POSTGRES_URL = os.environ.get(
    "ETLRUN_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)
MARIADB_URL = os.environ.get("ETLRUN_TEST_MARIADB_URL", "mariadb://root@127.0.0.1:3306/")

CONNECT_TIMEOUT = 2  # seconds: an absent server must cost the suite little
REQUIRE_SERVERS_ENV = "ETLRUN_REQUIRE_SERVERS"


def servers_required() -> bool:
    """True when an unreachable server must fail the tests instead of skipping them (CI)."""
    return os.environ.get(REQUIRE_SERVERS_ENV, "").strip().lower() in ("1", "true", "yes", "on")


def new_database_name() -> str:
    """A database name no other test or test session uses: ``etlrun_test_<pid>_<random>``."""
    return f"etlrun_test_{os.getpid()}_{secrets.token_hex(4)}"


_TEST_DATABASE = re.compile(r"etlrun_test_(\d+)_[0-9a-f]{8}")


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def stale_databases(names: Iterable[str], server_url: str) -> list[str]:
    """The test databases among ``names`` left by a test session that was killed.

    Only for a server on this machine, where the pid in the name means something: a database
    whose creating process is gone. The caller still skips any that is in use.
    """
    host = make_url(server_url).host or "localhost"
    if not (host == "localhost" or host.startswith("127.") or host == "::1"):
        return []
    stale = []
    for name in names:
        match = _TEST_DATABASE.fullmatch(name)
        if match and int(match[1]) != os.getpid() and not _pid_alive(int(match[1])):
            stale.append(name)
    return stale


def with_database(server_url: str, database: str) -> str:
    """``server_url`` pointing at ``database`` instead (user, password, query kept)."""
    return make_url(server_url).set(database=database).render_as_string(hide_password=False)


def _where(url: URL, default_port: int) -> str:
    return f"{url.host or '127.0.0.1'}:{url.port or default_port}"


# --- PostgreSQL ------------------------------------------------------------------------------


def postgres_connect(url: str = POSTGRES_URL, *, autocommit: bool = True, **kwargs: Any) -> Any:
    """A psycopg connection to ``url``; ``postgresql+psycopg://`` is fine too."""
    import psycopg

    libpq = make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
    return psycopg.connect(libpq, connect_timeout=CONNECT_TIMEOUT, autocommit=autocommit, **kwargs)


def postgres_rows(url: str, *statements: str, zone: str | None = None) -> list[tuple[Any, ...]]:
    """Run ``statements`` in order on one autocommit connection (in time zone ``zone``, when
    given); the rows of the last one ([] when it returns none)."""
    with postgres_connect(url) as conn:
        if zone is not None:
            conn.execute(f"SET TimeZone = '{zone}'")
        rows: list[tuple[Any, ...]] = []
        for statement in statements:
            cursor = conn.execute(statement)
            rows = cursor.fetchall() if cursor.description else []
        return rows


@functools.cache
def postgres_problem() -> str | None:
    """Why the PostgreSQL test server cannot be used, or None when it can (asked once)."""
    where = _where(make_url(POSTGRES_URL), 5432)
    try:
        with postgres_connect() as conn:
            conn.execute("SELECT 1")
    except Exception as exc:  # any failure means: not usable; say why
        detail = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        return f"PostgreSQL not reachable at {where} (set ETLRUN_TEST_POSTGRES_URL): {detail}"
    return None


def postgres_available() -> bool:
    """Whether the PostgreSQL test server answers (a 2-second connect, cached)."""
    return postgres_problem() is None


@functools.cache
def sweep_postgres(server_url: str = POSTGRES_URL) -> list[str]:
    """Drop the idle databases of killed test sessions (once per session); return their names."""
    import psycopg
    from psycopg import sql

    dropped = []
    with postgres_connect(server_url) as conn:
        names = [row[0] for row in conn.execute("SELECT datname FROM pg_database")]
        for name in stale_databases(names, server_url):
            try:
                # no FORCE: a database someone is connected to stays
                conn.execute(sql.SQL("DROP DATABASE IF EXISTS {}").format(sql.Identifier(name)))
            except psycopg.Error:
                continue
            dropped.append(name)
    return dropped


def create_postgres_database(server_url: str = POSTGRES_URL, encoding: str = "UTF8") -> str:
    """Create a private database (UTF-8 unless told) on the server; return its URL."""
    from psycopg import sql

    try:
        sweep_postgres(server_url)
    except Exception:  # tidying up must never fail a test
        pass
    name = new_database_name()
    with postgres_connect(server_url) as conn:
        # template0: never busy (template1 is refused while anyone is connected to it), and it
        # takes any encoding, so the test database is UTF-8 even on an SQL_ASCII cluster
        conn.execute(
            sql.SQL("CREATE DATABASE {} TEMPLATE template0 ENCODING {}{}").format(
                sql.Identifier(name),
                sql.Literal(encoding),
                # the cluster's UTF-8 locale does not fit another encoding; C fits every one
                sql.SQL("" if encoding == "UTF8" else " LOCALE 'C'"),
            )
        )
    return with_database(server_url, name)


def drop_postgres_database(url: str, server_url: str = POSTGRES_URL) -> None:
    """Drop the database ``url`` points at, closing any connection still open to it."""
    from psycopg import sql

    name = make_url(url).database
    with postgres_connect(server_url) as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )


def postgres_database_exists(name: str, server_url: str = POSTGRES_URL) -> bool:
    with postgres_connect(server_url) as conn:
        row = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
    return row is not None


# --- MariaDB ---------------------------------------------------------------------------------


def mariadb_connect(url: str = MARIADB_URL, *, autocommit: bool = True, **kwargs: Any) -> Any:
    """A PyMySQL connection (utf8mb4) to ``url``; no current database when it names none."""
    import pymysql

    parsed = make_url(url)
    return pymysql.connect(
        host=parsed.host or "127.0.0.1",
        port=parsed.port or 3306,
        user=parsed.username or "root",
        password=parsed.password or "",
        database=parsed.database or None,
        charset="utf8mb4",
        autocommit=autocommit,
        connect_timeout=CONNECT_TIMEOUT,
        **kwargs,
    )


@functools.cache
def mariadb_problem() -> str | None:
    """Why the MariaDB test server cannot be used, or None when it can (asked once)."""
    where = _where(make_url(MARIADB_URL), 3306)
    try:
        conn = mariadb_connect()
        try:
            with conn.cursor() as cur:
                cur.execute("SELECT 1")
        finally:
            conn.close()
    except Exception as exc:  # any failure means: not usable; say why
        detail = str(exc).strip() or type(exc).__name__
        return f"MariaDB not reachable at {where} (set ETLRUN_TEST_MARIADB_URL): {detail}"
    return None


def mariadb_available() -> bool:
    """Whether the MariaDB test server answers (a 2-second connect, cached)."""
    return mariadb_problem() is None


@functools.cache
def sweep_mariadb(server_url: str = MARIADB_URL) -> list[str]:
    """Drop the idle databases of killed test sessions (once per session); return their names."""
    import pymysql

    dropped = []
    conn = mariadb_connect(server_url)
    try:
        with conn.cursor() as cur:
            cur.execute("SET SESSION lock_wait_timeout = 2")  # a database in use stays
            cur.execute("SELECT schema_name FROM information_schema.schemata")
            names = [row[0] for row in cur.fetchall()]
            for name in stale_databases(names, server_url):
                cur.execute("SELECT 1 FROM information_schema.processlist WHERE db = %s", (name,))
                if cur.fetchone() is not None:
                    continue
                try:
                    cur.execute(f"DROP DATABASE IF EXISTS `{name}`")
                except pymysql.err.MySQLError:
                    continue
                dropped.append(name)
    finally:
        conn.close()
    return dropped


def create_mariadb_database(server_url: str = MARIADB_URL) -> str:
    """Create a private utf8mb4 database on the server; return its URL."""
    try:
        sweep_mariadb(server_url)
    except Exception:  # tidying up must never fail a test
        pass
    name = new_database_name()
    conn = mariadb_connect(server_url)
    try:
        with conn.cursor() as cur:
            # explicit: MariaDB's built-in default is latin1; Debian's config says utf8mb4
            cur.execute(
                f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4 COLLATE utf8mb4_general_ci"
            )
    finally:
        conn.close()
    return with_database(server_url, name)


def drop_mariadb_database(url: str, server_url: str = MARIADB_URL) -> None:
    """Drop the database ``url`` points at, killing connections still using it first.

    An open transaction elsewhere holds metadata locks that would make DROP DATABASE wait
    (``lock_wait_timeout`` is a year by default), so those sessions are killed.
    """
    import pymysql

    name = make_url(url).database
    conn = mariadb_connect(server_url)
    try:
        with conn.cursor() as cur:
            cur.execute("SET SESSION lock_wait_timeout = 30")
            cur.execute(
                "SELECT id FROM information_schema.processlist "
                "WHERE db = %s AND id <> CONNECTION_ID()",
                (name,),
            )
            for (thread_id,) in cur.fetchall():
                try:
                    cur.execute(f"KILL CONNECTION {int(thread_id)}")
                except pymysql.err.OperationalError:
                    pass  # it ended by itself in the meantime
            cur.execute(f"DROP DATABASE IF EXISTS `{name}`")
    finally:
        conn.close()


def mariadb_database_exists(name: str, server_url: str = MARIADB_URL) -> bool:
    conn = mariadb_connect(server_url)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT 1 FROM information_schema.schemata WHERE schema_name = %s", (name,))
            return cur.fetchone() is not None
    finally:
        conn.close()
