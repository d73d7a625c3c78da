"""A target that takes one writer at a time (SQLite) gets its chunks one after another."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import yaml


def test_sqlite_target_chunks_never_overlap(tmp_path: Path, run_cli: Any) -> None:
    source = tmp_path / "src.db"
    with sqlite3.connect(source) as conn:
        conn.execute("CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT)")
        conn.executemany("INSERT INTO items VALUES (?, ?)", [(i, f"n{i}") for i in range(20_000)])
    spec = tmp_path / "job.yaml"
    spec.write_text(yaml.safe_dump({
        "version": 1, "job": "serial", "source": f"sqlite:///{source}",
        "target": f"sqlite:///{tmp_path / 'dst.db'}", "workers": 2,
        "defaults": {"chunk_rows": 2_000}, "tables": ["items"],
    }))  # fmt: skip
    state = tmp_path / "state.db"
    result = run_cli("run", spec, "--state", f"sqlite:///{state}", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    with sqlite3.connect(state) as conn:
        spans = conn.execute(
            "SELECT started_at, finished_at FROM etlrun_tasks "
            "WHERE task_id LIKE '%:chunk:%' ORDER BY started_at"
        ).fetchall()
    assert len(spans) == 10
    for (_, end), (start, _) in zip(spans, spans[1:], strict=False):
        assert end <= start, spans  # the next chunk started after the previous one finished
    with sqlite3.connect(tmp_path / "dst.db") as conn:
        assert conn.execute("SELECT count(*), sum(id) FROM items").fetchone() == (
            20_000,
            sum(range(20_000)),
        )


def test_a_copy_within_one_sqlite_file(tmp_path: Path, run_cli: Any) -> None:
    """Source and target are one file: its sqlite3 reader and the writer share it safely."""
    db = tmp_path / "one.db"
    with sqlite3.connect(db) as conn:
        conn.execute("CREATE TABLE a (id INTEGER PRIMARY KEY, name TEXT)")
        conn.executemany("INSERT INTO a VALUES (?, ?)", [(i, f"n{i}") for i in range(5_000)])
    spec = tmp_path / "job.yaml"
    spec.write_text(yaml.safe_dump({
        "version": 1, "job": "same", "source": f"sqlite:///{db}", "target": f"sqlite:///{db}",
        "workers": 2, "defaults": {"chunk_rows": 1_000}, "tables": [{"name": "a", "to": "b"}],
    }))  # fmt: skip
    result = run_cli("run", spec, "--state", f"sqlite:///{tmp_path / 'state.db'}", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    with sqlite3.connect(db) as conn:
        assert (
            conn.execute("SELECT * FROM a ORDER BY id").fetchall()
            == conn.execute("SELECT * FROM b ORDER BY id").fetchall()
        )
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
