"""The same plan on a Dask distributed cluster: ``--executor dask://HOST:PORT`` / ``dask-local``.

``dask://HOST:PORT`` uses a cluster you run (``dask scheduler`` + ``dask worker``, Kubernetes, ...);
``dask-local[:N]`` starts a ``LocalCluster`` of N worker processes on this machine (default 2).
The executor can also be named by ``ETLRUN_EXECUTOR`` or ``executor:`` in the spec; the command
line wins, then the variable, then the spec. ``distributed`` is the optional extra
``etlrun[dask]``; this module imports it only when a Dask executor is chosen.

Who does what
    The driver (the ``etlrun`` process) keeps what it keeps with threads: the DAG order, the state
    store, the lock, retries, progress and the exit code. Chunk tasks go to the cluster. Each
    opens its own connections on its worker, so rows flow database -> worker -> database, never
    through the driver or the scheduler; only a small ``TaskResult`` (rows, bytes, seconds) comes
    back. The DDL steps (prepare, finalize) run in the driver: they move no rows, and they read
    run-wide results. A run whose source or target only one process can open (a DuckDB file,
    an in-memory database) stays on driver threads, and a warning says so. Every worker needs
    the driver's etlrun version with the drivers of the run's databases; ``dask://`` checks.
    A ``dask-local`` cluster takes a second or more to start (longer on a busy machine); chunks
    that are ready before it is up run on the driver's threads instead of waiting, exactly as
    with ``--executor threads``, and every later chunk goes to the cluster
    (``ETLRUN_DASK_WARM_START=0``: they wait for it).

Secrets never travel in a task
    A task carries its source and target as URLs *without* the password (a ``?password=`` in
    the query is taken out too). The worker fills the password in from its own environment:

    1. ``ETLRUN_SOURCE_PASSWORD`` / ``ETLRUN_TARGET_PASSWORD``, when set; else
    2. the spec's own ``source:`` / ``target:`` text, shipped with ``${VAR}`` unexpanded and
       expanded on the worker: ``postgresql://etl:${PG_PASSWORD}@db/x`` reads ``PG_PASSWORD``;
       ``${WAREHOUSE_URL}`` reads ``WAREHOUSE_URL`` and takes only its password. A spec text
       that holds a password itself (inline) is not shipped: set the variable of rule 1.

    Host, port, database and user always come from the driver, so every worker writes where the
    driver prepared. A worker that finds no password fails with a ConnectError naming the
    variables to set (``dask://`` checks every worker before the run starts). ``dask-local``
    sets rule 1's variables in the environment of the worker processes it starts, so passwords
    from a ``.env`` file or inline work there too. A ``.env`` file is read by the driver only.
    The sanitize key goes the same way: a task carries only its id, and a worker reads the key
    from ``ETLRUN_SANITIZE_KEY`` (set by ``dask-local``; by you on a ``dask://`` worker).

Lost workers
    When a worker dies mid-chunk, the scheduler runs the chunk again on another worker (up to
    ``distributed.scheduler.allowed-failures`` times; after that the driver retries it like any
    transient error). The dead worker's transaction never committed (the database rolls it back
    when the connection drops), and a chunk is delete-range + insert in one transaction, so the
    replay neither duplicates nor loses rows.

Stopping
    When the run stops (SIGINT/SIGTERM, or a failed task), the driver sets a Dask ``Event`` of
    this run and cancels the chunks no worker has started; a chunk in flight asks for the event
    between batches (twice a second at most) and rolls back. Progress bars advance per finished
    chunk (per batch would cost a message per batch).
"""

from __future__ import annotations

import concurrent.futures
import itertools
import os
import threading
import uuid
from collections.abc import Callable
from typing import Any

from loguru import logger

from runner.connectors.base import Connector
from runner.errors import ConnectError, TransientError
from runner.execute._executor_choice import (  # noqa: F401 - importable from here as before
    DEFAULT_PROCESSES,
    EXECUTOR_ENV,
    INSTALL_HINT,
    KNOWN,
    ExecutorChoice,
    _require_distributed,
    choose_executor,
    parse_executor,
)
from runner.execute.context import Cancelled, RunContext, TaskResult
from runner.execute.run import run_task
from runner.execute.threads import ThreadExecutor
from runner.plan.plan import Task

CONNECT_TIMEOUT = 15  # seconds to reach a dask:// scheduler

WARM_START_ENV = "ETLRUN_DASK_WARM_START"
"""Set to 0 and a dask-local run's chunks wait for the cluster instead of starting on threads."""
DRIVER_MODES = frozenset({"purge"})
"""Modes whose chunks stay on driver threads: a purge chunk writes its audit rows to the state
store, which only the driver holds, and deletes in small batches that gain nothing from workers."""


