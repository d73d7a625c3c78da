"""Starting a Dask cluster for :mod:`runner.execute.dask`: a ``LocalCluster`` for ``dask-local``
(in a thread, while the driver plans), and the checks of a ``dask://`` cluster's workers."""

from __future__ import annotations

import concurrent.futures
import importlib.metadata
import logging
import math
import multiprocessing
import time
from typing import Any

from loguru import logger

from runner.errors import ConnectError
from runner.execute._endpoints import Endpoint

Started = tuple[Any, Any]
"""A ``distributed.Client`` and the ``LocalCluster`` it talks to (None for ``dask://``)."""
EXECUTOR_MODULE = "runner.execute._dask_worker"
"""Preloaded by every dask-local worker: its ``dask_setup`` hook, ``run_chunk``, etlrun."""


def _start_local(
    processes: int,
    workers: int,
    env: dict[str, str],
    preload: list[str],
    started: concurrent.futures.Future[Started],
) -> None:
    """Start a LocalCluster (in a thread, while the driver plans) and hand it over."""
    began = time.monotonic()
    cluster = None
    try:
        method = _start_forkserver(preload)
        cluster = _local_cluster(processes, math.ceil(workers / processes), env, method)
        import distributed

        client = distributed.Client(cluster)
    except BaseException as exc:  # noqa: BLE001 - handed to the first chunk, which fails with it
        if cluster is not None:
            cluster.close()
        error = ConnectError(f"could not start a local Dask cluster: {exc}")
        error.__cause__ = exc
        started.set_exception(error)
        return
    logger.info(
        "dask-local: {} worker processes x {} threads, started in {:.1f}s ({})",
        processes,
        math.ceil(workers / processes),
        time.monotonic() - began,
        cluster.scheduler_address,
    )
    started.set_result((client, cluster))


def _start_forkserver(preload: list[str]) -> str:
    """The worker processes' start method; for forkserver, its server is started right now.

    The worker processes fork from one server process that has imported ``preload`` once
    (distributed, etlrun, the run's connectors), instead of each importing them anew (spawn):
    they start faster, stop in a few ms instead of a second, and their first chunk imports
    nothing. Started first, the server's imports overlap with this thread's own import of
    distributed and the driver's planning, instead of following them. A worker restarted later
    forks from the same server.
    """
    if "forkserver" not in multiprocessing.get_all_start_methods():
        return "spawn"
    from multiprocessing import forkserver

    forkserver.set_forkserver_preload(preload)
    forkserver.ensure_running()  # returns at once; the server imports while we go on
    return "forkserver"


def _local_cluster(processes: int, threads: int, env: dict[str, str], method: str) -> Any:
    import dask
    import distributed
    import distributed.utils

    settings = {
        "distributed.worker.multiprocessing-method": method,
        # the workers' sampling profiler only feeds the dashboard: not worth its CPU here
        "distributed.worker.profile.enabled": False,
    }
    # distributed would pick its own forkserver preload list (importing numpy and pandas here
    # to see whether they exist); the server already runs with ours
    distributed.utils._forkserver_preload_set = True
    with dask.config.set(settings):
        return distributed.LocalCluster(
            n_workers=processes,
            threads_per_worker=threads,
            processes=True,
            dashboard_address=None,
            # no dashboard, but the scheduler's HTTP server would still try port 8787 and
            # warn when another cluster has it
            scheduler_kwargs={"dashboard_address": ":0"},
            silence_logs=logging.ERROR,
            env=env,
            preload=[EXECUTOR_MODULE],  # its dask_setup
        )


def _preflight(
    client: Any,
    source: Endpoint,
    target: Endpoint,
    address: str,
    sanitize_key_id: str | None = None,
) -> None:
    """Every worker runs etlrun at the driver's version and can find the passwords (and the
    sanitize key)."""
    try:
        from runner.execute._dask_worker import check_worker

        answers: dict[str, tuple[str, str | None]] = client.run(
            check_worker, source, target, sanitize_key_id
        )
    except Exception as exc:
        raise ConnectError(
            f"the Dask workers at {address} cannot run etlrun tasks "
            f"(is etlrun[dask] installed on every worker?): {exc}"
        ) from exc
    if not answers:
        raise ConnectError(f"the Dask cluster at {address} has no workers")
    mine = importlib.metadata.version("etlrun")
    problems: dict[str, list[str]] = {}
    for worker, (version, missing) in sorted(answers.items()):
        if missing or version != mine:
            problem = missing or f"etlrun {version} (the driver runs {mine})"
            problems.setdefault(problem, []).append(worker)
    if problems:
        raise ConnectError(
            "Dask workers not ready: "
            + "; ".join(f"{', '.join(w)}: {problem}" for problem, w in problems.items())
        )
