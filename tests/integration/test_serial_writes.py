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
