"""The scheduler over simulated time: a fake clock and launcher run a day in milliseconds."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa
from loguru import logger

from runner.schedule import (
    Entry,
    Scheduler,
    Specs,
    StateRecord,
    child_command,
    fires_after,
    latest_fire,
    list_text,
    schedule_fires,
    worst,
)
from runner.spec.models import Schedule

OSLO = ZoneInfo("Europe/Oslo")
SPEC = "source: sqlite:///a.db\ntarget: sqlite:///b.db\ntables: [t]\n"


def utc(y: int, mo: int, d: int, h: int = 0, mi: int = 0, s: int = 0) -> datetime:
    return datetime(y, mo, d, h, mi, s, tzinfo=UTC)


def oslo(y: int, mo: int, d: int, h: int = 0, mi: int = 0) -> datetime:
    return datetime(y, mo, d, h, mi, tzinfo=OSLO).astimezone(UTC)


class Clock:
    """Simulated time; ``sleep`` advances it, and asks the scheduler to stop at ``until``."""

    def __init__(self, start: datetime, until: datetime | None = None) -> None:
        self.t, self.until = start, until
        self.scheduler: Scheduler | None = None
        self.gaps: dict[datetime, timedelta] = {}  # a sleep past this time oversleeps this much

    def now(self) -> datetime:
        return self.t

    def sleep(self, seconds: float) -> None:
        wake = self.t + timedelta(seconds=seconds)
        for at, gap in list(self.gaps.items()):
            if self.t < at <= wake:  # the machine was suspended at `at`
                del self.gaps[at]
                wake = at + gap
        self.t = wake
        if self.until and self.t >= self.until and self.scheduler:
            self.until = None  # one SIGTERM; a second one would cut the grace period short
            self.scheduler.request_stop()


class FakeRun:
    """A child that exits with ``code`` once it has run ``seconds`` of simulated time."""

    def __init__(self, clock: Clock, seconds: float, code: int) -> None:
        self.clock, self.code = clock, code
        self.ends = clock.now() + timedelta(seconds=seconds)
        self.terminated = False

    def poll(self) -> int | None:
        return self.code if self.terminated or self.clock.now() >= self.ends else None

    def terminate(self) -> None:
        self.terminated, self.code = True, 143

    def wait(self, timeout: float | None = None) -> int:
        return self.code


class Launcher:
    def __init__(self, clock: Clock, seconds: float = 60, code: int = 0) -> None:
        self.clock, self.seconds, self.code = clock, seconds, code
        self.started: list[tuple[str, datetime]] = []
        self.runs: list[FakeRun] = []

    def __call__(self, entry: Entry) -> FakeRun:
        self.started.append((entry.job, self.clock.now()))
        self.runs.append(FakeRun(self.clock, self.seconds, self.code))
        return self.runs[-1]

    def times(self, job: str) -> list[datetime]:
        return [t for j, t in self.started if j == job]


@pytest.fixture
def logs() -> Iterator[list[str]]:
    lines: list[str] = []
    sink = logger.add(lambda m: lines.append(m.record["message"]), level="DEBUG")
    yield lines
    logger.remove(sink)


def write(path: Path, schedule: str, stamp: int = 0) -> Path:
    path.write_text(SPEC + f"schedule: {schedule}\n")
    if stamp:  # a distinct mtime, as an editor's save would give
        os.utime(path, ns=(stamp, stamp))
    return path


def make(
    tmp_path: Path, clock: Clock, launcher: Launcher, record: StateRecord | None = None
) -> Scheduler:
    scheduler = Scheduler(
        Specs([tmp_path]),
        launcher,
        now=clock.now,
        sleep=clock.sleep,
        record=record or StateRecord("sqlite://"),  # in memory
        tick=3600,  # simulated: wake at each fire time, or hourly
    )
    clock.scheduler = scheduler
    return scheduler


# --- fire times ---------------------------------------------------------------------------------
def take(schedule: Schedule, start: datetime, end: datetime) -> list[datetime]:
    out: list[datetime] = []
    for t in fires_after(schedule, start):
        if t >= end:
            return out
        out.append(t)
    return out


def test_daily_oslo_through_both_clock_changes() -> None:
    daily = Schedule(cron="0 2 * * *", timezone="Europe/Oslo")
    spring = take(daily, oslo(2024, 3, 30, 12), oslo(2024, 4, 1, 12))
    # 02:00 does not exist on 31 March: it fires at the first instant after the gap
    assert spring == [oslo(2024, 3, 31, 3), oslo(2024, 4, 1, 2)]
    assert spring[0] == utc(2024, 3, 31, 1)
    autumn = take(daily, oslo(2024, 10, 26, 12), oslo(2024, 10, 28, 12))
    # 02:00 happens twice on 27 October: a fixed hour fires once, at the first pass
    assert autumn == [utc(2024, 10, 27, 0), utc(2024, 10, 28, 1)]


def test_every_15_minutes_follows_real_time_across_clock_changes() -> None:
    every = Schedule(cron="*/15 * * * *", timezone="Europe/Oslo")
    spring = take(every, oslo(2024, 3, 31, 0) - timedelta(seconds=1), oslo(2024, 4, 1, 0))
    autumn = take(every, oslo(2024, 10, 27, 0) - timedelta(seconds=1), oslo(2024, 10, 28, 0))
    assert len(spring) == 23 * 4 and len(autumn) == 25 * 4
    for day in (spring, autumn):
        assert all(b - a == timedelta(minutes=15) for a, b in zip(day, day[1:], strict=False))


def test_fire_times_do_not_depend_on_where_the_iteration_starts() -> None:
    # the repeated hour is found from any starting point, even one inside it
    every = Schedule(cron="*/15 * * * *", timezone="Europe/Oslo")
    end = utc(2024, 10, 27, 5)
    day = take(every, utc(2024, 10, 26, 20), end)
    for minutes in range(0, 9 * 60, 7):
        start = utc(2024, 10, 26, 20) + timedelta(minutes=minutes)
        assert take(every, start, end) == [t for t in day if t > start], start


def test_latest_fire_matches_forward_iteration_around_clock_changes() -> None:
    for cron in ("0 2 * * *", "30 2 * * *", "*/15 * * * *", "45 1,2,3 * * *"):
        schedule = Schedule(cron=cron, timezone="Europe/Oslo")
        for day in (utc(2024, 3, 30, 22), utc(2024, 10, 26, 22)):
            forward = take(schedule, day - timedelta(days=2), day + timedelta(hours=8))
            for minutes in range(0, 8 * 60, 5):
                at = day + timedelta(minutes=minutes)
                assert latest_fire(schedule, at) == max(f for f in forward if f <= at), (cron, at)
    assert latest_fire(Schedule(cron="0 2 * * *"), utc(2024, 1, 1, 2)) == utc(2024, 1, 1, 2)


# --- the loop over a simulated day --------------------------------------------------------------
def test_two_jobs_over_a_day_fire_at_exactly_the_expected_times(tmp_path: Path) -> None:
    write(tmp_path / "quarter.yaml", "'*/15 * * * *'")
    write(tmp_path / "nightly.yaml", "{cron: '0 2 * * *', timezone: Europe/Oslo}")
    start = oslo(2024, 6, 1, 0) - timedelta(seconds=30)
    clock = Clock(start, until=start + timedelta(days=1))
    launcher = Launcher(clock)
    assert make(tmp_path, clock, launcher).run() == 0
    assert launcher.times("nightly") == [utc(2024, 6, 1, 0)]  # 02:00 CEST
    midnight = oslo(2024, 6, 1, 0)
    assert launcher.times("quarter") == [midnight + timedelta(minutes=15 * k) for k in range(96)]


def test_a_day_with_a_clock_change(tmp_path: Path) -> None:
    write(tmp_path / "nightly.yaml", "{cron: '0 2 * * *', timezone: Europe/Oslo}")
    write(tmp_path / "hourly.yaml", "{cron: '0 * * * *', timezone: Europe/Oslo}")
    start = oslo(2024, 10, 27, 0) - timedelta(seconds=1)
    clock = Clock(start, until=oslo(2024, 10, 28, 0) - timedelta(seconds=1))
    launcher = Launcher(clock)
    make(tmp_path, clock, launcher).run()
    assert launcher.times("nightly") == [utc(2024, 10, 27, 0)]
    assert launcher.times("hourly") == [
        utc(2024, 10, 26, 22) + timedelta(hours=h) for h in range(25)
    ]


def test_an_overlapping_run_is_skipped_and_logged(tmp_path: Path, logs: list[str]) -> None:
    write(tmp_path / "slow.yaml", "'*/15 * * * *'")
    start = utc(2024, 6, 1, 0) - timedelta(seconds=1)
    clock = Clock(start, until=utc(2024, 6, 1, 1))
    launcher = Launcher(clock, seconds=20 * 60)  # each run takes 20 minutes
    make(tmp_path, clock, launcher).run()
    assert launcher.times("slow") == [utc(2024, 6, 1, 0), utc(2024, 6, 1, 0, 30)]
    skipped = [line for line in logs if "skipped" in line]
    assert skipped == [
        "slow: skipped the run due at 2024-06-01 00:15 UTC: "
        "the run due at 2024-06-01 00:00 UTC is still running",
        "slow: skipped the run due at 2024-06-01 00:45 UTC: "
        "the run due at 2024-06-01 00:30 UTC is still running",
    ]


def test_exit_codes_are_logged_and_mapped(tmp_path: Path, logs: list[str]) -> None:
    write(tmp_path / "locked.yaml", "'0 * * * *'")
    clock = Clock(utc(2024, 6, 1, 0, 59), until=utc(2024, 6, 1, 1, 30))
    launcher = Launcher(clock, seconds=5, code=5)
    scheduler = make(tmp_path, clock, launcher)
    scheduler.run()
    assert scheduler.codes == [5]
    assert "locked: run due at 2024-06-01 01:00 UTC exited 5: skipped: still running " in (
        "\n".join(logs)
    )


def test_missed_runs_are_not_replayed_without_catchup(tmp_path: Path, logs: list[str]) -> None:
    write(tmp_path / "hourly.yaml", "'0 * * * *'")
    clock = Clock(utc(2024, 6, 1, 0, 30), until=utc(2024, 6, 1, 8))
    clock.gaps[utc(2024, 6, 1, 1, 30)] = timedelta(hours=3)  # suspended 01:30 -> 04:30
    launcher = Launcher(clock)
    make(tmp_path, clock, launcher).run()
    assert launcher.times("hourly") == [utc(2024, 6, 1, h) for h in (1, 5, 6, 7)]
    assert (
        "hourly: missed the run(s) due at 2024-06-01 02:00 UTC to 2024-06-01 04:00 UTC; "
        "not replayed (catchup: false)" in logs
    )


def test_catchup_runs_once_after_a_gap(tmp_path: Path) -> None:
    write(tmp_path / "hourly.yaml", "{cron: '0 * * * *', catchup: true}")
    clock = Clock(utc(2024, 6, 1, 0, 30), until=utc(2024, 6, 1, 8))
    clock.gaps[utc(2024, 6, 1, 1, 30)] = timedelta(hours=3)
    launcher = Launcher(clock)
    make(tmp_path, clock, launcher).run()
    woke = utc(2024, 6, 1, 4, 30)  # one run for the missed 02:00, 03:00 and 04:00
    assert launcher.times("hourly") == [utc(2024, 6, 1, 1), woke, *map(utc6_1, (5, 6, 7))]


def utc6_1(hour: int) -> datetime:
    return utc(2024, 6, 1, hour)


def test_catchup_at_start_needs_a_record_and_runs_once(tmp_path: Path) -> None:
    write(tmp_path / "nightly.yaml", "{cron: '0 2 * * *', catchup: true}")
    write(tmp_path / "plain.yaml", "'0 2 * * *'")
    record = StateRecord("sqlite://")
    for job in ("nightly", "plain"):
        record.claim(job, utc(2024, 5, 29, 2), "ok")  # last ran three days ago
    clock = Clock(utc(2024, 6, 1, 9), until=utc(2024, 6, 1, 12))
    launcher = Launcher(clock)
    make(tmp_path, clock, launcher, record).run()
    assert launcher.started == [("nightly", utc(2024, 6, 1, 9))]
    assert outcomes(record, "nightly") == {utc(2024, 5, 29, 2): "ok", utc(2024, 6, 1, 2): "ok"}

    fresh = StateRecord(
        "sqlite://"
    )  # never seen: nothing to catch up, but the sighting is recorded
    clock = Clock(utc(2024, 6, 1, 9), until=utc(2024, 6, 1, 12))
    launcher = Launcher(clock)
    make(tmp_path, clock, launcher, fresh).run()
    assert launcher.started == []
    assert fresh.last("nightly") == utc(2024, 6, 1, 2)


def test_specs_are_reloaded_when_a_file_changes(tmp_path: Path, logs: list[str]) -> None:
    job = write(tmp_path / "job.yaml", "'0 * * * *'", stamp=1_000_000_000)
    clock = Clock(utc(2024, 6, 1, 0, 30))
    launcher = Launcher(clock)
    scheduler = make(tmp_path, clock, launcher)
    scheduler.start()
    assert scheduler.next[job] == utc(2024, 6, 1, 1)

    write(job, "'*/10 * * * *'", stamp=2_000_000_000)  # a new schedule
    scheduler.tick()
    assert scheduler.next[job] == utc(2024, 6, 1, 0, 40)

    job.write_text(SPEC + "schedule: '61 * * * *'\n")  # an invalid edit keeps the last good one
    os.utime(job, ns=(3_000_000_000,) * 2)
    scheduler.tick()
    assert scheduler.next[job] == utc(2024, 6, 1, 0, 40)
    assert any(line.startswith(f"{job}:4:11: schedule: '61 * * * *' is not") for line in logs)
    assert f"{job}: invalid; keeping its last good schedule '*/10 * * * *' until fixed" in logs
    clock.t = utc(2024, 6, 1, 0, 40)
    scheduler.tick()
    assert launcher.times("job") == [utc(2024, 6, 1, 0, 40)]

    other = write(tmp_path / "new.yaml", "'0 3 * * *'")  # a new file is picked up
    write(job, "null", stamp=4_000_000_000)  # the schedule removed: unscheduled
    scheduler.tick()
    assert list(scheduler.next) == [other]
    other.unlink()  # a deleted file drops its job
    scheduler.tick()
    assert scheduler.next == {}


def test_an_invalid_spec_at_start_is_not_scheduled(tmp_path: Path, logs: list[str]) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(SPEC + "schedule: {cron: '0 2 * * *', timezone: Mars/Base}\n")
    clock = Clock(utc(2024, 6, 1))
    scheduler = make(tmp_path, clock, Launcher(clock))
    scheduler.start()
    assert scheduler.next == {}
    message = "schedule.timezone: unknown time zone 'Mars/Base'; use an IANA name like Europe/Oslo"
    assert f"{bad}:4:41: {message}" in logs
    assert f"{bad}: invalid; not scheduled until it is fixed" in logs


# --- stopping -----------------------------------------------------------------------------------
def test_stop_waits_for_running_children_within_grace(tmp_path: Path) -> None:
    write(tmp_path / "job.yaml", "'0 * * * *'")
    clock = Clock(utc(2024, 6, 1, 0, 59), until=utc(2024, 6, 1, 1, 0, 30))
    launcher = Launcher(clock, seconds=45)  # stop comes 30 s in; the run ends 15 s later
    scheduler = make(tmp_path, clock, launcher)
    scheduler.tick_seconds = 1
    assert scheduler.run(grace=60) == 0
    assert not launcher.runs[0].terminated and scheduler.codes == [0]
    assert clock.now() < utc(2024, 6, 1, 1, 0, 50)


def test_stop_terminates_children_after_grace(tmp_path: Path, logs: list[str]) -> None:
    write(tmp_path / "job.yaml", "'0 * * * *'")
    clock = Clock(utc(2024, 6, 1, 0, 59), until=utc(2024, 6, 1, 1, 0, 30))
    launcher = Launcher(clock, seconds=3600)
    scheduler = make(tmp_path, clock, launcher)
    scheduler.tick_seconds = 1
    assert scheduler.run(grace=10) == 0
    assert launcher.runs[0].terminated and scheduler.codes == [143]
    assert "job: still running; stopping it (SIGTERM)" in logs
    assert utc(2024, 6, 1, 1, 0, 40) <= clock.now() <= utc(2024, 6, 1, 1, 0, 42)


def test_a_second_signal_stops_waiting(tmp_path: Path) -> None:
    write(tmp_path / "job.yaml", "'0 * * * *'")
    clock = Clock(utc(2024, 6, 1, 0, 59), until=utc(2024, 6, 1, 1, 0, 30))
    launcher = Launcher(clock, seconds=3600)
    scheduler = make(tmp_path, clock, launcher)
    scheduler.tick_seconds = 1
    scheduler.start()
    clock.t = utc(2024, 6, 1, 1)
    scheduler.tick()
    scheduler.request_stop()
    scheduler.request_stop()
    scheduler.shutdown(grace=600)
    assert launcher.runs[0].terminated and clock.now() == utc(2024, 6, 1, 1)


# --- --once and --list ------------------------------------------------------------------------
def test_once_runs_what_is_due_once_and_returns_the_worst_code(tmp_path: Path) -> None:
    write(tmp_path / "due.yaml", "'0 * * * *'")
    write(tmp_path / "later.yaml", "'0 3 * * *'")
    (tmp_path / "failing.yaml").write_text(SPEC.replace("[t]", "[u]") + "schedule: '*/5 * * * *'\n")
    record = StateRecord("sqlite://")
    clock = Clock(utc(2024, 6, 1, 1, 0, 20))
    launcher = Launcher(clock, seconds=5)
    scheduler = make(tmp_path, clock, launcher, record)
    scheduler.tick_seconds = 1
    assert scheduler.once(timedelta(minutes=1)) == 0
    assert sorted(j for j, _ in launcher.started) == ["due", "failing"]

    again = make(tmp_path, clock, Launcher(clock), record)  # same fire time: not run twice
    assert again.once(timedelta(minutes=1)) == 0
    assert again.launcher.started == []  # type: ignore[attr-defined]

    clock.t = utc(2024, 6, 1, 1, 5, 10)
    failing = Launcher(clock, seconds=5, code=1)
    assert make(tmp_path, clock, failing, record).once(timedelta(minutes=1)) == 1
    assert [j for j, _ in failing.started] == ["failing"]


def test_worst_code_ranks_skipped_below_failures() -> None:
    assert worst([]) == 0 and worst([0, 0]) == 0
    assert worst([0, 5]) == 5 and worst([5, 1]) == 1 and worst([3, 1, 5]) == 3


def test_list_shows_next_fire_times_in_zone_and_utc(tmp_path: Path) -> None:
    write(tmp_path / "nightly.yaml", "{cron: '0 2 * * *', timezone: Europe/Oslo}")
    (tmp_path / "adhoc.yaml").write_text(SPEC)
    specs = Specs([tmp_path])
    specs.refresh()
    assert list_text(specs, oslo(2024, 3, 29, 12), 3).splitlines() == [
        f"adhoc  ({tmp_path / 'adhoc.yaml'})  unscheduled",
        f"nightly  ({tmp_path / 'nightly.yaml'})  '0 2 * * *' Europe/Oslo",
        "  2024-03-30 02:00 CET +0100   2024-03-30 01:00 UTC",
        "  2024-03-31 03:00 CEST +0200   2024-03-31 01:00 UTC",
        "  2024-04-01 02:00 CEST +0200   2024-04-01 00:00 UTC",
    ]


# --- the record in the state store and the child command -----------------------------------------
def outcomes(record: StateRecord, job: str) -> dict[datetime, str]:
    query = sa.select(schedule_fires.c.fire_at, schedule_fires.c.outcome).where(
        schedule_fires.c.job == job
    )
    with record.store.engine.connect() as conn:
        return {at.replace(tzinfo=UTC): outcome for at, outcome in conn.execute(query)}


def test_state_record_claims_each_fire_time_once(tmp_path: Path) -> None:
    record = StateRecord(f"sqlite:///{tmp_path / 'state.db'}")
    assert record.last("job") is None
    assert record.claim("job", utc(2024, 6, 1, 2), "started")
    assert not record.claim("job", utc(2024, 6, 1, 2), "started")
    assert not record.claim("job", utc(2024, 5, 31, 2), "started")  # older than the last
    record.update("job", utc(2024, 6, 1, 2), "ok")
    other = StateRecord(f"sqlite:///{tmp_path / 'state.db'}")  # another process, same store
    assert other.last("job") == utc(2024, 6, 1, 2)
    assert other.claim("job", utc(2024, 6, 2, 2), "started")


def test_child_command() -> None:
    path = Path("jobs/nightly.yaml")
    assert child_command(path) == [sys.executable, "-m", "runner", "run", "jobs/nightly.yaml"]
    assert child_command(path, "sqlite:///s.db", "json")[-4:] == [
        "--state",
        "sqlite:///s.db",
        "--log-format",
        "json",
    ]
