"""sync (tables): the target made equal to the source by checksum bisection, deletes included,
guarded by max_delete / max_delete_pct."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path

import pytest
from conftest import run_cli

from runner.connectors import connect


def make_source(path: Path, rows: int) -> Path:
    with closing(sqlite3.connect(path)) as conn:
        conn.execute("CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT, qty INTEGER)")
        conn.execute(
            "WITH RECURSIVE g(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM g WHERE i < ?) "
            "INSERT INTO items SELECT i * 10, 'n' || i, i % 7 FROM g",
            (rows,),
        )
        conn.commit()
    return path


def source_sql(path: Path, *statements: str) -> None:
    with closing(sqlite3.connect(path)) as conn:
        for statement in statements:
            conn.execute(statement)
        conn.commit()


def target_rows(url: str) -> list[tuple]:
    conn = connect(url)
    try:
        return [tuple(r) for r in conn.rows('SELECT "id", "name", "qty" FROM items ORDER BY 1')]
    finally:
        conn.close()


def source_rows(path: Path) -> list[tuple]:
    with closing(sqlite3.connect(path)) as conn:
        return conn.execute("SELECT id, name, qty FROM items ORDER BY 1").fetchall()


@pytest.fixture(params=["sqlite", "postgres"])
def target(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'target.db'}"
    else:
        yield request.getfixturevalue("pg_url")


def job(folder: Path, source: Path, target: str, extra: str = "") -> Path:
    path = folder / "sync.yaml"
    path.write_text(
        f"job: sync\nsource: sqlite:///{source}\ntarget: {target}\n"
        f"defaults: {{mode: sync, chunk_rows: 5000{extra}}}\ntables: [items]\n"
    )
    return path


def test_sync_applies_exactly_the_changes(target: str, tmp_path: Path) -> None:
    source = make_source(tmp_path / "source.db", 30_000)
    spec = job(tmp_path, source, target)
    first = run_cli("run", spec, cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    assert target_rows(target) == source_rows(source)
    source_sql(
        source,
        "UPDATE items SET qty = 99 WHERE id = 150000",  # no timestamp anywhere
        "DELETE FROM items WHERE id = 70000",
        "INSERT INTO items VALUES (12345, 'below max', 1)",
    )
    second = run_cli("run", spec, cwd=tmp_path)
    assert second.returncode == 0, second.stderr
    assert target_rows(target) == source_rows(source)
    assert "30,000" not in second.stdout  # only the differing ranges moved
    assert run_cli("check", spec, cwd=tmp_path).returncode == 0
    third = run_cli("run", spec, cwd=tmp_path)  # nothing differs: nothing moves
    assert third.returncode == 0 and target_rows(target) == source_rows(source)


def test_delete_guards(tmp_path: Path) -> None:
    source = make_source(tmp_path / "source.db", 1000)
    target = f"sqlite:///{tmp_path / 'target.db'}"
    assert run_cli("run", job(tmp_path, source, target), cwd=tmp_path).returncode == 0
    source_sql(source, "DELETE FROM items WHERE id <= 6000")  # 60% of the rows
    refused = run_cli("run", job(tmp_path, source, target), cwd=tmp_path)
    assert refused.returncode == 6, refused.stderr
    assert "more than max_delete_pct (50)" in refused.stderr
    assert len(target_rows(target)) == 1000  # nothing changed
    allowed = job(tmp_path, source, target, ", max_delete_pct: 100")
    assert run_cli("run", allowed, cwd=tmp_path).returncode == 0
    assert target_rows(target) == source_rows(source)
    source_sql(source, "DELETE FROM items WHERE id = 9000")
    capped = run_cli("run", job(tmp_path, source, target, ", max_delete: 0"), cwd=tmp_path)
    assert capped.returncode == 6 and "more than max_delete (0)" in capped.stderr


def test_delete_false_keeps_target_only_rows(tmp_path: Path) -> None:
    source = make_source(tmp_path / "source.db", 100)
    target = f"sqlite:///{tmp_path / 'target.db'}"
    spec = job(tmp_path, source, target, ", delete: false")
    assert run_cli("run", spec, cwd=tmp_path).returncode == 0
    source_sql(
        source, "DELETE FROM items WHERE id = 500", "UPDATE items SET qty = 42 WHERE id = 510"
    )
    assert run_cli("run", spec, cwd=tmp_path).returncode == 0
    rows = {r[0]: r for r in target_rows(target)}
    assert 500 in rows and rows[510][2] == 42
