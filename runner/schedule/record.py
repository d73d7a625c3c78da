"""Which fire times were run, missed or skipped, kept in the state store so none runs twice."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import sqlalchemy as sa

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
