"""The Dask executor without a cluster: what it sends (never a secret), how a worker finds the
password again, how an executor is chosen, and how Dask's outcomes reach the driver.

A fake client stands in for ``distributed.Client``: it records exactly what ``submit`` is given,
which is what Dask would pickle and send to the scheduler and a worker.
"""

from __future__ import annotations

import concurrent.futures
import pickle
import subprocess
import sys
from pathlib import Path
from typing import Any
from urllib.parse import quote, quote_plus

import pytest

from runner import secrets
from runner.connectors import connect
from runner.errors import ConnectError, TransientError, UsageError
from runner.execute.context import Cancelled, RunContext, TaskResult
from runner.execute.dask import (
    PASSWORD_ENV,
    DaskExecutor,
    Endpoint,
    ExecutorChoice,
    choose_executor,
    parse_executor,
    process_bound,
    run_chunk,
    spec_templates,
    split_password,
    start,
)
from runner.execute.run import run_task
from runner.execute.threads import ThreadExecutor
from runner.plan.plan import Task
from runner.spec.load import load

distributed = pytest.importorskip("distributed")
cloudpickle = pytest.importorskip("cloudpickle")

MARKER = "Kanarie"
CANARY = f"{MARKER}-p@ss w/rd:%41+&=?#x9"
"""A password with the characters URL encodings treat specially, around a marker that every
encoding leaves as it is: finding no marker means finding no form of the password."""


def forms(secret: str) -> set[str]:
    """The secret as it could appear in bytes: raw, URL-encoded both ways, repr-escaped."""
    return {secret, quote(secret, safe=""), quote(secret), quote_plus(secret), repr(secret)[1:-1]}


class FakeFuture:
    def __init__(self, key: str) -> None:
        self.key = key
        self.callbacks: list[Any] = []
        self.outcome: Any = None

    def add_done_callback(self, fn: Any) -> None:
        self.callbacks.append(fn)

    def finish(self, outcome: Any) -> None:
        self.outcome = outcome
        for fn in self.callbacks:
            fn(self)

    def result(self) -> Any:
        if isinstance(self.outcome, BaseException):
            raise self.outcome
        return self.outcome


class FakeClient:
    """Records every submit; nothing runs."""

    def __init__(self) -> None:
        self.submitted: list[tuple[Any, tuple[Any, ...], dict[str, Any]]] = []
        self.futures: list[FakeFuture] = []
        self.closed = False

    def submit(self, fn: Any, *args: Any, **kwargs: Any) -> FakeFuture:
        self.submitted.append((fn, args, kwargs))
        self.futures.append(FakeFuture(kwargs["key"]))
        return self.futures[-1]

    def close(self) -> None:
        self.closed = True


def chunk_task(number: int = 1) -> Task:
    return Task(
        f"events:chunk:{number:04d}",
        "chunk",
        "events",
        "copy",
        ("events:prepare",),
        {
            "select": 'SELECT "id", "v" FROM "events" WHERE "id" > 0 AND "id" <= 100',
            "delete": 'DELETE FROM "events__etlrun_stage" WHERE "id" > %s AND "id" <= %s',
            "bounds": [0, 100],
            "key_type": "int64",
            "stage": '"events__etlrun_stage"',
            "schema": [["id", "int64"], ["v", "string"]],
            "chunk": number,
            "chunks": 3,
        },
        rows=100,
    )


def spec(tmp_path: Path, source: str) -> Path:
    path = tmp_path / "job.yaml"
    path.write_text(
        f"source: {source}\n"
        "target: postgresql://loader:${TARGET_PASSWORD}@warehouse.example:5432/dw\n"
        "tables: [events]\n"
    )
    return path


SOURCES = {
    "variable": "postgresql://etl:${SRC_PASSWORD}@db.example:5432/app",
    "inline": f"postgresql://etl:{quote(CANARY, safe='')}@db.example:5432/app",
    "url-variable": "${APP_URL}",
    "query": f"postgresql://etl@db.example:5432/app?password={quote(CANARY, safe='')}",
}


