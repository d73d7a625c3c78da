"""Cron schedules and the ``etlrun schedule`` loop (DESIGN §4).

- :func:`fires_after` / :func:`latest_fire`: a job's cron read in its time zone, as UTC instants.
  Clock changes follow cron: a time in a spring gap fires at the first instant after it (02:30
  Europe/Oslo fires at 03:00); in the hour repeated in autumn, a fixed hour fires once (the
  first pass) while a ``*`` hour (``*/15 * * * *``) follows real time and fires in both passes.
- :class:`Specs`: the job files under the given paths, reloaded when a file's mtime changes.
- :class:`StateRecord`: which fire times were run, missed or skipped, in the state store, so a
  restart, ``--once`` from cron or a second scheduler never runs a fire time twice.
- :class:`Scheduler`: the loop, with an injectable clock (``now``, ``sleep``) and launcher (starts
  a run, returns a handle with ``poll``/``terminate``/``wait``; ``subprocess.Popen`` is one).

The parts live in the modules of this package, named by their job: :mod:`.specs`, :mod:`.record`,
:mod:`.children`, :mod:`.loop` and :mod:`.command`; cron reading is :mod:`runner._cron`.
Every name is re-exported here, so ``from runner.schedule import ...`` keeps working.
"""

from __future__ import annotations

from runner._cron import fires_after, latest_fire, when, zone
from runner.schedule.children import (
    FAILURES,
    OUTCOMES,
    Handle,
    Launcher,
    child_command,
    outcome,
    process_launcher,
    worst,
)
from runner.schedule.command import command, list_text
from runner.schedule.loop import KILL_AFTER, MISFIRE, REAP, TICK, Scheduler
from runner.schedule.record import StateRecord, schedule_fires
from runner.schedule.specs import Entry, Specs
from runner.spec.models import Schedule

__all__ = [
    "FAILURES",
    "KILL_AFTER",
    "MISFIRE",
    "OUTCOMES",
    "REAP",
    "TICK",
    "Entry",
    "Handle",
    "Launcher",
    "Schedule",
    "Scheduler",
    "Specs",
    "StateRecord",
    "child_command",
    "command",
    "fires_after",
    "latest_fire",
    "list_text",
    "outcome",
    "process_launcher",
    "schedule_fires",
    "when",
    "worst",
    "zone",
]