from runner.execute._dask_start import (  # noqa: E402 - after the module's constants
    Started,
    _preflight,
    _start_local,
)
from runner.execute._dask_worker import (  # noqa: E402 - after the module's constants
    ChunkPayload,
    run_chunk,
)
from runner.execute._endpoints import (  # noqa: E402 - after the module's constants
    PASSWORD_ENV,
    Endpoint,
    process_bound,
    spec_templates,
    split_password,
)


# --- the executor --------------------------------------------------------------------------------
class DaskExecutor:
    """Chunks on a Dask cluster, everything else on driver threads; see the module doc.

    ``cluster`` is a ``distributed.Client``, or a Future of :data:`Started` while a local
    cluster is still starting: the driver plans meanwhile, and the first chunk waits for it.
    """

    name = "dask"

    def __init__(
        self,
        cluster: Any,
        workers: int,
        source: Endpoint,
        target: Endpoint,
        warm_start: bool = False,
    ) -> None:
        self.workers = workers
        self.warm_start = warm_start
        """Run chunks on driver threads while the cluster is still starting (dask-local)."""
        self.warm_chunks = 0
        if not isinstance(cluster, concurrent.futures.Future):
            started: concurrent.futures.Future[Started] = concurrent.futures.Future()
            started.set_result((cluster, None))
            cluster = started
        self._started: concurrent.futures.Future[Started] = cluster
        self._endpoints = (source, target)
        self._local = ThreadExecutor(workers)
        self._run = uuid.uuid4().hex[:12]
        self.cancel_event = f"etlrun-cancel-{self._run}"
        self._keys = itertools.count(1)
        self._lock = threading.Lock()
        self._remote: dict[concurrent.futures.Future[TaskResult], Any] = {}
        self._cancels: list[threading.Event] = []
        self._cancel_sent = False
        self._submitted = False

    # --- what the driver calls -----------------------------------------------------------
    def submit(self, fn: Callable[..., Any], *args: Any) -> concurrent.futures.Future[Any]:
        task, ctx = (args + (None, None))[:2]
        if isinstance(ctx, RunContext) and ctx.cancel not in self._cancels:
            self._cancels.append(ctx.cancel)
        if not (
            fn is run_task
            and isinstance(task, Task)
            and isinstance(ctx, RunContext)
            and task.kind == "chunk"
            and task.mode not in DRIVER_MODES
        ):
            return self._local.submit(fn, *args)
        if self.warm_start and not self._started.done():
            # the cluster is not up yet: rather than wait for it (seconds), the driver's own
            # threads run this chunk, exactly as the threads executor would
            if not self.warm_chunks:
                logger.info("dask-local: the first chunks run on the driver while it starts")
            self.warm_chunks += 1
            return self._local.submit(fn, *args)
        local: concurrent.futures.Future[TaskResult] = concurrent.futures.Future()
        local.set_running_or_notify_cancel()
        try:
            client = self._client
        except ConnectError as exc:  # the cluster did not start: this chunk fails with why
            local.set_exception(exc)
            return local
        remote = client.submit(run_chunk, self.payload(task, ctx), key=self._key(task), pure=False)
        self._submitted = True
        with self._lock:
            self._remote[local] = remote
        remote.add_done_callback(lambda done: self._settle(done, local, task, ctx))
        return local

    def wait(self, futures: Any, timeout: float) -> set[concurrent.futures.Future[Any]]:
        if self._submitted and not self._cancel_sent and any(c.is_set() for c in self._cancels):
            self._stop_remote()
        done, _ = concurrent.futures.wait(
            list(futures), timeout=timeout, return_when=concurrent.futures.FIRST_COMPLETED
        )
        return done

    def shutdown(self) -> None:
        try:
            with self._lock:
                outstanding = list(self._remote.values())
            if outstanding:  # e.g. a second Ctrl-C: stop what still runs before leaving
                self._stop_remote(cancel_all=True)
            if self._cancel_sent:
                self._forget_cancel()
        finally:
            self._local.shutdown()
            if self._started.exception() is None:
                client, cluster = self._started.result()
                try:
                    client.close()
                finally:
                    if cluster is not None:
                        cluster.close()

    @property
    def _client(self) -> Any:
        """The client, once the cluster has started (ConnectError if it could not)."""
        return self._started.result()[0]

    # --- the parts -----------------------------------------------------------------------
    def payload(self, task: Task, ctx: RunContext) -> ChunkPayload:
        """Exactly what :meth:`submit` sends for ``task`` (besides the function itself)."""
        return ChunkPayload(
            task=task,
            source=self._endpoints[0],
            target=self._endpoints[1],
            batch_rows=ctx.batch_rows,
            queue_batches=ctx.queue_batches,
            resumed=ctx.resumed,
            run_id=ctx.run_id,
            cancel_event=self.cancel_event,
        )

    def _key(self, task: Task) -> str:
        # unique per attempt: a key the scheduler still remembers would return its old result
        return f"etlrun-{self._run}-{task.id}-{next(self._keys)}"

    def _settle(
        self,
        remote: Any,
        local: concurrent.futures.Future[TaskResult],
        task: Task,
        ctx: RunContext,
    ) -> None:
        """Runs on a Dask client thread when a chunk ends: hand its outcome to the driver."""
        with self._lock:
            self._remote.pop(local, None)
        try:
            result = remote.result()
        except BaseException as exc:  # noqa: BLE001 - every outcome goes to the driver
            try:
                exc = _translate(exc)
            finally:  # the driver waits on this future: it must be settled whatever happens
                local.set_exception(exc)
            return
        try:
            ctx.progress(task.id, task.table, result.rows, result.bytes)
        finally:
            local.set_result(result)

    def _stop_remote(self, cancel_all: bool = False) -> None:
        """Tell running chunks to roll back; cancel those no worker has started."""
        self._cancel_sent = True
        try:
            from distributed import Event

            Event(self.cancel_event, client=self._client).set()
            with self._lock:
                remote = list(self._remote.values())
            if not cancel_all:
                running = {k for keys in self._client.processing().values() for k in keys}
                remote = [r for r in remote if r.key not in running]
            if remote:
                self._client.cancel(remote)
        except Exception as exc:  # noqa: BLE001 - a lost scheduler cannot be told anything
            logger.warning("could not signal the Dask cluster to stop: {}", exc)

    def _forget_cancel(self) -> None:
        # a shared scheduler keeps every named event until it is cleared
        try:
            from distributed import Event

            Event(self.cancel_event, client=self._client).clear()
        except Exception:  # noqa: BLE001 - the scheduler is gone, and the event with it
            pass


