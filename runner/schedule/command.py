"""``etlrun schedule``: list the next fire times, or run the loop until a signal stops it."""

from __future__ import annotations

import signal
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from runner._cron import fires_after, zone
from runner.errors import UsageError
from runner.schedule.children import process_launcher
from runner.schedule.loop import Scheduler
from runner.schedule.record import StateRecord
from runner.schedule.specs import Specs


# --- the command ---------------------------------------------------------------------------------
def list_text(specs: Specs, now: datetime, count: int) -> str:
    """Each job's next ``count`` fire times, in its zone and in UTC."""
    lines = []
    for entry in specs.entries.values():
        if entry.schedule is None:
            lines.append(f"{entry.job}  ({entry.path})  unscheduled")
            continue
        tz = zone(entry.cron)
        lines.append(f"{entry.job}  ({entry.path})  '{entry.cron.cron}' {tz.key}")
        for _, t in zip(range(count), fires_after(entry.cron, now), strict=False):
            lines.append(f"  {t.astimezone(tz):%Y-%m-%d %H:%M %Z %z}   {t:%Y-%m-%d %H:%M} UTC")
    return "\n".join(lines)


@contextmanager
def _signals(handler: Callable[[], None]) -> Iterator[None]:
    def handle(_signum: int, _frame: Any) -> None:
        handler()  # sets flags only: logging here could deadlock on loguru's lock

    old = {s: signal.signal(s, handle) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, previous in old.items():
            signal.signal(sig, previous)


def command(
    paths: Sequence[str],
    *,
    state: str | None = None,
    list_only: bool = False,
    once: bool = False,
    count: int = 5,
    window: float = 1.0,
    grace: float = 60.0,
    log_format: str = "text",
) -> int:
    """``etlrun schedule``: the loop, ``--list`` or ``--once``; returns the exit code."""
    for given in paths:
        if not Path(given).exists():
            raise UsageError(f"{given}: no such file or folder")
    if count < 1 or window <= 0 or grace < 0:
        raise UsageError("--count must be at least 1, --window above 0 and --grace not negative")
    specs = Specs(paths)
    if list_only:
        specs.refresh()
        print(list_text(specs, datetime.now(UTC), count))
        return 2 if specs.errors else 0
    launcher = process_launcher(state, log_format)
    record, now = StateRecord(state), lambda: datetime.now(UTC)
    scheduler = Scheduler(specs, launcher, now=now, sleep=time.sleep, record=record)
    with _signals(scheduler.request_stop):
        return scheduler.once(timedelta(minutes=window), grace) if once else scheduler.run(grace)
