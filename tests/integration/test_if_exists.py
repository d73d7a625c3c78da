"""copy's if_exists: replace, append, truncate and fail, each through staging (README "The spec").

The interesting part is what a re-run after a crash does: append and truncate move the staged
rows in one transaction that also empties the staging table, so a finalize that runs twice
cannot add the rows twice.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from contextlib import closing
from pathlib import Path

import pytest

from runner.connectors import connect
from runner.execute.context import RunContext
from runner.modes import copy as copy_mode
from runner.plan.compiler import compile
from runner.spec.load import load


def make_db(path: Path, rows: list[tuple[int, str]], table: str = "items") -> str:
    with closing(sqlite3.connect(path)) as conn:
        conn.execute(f"CREATE TABLE {table} (id INTEGER PRIMARY KEY, v TEXT NOT NULL)")
        conn.executemany(f"INSERT INTO {table} VALUES (?, ?)", rows)
        conn.commit()
    return f"sqlite:///{path}"


def read(path: Path, table: str = "items") -> list[tuple[int, str]]:
    with closing(sqlite3.connect(path)) as conn:
        return conn.execute(f"SELECT id, v FROM {table} ORDER BY id, v").fetchall()


def spec(tmp_path: Path, source: str, target: str, if_exists: str) -> Path:
    path = tmp_path / f"{if_exists}.yaml"
    path.write_text(
        f"source: {source}\ntarget: {target}\n"
        f"defaults: {{chunk_rows: 4, if_exists: {if_exists}}}\ntables: [items]\n"
    )
    return path


SOURCE = [(i, f"new {i}") for i in range(1, 11)]
EXISTING = [(100 + i, f"old {i}") for i in range(1, 4)]


@pytest.fixture
def dbs(tmp_path: Path) -> tuple[str, Path]:
    source = make_db(tmp_path / "source.db", SOURCE)
    make_db(tmp_path / "target.db", EXISTING)
    return source, tmp_path / "target.db"


@pytest.mark.parametrize(
    ("if_exists", "expected"),
    [
        ("replace", SOURCE),
        ("append", sorted(EXISTING + SOURCE)),
        ("truncate", SOURCE),
    ],
)
def test_if_exists_over_an_existing_table(
    tmp_path: Path, dbs: tuple[str, Path], run_cli: Callable, if_exists: str, expected: list
) -> None:
    source, target = dbs
    done = run_cli("run", spec(tmp_path, source, f"sqlite:///{target}", if_exists))
    assert done.returncode == 0, done.stderr
    assert read(target) == expected
    with closing(sqlite3.connect(target)) as conn:
        names = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")]
    assert names == ["items"], "staging tables are gone after the swap"


def test_if_exists_fail_refuses_an_existing_table(
    tmp_path: Path, dbs: tuple[str, Path], run_cli: Callable
) -> None:
    source, target = dbs
    done = run_cli("run", spec(tmp_path, source, f"sqlite:///{target}", "fail"))
    assert done.returncode == 1
    assert "exists and the spec says if_exists: fail" in done.stderr
    assert "Traceback" not in done.stderr
    assert read(target) == EXISTING


def test_if_exists_fail_creates_a_missing_table(tmp_path: Path, run_cli: Callable) -> None:
    source = make_db(tmp_path / "source.db", SOURCE)
    target = tmp_path / "fresh.db"
    done = run_cli("run", spec(tmp_path, source, f"sqlite:///{target}", "fail"))
    assert done.returncode == 0, done.stderr
    assert read(target) == SOURCE


@pytest.mark.parametrize("if_exists", ["append", "truncate"])
def test_a_finalize_run_twice_moves_the_rows_once(
    tmp_path: Path, dbs: tuple[str, Path], if_exists: str
) -> None:
    """A crash after the move committed, before the staging table was dropped and the state
    recorded it: the re-run's finalize finds the staging table empty and moves nothing."""
    source, target = dbs
    job = load(spec(tmp_path, source, f"sqlite:///{target}", if_exists))
    src, tgt = connect(job.source), connect(job.target)
    plan = compile(job, src, tgt)
    ctx = RunContext(src, tgt)
    for task in plan.tasks:
        if task.kind != "finalize":
            ctx.results[task.id] = copy_mode.run(task, ctx)
    finalize = next(t for t in plan.tasks if t.kind == "finalize")
    tgt.execute(finalize.params["steps"]["existing"][0])  # the move commits, then the crash
    moved = read(target)
    copy_mode.run(finalize, ctx)  # the re-run
    assert read(target) == moved
    assert len(moved) == (len(SOURCE) + len(EXISTING) if if_exists == "append" else len(SOURCE))
    assert not tgt.table_exists(finalize.params["stage"])
