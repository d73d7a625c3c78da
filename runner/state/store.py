"""What has happened: runs, tasks, locks and watermarks, in sqlite (default) or any SQLAlchemy URL.

The default store is ``.etlrun/state.db`` under the working folder, created 0600, in WAL mode
with ``synchronous=FULL`` so a recorded chunk survives a power cut. A team or a CI runner points
``--state`` / ``ETLRUN_STATE`` at PostgreSQL instead.

This module opens the store; what it keeps is in the modules beside it, each a part of
:class:`StateStore`: :mod:`~runner.state.runs` (runs and tasks), :mod:`~runner.state.locks`,
:mod:`~runner.state.watermarks`, :mod:`~runner.state.chunk_checksums` and
:mod:`~runner.state.purge_audit`; the tables are in :mod:`~runner.state.tables`. Their names
are re-exported here, so ``from runner.state.store import ...`` keeps working.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import Engine, make_url

try:
    import fcntl
except ImportError:  # Windows: no flock; the retry below is all there is
    fcntl = None  # type: ignore[assignment]

from runner.connectors.base import map_driver_errors
from runner.secrets import mask_url
from runner.state import purge_audit
from runner.state.chunk_checksums import ChunkChecksums
from runner.state.locks import JobLocks, _pid_alive
from runner.state.runs import UNFINISHED, Resume, RunRecords, new_run_id, sanitize_record
from runner.state.tables import (
    chunk_checksums,
    files,
    locks,
    metadata,
    now,
    purge_details,
    purge_log,
    purge_requests,
    runs,
    tasks,
    watermarks,
)
from runner.state.watermarks import Watermarks

__all__ = [
    "DEFAULT_URL",
    "UNFINISHED",
    "Resume",
    "StateStore",
    "_pid_alive",
    "chunk_checksums",
    "files",
    "locks",
    "metadata",
    "new_run_id",
    "now",
    "purge_details",
    "purge_log",
    "purge_requests",
    "runs",
    "sanitize_record",
    "tasks",
    "watermarks",
]

DEFAULT_URL = "sqlite:///.etlrun/state.db"


@contextmanager
def _creating(url: str) -> Iterator[None]:
    """Hold an exclusive lock beside a sqlite store file while its tables are created or
    upgraded: two processes starting on a new file otherwise race on the WAL switch and the
    CREATE TABLEs, and sqlite's busy timeout does not cover either."""
    database = make_url(url).database if url.startswith("sqlite") else None
    if not database or database == ":memory:" or fcntl is None:
        yield
        return
    with open(f"{database}.lock", "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


class StateStore(RunRecords, JobLocks, Watermarks, ChunkChecksums):
    """The state store at ``url`` (default: ``ETLRUN_STATE``, else ``.etlrun/state.db``)."""

    def __init__(self, url: str | None = None) -> None:
        self.url = url or os.environ.get("ETLRUN_STATE") or DEFAULT_URL
        self.host = socket.gethostname()
        self.engine = self._open(self.url)
        with map_driver_errors(f"cannot open the state store {mask_url(self.url)}"):
            with _creating(self.url):
                for attempt in range(5):
                    try:
                        metadata.create_all(self.engine)
                        break
                    except (sa.exc.OperationalError, sa.exc.ProgrammingError):
                        # servers: processes creating a new store at once race table by table;
                        # whoever lost a table checks again and finds it made by the other
                        if attempt == 4:
                            raise
                self._add_missing_columns()

    def _open(self, url: str) -> Engine:
        parsed = make_url(url)
        if parsed.drivername.startswith("sqlite"):
            database = parsed.database
            if database and database != ":memory:":
                path = Path(database)
                path.parent.mkdir(parents=True, exist_ok=True)
                if not path.exists():
                    os.close(os.open(path, os.O_CREAT | os.O_WRONLY, 0o600))
            engine = sa.create_engine(parsed, connect_args={"timeout": 60})

            @event.listens_for(engine, "connect")
            def _pragmas(dbapi_connection: Any, _record: Any) -> None:
                cursor = dbapi_connection.cursor()
                cursor.execute("PRAGMA journal_mode=WAL")
                cursor.execute("PRAGMA synchronous=FULL")
                cursor.close()

            return engine
        if parsed.drivername in ("postgresql", "postgres"):
            parsed = parsed.set(drivername="postgresql+psycopg")
        return sa.create_engine(parsed, pool_pre_ping=True)

    def _add_missing_columns(self) -> None:
        """Stores made by an older etlrun get the columns added since (all nullable)."""
        inspector = sa.inspect(self.engine)
        for table in metadata.sorted_tables:
            have = {c["name"] for c in inspector.get_columns(table.name)}
            for column in table.columns:
                if column.name not in have:
                    kind = column.type.compile(dialect=self.engine.dialect)
                    with self.engine.begin() as conn:
                        conn.exec_driver_sql(
                            f"ALTER TABLE {table.name} ADD COLUMN {column.name} {kind}"
                        )

    def close(self) -> None:
        self.engine.dispose()

    # --- the purge audit (runner/state/purge_audit.py) ------------------------------------
    def purge_started(self, run_id: str, job: str, table: str, where: str, planned: int) -> None:
        with self.engine.begin() as conn:
            purge_audit.started(conn, run_id, job, table, where, planned)

    def purge_backed_up(self, run_id: str, table: str, chunk: int, detail: dict[str, Any]) -> None:
        with self.engine.begin() as conn:
            purge_audit.backed_up(conn, run_id, table, chunk, detail)

    def purge_deleted(self, run_id: str, table: str, backup_file: str, rows: int) -> None:
        with self.engine.begin() as conn:
            purge_audit.deleted(conn, run_id, table, backup_file, rows)

    def purge_finished(self, run_id: str, table: str, status: str) -> None:
        with self.engine.begin() as conn:
            purge_audit.finished(conn, run_id, table, status)

    def purge_step(self, run_id: str, table: str, step: str, message: str = "") -> None:
        with self.engine.begin() as conn:
            purge_audit.step(conn, run_id, table, step, message)

    def purges(self, job: str | None = None, limit: int = 20) -> list[dict[str, Any]]:
        """Purge requests, newest first, each with its chunk details and step log."""
        with self.engine.connect() as conn:
            return purge_audit.read(conn, job, limit)