def executor_for(tmp_path: Path, how: str) -> tuple[DaskExecutor, FakeClient, RunContext]:
    env = {  # a variable in a URL's password position holds the password URL-encoded
        "SRC_PASSWORD": quote(CANARY, safe=""),
        "TARGET_PASSWORD": quote(CANARY + "-target", safe=""),
        "APP_URL": f"postgresql://etl:{quote(CANARY, safe='')}@db.example:5432/app",
    }
    path = spec(tmp_path, SOURCES[how])
    job = load(path, env=env)
    assert CANARY in split_password(job.source)[1]  # the driver does hold the password
    source, target = connect(job.source), connect(job.target)  # connectors connect lazily
    templates = spec_templates(path)
    client = FakeClient()
    executor = DaskExecutor(
        client,
        4,
        Endpoint.of("source", source.url, templates.get("source")),
        Endpoint.of("target", target.url, templates.get("target")),
    )
    ctx = RunContext(source=source, target=target, batch_rows=5000, run_id="20261122T080000-ab12cd")
    return executor, client, ctx


# --- no secret in what is sent -------------------------------------------------------------------
@pytest.mark.parametrize("how", list(SOURCES))
def test_a_submitted_chunk_holds_no_password(tmp_path: Path, how: str) -> None:
    executor, client, ctx = executor_for(tmp_path, how)
    executor.submit(run_task, chunk_task(), ctx)
    [(fn, args, kwargs)] = client.submitted
    assert fn is run_chunk
    sent = (fn, args, kwargs)
    blobs = {
        "pickle": pickle.dumps(sent),
        "cloudpickle": cloudpickle.dumps(sent),
        "dask": b"".join(
            bytes(frame) for frame in distributed.protocol.serialize_bytelist(args[0])
        ),
    }
    for name, blob in blobs.items():
        assert MARKER.encode() not in blob, f"{name} holds the password"
        assert MARKER.encode("utf-16-le") not in blob, f"{name} holds the password"
        for secret in (CANARY, CANARY + "-target"):
            for form in forms(secret):
                assert form.encode() not in blob, f"{name} holds {form!r}"
                assert form.encode("utf-16-le") not in blob, f"{name} holds {form!r}"
    # the payload is plain data a worker can unpickle on its own
    assert pickle.loads(blobs["pickle"])[1][0] == args[0]


def test_the_task_itself_is_unchanged_and_small(tmp_path: Path) -> None:
    executor, client, ctx = executor_for(tmp_path, "variable")
    task = chunk_task()
    executor.submit(run_task, task, ctx)
    payload = client.submitted[0][1][0]
    assert payload.task == task
    assert payload.batch_rows == 5000
    assert payload.run_id == "20261122T080000-ab12cd"  # reject and backup files are named by it
    assert payload.source.url == "postgresql://etl@db.example:5432/app"
    assert payload.target.url == "postgresql://loader@warehouse.example:5432/dw"
    assert len(pickle.dumps(payload)) < 4000  # rows never travel through the scheduler


# --- how a worker finds the password again ------------------------------------------------------
def test_a_worker_reads_the_same_variable_as_the_spec(tmp_path: Path) -> None:
    executor, client, ctx = executor_for(tmp_path, "variable")
    executor.submit(run_task, chunk_task(), ctx)
    payload = client.submitted[0][1][0]
    assert payload.source.template == SOURCES["variable"]
    url = payload.source.resolve({"SRC_PASSWORD": quote(CANARY, safe="")})
    assert split_password(url) == ("postgresql://etl@db.example:5432/app", CANARY)
    target = payload.target.resolve({"TARGET_PASSWORD": "t"})
    assert split_password(target)[1] == "t"


