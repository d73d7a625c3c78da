"""Which executor a run uses: ``--executor``, else ``ETLRUN_EXECUTOR``, else the spec's
``executor:``, else threads; each read as ``threads``, ``dask-local[:N]`` or
``dask://HOST:PORT``. A Dask one needs ``distributed`` installed, which is looked for here,
not imported."""

from __future__ import annotations

import importlib.util
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass

from runner.errors import UsageError

INSTALL_HINT = 'pip install "etlrun[dask]"'
DEFAULT_PROCESSES = 2
EXECUTOR_ENV = "ETLRUN_EXECUTOR"
KNOWN = "threads, dask-local[:N] or dask://HOST:PORT"

_LOCAL = re.compile(r"dask-local(?::(\d+))?")
_REMOTE = re.compile(r"dask://([A-Za-z0-9_.-]+|\[[0-9A-Fa-f:.]+\]):(\d{1,5})/?")


@dataclass(frozen=True)
class ExecutorChoice:
    kind: str
    """``threads``, ``dask-local`` or ``dask``."""
    processes: int = 0
    """Worker processes of a ``dask-local`` cluster."""
    address: str = ""
    """The scheduler of a ``dask`` cluster, as Dask writes it (``tcp://HOST:PORT``)."""


def parse_executor(text: str) -> ExecutorChoice:
    """Read an executor name; ValueError (with the known forms) when it is none of them.

    Example:
        >>> parse_executor("dask-local:3")
        ExecutorChoice(kind='dask-local', processes=3, address='')
        >>> parse_executor("dask://10.0.0.5:8786").address
        'tcp://10.0.0.5:8786'
    """
    value = text.strip()
    if value == "threads":
        return ExecutorChoice("threads")
    if local := _LOCAL.fullmatch(value):
        processes = int(local.group(1) or DEFAULT_PROCESSES)
        if not 1 <= processes <= 256:
            raise ValueError(f"'{text}': dask-local takes 1 to 256 worker processes")
        return ExecutorChoice("dask-local", processes=processes)
    if remote := _REMOTE.fullmatch(value):
        host, port = remote.groups()
        if not 0 < int(port) < 65536:
            raise ValueError(f"'{text}': {port} is not a TCP port")
        return ExecutorChoice("dask", address=f"tcp://{host}:{port}")
    raise ValueError(f"unknown executor '{text}' (use {KNOWN})")


def choose_executor(
    cli: str | None, spec: str | None, env: Mapping[str, str] = os.environ
) -> ExecutorChoice:
    """The executor of a run: ``--executor``, else ``ETLRUN_EXECUTOR``, else the spec's, else
    threads. A bad name, or a Dask one without ``distributed`` installed, is a UsageError (exit 2,
    before anything is opened)."""
    for value, origin in ((cli, "--executor"), (env.get(EXECUTOR_ENV), EXECUTOR_ENV)):
        if value:
            try:
                choice = parse_executor(value)
            except ValueError as exc:
                raise UsageError(f"{origin}: {exc}") from None
            break
    else:
        choice = parse_executor(spec or "threads")  # the spec's was checked when it was loaded
    if choice.kind != "threads":
        _require_distributed()  # found, not imported: a local cluster imports it while starting
    return choice


def _require_distributed() -> None:
    try:
        found = importlib.util.find_spec("distributed") is not None
    except (ImportError, ValueError):  # ValueError: sys.modules holds None for it
        found = False
    if not found:
        raise UsageError(f"the Dask executors need the 'distributed' package: {INSTALL_HINT}")