def _translate(exc: BaseException) -> BaseException:
    """Dask's own outcomes as etlrun errors; a task's own error passes through as it is."""
    from distributed import KilledWorker

    if isinstance(exc, KilledWorker):
        tries = getattr(exc, "allowed_failures", 0) + 1
        return TransientError(f"the Dask workers running it died ({tries} times)")
    if isinstance(exc, concurrent.futures.CancelledError):
        return Cancelled("cancelled on the cluster before it committed")
    return exc


# --- starting one --------------------------------------------------------------------------------
def start(
    choice: ExecutorChoice,
    workers: int,
    source: Connector,
    target: Connector,
    spec_path: str | os.PathLike[str] | None = None,
    sanitize_key: str | None = None,
) -> DaskExecutor | ThreadExecutor:
    """Connect to (or start) the cluster of ``choice`` and return the executor for one run.

    ``sanitize_key`` is the job's ``sanitize.key``: like the passwords, it reaches the workers
    through their environment (``ETLRUN_SANITIZE_KEY``), never inside a task, which carries
    only the key's id. A database only one process can open keeps the whole run on driver
    threads (with a warning).
    """
    _require_distributed()
    bound = [c for c in (source, target) if process_bound(c)]
    if bound:
        logger.warning(
            "{}: only one process can open this database, so this run's chunks run on "
            "threads of the driver, not on the Dask cluster",
            bound[0].display_url,
        )
        return ThreadExecutor(workers)
    templates = spec_templates(spec_path)
    endpoints = (
        Endpoint.of("source", source.url, templates.get("source")),
        Endpoint.of("target", target.url, templates.get("target")),
    )
    if choice.kind == "dask-local":
        # the passwords go to our own child processes' environment, never into a task
        env = {
            PASSWORD_ENV[role]: password
            for role, connector in (("source", source), ("target", target))
            if (password := split_password(connector.url)[1])
        }
        if sanitize_key:
            from runner.sanitize import KEY_ENV

            env[KEY_ENV] = sanitize_key
        # what every worker imports before its first chunk: the connectors of this run too
        preload = ["distributed", __name__, *sorted({type(c).__module__ for c in (source, target)})]
        starting: concurrent.futures.Future[Started] = concurrent.futures.Future()
        threading.Thread(
            target=_start_local,
            args=(choice.processes, workers, env, preload, starting),
            name="etlrun dask-local",
            daemon=True,
        ).start()
        warm = os.environ.get(WARM_START_ENV, "1") != "0"
        return DaskExecutor(starting, workers, *endpoints, warm_start=warm)
    import distributed

    try:
        client = distributed.Client(choice.address, timeout=CONNECT_TIMEOUT)
    except Exception as exc:
        raise ConnectError(f"cannot reach the Dask scheduler at {choice.address}: {exc}") from exc
    try:
        key_id = None
        if sanitize_key:
            from runner.sanitize import key_id as id_of

            key_id = id_of(sanitize_key)
        _preflight(client, *endpoints, address=choice.address, sanitize_key_id=key_id)
    except BaseException:
        client.close()
        raise
    return DaskExecutor(client, workers, *endpoints)