def test_a_worker_takes_only_the_password_from_a_url_variable(tmp_path: Path) -> None:
    executor, client, ctx = executor_for(tmp_path, "url-variable")
    executor.submit(run_task, chunk_task(), ctx)
    source = client.submitted[0][1][0].source
    elsewhere = f"postgresql://other:{quote('pw-from-worker', safe='')}@other.example/x"
    url = source.resolve({"APP_URL": elsewhere})
    # host, database and user stay the driver's, so every worker writes where it prepared
    assert split_password(url) == ("postgresql://etl@db.example:5432/app", "pw-from-worker")


@pytest.mark.parametrize("how", ["inline", "query"])
def test_an_inline_password_needs_the_etlrun_variable(tmp_path: Path, how: str) -> None:
    executor, client, ctx = executor_for(tmp_path, how)
    executor.submit(run_task, chunk_task(), ctx)
    source = client.submitted[0][1][0].source
    assert source.template is None and source.has_password
    with pytest.raises(ConnectError, match="set ETLRUN_SOURCE_PASSWORD in the environment"):
        source.resolve({})
    url = source.resolve({PASSWORD_ENV["source"]: CANARY})
    assert split_password(url) == ("postgresql://etl@db.example:5432/app", CANARY)


def test_the_etlrun_variable_wins_over_the_spec_variable() -> None:
    template = "postgresql://etl:${PG_PASSWORD}@db/x"
    endpoint = Endpoint.of("target", "postgresql://etl:driver@db/x", template)
    env = {"PG_PASSWORD": "from-spec-variable", "ETLRUN_TARGET_PASSWORD": "explicit"}
    assert split_password(endpoint.resolve(env))[1] == "explicit"
    assert split_password(endpoint.resolve({"PG_PASSWORD": "v"}))[1] == "v"


def test_a_missing_password_names_every_variable_that_would_do() -> None:
    endpoint = Endpoint.of("source", "postgresql://etl:pw@db/x", "postgresql://etl:${PG_PW}@db/x")
    with pytest.raises(ConnectError) as caught:
        endpoint.resolve({})
    assert "set ETLRUN_SOURCE_PASSWORD or PG_PW in the environment of every Dask worker" in str(
        caught.value
    )


def test_a_url_without_password_travels_as_it_is(tmp_path: Path) -> None:
    endpoint = Endpoint.of("source", "postgresql://postgres@127.0.0.1:5432/app", "${X}")
    assert (endpoint.has_password, endpoint.template) == (False, None)
    assert endpoint.resolve({}) == "postgresql://postgres@127.0.0.1:5432/app"
    relative = Endpoint.of("target", "sqlite:///out/x.db")
    assert relative.url == f"sqlite:///{Path.cwd() / 'out/x.db'}"  # workers have their own cwd


def test_a_template_that_holds_a_secret_is_not_shipped() -> None:
    secrets.register("registered-elsewhere-secret")
    endpoint = Endpoint.of(
        "source",
        "postgresql://etl:pw1@db/x?application_name=registered-elsewhere-secret",
        "postgresql://etl:${PW}@db/x?application_name=registered-elsewhere-secret",
    )
    assert endpoint.template is None
    default = "${APP_URL:-postgresql://etl:inline-default@db/x}"
    assert Endpoint.of("source", "postgresql://etl:inline-default@db/x", default).template is None


def test_databases_one_process_owns_stay_in_the_driver(tmp_path: Path) -> None:
    assert process_bound(connect(f"duckdb:///{tmp_path}/a.duckdb"))
    assert process_bound(connect("sqlite://"))
    assert not process_bound(connect(f"sqlite:///{tmp_path}/a.db"))
    assert not process_bound(connect("postgresql://u@h/db"))
    source, target = (
        connect(f"sqlite:///{tmp_path}/a.db"),
        connect(f"duckdb:///{tmp_path}/b.duckdb"),
    )
    executor = start(parse_executor("dask-local:2"), 3, source, target)  # starts no cluster
    assert isinstance(executor, ThreadExecutor) and executor.workers == 3
    executor.shutdown()


