"""Run and task records: starting, resuming and closing a run, each task's outcome, reading back."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from loguru import logger
from sqlalchemy.engine import Engine

from runner.secrets import scrub
from runner.state.tables import now, runs, tasks

UNFINISHED = ("running", "failed", "interrupted")


def new_run_id(job: str) -> str:
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
    return f"{stamp}-{os.urandom(3).hex()}"


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


class RunRecords:
    """The run and task methods of :class:`~runner.state.store.StateStore`."""

    engine: Engine
    host: str

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
