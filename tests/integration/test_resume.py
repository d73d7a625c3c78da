"""A run killed mid-way resumes from its committed chunks (DESIGN §5, §6; README "How a copy runs").

PostgreSQL -> PostgreSQL, 200,000 rows in 10 chunks on one worker (0.1-0.3 s a chunk), so a
signal sent once the state store shows two committed chunks lands well before the end. After
the kill the re-run must: exit 0, keep the same run id, redo none of the committed chunks (their
``run_attempt`` stays 1, every other task gets 2), and leave the target equal to the source, row
for row.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path

import pytest
import servers

from runner.state.store import StateStore

REPO = Path(__file__).resolve().parents[2]
ROWS = 200_000
CHUNK_ROWS = 20_000
CHUNKS = ROWS // CHUNK_ROWS

SOURCE_TABLE = f"""
CREATE TABLE items (
    id bigint PRIMARY KEY,
    name text NOT NULL,
    amount numeric(12, 2),
    ratio double precision,
    born date,
    seen timestamptz,
    flag boolean,
    note text
);
INSERT INTO items
SELECT g,
       'item ' || g || CASE WHEN g % 7 = 0 THEN ' ø, "quoted"' ELSE '' END,
       (g * 1.25)::numeric(12, 2),
       CASE WHEN g % 11 = 0 THEN NULL ELSE g / 3.0 END,
       date '2020-01-01' + (g % 1000),
       timestamptz '2020-01-01 00:00:00+00' + g * interval '1 minute 1.5 second',
       g % 3 = 0,
       CASE WHEN g % 5 = 0 THEN NULL ELSE repeat(md5(g::text), 3) END
FROM generate_series(1, {ROWS}) AS g;
ANALYZE items;
"""
# the whole table as one digest, in key order: equal digests mean equal rows
DIGEST = (
    "SELECT count(*), count(DISTINCT id), md5(string_agg(t::text, ',' ORDER BY id)) FROM items t"
)


def pg(url: str, sql: str) -> list[tuple]:
    with servers.postgres_connect(url) as conn:
        cursor = conn.execute(sql)
        return cursor.fetchall() if cursor.description else []


def pg_tables(url: str) -> set[str]:
    rows = pg(url, "SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
    return {r[0] for r in rows}


@pytest.fixture(scope="module")
def source_url(pg_server: str) -> Iterator[str]:
    """A database holding ``items`` (200,000 rows), made once: the tests only read it."""
    url = servers.create_postgres_database()
    try:
        pg(url, SOURCE_TABLE)
        yield url
    finally:
        servers.drop_postgres_database(url)


@pytest.fixture(scope="module")
def source_digest(source_url: str) -> tuple:
    return pg(source_url, DIGEST)[0]


def write_spec(folder: Path, source: str, target: str) -> Path:
    spec = folder / "resume.yaml"
    spec.write_text(
        f"version: 1\njob: resume-test\nsource: {source}\ntarget: {target}\nworkers: 1\n"
        f"defaults:\n  chunk_rows: {CHUNK_ROWS}\ntables:\n  - items\n"
    )
    return spec


def start_run(spec: Path, folder: Path) -> subprocess.Popen[bytes]:
    """``python -m runner run SPEC`` in the background, output to files (a full pipe would
    stall it); the environment is the test's (conftest points ETLRUN_STATE at a temp store)."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.Popen(
        [sys.executable, "-m", "runner", "run", str(spec)],
        cwd=folder,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=(folder / "stdout.txt").open("wb"),
        stderr=(folder / "stderr.txt").open("wb"),
    )


def state_path() -> Path:
    return Path(os.environ["ETLRUN_STATE"].removeprefix("sqlite:///"))


def state_rows(sql: str) -> list[sqlite3.Row]:
    with closing(sqlite3.connect(state_path(), timeout=30)) as conn:
        conn.row_factory = sqlite3.Row
        return conn.execute(sql).fetchall()


