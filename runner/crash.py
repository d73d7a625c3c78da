"""Crash reports: what an unexpected exception leaves behind for a bug report.

``.etlrun/crash/<run-or-timestamp>.json`` (``ETLRUN_CRASH_DIR`` names another folder) holds the
etlrun and Python versions, the command, the job, its spec hash and run id, the task that was
running, and the traceback, every line passed through :func:`runner.secrets.scrub`. Local
variables are never included: they may hold row values.
"""

from __future__ import annotations

import json
import os
import platform
import sys
import threading
import traceback
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from runner.secrets import scrub

DEFAULT_DIR = ".etlrun/crash"
_context: dict[str, Any] = {}
_lock = threading.Lock()


def note(**context: Any) -> None:
    """Remember what is being done (job, spec_hash, run_id, ...) for a report written later;
    replaces what an earlier job of this process noted."""
    with _lock:
        _context.clear()
        _context.update({k: v for k, v in context.items() if v is not None})


def reset() -> None:
    with _lock:
        _context.clear()


def folder() -> Path:
    return Path(os.environ.get("ETLRUN_CRASH_DIR") or DEFAULT_DIR)


def write(exc: BaseException, **context: Any) -> Path | None:
    """Write a report of ``exc``; returns its path, or None if it could not be written."""
    from runner import __version__

    with _lock:
        info = {**_context, **{k: v for k, v in context.items() if v is not None}}
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
    name = str(info.get("run_id") or stamp)
    if info.get("task"):
        name += "-" + "".join(ch if ch.isalnum() else "_" for ch in str(info["task"]))[:60]
    report = {
        "etlrun_version": __version__,
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "time": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "argv": [scrub(a) for a in sys.argv],
        **{k: scrub(str(v)) for k, v in info.items()},
        "exception": scrub(f"{type(exc).__name__}: {exc}"),
        "traceback": [
            scrub(line) for line in traceback.format_exception(type(exc), exc, exc.__traceback__)
        ],
    }
    try:
        out = folder()
        out.mkdir(parents=True, exist_ok=True)
        path = out / f"{name}.json"
        counter = 1
        while path.exists():
            counter += 1
            path = out / f"{name}-{counter}.json"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as file:
            json.dump(report, file, indent=2)
            file.write("\n")
    except OSError:
        return None
    return path
