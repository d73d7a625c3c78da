"""One live run per job: the job lock in the state store, taken over from a dead local holder."""

from __future__ import annotations

import os

import sqlalchemy as sa
from loguru import logger
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError

from runner.errors import LockedError
from runner.state.tables import locks, now


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class JobLocks:
    """The lock methods of :class:`~runner.state.store.StateStore`."""

    engine: Engine
    host: str

    def acquire_lock(self, job: str, run_id: str) -> None:
        """Take the job's lock, or raise LockedError naming the live holder (exit 5)."""
        row = {
            "job": job,
            "run_id": run_id,
            "pid": os.getpid(),
            "host": self.host,
            "started_at": now(),
        }
        for _ in range(3):
            try:
                with self.engine.begin() as conn:
                    conn.execute(locks.insert().values(**row))
                return
            except IntegrityError:
                pass
            with self.engine.begin() as conn:
                holder = conn.execute(sa.select(locks).where(locks.c.job == job)).mappings().first()
                if holder is None:
                    continue
                if holder["host"] == self.host and not _pid_alive(holder["pid"]):
                    logger.warning(
                        "job '{}': taking over the lock of run {} (pid {} on {} is gone)",
                        job,
                        holder["run_id"],
                        holder["pid"],
                        holder["host"],
                    )
                    conn.execute(
                        locks.delete().where(
                            (locks.c.job == job)
                            & (locks.c.pid == holder["pid"])
                            & (locks.c.run_id == holder["run_id"])
                        )
                    )
                    continue
                raise LockedError(
                    f"job '{job}' is already running: run {holder['run_id']}, pid {holder['pid']} "
                    f"on {holder['host']}, started {holder['started_at']:%Y-%m-%d %H:%M:%S} UTC "
                    f"(if that process is dead on another host: etlrun state unlock {job})"
                )
        raise LockedError(f"job '{job}': could not take the lock")

    def release_lock(self, job: str, run_id: str) -> None:
        with self.engine.begin() as conn:
            conn.execute(locks.delete().where((locks.c.job == job) & (locks.c.run_id == run_id)))