def wait_for_committed_chunks(proc: subprocess.Popen[bytes], count: int, folder: Path) -> None:
    """Poll the state store until ``count`` chunks are recorded done (the run must still live)."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            output = (folder / "stderr.txt").read_text()
            pytest.fail(f"the run ended (exit {proc.returncode}) before it was stopped:\n{output}")
        if state_path().exists():
            try:
                done = state_rows(
                    "SELECT count(*) FROM etlrun_tasks WHERE kind = 'chunk' AND status = 'done'"
                )[0][0]
            except sqlite3.OperationalError:  # the store's tables are being created
                done = 0
            if done >= count:
                return
        time.sleep(0.01)
    proc.kill()
    pytest.fail(f"fewer than {count} chunks were committed within 60 s")


def tasks_now() -> dict[str, dict]:
    return {r["task_id"]: dict(r) for r in state_rows("SELECT * FROM etlrun_tasks")}


def check_resumed(
    run_cli, folder: Path, spec: Path, before: dict[str, dict], *, via_cli: bool
) -> subprocess.CompletedProcess[str]:
    """Re-run; check the committed chunks were kept and everything else was done by attempt 2.

    The run is read back with ``etlrun show --format json`` when ``via_cli``, else straight from
    the state store (the same rows, without a Python start-up).
    """
    (run_id,) = {t["run_id"] for t in before.values()}
    committed = {tid for tid, t in before.items() if t["kind"] == "chunk" and t["status"] == "done"}
    assert 2 <= len(committed) < CHUNKS, f"{len(committed)} chunks committed when stopped"

    rerun = run_cli("run", spec, cwd=folder)
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    done = sum(1 for t in before.values() if t["status"] == "done")  # chunks and prepare
    assert f"resuming run {run_id}: {done} tasks already committed" in rerun.stderr
    assert f"(+{len(committed)} resumed)" in rerun.stdout

    if via_cli:
        shown = run_cli("show", run_id, "--format", "json", cwd=folder)
        assert shown.returncode == 0, shown.stderr
        run = json.loads(shown.stdout)
    else:
        store = StateStore()
        run = json.loads(json.dumps(store.run(run_id), default=str))
        store.close()
    assert run["run_id"] == run_id
    assert run["status"] == "succeeded" and run["exit_code"] == 0
    assert run["attempts"] == 2
    assert run["rows"] == ROWS
    tasks = {t["task_id"]: t for t in run["tasks"]}
    chunks = [t for t in tasks.values() if t["kind"] == "chunk"]
    assert len(chunks) == CHUNKS
    assert all(t["status"] == "done" for t in tasks.values())
    assert sum(t["rows"] for t in chunks) == ROWS
    for task_id, task in tasks.items():
        if task_id in committed:  # not redone: as the first attempt left it
            assert task["run_attempt"] == 1, task_id
            assert task["attempts"] == 1, task_id
            assert _when(task["started_at"]) == _when(before[task_id]["started_at"]), task_id
            assert task["rows"] == before[task_id]["rows"] == CHUNK_ROWS
        else:
            assert task["run_attempt"] == 2, task_id
    # one run of the job in the state: the same run, resumed
    assert [r["run_id"] for r in state_rows("SELECT run_id FROM etlrun_runs")] == [run_id]
    return rerun


def _when(stamp: str) -> dt.datetime:
    return dt.datetime.fromisoformat(stamp)


def test_sigkill_then_resume(
    run_cli, pg_url: str, source_url: str, source_digest: tuple, tmp_path: Path
) -> None:
    spec = write_spec(tmp_path, source_url, pg_url)
    proc = start_run(spec, tmp_path)
    try:
        wait_for_committed_chunks(proc, 2, tmp_path)
    finally:
        proc.kill()
        proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    before = tasks_now()
    (status,) = {r["status"] for r in state_rows("SELECT status FROM etlrun_runs")}
    assert status == "running"  # nobody could record the end
    assert "items" not in pg_tables(pg_url), "the target appeared before the run finished"

    rerun = check_resumed(run_cli, tmp_path, spec, before, via_cli=True)
    assert "taking over the lock" in rerun.stderr  # the killed run could not release it
    assert pg(pg_url, DIGEST)[0] == source_digest
    assert pg_tables(pg_url) == {"items"}, "staging tables were left behind"


def test_sigterm_stops_cleanly_then_resume(
    run_cli, pg_url: str, source_url: str, source_digest: tuple, tmp_path: Path
) -> None:
    # the target already holds an older copy: it must stay as it is until the swap
    pg(pg_url, "CREATE TABLE items (id bigint PRIMARY KEY, name text)")
    pg(pg_url, "INSERT INTO items VALUES (1, 'old one'), (2, 'old two'), (3, 'old three')")
    old = pg(pg_url, "SELECT * FROM items ORDER BY id")

    spec = write_spec(tmp_path, source_url, pg_url)
    proc = start_run(spec, tmp_path)
    try:
        wait_for_committed_chunks(proc, 2, tmp_path)
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    stderr = (tmp_path / "stderr.txt").read_text()
    assert proc.returncode == 143, stderr
    assert "Traceback" not in stderr
    assert "chunks are committed" in stderr and "resumes" in stderr

    history = run_cli("history", cwd=tmp_path)
    assert history.returncode == 0, history.stderr
    (line,) = [line for line in history.stdout.splitlines() if "resume-test" in line]
    assert "interrupted" in line and "143" in line
    (run,) = state_rows("SELECT status, exit_code FROM etlrun_runs")
    assert (run["status"], run["exit_code"]) == ("interrupted", 143)
    # no lock is left behind by a clean stop
    assert state_rows("SELECT count(*) FROM etlrun_locks")[0][0] == 0
    # in-flight chunks rolled back, nothing half-done: every task is done, cancelled or pending
    before = tasks_now()
    assert {t["status"] for t in before.values()} <= {"done", "cancelled", "pending"}
    assert pg(pg_url, "SELECT * FROM items ORDER BY id") == old, "the target changed"

    check_resumed(run_cli, tmp_path, spec, before, via_cli=False)
    assert pg(pg_url, DIGEST)[0] == source_digest
    assert pg_tables(pg_url) == {"items"}, "staging or old tables were left behind"
