"""Passwords never appear in output, logs, the state store or any file etlrun writes (DESIGN §4).

A PostgreSQL role gets a distinctive canary password with characters that URL-encode; the
source URL carries it inline in one spec and through ``${PG_PASSWORD}`` in another. Then every
command that prints or stores something runs (plan, run with ``--debug``, runs that fail in
different places, ``--log-format json``, history, show, validate with an error whose snippet
shows the URL line), and the canary, its URL-encoded forms and its distinctive core are looked
for in stdout, stderr, the state store's bytes and every file under the test's folders.
(The test server trusts local connections, so the password is never checked: this is only about
never printing or storing it.)
"""

from __future__ import annotations

import json
import secrets
import sqlite3
import subprocess
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import closing
from pathlib import Path
from typing import Any
from urllib.parse import quote, quote_plus

import pytest
import servers
from psycopg import sql
from sqlalchemy.engine import make_url

PASSWORD = "Canary-7f3a9c!p@w d/x"
ENCODED = quote(PASSWORD, safe="")
FORMS = {
    "the password": PASSWORD,
    "quote()": ENCODED,
    "quote_plus()": quote_plus(PASSWORD),
    "its core": "7f3a9c",
}


@pytest.fixture
def canary(pg_url: str) -> Iterator[tuple[str, str]]:
    """A role with the canary password that may read ``patients``: (role, database URL)."""
    role = f"etl_canary_{secrets.token_hex(3)}"
    with servers.postgres_connect(pg_url) as conn:
        conn.execute(
            "CREATE TABLE patients (id integer PRIMARY KEY, name text NOT NULL, email text)"
        )
        conn.execute(
            # the first names are digits: a read as INTEGER passes the plan's sample (the first
            # 1,000 rows) and fails in the last chunk, at run time
            "INSERT INTO patients SELECT g, CASE WHEN g <= 1500 THEN g::text ELSE 'name ' || g "
            "END, 'p' || g || '@example.org' FROM generate_series(1, 2000) g"
        )
        conn.execute(
            sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(
                sql.Identifier(role), sql.Literal(PASSWORD)
            )
        )
        conn.execute(sql.SQL("GRANT SELECT ON patients TO {}").format(sql.Identifier(role)))
    try:
        yield role, pg_url
    finally:
        with servers.postgres_connect(pg_url) as conn:
            conn.execute(sql.SQL("DROP OWNED BY {}").format(sql.Identifier(role)))
            conn.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(role)))


def source_url(role: str, db_url: str, password: str, port: int | None = None) -> str:
    url = make_url(db_url)
    return f"postgresql://{role}:{password}@{url.host}:{port or url.port}/{url.database}"


def spec(
    name: str, source: str, target: str, *, tables: str = "[patients]", extra: str = ""
) -> str:
    return (
        f"version: 1\njob: {name}\nsource: {source}\ntarget: {target}\nworkers: 2\n"
        f"defaults:\n  chunk_rows: 500\n{extra}tables: {tables}\n"
    )


def leaks(text: str | bytes) -> list[str]:
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    return [name for name, form in FORMS.items() if form in text]