# --- outcomes ------------------------------------------------------------------------------------
def test_results_come_back_with_progress_per_chunk(tmp_path: Path) -> None:
    executor, client, ctx = executor_for(tmp_path, "variable")
    seen: list[tuple[str, str, int, int]] = []
    ctx.progress = lambda *args: seen.append(args)
    future = executor.submit(run_task, chunk_task(2), ctx)
    assert not future.done()
    client.futures[0].finish(TaskResult(rows=100, bytes=800, seconds=0.5))
    assert future.result(timeout=1).rows == 100
    assert seen == [("events:chunk:0002", "events", 100, 800)]


def test_prepare_and_finalize_run_in_the_driver(tmp_path: Path) -> None:
    executor, client, ctx = executor_for(tmp_path, "variable")
    prepare = Task("events:prepare", "prepare", "events", "copy")
    future = executor.submit(lambda task, ctx: TaskResult(extra={"ran": task.id}), prepare, ctx)
    assert future.result(timeout=5).extra == {"ran": "events:prepare"}
    assert client.submitted == []
    executor.shutdown()
    assert client.closed


@pytest.mark.parametrize(
    "outcome, expected",
    [
        (distributed.KilledWorker("etlrun-x-events:chunk:0001-1", None, 3), TransientError),
        (distributed.client.FutureCancelledError("k", "cancelled"), Cancelled),
        (TransientError("deadlock"), TransientError),
        (ConnectError("no password"), ConnectError),
    ],
)
def test_dask_outcomes_become_etlrun_errors(
    tmp_path: Path, outcome: BaseException, expected: type[BaseException]
) -> None:
    executor, client, ctx = executor_for(tmp_path, "variable")
    future = executor.submit(run_task, chunk_task(), ctx)
    client.futures[0].finish(outcome)
    with pytest.raises(expected):
        future.result(timeout=1)


def test_every_attempt_gets_its_own_key(tmp_path: Path) -> None:
    executor, client, ctx = executor_for(tmp_path, "variable")
    for _ in range(2):
        executor.submit(run_task, chunk_task(), ctx)
    keys = [kwargs["key"] for _, _, kwargs in client.submitted]
    assert len(set(keys)) == 2 and all("events:chunk:0001" in k for k in keys)
    assert all(kwargs["pure"] is False for _, _, kwargs in client.submitted)


def test_a_cluster_that_did_not_start_fails_the_chunk(tmp_path: Path) -> None:
    starting: concurrent.futures.Future[Any] = concurrent.futures.Future()
    starting.set_exception(ConnectError("could not start a local Dask cluster: boom"))
    executor = DaskExecutor(
        starting,
        2,
        Endpoint.of("source", "sqlite:///a.db"),
        Endpoint.of("target", "sqlite:///b.db"),
    )
    ctx = RunContext(source=connect("sqlite:///a.db"), target=connect("sqlite:///b.db"))
    with pytest.raises(ConnectError, match="boom"):
        executor.submit(run_task, chunk_task(), ctx).result(timeout=1)
    executor.shutdown()


# --- choosing the executor -----------------------------------------------------------------------
@pytest.mark.parametrize(
    "text, choice",
    [
        ("threads", ExecutorChoice("threads")),
        ("dask-local", ExecutorChoice("dask-local", processes=2)),
        ("dask-local:4", ExecutorChoice("dask-local", processes=4)),
        ("dask://10.0.0.5:8786", ExecutorChoice("dask", address="tcp://10.0.0.5:8786")),
        ("dask://scheduler.internal:8786", ExecutorChoice("dask", address="tcp://scheduler.internal:8786")),
    ],
)  # fmt: skip
def test_executor_names(text: str, choice: ExecutorChoice) -> None:
    assert parse_executor(text) == choice


@pytest.mark.parametrize(
    "text", ["dask", "dask-local:0", "dask-local:x", "dask://host", "tcp://h:1", "Threads", ""]
)
def test_unknown_executor_names(text: str) -> None:
    with pytest.raises(ValueError, match=r"threads, dask-local\[:N\] or dask://HOST:PORT|1 to 256"):
        parse_executor(text)


