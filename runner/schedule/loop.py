"""The scheduler loop: due fire times, catch-up, launching and reaping runs, stopping."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path

from loguru import logger

from runner._cron import fires_after, latest_fire
from runner.schedule.children import Launcher, _Child, outcome, worst
from runner.schedule.record import StateRecord
from runner.schedule.specs import Entry, Specs

TICK = 1.0
"""Seconds between looks at the clock, the children and the spec files."""
MISFIRE = timedelta(seconds=60)
"""A fire time noticed later than this (suspend, clock jump) counts as missed."""
REAP = 0.25
"""Seconds between looks at running children while waiting for them (``--once``, stopping)."""
KILL_AFTER = 30.0
"""Seconds a child gets after SIGTERM before it is killed."""


# --- the loop -----------------------------------------------------------------------------------
class Scheduler:
    """Starts each scheduled job at its fire times, one child process per run.

    Args:
        specs: The job files to watch.
        launcher: Starts a run of an entry and returns its handle.
        now: The current time, aware.
        sleep: Waits that many seconds (a fake one lets tests run a day in milliseconds).
        record: Which fire times were handled.
        tick: The longest sleep between looks at the clock, the children and the files.
    """

    def __init__(
        self,
        specs: Specs,
        launcher: Launcher,
        *,
        now: Callable[[], datetime],
        sleep: Callable[[float], None],
        record: StateRecord,
        tick: float = TICK,
    ) -> None:
        self.specs, self.launcher, self.record = specs, launcher, record
        self.now, self.sleep, self.tick_seconds = now, sleep, tick
        self.scheduled: dict[Path, Entry] = {}
        self.next: dict[Path, datetime] = {}
        self.running: dict[str, _Child] = {}
        self.codes: list[int] = []
        self.stopping = self.hurry = False

    def request_stop(self) -> None:
        """Stop starting jobs; a second call stops waiting for running ones. Signal-safe."""
        self.hurry = self.stopping
        self.stopping = True

    def run(self, grace: float = 60.0) -> int:
        """Loop until :meth:`request_stop`, then stop the children within ``grace``; 0."""
        self.start()
        while not self.stopping:
            self.tick()
            if not self.stopping:
                self.sleep(self._nap())
        self.shutdown(grace)
        return 0

    def start(self) -> None:
        """Load the specs and log each job's next fire time."""
        self._apply(self.specs.refresh(), self.now())
        for entry in self.specs.entries.values():
            if entry.schedule is None:
                logger.info(f"unscheduled: {entry.job} ({entry.path})")
        if not self.next:
            watching = ", ".join(map(str, self.specs.paths))
            logger.warning(f"no scheduled jobs yet; watching {watching}")

    def tick(self) -> None:
        now = self.now()
        self._apply(self.specs.refresh(), now)
        self._reap()
        for path, due in list(self.next.items()):
            if now >= due and not self.stopping:
                self._due(self.scheduled[path], due, now)

    def once(self, window: timedelta, grace: float = 60.0) -> int:
        """Run each job whose latest fire time is within ``window`` and not yet run; wait."""
        now = self.now()
        self.specs.refresh()
        for entry in self.specs.scheduled():
            latest, last = latest_fire(entry.cron, now), self.record.last(entry.job)
            if latest is not None and now - latest <= window:
                self._launch(entry, latest)
            elif latest and entry.cron.catchup and last is not None and last < latest:
                logger.warning(
                    f"{entry.job}: missed the run due at {entry.when(latest)}; catching up"
                )
                self._launch(entry, latest)
            else:
                upcoming = entry.when(next(fires_after(entry.cron, now)))
                logger.info(f"{entry.job}: not due; next run {upcoming}")
        while self.running and not self.stopping:
            self.sleep(min(self.tick_seconds, REAP))
            self._reap()
        self.shutdown(grace)
        return worst(self.codes + [2] * len(self.specs.errors))

    def shutdown(self, grace: float) -> None:
        """Wait up to ``grace`` seconds for running children, then SIGTERM them."""
        self._reap()
        if self.stopping:
            logger.info("stop requested: no new runs will start")
        if self.running:
            logger.info(f"waiting up to {grace:g}s for running jobs: {', '.join(self.running)}")
        deadline = self.now() + timedelta(seconds=grace)
        while self.running and not self.hurry and self.now() < deadline:
            self.sleep(min(self.tick_seconds, REAP, (deadline - self.now()).total_seconds()))
            self._reap()
        for job, child in self.running.items():
            logger.warning(f"{job}: still running; stopping it (SIGTERM)")
            child.handle.terminate()
        for child in list(self.running.values()):
            try:
                child.handle.wait(timeout=KILL_AFTER)
            except subprocess.TimeoutExpired:
                getattr(child.handle, "kill", child.handle.terminate)()
        self._reap()
        logger.info("scheduler stopped")

    # --- steps --------------------------------------------------------------------------------
    def _nap(self) -> float:
        now = self.now()
        waits = [(t - now).total_seconds() for t in self.next.values()]
        return max(0.0, min([self.tick_seconds, *waits]))

    def _apply(self, changed: list[Path], now: datetime) -> None:
        """Take in reloaded specs: a new or changed schedule gets its next fire time."""
        for path in changed:
            entry, old = self.specs.entries.get(path), self.scheduled.get(path)
            if entry is None or entry.schedule is None:
                if self.next.pop(path, None) is not None:
                    logger.info(f"{path}: no longer scheduled")
                self.scheduled.pop(path, None)
                continue
            self.scheduled[path] = entry
            if old is not None and old.schedule == entry.schedule:
                continue
            self.next[path] = next(fires_after(entry.cron, now))
            what = f"'{entry.cron.cron}' {entry.cron.timezone}"
            logger.info(f"{entry.job}: {what}; next run {entry.when(self.next[path])} ({path})")
            if old is None:
                self._first_sight(entry, now)

    def _first_sight(self, entry: Entry, now: datetime) -> None:
        """A job new to this loop: catch up once if it missed a fire time since last seen."""
        latest, last = latest_fire(entry.cron, now), self.record.last(entry.job)
        if latest is None:
            return
        if last is None:  # remember it was seen, so that a later gap can be caught up
            self.record.claim(entry.job, latest, "seen: scheduler started")
        elif last < latest and entry.cron.catchup:
            logger.warning(
                f"{entry.job}: missed the run due at {entry.when(latest)} (last recorded "
                f"{entry.when(last)}); catchup: true, running it once"
            )
            self._launch(entry, latest)

    def _due(self, entry: Entry, due: datetime, now: datetime) -> None:
        latest = latest_fire(entry.cron, now) or due
        self.next[entry.path] = next(fires_after(entry.cron, now))
        late = now - latest > MISFIRE
        if late or latest > due:
            before = latest_fire(entry.cron, latest - timedelta(microseconds=1)) or due
            missed = latest if late else before
            span = entry.when(due) + ("" if missed == due else f" to {entry.when(missed)}")
            verdict = "running once now" if entry.cron.catchup else "not replayed (catchup: false)"
            logger.warning(f"{entry.job}: missed the run(s) due at {span}; {verdict}")
        if late and not entry.cron.catchup:
            self.record.claim(entry.job, latest, "missed")
        else:
            self._launch(entry, latest)

    def _launch(self, entry: Entry, fire: datetime) -> None:
        child, due = self.running.get(entry.job), entry.when(fire)
        if child is not None:
            previous = entry.when(child.fire)
            logger.warning(
                f"{entry.job}: skipped the run due at {due}: "
                f"the run due at {previous} is still running"
            )
            self.record.claim(entry.job, fire, "skipped: previous run still running")
            return
        if not self.record.claim(entry.job, fire, "started"):
            logger.info(f"{entry.job}: the run due at {due} was already run; skipped")
            return
        try:
            handle = self.launcher(entry)
        except OSError as exc:
            logger.error(f"{entry.job}: could not start the run due at {due}: {exc}")
            self.record.update(entry.job, fire, "failed to start")
            self.codes.append(1)
            return
        self.running[entry.job] = _Child(entry, fire, handle)
        logger.info(
            f"{entry.job}: started the run due at {due} (pid {getattr(handle, 'pid', '?')})"
        )

    def _reap(self) -> None:
        for job, child in list(self.running.items()):
            code = child.handle.poll()
            if code is None:
                continue
            del self.running[job]
            code = 128 - code if code < 0 else code  # killed by signal N: 128 + N, as a shell says
            self.codes.append(code)
            self.record.update(job, child.fire, outcome(code))
            level = "INFO" if code == 0 else "WARNING" if code == 5 else "ERROR"
            due = child.entry.when(child.fire)
            logger.log(level, f"{job}: run due at {due} exited {code}: {outcome(code)}")
