"""Cron expressions read in a time zone, as UTC instants, with explicit clock-change rules.

A time in a spring gap fires at the first instant after it (02:30 Europe/Oslo fires at 03:00); in
the hour repeated in autumn, a fixed hour fires once (the first pass) while a ``*`` hour
(``*/15 * * * *``) follows real time and fires in both passes.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from croniter import CroniterBadDateError, croniter

from runner.spec.models import Schedule

# croniter only does calendar arithmetic, on naive wall-clock times; the clock-change rules are
# applied here, explicitly. (croniter's tz-aware mode fires "0 2 * * *" twice when clocks go
# back, and filtering its output is a trap: aware datetimes sharing a tzinfo compare by wall
# clock, ignoring fold, so 02:00 of the second pass sorts before 02:45 of the first.)
_SHIFT = timedelta(hours=3)
"""More than any clock change: how far a repeated hour can reach back."""


def zone(schedule: Schedule) -> ZoneInfo:
    return ZoneInfo(schedule.timezone)


def _every_hour(cron: str) -> bool:
    """A ``*`` hour field: the job follows real time through a clock change."""
    fields = cron.split()
    return cron.strip() == "@hourly" or (len(fields) > 1 and fields[1].startswith("*"))


def _instants(wall: datetime, tz: ZoneInfo) -> tuple[datetime, datetime | None]:
    """The UTC instants of a wall-clock time: the first, and the second pass of a repeated hour.

    A time in the gap of a spring change maps to the first instant after the gap.
    """
    after_change = wall.replace(tzinfo=tz, fold=1)
    early, late = wall.replace(tzinfo=tz).astimezone(UTC), after_change.astimezone(UTC)
    if early <= late:
        return early, (late if late > early else None)
    lo, hi = late, early  # a gap: the clocks changed at an instant in (lo, hi]
    while hi - lo > timedelta(seconds=1):
        mid = lo + (hi - lo) / 2
        changed = mid.astimezone(tz).utcoffset() == after_change.utcoffset()
        lo, hi = (lo, mid) if changed else (mid, hi)
    return hi.replace(microsecond=0), None


def _wall(t: datetime, tz: ZoneInfo, pick: Callable[..., timedelta]) -> datetime:
    """``t`` as a naive wall time, using the smaller/larger (``pick``) offset near ``t``."""
    offsets = [(x.astimezone(tz).utcoffset() or timedelta()) for x in (t - _SHIFT, t, t + _SHIFT)]
    return (t + pick(offsets)).replace(tzinfo=None)


def fires_after(schedule: Schedule, after: datetime) -> Iterator[datetime]:
    """The fire times strictly after ``after`` (aware), in order, as aware UTC datetimes.

    Example:
        >>> s = Schedule(cron="0 2 * * *", timezone="Europe/Oslo")
        >>> [f"{t:%m-%d %H:%M}" for t in fires_after(s, datetime(2024, 10, 26, tzinfo=UTC))][:3]
        ['10-26 00:00', '10-27 00:00', '10-28 01:00']
    """
    tz, both = zone(schedule), _every_hour(schedule.cron)
    walls = croniter(schedule.cron, _wall(after, tz, min) - timedelta(seconds=1))
    second_passes: list[datetime] = []  # instants that come after later walls' first passes
    last = after
    while True:
        try:
            first, second = _instants(walls.get_next(datetime), tz)
        except CroniterBadDateError:  # e.g. "0 0 30 2 *": never
            return
        while second_passes and second_passes[0] < first:
            t = heapq.heappop(second_passes)
            if t > last:
                last = t
                yield t
        if second is not None and both:
            heapq.heappush(second_passes, second)
        if first > last:
            last = first
            yield first


def latest_fire(schedule: Schedule, at: datetime) -> datetime | None:
    """The most recent fire time at or before ``at`` (aware UTC), or None if it never fired."""
    tz, both = zone(schedule), _every_hour(schedule.cron)
    walls = croniter(schedule.cron, _wall(at, tz, max) + timedelta(seconds=1))
    best: datetime | None = None
    while True:
        try:
            first, second = _instants(walls.get_prev(datetime), tz)
        except CroniterBadDateError:
            return best
        for t in (first, second if both else None):
            if t is not None and t <= at and (best is None or t > best):
                best = t
        # Walls run backwards; once one outside a repeated hour is no later than the best,
        # no earlier wall can give a later instant.
        if best is not None and second is None and first <= best:
            return best


def when(t: datetime, tz: ZoneInfo) -> str:
    """``2024-06-02 02:00 CEST (00:00 UTC)``: a fire time for logs, in the job's zone."""
    local = t.astimezone(tz)
    utc = "" if local.utcoffset() == timedelta() else f" ({t.astimezone(UTC):%H:%M} UTC)"
    return f"{local:%Y-%m-%d %H:%M %Z}{utc}"
