"""Test fixtures shared by the whole suite.

- Every test gets a clean environment: no ``ETLRUN_*`` variables from the developer's shell
  (except the test-server ones), its own state store in a temporary folder, ``NO_COLOR=1``.
- ``pg_server`` / ``mariadb_server`` (session): a private database for the whole test session;
  ``pg_url`` / ``mariadb_url`` (per test): a fresh database, dropped after the test. Each yields
  a URL etlrun takes (``postgresql://...`` / ``mariadb://...``). See ``tests/servers.py``.
- Tests that use those fixtures get the ``postgres`` / ``mariadb`` marker automatically, and a
  test with the marker is skipped with the reason when its server does not answer, or fails when
  ``ETLRUN_REQUIRE_SERVERS=1`` (CI: a green run must not mean "ran nothing").
- ``run_cli(*args)`` runs ``python -m runner`` in a subprocess (also a fixture of the same name),
  forked from a process that has imported the libraries once (``tests/cli_fork.py``).
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path

import cli_fork
import pytest
import servers

REPO = Path(__file__).resolve().parent.parent

pytest_plugins = ("pytester",)  # for tests of the fixtures themselves

# variables a test run may keep from the caller's environment
KEEP_ENV = frozenset(
    {
        "ETLRUN_TEST_POSTGRES_URL",
        "ETLRUN_TEST_MARIADB_URL",
        servers.REQUIRE_SERVERS_ENV,
        "ETLRUN_UPDATE_GOLDEN",  # `make golden`
    }
)

# which fixtures need which server, for the markers and the skip/fail decision
SERVER_FIXTURES = {
    "postgres": ("pg_server", "pg_url"),
    "mariadb": ("mariadb_server", "mariadb_url"),
}
_PROBLEM = {"postgres": servers.postgres_problem, "mariadb": servers.mariadb_problem}


def require_server(kind: str) -> None:
    """Skip the current test when the ``kind`` server does not answer (fail if required)."""
    problem = _PROBLEM[kind]()
    if problem is None:
        return
    if servers.servers_required():
        pytest.fail(f"{problem} [{servers.REQUIRE_SERVERS_ENV}=1]", pytrace=False)
    pytest.skip(problem)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        names = set(getattr(item, "fixturenames", ()))
        for kind, fixtures in SERVER_FIXTURES.items():
            if names.intersection(fixtures) and item.get_closest_marker(kind) is None:
                item.add_marker(getattr(pytest.mark, kind))


def pytest_sessionfinish(session: pytest.Session) -> None:
    cli_fork.close()


def pytest_runtest_setup(item: pytest.Item) -> None:
    for kind in SERVER_FIXTURES:
        if item.get_closest_marker(kind) is not None:
            require_server(kind)


# --- environment -----------------------------------------------------------------------------


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A clean ``ETLRUN_*`` environment and a private state store; returns the state folder."""
    for name in list(os.environ):
        if name.startswith("ETLRUN_") and name not in KEEP_ENV:
            monkeypatch.delenv(name)
    # not tmp_path: a test that lists its own tmp_path must not find the state store there
    state_dir = tmp_path_factory.mktemp("state")
    monkeypatch.setenv("ETLRUN_STATE", f"sqlite:///{state_dir / 'state.db'}")
    monkeypatch.setenv("NO_COLOR", "1")
    return state_dir


@pytest.fixture(autouse=True)
def redaction_off() -> Iterator[None]:
    """A plan with sanitize rules turns error redaction on for the whole process (as it must in
    a run); tests share one process, so it is turned off again after each."""
    yield
    from runner import sanitize

    sanitize.deactivate()


def run_cli(
    *args: str | os.PathLike[str],
    cwd: str | os.PathLike[str] | None = None,
    env: Mapping[str, str | None] | None = None,
    timeout: float = 300,
) -> subprocess.CompletedProcess[str]:
    """Run ``python -m runner ARGS`` and capture its output as text (never raises on exit code).

    ``env`` is added to the current (already cleaned) environment; a value of None removes a
    variable. The repository is put first on PYTHONPATH so the subprocess runs this tree's code.
    """
    full_env = dict(os.environ)
    pythonpath = [str(REPO), *filter(None, [full_env.get("PYTHONPATH")])]
    full_env["PYTHONPATH"] = os.pathsep.join(pythonpath)
    for name, value in (env or {}).items():
        if value is None:
            full_env.pop(name, None)
        else:
            full_env[name] = value
    forked = cli_fork.run([str(a) for a in args], os.fspath(cwd or os.getcwd()), full_env, timeout)
    if forked is not None:
        return forked
    return subprocess.run(
        [sys.executable, "-m", "runner", *map(str, args)],
        cwd=cwd,
        env=full_env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


@pytest.fixture(name="run_cli")
def run_cli_fixture() -> Callable[..., subprocess.CompletedProcess[str]]:
    """:func:`run_cli` as a fixture, for tests that prefer not to import conftest."""
    return run_cli


# --- servers ---------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def pg_server() -> Iterator[str]:
    """A PostgreSQL database private to this test session: its URL. Dropped at the end."""
    require_server("postgres")
    url = servers.create_postgres_database()
    yield url
    servers.drop_postgres_database(url)


@pytest.fixture(scope="session")
def mariadb_server() -> Iterator[str]:
    """A MariaDB database private to this test session: its URL. Dropped at the end."""
    require_server("mariadb")
    url = servers.create_mariadb_database()
    yield url
    servers.drop_mariadb_database(url)


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A fresh, empty PostgreSQL database for one test: its URL. Dropped after the test."""
    require_server("postgres")
    url = servers.create_postgres_database()
    yield url
    servers.drop_postgres_database(url)


@pytest.fixture
def mariadb_url() -> Iterator[str]:
    """A fresh, empty MariaDB database for one test: its URL. Dropped after the test."""
    require_server("mariadb")
    url = servers.create_mariadb_database()
    yield url
    servers.drop_mariadb_database(url)
