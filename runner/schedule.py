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
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Protocol

import sqlalchemy as sa
from loguru import logger

from runner._cron import fires_after, latest_fire, when, zone
from runner.errors import SpecError, SpecIssue, UsageError
from runner.spec.load import load
from runner.spec.models import Schedule

TICK = 1.0
"""Seconds between looks at the clock, the children and the spec files."""
MISFIRE = timedelta(seconds=60)
"""A fire time noticed later than this (suspend, clock jump) counts as missed."""
REAP = 0.25
"""Seconds between looks at running children while waiting for them (``--once``, stopping)."""
KILL_AFTER = 30.0
"""Seconds a child gets after SIGTERM before it is killed."""
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


# --- the job files ------------------------------------------------------------------------------
@dataclass(frozen=True)
class Entry:
    """A job file the scheduler knows: its job name and schedule (None: unscheduled)."""

    path: Path
    job: str
    schedule: Schedule | None

    @property
    def cron(self) -> Schedule:
        assert self.schedule is not None, f"job '{self.job}' has no schedule"
        return self.schedule

    def when(self, t: datetime) -> str:
        return when(t, zone(self.cron))


class Specs:
    """The job specs under ``paths`` (files, or folders of ``*.yaml``/``*.yml``).

    :meth:`refresh` loads the files that are new or whose mtime or size changed. A spec that
    becomes invalid is logged at file:line and keeps its last good schedule, so a half-saved
    edit does not silently stop a nightly job: its runs then fail with exit 2, in the log,
    until the file is fixed. A deleted file drops its job.
    """

    def __init__(self, paths: Sequence[str | Path]) -> None:
        self.paths = [Path(p) for p in paths]
        self.entries: dict[Path, Entry] = {}
        self.errors: dict[Path, list[SpecIssue]] = {}
        self._stamps: dict[Path, tuple[int, int]] = {}

    def files(self) -> list[Path]:
        found: list[Path] = []
        for path in self.paths:
            if path.is_dir():  # connections.yaml beside the jobs is no job (runner.gitops)
                from runner.gitops import is_spec

                found += sorted(p for p in path.rglob("*.y*ml") if is_spec(p) and p.is_file())
            elif path.is_file():
                found.append(path)
        return list(dict.fromkeys(found))

    def refresh(self) -> list[Path]:
        """Reload what changed on disk; returns the files whose entry may have changed."""
        files = self.files()
        changed = [p for p in self._stamps if p not in files]
        for gone in changed:
            del self._stamps[gone]
            self.errors.pop(gone, None)
            if self.entries.pop(gone, None):
                logger.info(f"{gone}: removed")
        for path in files:
            try:
                st = path.stat()
            except OSError:
                continue
            if self._stamps.get(path) != (st.st_mtime_ns, st.st_size):
                self._stamps[path] = (st.st_mtime_ns, st.st_size)
                self._load(path)
                changed.append(path)
        return changed

    def scheduled(self) -> list[Entry]:
        return [e for e in self.entries.values() if e.schedule is not None]

    def _load(self, path: Path) -> None:
        try:
            job = load(path)
        except SpecError as exc:
            self.errors[path] = exc.errors
            for issue in exc.errors:
                logger.error(issue.headline())
            kept = self.entries.get(path)
            if kept is not None and kept.schedule is not None:
                cron = kept.schedule.cron
                logger.error(
                    f"{path}: invalid; keeping its last good schedule '{cron}' until fixed"
                )
            else:
                logger.error(f"{path}: invalid; not scheduled until it is fixed")
            return
        self.errors.pop(path, None)
        schedule = job.schedule
        if schedule and next(fires_after(schedule, datetime.now(UTC)), None) is None:
            logger.error(f"{path}: schedule '{schedule.cron}' never fires; not scheduled")
            schedule = None
        self.entries[path] = Entry(path, job.name, schedule)
        twins = [str(e.path) for e in self.scheduled() if e.job == job.name and e.path != path]
        if twins and schedule:
            logger.warning(f"{path}: job '{job.name}' is also in {', '.join(twins)} (one lock)")


# --- which fire times were handled --------------------------------------------------------------
schedule_fires = sa.Table(
    "etlrun_schedule_fires",
    sa.MetaData(),
    sa.Column("job", sa.String(255), primary_key=True),
    sa.Column("fire_at", sa.DateTime, primary_key=True),  # naive UTC, like the rest of the store
    sa.Column("outcome", sa.String(128), nullable=False),
    sa.Column("host", sa.String(255)),
    sa.Column("recorded_at", sa.DateTime, nullable=False),
)


class StateRecord:
    """Each job's fire times and what became of them (started, ok, missed, skipped, ...).

    Kept in the state store, so a restart, ``--once`` from cron and a second scheduler agree;
    the primary key makes :meth:`claim` atomic across processes. ``sqlite://`` keeps it in memory.
    """

    KEEP = timedelta(days=30)

    def __init__(self, url: str | None = None) -> None:
        from runner.state.store import StateStore

        self.store = StateStore(url)
        schedule_fires.metadata.create_all(self.store.engine)

    def last(self, job: str) -> datetime | None:
        """The latest fire time recorded for ``job``."""
        latest = sa.select(sa.func.max(schedule_fires.c.fire_at)).where(schedule_fires.c.job == job)
        with self.store.engine.connect() as conn:
            found = conn.execute(latest).scalar()
        return found.replace(tzinfo=UTC) if found else None

    def claim(self, job: str, fire: datetime, outcome: str) -> bool:
        """Record ``fire``; False if it, or a later fire time of ``job``, is recorded already."""
        last, at = self.last(job), _naive(fire)
        if last is not None and last >= fire:
            return False
        row = {"job": job, "fire_at": at, "outcome": outcome, "host": self.store.host}
        table = schedule_fires
        try:
            with self.store.engine.begin() as conn:
                conn.execute(table.insert().values(recorded_at=_naive(datetime.now(UTC)), **row))
                conn.execute(
                    table.delete().where((table.c.job == job) & (table.c.fire_at < at - self.KEEP))
                )
        except sa.exc.IntegrityError:  # another process claimed it first
            return False
        return True

    def update(self, job: str, fire: datetime, outcome: str) -> None:
        table, now = schedule_fires, _naive(datetime.now(UTC))
        with self.store.engine.begin() as conn:
            row = (table.c.job == job) & (table.c.fire_at == _naive(fire))
            conn.execute(table.update().where(row).values(outcome=outcome, recorded_at=now))


def _naive(t: datetime) -> datetime:
    return t.astimezone(UTC).replace(tzinfo=None)


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
