"""The state store on PostgreSQL (DESIGN §5: the team / CI-runner setup): runs, tasks and locks
live there exactly as they do in the default sqlite file."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from contextlib import closing
from pathlib import Path

import pytest

from runner.errors import LockedError
from runner.state.store import StateStore

pytestmark = pytest.mark.postgres


def test_a_run_is_recorded_in_a_postgresql_state_store(
    tmp_path: Path, pg_url: str, run_cli: Callable
) -> None:
    source = tmp_path / "source.db"
    with closing(sqlite3.connect(source)) as conn:
        conn.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)")
        conn.executemany("INSERT INTO t VALUES (?, ?)", [(i, str(i)) for i in range(50)])
        conn.commit()
    spec = tmp_path / "job.yaml"
    spec.write_text(
        f"job: pg-state\nsource: sqlite:///{source}\ntarget: sqlite:///{tmp_path / 'out.db'}\n"
        "defaults: {chunk_rows: 20}\ntables: [t]\n"
    )
    done = run_cli("--state", pg_url, "run", spec)
    assert done.returncode == 0, done.stderr
    assert not (tmp_path / ".etlrun").exists()

    history = run_cli("history", "--state", pg_url, "--format", "json")
    assert history.returncode == 0, history.stderr
    assert '"job": "pg-state"' in history.stdout and '"status": "succeeded"' in history.stdout

    store = StateStore(pg_url)
    run = store.history("pg-state")[0]
    detail = store.run(run["run_id"])
    assert detail is not None
    chunks = [t for t in detail["tasks"] if t["kind"] == "chunk"]
    assert len(chunks) == 3 and sum(t["rows"] for t in chunks) == 50
    assert all(t["status"] == "done" for t in detail["tasks"])


def test_the_lock_holds_across_stores_on_postgresql(pg_url: str) -> None:
    first, second = StateStore(pg_url), StateStore(pg_url)
    first.acquire_lock("nightly", "run-a")
    with pytest.raises(LockedError, match="already running: run run-a"):
        second.acquire_lock("nightly", "run-b")
    first.release_lock("nightly", "run-a")
    second.acquire_lock("nightly", "run-b")
    second.release_lock("nightly", "run-b")
