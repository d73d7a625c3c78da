"""One live run per job (DESIGN §4 exit 5, §5 locks; README "How a copy runs").

A second run of a job while the first is alive exits 5 and names the holder: its pid, host and
start time. A lock left by a process that died on this host is taken over with a warning; one
held on another host is not (etlrun cannot tell whether that process lives).
"""

from __future__ import annotations

import os
import re
import socket
import sqlite3
import subprocess
import sys
from contextlib import closing
from datetime import UTC, datetime
from pathlib import Path

import sqlalchemy as sa

from runner.state.store import StateStore, locks

REPO = Path(__file__).resolve().parents[2]
STARTED = re.compile(r"started (\d{4}-\d\d-\d\d \d\d:\d\d:\d\d) UTC")


def make_source(path: Path, rows: int) -> Path:
    with closing(sqlite3.connect(path)) as conn:
        conn.execute("CREATE TABLE events (id INTEGER PRIMARY KEY, kind TEXT, body TEXT)")
        conn.execute(
            "WITH RECURSIVE g(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM g WHERE i < ?) "
            "INSERT INTO events SELECT i, 'kind ' || (i % 17), printf('%080d', i) FROM g",
            (rows,),
        )
        conn.commit()
    return path


def write_spec(folder: Path, rows: int, chunk_rows: int) -> Path:
    source = make_source(folder / "source.db", rows)
    spec = folder / "locked.yaml"
    spec.write_text(
        f"version: 1\njob: locked-job\nsource: sqlite:///{source}\n"
        f"target: sqlite:///{folder / 'target.db'}\nworkers: 1\n"
        f"defaults:\n  chunk_rows: {chunk_rows}\ntables:\n  - events\n"
    )
    return spec


def start(spec: Path, folder: Path, name: str) -> subprocess.Popen[str]:
    out = (folder / f"{name}.out").open("w")
    err = (folder / f"{name}.err").open("w")
    return subprocess.Popen(
        [sys.executable, "-m", "runner", "run", str(spec)],
        cwd=folder,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        stdin=subprocess.DEVNULL,
        stdout=out,
        stderr=err,
        text=True,
    )


def lock_rows() -> list[dict]:
    store = StateStore()
    try:
        with store.engine.connect() as conn:
            return [dict(r) for r in conn.execute(sa.select(locks)).mappings()]
    finally:
        store.close()


def insert_lock(pid: int, host: str, run_id: str = "earlier-run") -> None:
    store = StateStore()  # creates the store's tables
    try:
        with store.engine.begin() as conn:
            conn.execute(
                locks.insert().values(
                    job="locked-job",
                    run_id=run_id,
                    pid=pid,
                    host=host,
                    started_at=datetime(2024, 5, 6, 7, 8, 9),
                )
            )
    finally:
        store.close()


def dead_pid() -> int:
    """The pid of a process that has exited (and been reaped)."""
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_two_runs_at_once_one_wins_the_other_exits_5(tmp_path: Path) -> None:
    # 20 chunks on one worker: the winner holds the lock for seconds, the loser asks at once
    spec = write_spec(tmp_path, rows=100_000, chunk_rows=5_000)
    before = datetime.now(UTC).replace(tzinfo=None, microsecond=0)
    procs = {name: start(spec, tmp_path, name) for name in ("a", "b")}
    codes = {name: proc.wait(timeout=120) for name, proc in procs.items()}
    assert sorted(codes.values()) == [0, 5], {
        name: (tmp_path / f"{name}.err").read_text() for name in procs
    }
    winner = next(name for name, code in codes.items() if code == 0)
    loser = next(name for name, code in codes.items() if code == 5)
    message = (tmp_path / f"{loser}.err").read_text()

    assert "Traceback" not in message
    (line,) = [line for line in message.splitlines() if line.strip()]
    assert line.startswith("error: job 'locked-job' is already running")
    assert f"pid {procs[winner].pid} " in line
    assert f"on {socket.gethostname()}" in line
    started = STARTED.search(line)
    assert started, line
    assert before <= datetime.fromisoformat(started[1]) <= datetime.now(UTC).replace(tzinfo=None)

    # the loser recorded nothing; the winner's run is whole and its lock is gone
    store = StateStore()
    try:
        (run,) = store.history()
    finally:
        store.close()
    assert run["status"] == "succeeded" and run["pid"] == procs[winner].pid
    assert run["run_id"] in line
    assert run["rows"] == 100_000
    assert lock_rows() == []


def test_live_holder_on_this_host_refuses(run_cli, tmp_path: Path) -> None:
    spec = write_spec(tmp_path, rows=1_000, chunk_rows=500)
    insert_lock(os.getpid(), socket.gethostname())  # this test process: alive
    result = run_cli("run", spec, cwd=tmp_path)
    assert result.returncode == 5
    assert f"pid {os.getpid()} on {socket.gethostname()}" in result.stderr
    assert "started 2024-05-06 07:08:09 UTC" in result.stderr
    assert "earlier-run" in result.stderr
    assert not (tmp_path / "target.db").exists()
    assert len(lock_rows()) == 1


def test_stale_lock_of_a_dead_process_is_taken_over(run_cli, tmp_path: Path) -> None:
    spec = write_spec(tmp_path, rows=1_000, chunk_rows=500)
    pid = dead_pid()
    insert_lock(pid, socket.gethostname(), run_id="crashed-run")
    result = run_cli("run", spec, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    warning = next(line for line in result.stderr.splitlines() if "taking over the lock" in line)
    assert warning.startswith("WARNING")
    assert "crashed-run" in warning and f"pid {pid}" in warning and "is gone" in warning
    assert lock_rows() == []  # released at the end of the run
    with closing(sqlite3.connect(tmp_path / "target.db")) as conn:
        assert conn.execute("SELECT count(*) FROM events").fetchone() == (1_000,)


def test_lock_held_on_another_host_is_not_taken_over(run_cli, tmp_path: Path) -> None:
    spec = write_spec(tmp_path, rows=1_000, chunk_rows=500)
    insert_lock(dead_pid(), "build-7.example.org")  # its pid means nothing here
    result = run_cli("run", spec, cwd=tmp_path)
    assert result.returncode == 5
    assert "on build-7.example.org" in result.stderr
    assert "etlrun state unlock locked-job" in result.stderr
    assert "Traceback" not in result.stderr
    assert [row["host"] for row in lock_rows()] == ["build-7.example.org"]


def test_lock_is_released_when_a_run_fails(run_cli, tmp_path: Path) -> None:
    spec = write_spec(tmp_path, rows=1_000, chunk_rows=500)
    with closing(sqlite3.connect(tmp_path / "target.db")) as conn:
        conn.execute("CREATE VIEW events AS SELECT 1 AS id")  # the swap cannot replace a view
    result = run_cli("run", spec, cwd=tmp_path)
    assert result.returncode == 1, result.stderr
    assert lock_rows() == []
