"""Starting a scheduled run as a child process, and what its exit code means."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Protocol

from runner.schedule.specs import Entry

OUTCOMES = {
    0: "ok",
    5: "skipped: still running (another run holds the job's lock)",
    130: "interrupted (SIGINT)",
    143: "stopped (SIGTERM)",
}
FAILURES = {
    1: "runtime failure",
    2: "spec error",
    3: "rows rejected",
    4: "verification failed",
    6: "safety refusal",
}


# --- children -----------------------------------------------------------------------------------
class Handle(Protocol):
    def poll(self) -> int | None: ...
    def terminate(self) -> None: ...
    def wait(self, timeout: float | None = None) -> int: ...


Launcher = Callable[[Entry], Handle]


def child_command(path: Path, state: str | None = None, log_format: str = "text") -> list[str]:
    """``python -m runner run PATH``: each run in its own process, so a crash stays there."""
    command = [sys.executable, "-m", "runner", "run", str(path)]
    command += ["--state", state] if state else []
    return command + (["--log-format", log_format] if log_format != "text" else [])


def process_launcher(state: str | None = None, log_format: str = "text") -> Launcher:
    def launch(entry: Entry) -> Handle:
        # A session of its own: Ctrl-C in a terminal reaches only the scheduler, which then
        # gives running jobs their --grace period instead of interrupting them at once.
        command = child_command(entry.path, state, log_format)
        return subprocess.Popen(command, stdin=subprocess.DEVNULL, start_new_session=True)

    return launch


def outcome(code: int) -> str:
    if code in OUTCOMES:
        return OUTCOMES[code]
    return f"failed (exit {code}: {FAILURES.get(code, 'unknown exit code')})"


def worst(codes: Sequence[int]) -> int:
    """The highest exit code, where 5 (skipped: still running) ranks below any failure."""
    failures = [c for c in codes if c not in (0, 5)]
    return max(failures) if failures else (5 if 5 in codes else 0)


@dataclass
class _Child:
    entry: Entry
    fire: datetime
    handle: Handle
