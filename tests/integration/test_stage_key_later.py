"""A PostgreSQL staging table that becomes the target whole (copy, bulk, incremental's first
run) is loaded without its primary key and gets it once loaded (modes/_stage_key.py): one
index build instead of an index insert per row. A chunk's first attempt then skips clearing its
range (nothing of it is in the fresh table, and clearing would scan the table whole); a retry
clears it, so a chunk that committed before it failed is not loaded twice; rows read with a key
value twice fail the run at the key, the target unchanged."""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

import pytest
import servers

from runner.cli import main
from runner.connectors.postgres import PostgresConnector
from runner.errors import TransientError

pytestmark = pytest.mark.postgres

ROWS = 3000


def sql(url: str, *statements: str) -> list[tuple[Any, ...]]:
    return servers.postgres_rows(url, *statements)


def spec(folder: Path, url: str, mode: str = "copy", extra: str = "") -> Path:
    path = folder / "job.yaml"
    path.write_text(
        f"version: 1\njob: keylater\nsource: {url}\ntarget: {url}\nworkers: 2\n"
        f"defaults: {{chunk_rows: 1000, mode: {mode}}}\n"
        f"tables:\n  - name: src\n    to: dst{extra}\n"
    )
    return path


@pytest.fixture
def statements(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every statement the connectors run through ``execute`` and as a write's ``before``."""
    seen: list[str] = []
    execute, write, pipe_from = (
        PostgresConnector.execute, PostgresConnector.write, PostgresConnector.pipe_from,
    )  # fmt: skip

    def text(statement: Any) -> str:
        return statement if isinstance(statement, str) else statement[0]

    def spy_execute(self: Any, batch: Any) -> Any:
        batch = list(batch)
        seen.extend(text(s) for s in batch)
        return execute(self, batch)

    def spy_write(self: Any, table: str, schema: Any, batches: Any, before: Any = ()) -> Any:
        seen.extend(text(s) for s in before)
        return write(self, table, schema, batches, before=before)

    def spy_pipe(self: Any, source: Any, select: str, table: str, columns: Any, before: Any,
                 *rest: Any) -> Any:  # fmt: skip
        seen.extend(text(s) for s in before)
        return pipe_from(self, source, select, table, columns, before, *rest)

    monkeypatch.setattr(PostgresConnector, "execute", spy_execute)
    monkeypatch.setattr(PostgresConnector, "write", spy_write)
    monkeypatch.setattr(PostgresConnector, "pipe_from", spy_pipe)
    return seen


@pytest.fixture
def source(pg_url: str) -> str:
    sql(
        pg_url,
        "CREATE TABLE src (id bigint PRIMARY KEY, name text NOT NULL, n numeric(8,2))",
        f"INSERT INTO src SELECT g, 'n' || g, g / 4.0 FROM generate_series(1, {ROWS}) g",
    )
    return pg_url


def primary_key(url: str, table: str) -> list[tuple[Any, ...]]:
    return sql(url, "SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint "
                    f"WHERE conrelid = '{table}'::regclass AND contype = 'p'")  # fmt: skip


@pytest.mark.parametrize("mode", ["copy", "bulk", "incremental, cursor: id"])
def test_the_key_is_built_once_loaded(
    source: str, tmp_path: Path, clean_env: Path, statements: list[str], mode: str
) -> None:
    plan = main(["plan", str(spec(tmp_path, source, mode))])
    assert plan == 0
    assert main(["run", str(spec(tmp_path, source, mode))]) == 0
    creates = [s for s in statements if s.startswith("CREATE TABLE")]
    assert creates and all("PRIMARY KEY" not in s for s in creates), creates
    added = [i for i, s in enumerate(statements) if "ADD CONSTRAINT" in s]
    assert len(added) == 1 and "PRIMARY KEY" in statements[added[0]]
    assert not any(s.startswith("DELETE FROM") for s in statements), statements
    assert primary_key(source, "dst") == [("dst_pkey", "PRIMARY KEY (id)")]
    assert sql(source, "SELECT count(*), sum(id) FROM dst") == [(ROWS, ROWS * (ROWS + 1) // 2)]
    # a second run replaces the table the first made (incremental: merges into it)
    statements.clear()
    sql(source, f"INSERT INTO src VALUES ({ROWS + 1}, 'one more', 1)")
    assert main(["run", str(spec(tmp_path, source, mode))]) == 0
    assert primary_key(source, "dst") == [("dst_pkey", "PRIMARY KEY (id)")]
    assert sql(source, "SELECT count(*) FROM dst") == [(ROWS + 1,)]


def test_the_plan_shows_it(
    source: str, tmp_path: Path, clean_env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["plan", str(spec(tmp_path, source))]) == 0
    shown = capsys.readouterr().out
    assert 'ADD CONSTRAINT "dst__etlrun_stage_pkey" PRIMARY KEY ("id")' in shown, shown
    deletes = [line for line in shown.splitlines() if "DELETE FROM" in line]
    assert len(deletes) == 3 and all("on a retry or a resumed run only" in d for d in deletes)


def test_a_chunk_retried_after_its_commit_clears_its_range(
    source: str,
    tmp_path: Path,
    clean_env: Path,
    statements: list[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The first attempt of chunk 2 commits, then fails as if the connection dropped: the retry
    clears the range before loading it again, so the key finds every id once."""
    pipe_from = PostgresConnector.pipe_from  # the spy
    failed: list[str] = []

    def commit_then_fail(self: Any, source: Any, select: str, *rest: Any) -> Any:
        moved = pipe_from(self, source, select, *rest)
        if '"id" > 1000' in select and not failed:
            failed.append(select)
            raise TransientError("connection lost after the commit (test)")
        return moved

    monkeypatch.setattr(PostgresConnector, "pipe_from", commit_then_fail)
    monkeypatch.setattr(importlib.import_module("runner.execute.run"), "BACKOFF_SECONDS", (0.0,))
    assert main(["run", str(spec(tmp_path, source))]) == 0
    assert failed, "no chunk failed: the test proves nothing"
    deletes = [s for s in statements if s.startswith("DELETE FROM")]
    assert len(deletes) == 1 and '"id" > ' in deletes[0], deletes
    assert sql(source, "SELECT count(*), count(DISTINCT id) FROM dst") == [(ROWS, ROWS)]


def test_a_key_read_twice_fails_at_the_key(
    pg_url: str, tmp_path: Path, clean_env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A declared primary key the source does not enforce, holding one value twice: the run
    fails when the key is built, and the target keeps its rows."""
    sql(pg_url, "CREATE TABLE src (id bigint NOT NULL, name text)",
        "INSERT INTO src SELECT g, 'n' || g FROM generate_series(1, 2500) g",
        "INSERT INTO src VALUES (1700, 'again')",
        "CREATE TABLE dst (id bigint PRIMARY KEY, name text)",
        "INSERT INTO dst VALUES (1, 'old')")  # fmt: skip
    job = spec(tmp_path, pg_url, extra="\n    primary_key: [id]")
    assert main(["run", str(job)]) == 1
    err = capsys.readouterr().err
    assert "primary key value more than once" in err and "target was left unchanged" in err, err
    assert sql(pg_url, "SELECT * FROM dst") == [(1, "old")]
