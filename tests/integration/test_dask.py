"""The Dask executor end to end: ``etlrun run`` on a cluster of two worker processes.

- The copy core cases (sqlite -> sqlite, sqlite -> duckdb, postgres -> postgres) run once with
  threads and once with ``--executor dask-local:2``; the two targets are compared row by row by
  primary key, and must be identical. The PostgreSQL source takes its password from a
  ``${VAR}`` (the server trusts local connections, so any password works): the workers find it
  again in their own environment, and it shows up in no output.
- The same for a backup (the Parquet file) and an incremental run (new and changed rows
  merged: the target equals the source).
- A worker process killed with SIGKILL while it runs a chunk: the chunk runs again on another
  worker, the run succeeds, and the target equals the source with no duplicate key.
- A run that stops (the driver's cancel flag) rolls back the chunk a worker is writing.
- SIGINT to the driver while chunks run on the cluster: exit 130, nothing half-written, and
  the next run resumes from the committed chunks.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import closing
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest
import servers
import yaml
from cases import common_types_table, create_native, native_connection, read_native
from conftest import REPO, run_cli
from sqlalchemy.engine import make_url

from runner.connectors import connect
from runner.execute.context import Cancelled, RunContext
from runner.execute.dask import DaskExecutor, Endpoint
from runner.execute.run import run_task
from runner.plan.compiler import compile
from runner.spec.load import load

distributed = pytest.importorskip("distributed")

NUMBERS_ROWS = 3_000
"""A second, plain table, so the DAG has two tables and more chunks than workers."""
BIG_ROWS = 150_000
"""The table the kill test copies: 30 chunks, several seconds on two workers."""
STOP_ROWS, STOP_CHUNK = 60_000, 3_000
"""The table the interrupt test copies: 20 chunks."""
CANARY = "Kanarie-9f3b7d"


# --- helpers -------------------------------------------------------------------------------------
def write_spec(path: Path, source: str, target: str, tables: list[Any], **extra: Any) -> Path:
    spec = {"version": 1, "job": path.stem, "source": source, "target": target, **extra}
    spec["tables"] = tables
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return path


COLD = {"ETLRUN_DASK_WARM_START": "0"}
"""Every chunk waits for the cluster: these tests are about what runs on its workers."""


def run(spec: Path, *args: str, env: dict[str, str] | None = None, fresh: bool = True) -> str:
    flags = ["--fresh"] if fresh else []
    env = {**COLD, **(env or {})}
    result = run_cli("run", spec, *flags, *args, cwd=spec.parent, env=env, timeout=120)
    output = result.stdout + result.stderr
    assert result.returncode == 0, f"exit {result.returncode}\n{output}"
    return output


def create_numbers(url: str, rows: int, table: str = "numbers") -> None:
    """``table(id, label, n)`` with ``rows`` rows, through the backend's own driver."""
    backend = make_url(url).get_backend_name()
    with native_connection(url) as conn:
        cursor = conn.cursor()
        key = "bigint PRIMARY KEY" if backend == "postgresql" else "INTEGER PRIMARY KEY"
        cursor.execute(f'CREATE TABLE "{table}" (id {key}, label TEXT, n BIGINT)')
        if backend == "postgresql":
            cursor.execute(
                f"INSERT INTO \"{table}\" SELECT g, 'row ' || g || repeat('x', g % 50), "
                f"g * 7919 % 100003 FROM generate_series(1, {rows}) AS g"
            )
        else:
            cursor.execute("BEGIN")
            cursor.executemany(
                f'INSERT INTO "{table}" VALUES (?, ?, ?)',
                ((i, f"row {i}" + "x" * (i % 50), i * 7919 % 100003) for i in range(1, rows + 1)),
            )
            cursor.execute("COMMIT")


def rows_of(url: str, table: str) -> list[tuple[Any, ...]]:
    with native_connection(url) as conn:
        cursor = conn.cursor()
        cursor.execute(f'SELECT id, label, n FROM "{table}" ORDER BY id')
        return [tuple(r) for r in cursor.fetchall()]


def distinct_ids(url: str, table: str) -> tuple[int, int]:
    with native_connection(url) as conn:
        cursor = conn.cursor()
        cursor.execute(f'SELECT count(*), count(DISTINCT id) FROM "{table}"')
        return tuple(cursor.fetchone())  # type: ignore[return-value]


def with_password_variable(url: str, variable: str) -> str:
    """``url`` with ``${variable}`` as its password (trust auth ignores the value)."""
    u = make_url(url)
    return f"postgresql://{u.username}:${{{variable}}}@{u.host}:{u.port or 5432}/{u.database}"


