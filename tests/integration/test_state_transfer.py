"""State for ephemeral runners: ``state export`` -> a fresh folder -> ``state import`` keeps the
history, and the next run of an unfinished job resumes from its committed chunks; ``state unlock``
clears a dead holder's lock and refuses a live one."""

from __future__ import annotations

import json
import os
import socket
import sqlite3
from contextlib import closing
from pathlib import Path

import pytest
from conftest import run_cli

from runner import cli
from runner.errors import TaskError
from runner.modes import copy as copy_mode
from runner.state.store import StateStore, locks, now


def make_job(folder: Path) -> Path:
    with closing(sqlite3.connect(folder / "source.db")) as conn:
        conn.execute("CREATE TABLE items (id INTEGER PRIMARY KEY, v TEXT NOT NULL)")
        conn.executemany("INSERT INTO items VALUES (?, ?)", [(i, f"v{i}") for i in range(1, 41)])
        conn.commit()
    spec = folder / "job.yaml"
    spec.write_text(
        f"job: moving\nsource: sqlite:///{folder / 'source.db'}\n"
        f"target: sqlite:///{folder / 'target.db'}\nworkers: 1\n"
        "defaults: {chunk_rows: 10}\ntables: [items]\n"
    )
    return spec


def test_export_import_keeps_history_and_resumes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    spec = make_job(tmp_path)
    runner_a = f"sqlite:///{tmp_path / 'runner-a' / 'state.db'}"
    real_chunk = copy_mode._chunk

    def failing_chunk(task, ctx):  # type: ignore[no-untyped-def]
        if task.params["chunk"] == 3:
            raise TaskError("the network went away")
        return real_chunk(task, ctx)

    monkeypatch.setattr(copy_mode, "_chunk", failing_chunk)
    assert cli.main(["--state", runner_a, "run", str(spec)]) == 1
    monkeypatch.setattr(copy_mode, "_chunk", real_chunk)

    export = tmp_path / "bucket" / "state.json.gz"
    done = run_cli("--state", runner_a, "state", "export", f"file://{export}")
    assert done.returncode == 0, done.stderr
    assert "exported 1 run(s)" in done.stdout

    runner_b = f"sqlite:///{tmp_path / 'runner-b' / 'state.db'}"
    done = run_cli("--state", runner_b, "state", "import", export)
    assert done.returncode == 0, done.stderr
    before = json.loads(run_cli("--state", runner_a, "history", "--format", "json").stdout)
    after = json.loads(run_cli("--state", runner_b, "history", "--format", "json").stdout)
    assert after == before and after[0]["status"] == "failed"

    resumed = run_cli("--state", runner_b, "run", spec, cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    assert f"resuming run {before[0]['run_id']}: 3 tasks already committed" in resumed.stderr
    (run,) = json.loads(run_cli("--state", runner_b, "history", "--format", "json").stdout)
    assert run["run_id"] == before[0]["run_id"] and run["status"] == "succeeded"
    show = run_cli("--state", runner_b, "show", run["run_id"], "--format", "json")
    shown = json.loads(show.stdout)
    attempts = {t["task_id"]: t["run_attempt"] for t in shown["tasks"]}
    assert attempts["items:chunk:0001"] == attempts["items:chunk:0002"] == 1
    assert attempts["items:chunk:0003"] == 2
    with closing(sqlite3.connect(tmp_path / "target.db")) as conn:
        assert conn.execute("SELECT count(*), sum(id) FROM items").fetchone() == (40, 820)

    # a store with runs is not overwritten by accident
    again = run_cli("--state", runner_b, "state", "import", export)
    assert again.returncode == 2 and "--force" in again.stderr
    assert run_cli("--state", runner_b, "state", "import", export, "--force").returncode == 0
    missing = run_cli("--state", runner_b, "state", "import", tmp_path / "nothing.json")
    assert missing.returncode == 2 and "no state export at" in missing.stderr


def hold_lock(url: str, pid: int, host: str) -> None:
    store = StateStore(url)
    with store.engine.begin() as conn:
        conn.execute(
            locks.insert().values(job="moving", run_id="r1", pid=pid, host=host, started_at=now())
        )
    store.close()


def test_unlock_clears_a_dead_holder_and_refuses_a_live_one(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'state.db'}"
    assert "is not locked" in run_cli("--state", url, "state", "unlock", "moving").stdout

    hold_lock(url, os.getpid(), socket.gethostname())  # this test process: alive
    live = run_cli("--state", url, "state", "unlock", "moving")
    assert live.returncode == 5
    assert f"pid {os.getpid()}" in live.stderr and "--force" in live.stderr
    forced = run_cli("--state", url, "state", "unlock", "moving", "--force")
    assert forced.returncode == 0 and "unlocked job 'moving'" in forced.stdout

    hold_lock(url, 4_000_000, "ci-runner-that-vanished")  # another host: the caller vouches
    done = run_cli("--state", url, "state", "unlock", "moving")
    assert done.returncode == 0, done.stderr
    assert "run r1, pid 4000000 on ci-runner-that-vanished" in done.stdout


def test_an_incremental_run_on_a_fresh_runner_continues_from_the_imported_watermark(
    tmp_path: Path,
) -> None:
    with closing(sqlite3.connect(tmp_path / "source.db")) as conn:
        conn.execute("CREATE TABLE items (id INTEGER PRIMARY KEY, v TEXT, seq INTEGER NOT NULL)")
        conn.executemany("INSERT INTO items VALUES (?, ?, ?)", [(i, "a", i) for i in range(1, 31)])
        conn.commit()
    spec = tmp_path / "job.yaml"
    spec.write_text(
        f"job: nightly\nsource: sqlite:///{tmp_path / 'source.db'}\n"
        f"target: sqlite:///{tmp_path / 'target.db'}\n"
        "tables: [{name: items, mode: incremental, cursor: seq, chunk_rows: 10}]\n"
    )
    runner_a = f"sqlite:///{tmp_path / 'runner-a' / 'state.db'}"
    assert run_cli("--state", runner_a, "run", spec, cwd=tmp_path).returncode == 0
    export = tmp_path / "bucket" / "state.json.gz"
    assert run_cli("--state", runner_a, "state", "export", export).returncode == 0

    with closing(sqlite3.connect(tmp_path / "source.db")) as conn:
        # below the watermark without moving the cursor: an incremental run must not see it
        conn.execute("UPDATE items SET v = 'unseen' WHERE id = 5")
        conn.executemany("INSERT INTO items VALUES (?, ?, ?)", [(i, "b", i) for i in (31, 32)])
        conn.execute("UPDATE items SET v = 'seen', seq = 33 WHERE id = 6")
        conn.commit()

    runner_b = f"sqlite:///{tmp_path / 'runner-b' / 'state.db'}"  # a new CI runner: no state
    assert run_cli("--state", runner_b, "state", "import", export).returncode == 0
    plan = run_cli("--state", runner_b, "plan", spec, cwd=tmp_path).stdout
    assert "watermark seq: 30 -> 33" in plan
    done = run_cli("--state", runner_b, "run", spec, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    runs = json.loads(run_cli("--state", runner_b, "history", "--format", "json").stdout)
    # newest first: the rows with seq >= 30 (the watermark row is re-read: ties are never lost)
    assert [r["rows"] for r in runs] == [4, 30]
    with closing(sqlite3.connect(tmp_path / "target.db")) as conn:
        rows = dict(conn.execute("SELECT id, v FROM items").fetchall())
    assert len(rows) == 32 and rows[5] == "a" and rows[6] == "seen" and rows[32] == "b"

    # without the import, the same run would start from nothing and re-read every row
    fresh = f"sqlite:///{tmp_path / 'runner-c' / 'state.db'}"
    assert (
        "watermark seq: (unset: every row)"
        in run_cli("--state", fresh, "plan", spec, cwd=tmp_path).stdout
    )