def test_the_command_line_wins_then_the_variable_then_the_spec() -> None:
    env = {"ETLRUN_EXECUTOR": "dask-local:3"}
    assert choose_executor("threads", "dask-local", env).kind == "threads"
    assert choose_executor(None, "threads", env) == ExecutorChoice("dask-local", processes=3)
    assert choose_executor(None, "dask-local:5", {}).processes == 5
    assert choose_executor(None, None, {}).kind == "threads"
    with pytest.raises(UsageError, match="ETLRUN_EXECUTOR: unknown executor 'nope'"):
        choose_executor(None, None, {"ETLRUN_EXECUTOR": "nope"})


def test_without_distributed_the_error_says_what_to_install(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "distributed", None)  # import distributed -> ImportError
    assert choose_executor("threads", None, {}).kind == "threads"
    with pytest.raises(UsageError, match=r'pip install "etlrun\[dask\]"'):
        choose_executor("dask-local", None, {})


def test_the_base_install_never_imports_distributed() -> None:
    code = (
        "import sys, runner.cli, runner.execute.dask, runner.spec.load\n"
        "runner.spec.load.load_text('source: sqlite:///a.db\\ntarget: sqlite:///b.db\\n"
        "executor: dask-local:2\\ntables: [t]')\n"
        "assert 'distributed' not in sys.modules and 'dask' not in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


# --- the sanitize key travels like a password: by the workers' environment -----------------------
KEY_CANARY = f"{MARKER}-sanitize-key-0123456789"


def test_a_chunk_with_keyed_rules_holds_the_key_id_not_the_key(tmp_path: Path) -> None:
    import sqlite3
    from contextlib import closing

    from runner.plan.compiler import compile
    from runner.sanitize import key_id

    with closing(sqlite3.connect(tmp_path / "src.db")) as conn:
        conn.execute("CREATE TABLE people (id INTEGER PRIMARY KEY, email TEXT)")
        conn.executemany("INSERT INTO people VALUES (?, ?)", [(i, f"p{i}@x.org") for i in range(9)])
        conn.commit()
    path = tmp_path / "job.yaml"
    path.write_text(
        f"source: sqlite:///{tmp_path}/src.db\ntarget: sqlite:///{tmp_path}/dst.db\n"
        "sanitize: {key: '${SANITIZE_KEY}'}\n"
        "tables: [{name: people, chunk_rows: 3, sanitize: {email: hash}}]\n"
    )
    job = load(path, env={"SANITIZE_KEY": KEY_CANARY})
    source, target = connect(job.source), connect(job.target)
    plan = compile(job, source, target)
    client = FakeClient()
    executor = DaskExecutor(
        client, 2, Endpoint.of("source", source.url), Endpoint.of("target", target.url)
    )
    ctx = RunContext(source=source, target=target, run_id="20261122T080000-ab12cd")
    chunk = next(t for t in plan.tasks if t.kind == "chunk")
    executor.submit(run_task, chunk, ctx)
    [sent] = client.submitted
    for blob in (pickle.dumps(sent), cloudpickle.dumps(sent)):
        assert MARKER.encode() not in blob
        for form in forms(KEY_CANARY):
            assert form.encode() not in blob
    assert key_id(KEY_CANARY) in pickle.dumps(sent).decode("latin-1")  # the id does travel
    source.close()
    target.close()


def test_dask_local_gives_its_workers_the_sanitize_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from runner.execute import dask as dask_executor
    from runner.sanitize import KEY_ENV

    seen: dict[str, str] = {}

    def fake_start(
        processes: int, workers: int, env: dict[str, str], preload: list[str], started: Any
    ) -> None:
        seen.update(env)
        assert "runner.connectors.sqlite" in preload  # the workers import the run's connectors
        started.set_exception(ConnectError("not started in this test"))

    monkeypatch.setattr(dask_executor, "_start_local", fake_start)
    source, target = connect(f"sqlite:///{tmp_path}/a.db"), connect(f"sqlite:///{tmp_path}/b.db")
    executor = start(parse_executor("dask-local:2"), 2, source, target, sanitize_key=KEY_CANARY)
    executor.shutdown()
    assert seen == {KEY_ENV: KEY_CANARY}


def test_a_dask_worker_without_the_sanitize_key_is_named_before_the_run(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from runner.execute._dask_worker import check_worker
    from runner.sanitize import KEY_ENV, key_id

    unregistered = "a-key-this-process-never-registered"
    endpoint = Endpoint.of("source", "sqlite:///a.db")
    monkeypatch.delenv(KEY_ENV, raising=False)
    _, missing = check_worker(endpoint, endpoint, key_id(unregistered))
    assert missing and KEY_ENV in missing
    monkeypatch.setenv(KEY_ENV, unregistered)
    assert check_worker(endpoint, endpoint, key_id(unregistered))[1] is None


def test_purge_chunks_stay_on_the_driver(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A purge chunk writes its audit rows to the state store, which only the driver holds."""
    import dataclasses

    from runner.execute import dask as dask_executor

    def body(task: Task, ctx: RunContext) -> TaskResult:  # stands in for run_task
        return TaskResult(extra={"ran here": task.mode})

    monkeypatch.setattr(dask_executor, "run_task", body)
    executor, client, ctx = executor_for(tmp_path, "variable")
    purge = dataclasses.replace(chunk_task(), mode="purge")
    assert executor.submit(body, purge, ctx).result(timeout=5).extra == {"ran here": "purge"}
    assert client.submitted == []
    executor.submit(body, chunk_task(), ctx)  # a copy chunk goes to the cluster
    assert len(client.submitted) == 1
    executor.shutdown()


def test_a_named_connection_ships_its_text_from_connections_yaml(tmp_path: Path) -> None:
    (tmp_path / "connections.yaml").write_text(
        "app: postgresql://etl:${SRC_PASSWORD}@db.example:5432/app\n"
    )
    path = tmp_path / "job.yaml"
    path.write_text("source: app\ntarget: sqlite:///t.db\ntables: [events]\n")
    job = load(path, env={"SRC_PASSWORD": quote(CANARY, safe="")})
    templates = spec_templates(path)
    assert templates["source"] == "postgresql://etl:${SRC_PASSWORD}@db.example:5432/app"
    endpoint = Endpoint.of("source", job.source, templates["source"])
    assert MARKER not in repr(endpoint)
    url = endpoint.resolve({"SRC_PASSWORD": quote(CANARY, safe="")})
    assert split_password(url)[1] == CANARY


def test_chunks_ready_before_a_local_cluster_is_up_run_on_the_driver(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from runner.execute import dask as dask_executor

    def body(task: Task, ctx: RunContext) -> TaskResult:  # stands in for run_task
        return TaskResult(rows=1, extra={"ran": "driver"})

    monkeypatch.setattr(dask_executor, "run_task", body)
    starting: concurrent.futures.Future[Any] = concurrent.futures.Future()
    source, target = (
        Endpoint.of("source", "sqlite:///a.db"),
        Endpoint.of("target", "sqlite:///b.db"),
    )
    executor = DaskExecutor(starting, 2, source, target, warm_start=True)
    ctx = RunContext(source=connect("sqlite:///a.db"), target=connect("sqlite:///b.db"))
    first = executor.submit(body, chunk_task(1), ctx)  # the cluster is starting: no waiting
    assert first.result(timeout=5).extra == {"ran": "driver"}
    client = FakeClient()
    starting.set_result((client, None))
    executor.submit(body, chunk_task(2), ctx)  # the cluster is up: it gets the chunk
    assert [kwargs["key"].split("-", 2)[2] for _, _, kwargs in client.submitted] == [
        "events:chunk:0002-1"
    ]
    assert executor.warm_chunks == 1
    executor.shutdown()

    cold = DaskExecutor(concurrent.futures.Future(), 2, source, target)  # dask:// never warms
    assert not cold.warm_start