@pytest.fixture
def pg_databases() -> Iterator[Callable[[], str]]:
    """``new()``: a fresh PostgreSQL database for this test (all dropped afterwards)."""
    made: list[str] = []

    def new() -> str:
        made.append(servers.create_postgres_database())
        return made[-1]

    yield new
    for url in made:
        servers.drop_postgres_database(url)


def urls_for(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> Callable[[str], str]:
    if backend == "sqlite":
        return lambda role: f"sqlite:///{tmp_path}/{role}.db"
    if backend == "duckdb":
        return lambda role: f"duckdb:///{tmp_path}/{role}.duckdb"
    new = request.getfixturevalue("pg_databases")
    return lambda role: new()


# --- the copy core cases, threads against dask-local:2 -------------------------------------------
@pytest.mark.parametrize(
    "source_backend, target_backend",
    [
        pytest.param("sqlite", "sqlite", id="sqlite->sqlite"),
        pytest.param("sqlite", "duckdb", id="sqlite->duckdb"),
        pytest.param("postgres", "postgres", marks=pytest.mark.postgres, id="postgres->postgres"),
    ],
)
def test_dask_local_copies_exactly_what_threads_copy(
    source_backend: str, target_backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    source_url = urls_for(source_backend, tmp_path, request)("source")
    target = urls_for(target_backend, tmp_path, request)
    expected = create_native(source_url, "common_types", common_types_table(60))
    create_numbers(source_url, NUMBERS_ROWS)
    env: dict[str, str] = {}
    spec_source = source_url
    if source_backend == "postgres":
        env["SRC_PASSWORD"] = CANARY
        spec_source = with_password_variable(source_url, "SRC_PASSWORD")
    tables = [
        {"name": "common_types", "chunk_rows": 7},  # 9 chunks
        {"name": "numbers", "chunk_rows": 400},  # 8 chunks
    ]
    targets = {}
    outputs = {}
    for executor in ("threads", "dask-local:2"):
        name = executor.replace(":", "_").replace("-", "_")
        targets[executor] = target(name)
        spec = write_spec(
            tmp_path / f"{name}.yaml", spec_source, targets[executor], tables, workers=4
        )
        outputs[executor] = run(spec, "--executor", executor, env=env)

    threads, dask = targets["threads"], targets["dask-local:2"]
    on_threads = read_native(threads, "common_types", expected.schema)
    assert len(on_threads) == expected.num_rows
    assert read_native(dask, "common_types", expected.schema) == on_threads
    assert rows_of(dask, "numbers") == rows_of(threads, "numbers")
    assert len(rows_of(dask, "numbers")) == NUMBERS_ROWS
    assert "dask-local: 2 worker processes" in outputs["dask-local:2"] or (
        target_backend == "duckdb" and "threads of the driver" in outputs["dask-local:2"]
    )
    assert all(CANARY not in out for out in outputs.values())


def test_dask_local_backs_up_what_threads_back_up(tmp_path: Path) -> None:
    source = f"sqlite:///{tmp_path}/source.db"
    create_numbers(source, NUMBERS_ROWS)
    written = {}
    for executor in ("threads", "dask-local:2"):
        folder = tmp_path / executor.replace(":", "_")
        tables = [{"name": "numbers", "chunk_rows": 400}]
        spec = write_spec(
            tmp_path / f"backup_{folder.name}.yaml",
            source,
            f"file://{folder}/",
            tables,
            defaults={"mode": "backup"},
        )
        run(spec, "--executor", executor)
        [part] = folder.rglob("numbers.parquet")
        written[executor] = pq.read_table(part).sort_by("id")
    assert written["threads"].num_rows == NUMBERS_ROWS
    assert written["dask-local:2"].equals(written["threads"])


def test_dask_local_incremental_merges_what_changed(tmp_path: Path) -> None:
    source, target = f"sqlite:///{tmp_path}/source.db", f"sqlite:///{tmp_path}/target.db"
    create_numbers(source, NUMBERS_ROWS)
    tables = [{"name": "numbers", "mode": "incremental", "cursor": "n", "chunk_rows": 400}]
    spec = write_spec(tmp_path / "incremental.yaml", source, target, tables, workers=4)
    run(spec, "--executor", "dask-local:2")
    assert rows_of(target, "numbers") == rows_of(source, "numbers")
    with native_connection(source) as conn:  # new rows past the watermark, one row changed
        conn.execute("BEGIN")
        conn.executemany(
            "INSERT INTO numbers VALUES (?, ?, ?)",
            ((i, f"new {i}", 200_000 + i) for i in range(NUMBERS_ROWS + 1, NUMBERS_ROWS + 501)),
        )
        conn.execute("UPDATE numbers SET label = 'changed', n = 999999 WHERE id = 7")
        conn.execute("COMMIT")
    output = run(spec, "--executor", "dask-local:2", fresh=False)
    assert rows_of(target, "numbers") == rows_of(source, "numbers"), output
    assert len(rows_of(target, "numbers")) == NUMBERS_ROWS + 500


def test_dask_local_workers_sanitize_with_the_key_from_their_environment(tmp_path: Path) -> None:
    """The worker processes never registered the key: they find it in ETLRUN_SANITIZE_KEY, which
    dask-local sets for them, and hash exactly as the driver's threads do."""
    source = f"sqlite:///{tmp_path}/source.db"
    create_numbers(source, NUMBERS_ROWS)
    key = f"{CANARY}-sanitize-key"
    tables = [{"name": "numbers", "chunk_rows": 400, "sanitize": {"label": "hash"}}]
    hashed, outputs = {}, []
    for executor in ("threads", "dask-local:2"):
        name = executor.replace(":", "_").replace("-", "_")
        target = f"sqlite:///{tmp_path}/{name}.db"
        spec = write_spec(
            tmp_path / f"sanitize_{name}.yaml", source, target, tables,
            sanitize={"key": "${SANITIZE_KEY}"}, workers=4,
        )  # fmt: skip
        outputs.append(run(spec, "--executor", executor, env={"SANITIZE_KEY": key}))
        hashed[executor] = rows_of(target, "numbers")
    assert len(hashed["threads"]) == NUMBERS_ROWS
    assert hashed["dask-local:2"] == hashed["threads"]
    assert hashed["threads"][0][1] != "row 1x" and len(hashed["threads"][0][1]) == 64
    assert "dask-local: 2 worker processes" in outputs[1]
    assert all(CANARY not in out for out in outputs)


def test_a_warm_dask_local_run_copies_exactly(tmp_path: Path) -> None:
    """By default the chunks ready before the local cluster is up run on driver threads, the
    rest on the cluster: the target is the same either way."""
    source, target = f"sqlite:///{tmp_path}/source.db", f"sqlite:///{tmp_path}/target.db"
    create_numbers(source, BIG_ROWS, "big")
    tables = [{"name": "big", "chunk_rows": 5000}]
    spec = write_spec(tmp_path / "warm.yaml", source, target, tables, workers=2)
    output = run(spec, "--executor", "dask-local:2", env={"ETLRUN_DASK_WARM_START": "1"})
    assert "the first chunks run on the driver while it starts" in output
    assert "dask-local: 2 worker processes" in output
    assert distinct_ids(target, "big") == (BIG_ROWS, BIG_ROWS)
    assert rows_of(target, "big") == rows_of(source, "big")


# --- a worker killed mid-chunk -------------------------------------------------------------------
@pytest.fixture(scope="module")
def cluster() -> Iterator[Any]:
    """A cluster of two worker processes (two threads each) the tests can see and kill."""
    with (
        distributed.LocalCluster(
            n_workers=2,
            threads_per_worker=2,
            processes=True,
            dashboard_address=None,
            scheduler_kwargs={"dashboard_address": ":0"},  # never warn about a busy 8787
            silence_logs=50,
        ) as local,
        distributed.Client(local) as client,
    ):
        yield client


@pytest.fixture
def two_workers(cluster: Any) -> Any:
    """The cluster with both workers up (its nanny restarts a killed one)."""
    cluster.wait_for_workers(2, timeout=30)
    return cluster


def kill_a_busy_worker(client: Any, driver: subprocess.Popen[str]) -> str:
    """SIGKILL a worker process while it runs one of our chunks; the key it was running."""
    pids = client.run(os.getpid)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and driver.poll() is None:
        for worker, keys in client.processing().items():
            ours = [k for k in keys if str(k).startswith("etlrun-") and ":chunk:" in str(k)]
            if ours and worker in pids:
                os.kill(pids[worker], signal.SIGKILL)
                return str(ours[0])
        time.sleep(0.02)
    output = driver.communicate(timeout=30)[0] if driver.poll() is not None else ""
    raise AssertionError(f"no chunk ran on the cluster (exit {driver.returncode}):\n{output}")


def popen(spec: Path, *args: str) -> subprocess.Popen[str]:
    """``etlrun run SPEC ARGS`` in the background, output merged."""
    return subprocess.Popen(
        [sys.executable, "-m", "runner", "run", str(spec), *args],
        cwd=spec.parent,
        env={**os.environ, **COLD, "PYTHONPATH": str(REPO)},
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


@pytest.mark.parametrize(
    "backend", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
)
def test_a_worker_killed_mid_chunk_loses_and_duplicates_nothing(
    backend: str, two_workers: Any, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    urls = urls_for(backend, tmp_path, request)
    source, target = urls("source"), urls("target")
    create_numbers(source, BIG_ROWS, "big")
    spec = write_spec(
        tmp_path / "killed.yaml", source, target, [{"name": "big", "chunk_rows": 5000}], workers=4
    )
    address = two_workers.scheduler.address.replace("tcp://", "dask://")
    with popen(spec, "--executor", address) as driver:
        try:
            key = kill_a_busy_worker(two_workers, driver)
            output, _ = driver.communicate(timeout=120)
        finally:
            driver.kill()
    assert driver.returncode == 0, output
    # the scheduler put the killed worker's chunk on a worker a second time
    story = two_workers.run_on_scheduler(
        lambda dask_scheduler: [t[2] for t in dask_scheduler.transition_log if t[0] == key]
    )
    assert story.count("processing") >= 2, story
    assert distinct_ids(target, "big") == (BIG_ROWS, BIG_ROWS)
    assert rows_of(target, "big") == rows_of(source, "big")


# --- stopping ------------------------------------------------------------------------------------
def test_a_stopped_run_rolls_back_the_chunk_in_flight_on_the_worker(
    two_workers: Any, tmp_path: Path
) -> None:
    source, target = f"sqlite:///{tmp_path}/source.db", f"sqlite:///{tmp_path}/target.db"
    create_numbers(source, BIG_ROWS, "big")
    spec = write_spec(
        tmp_path / "one.yaml", source, target, [{"name": "big", "chunk_rows": BIG_ROWS}]
    )
    job = load(spec)
    src, tgt = connect(job.source), connect(job.target)
    plan = compile(job, src, tgt)
    prepare, chunk = plan.tasks[0], plan.tasks[1]
    assert (prepare.kind, chunk.kind) == ("prepare", "chunk")
    ctx = RunContext(source=src, target=tgt, batch_rows=20)  # thousands of batches: seconds
    run_task(prepare, ctx)
    client = distributed.Client(two_workers.scheduler.address)  # the executor closes its own
    executor = DaskExecutor(
        client, 2, Endpoint.of("source", job.source), Endpoint.of("target", job.target)
    )
    try:
        future = executor.submit(run_task, chunk, ctx)
        deadline = time.monotonic() + 30
        while not any(two_workers.processing().values()) and time.monotonic() < deadline:
            time.sleep(0.02)
        time.sleep(0.3)  # well into the chunk
        ctx.cancel.set()  # what the driver does on a signal ...
        executor.wait([future], timeout=0.1)  # ... and its next poll tells the cluster
        with pytest.raises(Cancelled):
            future.result(timeout=30)
    finally:
        executor.shutdown()
        src.close()
        tgt.close()
    stage = chunk.params["stage"].strip('"')
    with native_connection(target) as conn:
        assert conn.execute(f'SELECT count(*) FROM "{stage}"').fetchone() == (0,)


# --- SIGINT, then resume -------------------------------------------------------------------------
def committed_chunks(state_db: Path) -> int:
    if not state_db.exists():
        return 0
    with closing(sqlite3.connect(state_db, timeout=5)) as conn:
        try:
            row = conn.execute(
                "SELECT count(*) FROM etlrun_tasks WHERE kind = 'chunk' AND status = 'done'"
            ).fetchone()
        except sqlite3.OperationalError:  # not created yet
            return 0
    return int(row[0])


def test_sigint_stops_the_cluster_run_cleanly_and_the_next_run_resumes(tmp_path: Path) -> None:
    source, target = f"sqlite:///{tmp_path}/source.db", f"sqlite:///{tmp_path}/target.db"
    create_numbers(source, STOP_ROWS, "big")
    tables = [{"name": "big", "chunk_rows": STOP_CHUNK}]
    spec = write_spec(tmp_path / "stopped.yaml", source, target, tables, workers=2)
    state_db = Path(make_url(os.environ["ETLRUN_STATE"]).database or "")
    with popen(spec, "--executor", "dask-local:2") as driver:
        try:
            deadline = time.monotonic() + 60
            while committed_chunks(state_db) < 2 and time.monotonic() < deadline:
                time.sleep(0.05)
            driver.send_signal(signal.SIGINT)
            output, _ = driver.communicate(timeout=60)
        finally:
            driver.kill()
    assert driver.returncode == 130, output
    assert "chunks are committed" in output
    done = committed_chunks(state_db)
    assert 2 <= done < STOP_ROWS // STOP_CHUNK
    with native_connection(target) as conn:  # the swap never happened: no target table yet
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert "big" not in tables

    result = run_cli("run", spec, "--executor", "dask-local:2", cwd=tmp_path, env=COLD, timeout=120)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "resuming run" in output
    assert distinct_ids(target, "big") == (STOP_ROWS, STOP_ROWS)
    assert rows_of(target, "big") == rows_of(source, "big")
