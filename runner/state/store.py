"""What has happened: runs, tasks, locks and watermarks, in sqlite (default) or any SQLAlchemy URL.

The default store is ``.etlrun/state.db`` under the working folder, created 0600, in WAL mode
with ``synchronous=FULL`` so a recorded chunk survives a power cut. A team or a CI runner points
``--state`` / ``ETLRUN_STATE`` at PostgreSQL instead.
"""

from __future__ import annotations

import json
import os
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from loguru import logger
from sqlalchemy import event
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.exc import IntegrityError

try:
    import fcntl
except ImportError:  # Windows: no flock; the retry below is all there is
    fcntl = None  # type: ignore[assignment]

from runner.connectors.base import map_driver_errors
from runner.errors import LockedError
from runner.secrets import mask_url, scrub
from runner.state import purge_audit

DEFAULT_URL = "sqlite:///.etlrun/state.db"

metadata = sa.MetaData()
runs = sa.Table(
    "etlrun_runs",
    metadata,
    sa.Column("run_id", sa.String(64), primary_key=True),
    sa.Column("job", sa.String(255), nullable=False, index=True),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("spec_hash", sa.String(64), nullable=False),
    sa.Column("plan_key", sa.String(64), nullable=False),
    sa.Column("plan_json", sa.Text, nullable=False),
    sa.Column("started_at", sa.DateTime, nullable=False),
    sa.Column("finished_at", sa.DateTime),
    sa.Column("attempts", sa.Integer, nullable=False, default=1),
    sa.Column("rows", sa.BigInteger, default=0),
    sa.Column("bytes", sa.BigInteger, default=0),
    sa.Column("rejected", sa.BigInteger, default=0),
    sa.Column("exit_code", sa.Integer),
    sa.Column("error", sa.Text),
    sa.Column("host", sa.String(255)),
    sa.Column("pid", sa.Integer),
    # JSON {table: [{column, class, rule}]}: what each column's sanitize rule was, never values
    sa.Column("sanitize", sa.Text),
)
tasks = sa.Table(
    "etlrun_tasks",
    metadata,
    sa.Column("run_id", sa.String(64), primary_key=True),
    sa.Column("task_id", sa.String(512), primary_key=True),
    sa.Column("table_name", sa.String(255), nullable=False),
    sa.Column("kind", sa.String(32), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("rows", sa.BigInteger, default=0),
    sa.Column("bytes", sa.BigInteger, default=0),
    sa.Column("seconds", sa.Float, default=0.0),
    sa.Column("rejected", sa.BigInteger, default=0),
    sa.Column("attempts", sa.Integer, default=0),
    sa.Column("run_attempt", sa.Integer, default=1),
    sa.Column("error", sa.Text),
    sa.Column("checksum", sa.String(128)),
    sa.Column("started_at", sa.DateTime),
    sa.Column("finished_at", sa.DateTime),
)
locks = sa.Table(
    "etlrun_locks",
    metadata,
    sa.Column("job", sa.String(255), primary_key=True),
    sa.Column("run_id", sa.String(64), nullable=False),
    sa.Column("pid", sa.Integer, nullable=False),
    sa.Column("host", sa.String(255), nullable=False),
    sa.Column("started_at", sa.DateTime, nullable=False),
)
watermarks = sa.Table(
    "etlrun_watermarks",
    metadata,
    sa.Column("job", sa.String(255), primary_key=True),
    sa.Column("table_name", sa.String(255), primary_key=True),
    sa.Column("value", sa.Text),
    sa.Column("value_type", sa.String(64)),
    sa.Column("run_id", sa.String(64)),
    sa.Column("updated_at", sa.DateTime),
)
# incremental strategy checksum: each chunk's checksum of the target as of the last run
chunk_checksums = sa.Table(
    "etlrun_chunk_checksums",
    metadata,
    sa.Column("job", sa.String(255), primary_key=True),
    sa.Column("table_name", sa.String(255), primary_key=True),
    sa.Column("chunk", sa.Integer, primary_key=True),
    sa.Column("signature", sa.String(64), nullable=False),
    sa.Column("lo", sa.Text),  # JSON key bounds: the chunk is lo < key <= hi (None: open)
    sa.Column("hi", sa.Text),
    sa.Column("rows", sa.BigInteger, nullable=False),
    sa.Column("sum1", sa.Text, nullable=False),  # text: the sums outgrow 64 bits
    sa.Column("sum2", sa.Text, nullable=False),
    sa.Column("run_id", sa.String(64)),
    sa.Column("updated_at", sa.DateTime),
)
# the purge audit (the seed's PURGE_REQUEST / PURGE_REQUEST_DETAILS / PURGE_MODULE_INPUT)
purge_requests = sa.Table(
    "etlrun_purge_requests",
    metadata,
    sa.Column("run_id", sa.String(64), primary_key=True),
    sa.Column("table_name", sa.String(255), primary_key=True),
    sa.Column("job", sa.String(255), nullable=False, index=True),
    sa.Column("where_sql", sa.Text, nullable=False),
    sa.Column("rows_planned", sa.BigInteger),
    sa.Column("rows_deleted", sa.BigInteger, default=0),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("started_at", sa.DateTime, nullable=False),
    sa.Column("finished_at", sa.DateTime),
)
purge_details = sa.Table(
    "etlrun_purge_details",
    metadata,
    sa.Column("backup_file", sa.String(1024), primary_key=True),
    sa.Column("run_id", sa.String(64), nullable=False, index=True),
    sa.Column("table_name", sa.String(255), nullable=False),
    sa.Column("chunk", sa.Integer, nullable=False),
    sa.Column("key_lo", sa.Text),
    sa.Column("key_hi", sa.Text),
    sa.Column("rows_backed_up", sa.BigInteger, nullable=False),
    sa.Column("rows_deleted", sa.BigInteger),
    sa.Column("sha256", sa.String(64), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("backed_up_at", sa.DateTime, nullable=False),
    sa.Column("deleted_at", sa.DateTime),
)
purge_log = sa.Table(
    "etlrun_purge_log",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("run_id", sa.String(64), nullable=False, index=True),
    sa.Column("table_name", sa.String(255), nullable=False),
    sa.Column("at", sa.DateTime, nullable=False),
    sa.Column("step", sa.String(32), nullable=False),
    sa.Column("message", sa.Text),
)
# the per-file state of file jobs (oeleo's `filelist`); read and written by runner.files.state
files = sa.Table(
    "etlrun_files",
    metadata,
    sa.Column("job", sa.String(255), primary_key=True),
    sa.Column("path", sa.String(1024), primary_key=True),  # under the source URL, '/'-separated
    sa.Column("size", sa.BigInteger),  # the source file's size and mtime when last copied/checked
    sa.Column("mtime", sa.Float),
    sa.Column("algo", sa.String(16)),  # sha256, md5, or size_mtime (no checksum)
    sa.Column("checksum", sa.String(128)),
    sa.Column("remote_path", sa.String(2048)),  # where it is on the target (no credentials)
    sa.Column("target_size", sa.BigInteger),
    sa.Column("copied_at", sa.DateTime),
    sa.Column("run_id", sa.String(64)),
    sa.Column("code", sa.Integer, nullable=False),  # 0 copy, 1 copy if changed, 2 locked
    sa.Column("updated_at", sa.DateTime),
)

UNFINISHED = ("running", "failed", "interrupted")


def now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def new_run_id(job: str) -> str:
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
    return f"{stamp}-{os.urandom(3).hex()}"


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def sanitize_record(plan_json: str) -> str | None:
    """What the run record keeps of a plan's sanitize rules: table -> column, class, rule.

    Only rule names and options are kept: the plan never holds a value or the key.
    """
    try:
        tables = json.loads(plan_json)["tables"]
    except (KeyError, ValueError, TypeError):
        return None
    record = {
        t["target"]: [
            {"column": c["column"], "class": c["class"], "rule": c["rule"]}
            for c in t["options"]["sanitize"]["columns"]
        ]
        for t in tables
        if (t.get("options") or {}).get("sanitize")
    }
    return json.dumps(record, sort_keys=True) if record else None


@dataclass
class Resume:
    run_id: str
    plan_json: str
    done: dict[str, dict[str, Any]] = field(default_factory=dict)
    """task_id -> its recorded row (rows, bytes, seconds) for tasks that committed."""


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


class StateStore:
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

    # --- locks ----------------------------------------------------------------------------
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

    # --- runs -----------------------------------------------------------------------------
    def resumable(self, job: str, plan_key: str) -> Resume | None:
        """The job's latest run if it did not finish and was planned from the same spec."""
        with self.engine.connect() as conn:
            last = (
                conn.execute(
                    sa.select(runs)
                    .where(runs.c.job == job)
                    .order_by(runs.c.started_at.desc())
                    .limit(1)
                )
                .mappings()
                .first()
            )
            if last is None or last["status"] not in UNFINISHED:
                return None
            if last["plan_key"] != plan_key:
                logger.warning(
                    "job '{}': the unfinished run {} was planned from another spec; starting over",
                    job,
                    last["run_id"],
                )
                return None
            done = conn.execute(
                sa.select(tasks).where(
                    (tasks.c.run_id == last["run_id"]) & (tasks.c.status == "done")
                )
            ).mappings()
            return Resume(last["run_id"], last["plan_json"], {d["task_id"]: dict(d) for d in done})

    def start_run(
        self, run_id: str, job: str, spec_hash: str, plan_key: str, plan_json: str, resumed: bool
    ) -> None:
        with self.engine.begin() as conn:
            if resumed:
                conn.execute(
                    runs.update()
                    .where(runs.c.run_id == run_id)
                    .values(
                        status="running",
                        attempts=runs.c.attempts + 1,
                        finished_at=None,
                        error=None,
                        exit_code=None,
                        pid=os.getpid(),
                        host=self.host,
                    )
                )
                conn.execute(
                    tasks.update()
                    .where((tasks.c.run_id == run_id) & (tasks.c.status != "done"))
                    .values(status="pending")
                )
            else:
                conn.execute(
                    runs.insert().values(
                        run_id=run_id,
                        job=job,
                        status="running",
                        spec_hash=spec_hash,
                        plan_key=plan_key,
                        plan_json=plan_json,
                        sanitize=sanitize_record(plan_json),
                        started_at=now(),
                        attempts=1,
                        rows=0,
                        bytes=0,
                        host=self.host,
                        pid=os.getpid(),
                    )
                )

    def finish_run(
        self,
        run_id: str,
        status: str,
        exit_code: int,
        error: str | None = None,
        task_kind: str = "chunk",
    ) -> None:
        """Close the run record with the totals of its finished tasks of ``task_kind`` (a file
        job's tasks are files: its ``rows`` counts the files copied)."""
        with self.engine.begin() as conn:
            totals = conn.execute(
                sa.select(
                    sa.func.coalesce(sa.func.sum(tasks.c.rows), 0),
                    sa.func.coalesce(sa.func.sum(tasks.c.bytes), 0),
                    sa.func.coalesce(sa.func.sum(tasks.c.rejected), 0),
                ).where(
                    (tasks.c.run_id == run_id)
                    & (tasks.c.kind == task_kind)
                    & (tasks.c.status == "done")
                )
            ).one()
            conn.execute(
                runs.update()
                .where(runs.c.run_id == run_id)
                .values(
                    status=status,
                    finished_at=now(),
                    exit_code=exit_code,
                    error=scrub(error) if error else None,
                    rows=totals[0],
                    bytes=totals[1],
                    rejected=totals[2],
                )
            )

    # --- tasks ----------------------------------------------------------------------------
    def task_started(self, run_id: str, task_id: str, table: str, kind: str, attempt: int) -> None:
        values = {"status": "running", "attempts": attempt, "started_at": now(), "error": None}
        with self.engine.begin() as conn:
            # which attempt of the run did the work: `etlrun show` tells resumed chunks apart
            run_attempt = conn.execute(
                sa.select(runs.c.attempts).where(runs.c.run_id == run_id)
            ).scalar()
            values["run_attempt"] = run_attempt or 1
            key = (tasks.c.run_id == run_id) & (tasks.c.task_id == task_id)
            if not conn.execute(tasks.update().where(key).values(**values)).rowcount:
                conn.execute(
                    tasks.insert().values(
                        run_id=run_id,
                        task_id=task_id,
                        table_name=table,
                        kind=kind,
                        rows=0,
                        bytes=0,
                        seconds=0.0,
                        **values,
                    )
                )

    def task_finished(
        self,
        run_id: str,
        task_id: str,
        status: str,
        rows: int = 0,
        nbytes: int = 0,
        seconds: float = 0.0,
        error: str | None = None,
        checksum: str | None = None,
        rejected: int = 0,
    ) -> None:
        with self.engine.begin() as conn:
            conn.execute(
                tasks.update()
                .where((tasks.c.run_id == run_id) & (tasks.c.task_id == task_id))
                .values(
                    status=status,
                    rows=rows,
                    bytes=nbytes,
                    seconds=round(seconds, 3),
                    error=scrub(error) if error else None,
                    checksum=checksum,
                    rejected=rejected,
                    finished_at=now(),
                )
            )

    # --- watermarks -----------------------------------------------------------------------
    def get_watermark(self, job: str, table: str) -> tuple[Any, str] | None:
        """The (value, type) saved for ``table`` of ``job``, or None when unset. The value comes
        back as it was saved (JSON: ints stay ints, a composite cursor is a list)."""
        with self.engine.connect() as conn:
            row = conn.execute(
                sa.select(watermarks.c.value, watermarks.c.value_type).where(
                    (watermarks.c.job == job) & (watermarks.c.table_name == table)
                )
            ).first()
        if row is None or row[0] is None:
            return None
        return json.loads(row[0]), str(row[1])

    def set_watermark(self, job: str, table: str, value: Any, value_type: str, run_id: str) -> None:
        """Save the watermark; called only after the target commit of the rows it covers."""
        key = (watermarks.c.job == job) & (watermarks.c.table_name == table)
        with self.engine.begin() as conn:
            conn.execute(watermarks.delete().where(key))
            conn.execute(
                watermarks.insert().values(
                    job=job,
                    table_name=table,
                    value=json.dumps(value),
                    value_type=value_type,
                    run_id=run_id,
                    updated_at=now(),
                )
            )

    # --- chunk checksums (incremental, strategy: checksum) --------------------------------
    def get_chunk_checksums(self, job: str, table: str) -> tuple[str, list[tuple[Any, ...]]]:
        """(signature, [(lo, hi, rows, sum1, sum2)] in key order); ("", []) when none."""
        c = chunk_checksums.c
        with self.engine.connect() as conn:
            rows = conn.execute(
                sa.select(c.signature, c.lo, c.hi, c.rows, c.sum1, c.sum2)
                .where((c.job == job) & (c.table_name == table))
                .order_by(c.chunk)
            ).all()
        if not rows:
            return "", []
        chunks = [
            (json.loads(r[1]), json.loads(r[2]), int(r[3]), int(r[4]), int(r[5])) for r in rows
        ]
        return str(rows[0][0]), chunks

    def set_chunk_checksums(
        self, job: str, table: str, signature: str, chunks: list[tuple[Any, ...]], run_id: str
    ) -> None:
        """Replace the table's chunk checksums; called only after the target commits."""
        c = chunk_checksums.c
        at = now()
        with self.engine.begin() as conn:
            conn.execute(chunk_checksums.delete().where((c.job == job) & (c.table_name == table)))
            if chunks:
                conn.execute(
                    chunk_checksums.insert(),
                    [
                        {"job": job, "table_name": table, "chunk": i, "signature": signature,
                         "lo": json.dumps(lo), "hi": json.dumps(hi), "rows": rows,
                         "sum1": str(s1), "sum2": str(s2), "run_id": run_id, "updated_at": at}
                        for i, (lo, hi, rows, s1, s2) in enumerate(chunks)
                    ],
                )  # fmt: skip

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

    # --- reading back ---------------------------------------------------------------------
    def history(self, job: str | None = None, limit: int = 20) -> list[dict[str, Any]]:
        query = sa.select(runs).order_by(runs.c.started_at.desc()).limit(limit)
        if job:
            query = query.where(runs.c.job == job)
        with self.engine.connect() as conn:
            return [self._run_row(r) for r in conn.execute(query).mappings()]

    def run(self, run_id: str) -> dict[str, Any] | None:
        with self.engine.connect() as conn:
            row = (
                conn.execute(
                    sa.select(runs)
                    .where(runs.c.run_id.startswith(run_id))
                    .order_by(runs.c.started_at.desc())
                )
                .mappings()
                .first()
            )
            if row is None:
                return None
            found = self._run_row(row)
            found["tasks"] = [
                dict(t)
                for t in conn.execute(
                    sa.select(tasks)
                    .where(tasks.c.run_id == row["run_id"])
                    .order_by(tasks.c.task_id)
                ).mappings()
            ]
            return found

    @staticmethod
    def _run_row(row: Any) -> dict[str, Any]:
        data = {k: v for k, v in dict(row).items() if k != "plan_json"}
        if data.get("sanitize"):
            data["sanitize"] = json.loads(data["sanitize"])
        if data.get("finished_at") and data.get("started_at"):
            data["seconds"] = round((data["finished_at"] - data["started_at"]).total_seconds(), 3)
        try:
            data["tables"] = [t["target"] for t in json.loads(row["plan_json"])["tables"]]
        except (KeyError, ValueError, TypeError):
            data["tables"] = []
        return data