def test_the_canary_is_never_shown_or_stored(
    run_cli, canary: tuple[str, str], tmp_path: Path, clean_env: Path
) -> None:
    role, db_url = canary
    specs, work = tmp_path / "specs", tmp_path / "work"
    specs.mkdir()
    work.mkdir()
    inline = source_url(role, db_url, ENCODED)
    from_env = source_url(role, db_url, "${PG_PASSWORD}")
    files = {
        "inline.yaml": spec("inline", inline, "sqlite:///inline.db"),
        "from_env.yaml": spec("from-env", from_env, "sqlite:///from_env.db"),
        # fails while compiling: the source has no such table (the message names the source)
        "no_table.yaml": spec("no-table", inline, "sqlite:///no_table.db", tables="[missing]"),
        # fails in a task: the target name is taken by a view, so the swap fails
        "task_fails.yaml": spec("task-fails", from_env, "sqlite:///task_fails.db"),
        # fails to connect at all
        "unreachable.yaml": spec(
            "unreachable", source_url(role, db_url, ENCODED, port=1), "sqlite:///nothing.db"
        ),
        # fails in the chunks: the text of `name` cannot be read as the integer the spec wants
        "read_fails.yaml": spec(
            "read-fails", inline, "sqlite:///read_fails.db", extra="  types: {name: INTEGER}\n"
        ),
    }
    for name, text in files.items():
        (specs / name).write_text(text)
    # a spec error on the line after the URL: the snippet shows the URL's line
    (specs / "invalid.yaml").write_text(
        f"version: 1\nsource: {inline}\ntarget: sqlite:///x.db\nworkerz: 2\ntables: [patients]\n"
    )
    with closing(sqlite3.connect(work / "task_fails.db")) as conn:
        conn.execute("CREATE VIEW patients AS SELECT 1 AS id")

    def etlrun(*args: str | Path) -> subprocess.CompletedProcess[str]:
        return run_cli(*args, cwd=work, env={"PG_PASSWORD": ENCODED})

    def run_all(commands: dict[str, tuple[str | Path, ...]]) -> dict[str, Any]:
        with ThreadPoolExecutor(2) as pool:  # independent jobs: two at a time
            return dict(
                zip(commands, pool.map(lambda a: etlrun(*a), commands.values()), strict=True)
            )

    commands: dict[str, tuple[str | Path, ...]] = {
        "validate": ("validate", specs),
        "validate json": ("validate", specs, "--format", "json", "--debug"),
        "plan": ("plan", specs / "inline.yaml"),
        "plan json": ("plan", specs / "from_env.yaml", "--format", "json", "--debug"),
        "run inline": ("run", specs / "inline.yaml", "--debug"),
        "run env": ("run", specs / "from_env.yaml", "--log-format", "json", "--debug"),
        "run no table": ("run", specs / "no_table.yaml", "--debug"),
        "run task fails": ("run", specs / "task_fails.yaml", "--debug"),
        "run unreachable": ("run", specs / "unreachable.yaml", "--debug"),
        "run read fails": ("run", specs / "read_fails.yaml", "--debug", "--log-format", "json"),
    }
    results = run_all(commands)
    expected = {
        "validate": 2,
        "validate json": 2,
        "plan": 0,
        "plan json": 0,
        "run inline": 0,
        "run env": 0,
        "run no table": 1,  # a missing table is found by opening the source
        "run task fails": 1,
        "run unreachable": 1,
        "run read fails": 1,
    }
    assert {k: r.returncode for k, r in results.items()} == expected, {
        k: r.stderr[-800:] for k, r in results.items() if r.returncode != expected[k]
    }
    # the commands did print what a password could hide in
    assert "plaintext password" in results["run inline"].stderr  # DESIGN §4: inline draws a warning
    assert f"{role}:***@" in results["plan"].stdout  # the plan shows the source URL, masked
    assert "Traceback" in results["run unreachable"].stderr  # --debug printed a traceback
    assert "invalid.yaml:4:1:" in results["validate"].stdout
    assert "source: postgresql://" in results["validate"].stdout  # the snippet shows the URL line
    assert (
        "source: postgresql://"
        in json.loads(results["validate json"].stdout)["errors"][0]["snippet"]
    )

    # everything the state store can tell, from processes that never load a spec
    history = etlrun("history", "--format", "json")
    runs = json.loads(history.stdout)
    assert {r["job"]: r["status"] for r in runs} == {
        "inline": "succeeded",
        "from-env": "succeeded",
        "task-fails": "failed",
        "read-fails": "failed",
    }
    assert all(r["error"] for r in runs if r["status"] == "failed")
    readers: dict[str, tuple[str | Path, ...]] = {"history": ("history",)}
    for run in (r for r in runs if r["status"] == "failed"):  # runs with errors to show
        readers[f"show {run['job']}"] = ("show", run["run_id"])
        readers[f"show {run['job']} json"] = ("show", run["run_id"], "--format", "json")
    results |= run_all(readers) | {"history json": history}
    assert all(results[k].returncode == 0 for k in readers)
    commands |= readers | {"history json": ("history", "--format", "json")}

    for name, result in results.items():
        for stream in ("stdout", "stderr"):
            found = leaks(getattr(result, stream))
            assert not found, f"`etlrun {' '.join(map(str, commands[name]))}`: {found} on {stream}"

    # the state store, byte for byte (WAL and journal files included)
    state_files = [p for p in clean_env.rglob("*") if p.is_file()]
    assert state_files, "no state store was written"
    for path in state_files:
        assert not leaks(path.read_bytes()), f"{path.name} holds {leaks(path.read_bytes())}"
    # every file the runs wrote (targets, anything else); the specs hold it, as their user wrote
    written = [p for p in work.rglob("*") if p.is_file()]
    assert {p.name for p in written} >= {"inline.db", "from_env.db"}
    for path in written:
        assert not leaks(path.read_bytes()), f"{path.relative_to(tmp_path)} holds the password"
    assert leaks((specs / "inline.yaml").read_text()), "the scan would not have found a leak"
