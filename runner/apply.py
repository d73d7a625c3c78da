"""Saved plans: ``etlrun plan JOBS --out plan.json``, then ``etlrun apply plan.json``.

What was reviewed is what runs, as with ``terraform plan -out`` / ``terraform apply``. A saved plan
holds, per job, the compiled :class:`~runner.plan.plan.Plan` and what it was based on:

- ``spec_hash``: the spec as loaded (after ``${VAR}`` expansion), so an edited spec, a changed
  connection or a changed variable is caught;
- ``catalog``: every planned source table's columns (name, declared type, nullability) and
  primary key, so an ``ALTER TABLE`` on the source is caught;
- ``state``: the job's watermarks in the state store, so a plan made before another run moved
  them is caught.

A file job's entry (``kind: files``) holds its :class:`~runner.files.plan.FilePlan` instead:
every file with its action, size, mtime and ETag; :func:`check_files` plans again and compares
(:mod:`runner.files.saved`).

:func:`check` compares each with now and raises :class:`StalePlanError` (exit 2) naming every
difference; nothing is run or written then. Row counts may differ: data moves, schemas do not.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from runner.connectors.base import Connector
from runner.errors import UsageError
from runner.files.plan import FilePlan
from runner.plan.plan import Plan
from runner.secrets import scrub

FORMAT = "etlrun-saved-plan"
FORMAT_VERSION = 1


class StalePlanError(UsageError):
    """The saved plan no longer matches its spec, the source schema or the state (exit 2)."""


@dataclass
class SavedJob:
    """One job of a saved plan."""

    spec_path: str
    plan: Plan | FilePlan
    spec_hash: str
    catalog: dict[str, Any]
    state: dict[str, Any]
    tables: list[str] | None = None
    """The ``--tables`` filter the plan was made with."""

    def to_dict(self) -> dict[str, Any]:
        kind = {"kind": "files"} if isinstance(self.plan, FilePlan) else {}
        return {
            **kind,
            "spec_path": self.spec_path,
            "spec_hash": self.spec_hash,
            "tables": self.tables,
            "catalog": self.catalog,
            "catalog_fingerprint": digest(self.catalog),
            "state": self.state,
            "plan_fingerprint": self.plan.fingerprint,
            "plan": self.plan.to_dict(),
        }


@dataclass
class SavedPlan:
    jobs: list[SavedJob] = field(default_factory=list)

    def to_json(self) -> str:
        from runner import __version__

        data = {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "etlrun_version": __version__,
            "created_at": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "jobs": [j.to_dict() for j in self.jobs],
        }
        text = json.dumps(data, indent=2, sort_keys=True, default=str) + "\n"
        if scrub(text) != text:
            # scrubbed, the plan would run other SQL than was reviewed; kept, it leaks the secret
            plans = {j.spec_path: j.plan.to_json() for j in self.jobs}
            leaking = [path for path, plan in plans.items() if scrub(plan) != plan]
            raise UsageError(
                f"the plan of {', '.join(leaking) or 'a job'} holds a secret value (from "
                "${secret:...}, ${file:...}, a password or a *_KEY/*_PASSWORD variable) in its "
                "SQL, so it cannot be saved; keep secrets in URLs and sanitize.key, not in "
                "where: or other SQL"
            )
        return text

    def write(self, path: str | Path) -> Path:
        out = Path(path)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(self.to_json(), encoding="utf-8")
        return out

    @classmethod
    def read(cls, path: str | Path) -> SavedPlan:
        file = Path(path)
        try:
            data = json.loads(file.read_text(encoding="utf-8"))
        except OSError as exc:
            raise UsageError(f"{file}: cannot read: {exc.strerror}") from None
        except ValueError as exc:
            raise UsageError(f"{file}: not a saved plan (invalid JSON: {exc})") from None
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise UsageError(f"{file}: not a saved plan (make one with 'etlrun plan JOB --out')")
        if data.get("format_version") != FORMAT_VERSION:
            raise UsageError(
                f"{file}: saved plan format {data.get('format_version')} is not supported "
                f"(this etlrun reads {FORMAT_VERSION}); plan again"
            )
        jobs = []
        for entry in data["jobs"]:
            reader = FilePlan if entry.get("kind") == "files" else Plan
            plan: Plan | FilePlan = reader.from_dict(entry["plan"])
            if plan.fingerprint != entry["plan_fingerprint"]:
                raise StalePlanError(
                    f"{file}: the plan of job '{plan.job}' was edited after it was saved "
                    f"(fingerprint {plan.fingerprint}, saved {entry['plan_fingerprint']})"
                )
            jobs.append(
                SavedJob(
                    spec_path=entry["spec_path"],
                    plan=plan,
                    spec_hash=entry["spec_hash"],
                    catalog=entry["catalog"],
                    state=entry["state"],
                    tables=entry.get("tables"),
                )
            )
        return cls(jobs)


def digest(data: Any) -> str:
    text = json.dumps(data, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def catalog_of(source: Connector, plan: Plan) -> dict[str, Any]:
    """Columns (name, declared type, nullable) and primary key of every planned source table."""
    out: dict[str, Any] = {}
    for table in plan.tables:
        try:
            info = source.describe(table.source)
        except Exception as exc:  # noqa: BLE001 - a dropped table is a difference, not a crash
            out[table.source] = {"error": f"{type(exc).__name__}: {scrub(str(exc))}"[:300]}
            continue
        out[table.source] = {
            "columns": [[c.name, c.type_sql, c.nullable] for c in info.columns],
            "primary_key": list(info.primary_key),
        }
    return out


def state_of(state_url: str | None, job: str) -> dict[str, Any]:
    """The job's watermarks, as stored (value, type), by table."""
    import os

    from runner.state.store import DEFAULT_URL, StateStore, watermarks

    url = state_url or os.environ.get("ETLRUN_STATE") or DEFAULT_URL
    parsed = sa.make_url(url)
    if parsed.drivername.startswith("sqlite") and parsed.database not in (None, "", ":memory:"):
        if not os.path.exists(parsed.database):  # planning creates no state store
            return {"watermarks": {}}
    store = StateStore(url)
    try:
        with store.engine.connect() as conn:
            rows = conn.execute(
                sa.select(watermarks.c.table_name, watermarks.c.value, watermarks.c.value_type)
                .where(watermarks.c.job == job)
                .order_by(watermarks.c.table_name)
            ).all()
    finally:
        store.close()
    return {"watermarks": {r[0]: [r[1], r[2]] for r in rows}}


def save_job(
    spec_path: str, job: Any, plan: Plan, source: Connector, state_url: str | None, tables: Any
) -> SavedJob:
    from runner.plan.compiler import spec_hash

    return SavedJob(
        spec_path=spec_path,
        plan=plan,
        spec_hash=spec_hash(job),
        catalog=catalog_of(source, plan),
        state=state_of(state_url, plan.job),
        tables=tables,
    )


def check(saved: SavedJob, job: Any, source: Connector, state_url: str | None) -> None:
    """Raise :class:`StalePlanError` naming every way ``saved`` differs from now."""
    from runner.plan.compiler import spec_hash

    assert isinstance(saved.plan, Plan)
    changes: list[str] = []
    now_hash = spec_hash(job)
    if now_hash != saved.spec_hash:
        changes.append(
            f"the spec {saved.spec_path} changed (spec hash {saved.spec_hash} -> {now_hash})"
        )
    changes += catalog_changes(saved.catalog, catalog_of(source, saved.plan))
    now_state = state_of(state_url, saved.plan.job)
    if now_state != saved.state:
        moved = sorted(
            set(now_state["watermarks"]).symmetric_difference(saved.state.get("watermarks", {}))
            | {
                t
                for t, v in now_state["watermarks"].items()
                if saved.state.get("watermarks", {}).get(t) not in (None, v)
            }
        )
        changes.append(f"the state changed since: watermarks of {', '.join(moved)} moved")
    if changes:
        raise stale_error(saved.plan.job, saved.spec_path, changes)


def stale_error(job: str, spec_path: str, changes: list[str]) -> StalePlanError:
    return StalePlanError(
        f"the saved plan of job '{job}' is stale; nothing was run:\n  - "
        + "\n  - ".join(changes)
        + f"\n  plan again: etlrun plan {spec_path} --out PLAN.json"
    )


def save_files_job(spec_path: str, job: Any, plan: FilePlan) -> SavedJob:
    """A file job's entry: its plan lists every file as the plan saw it (no catalog: the
    listings are what apply compares, :mod:`runner.files.saved`)."""
    return SavedJob(spec_path=spec_path, plan=plan, spec_hash=plan.spec_hash, catalog={}, state={})


def check_files(saved: SavedJob, job: Any, state_url: str | None) -> None:
    """Raise :class:`StalePlanError` when the spec changed or a planned file change no
    longer holds (:func:`runner.files.saved.differences`)."""
    from runner.files.run import spec_hash, stale_files
    from runner.files.saved import listing

    assert isinstance(saved.plan, FilePlan)
    now_hash = spec_hash(job)
    if now_hash != saved.spec_hash:
        was = saved.spec_hash
        changes = [f"the spec {saved.spec_path} changed (spec hash {was} -> {now_hash})"]
    else:
        changes = listing(stale_files(job, saved.plan, state_url))
    if changes:
        raise stale_error(saved.plan.job, saved.spec_path, changes)


def catalog_changes(before: dict[str, Any], now: dict[str, Any]) -> list[str]:
    out: list[str] = []
    for table, was in before.items():
        is_ = now.get(table, {"error": "not planned"})
        if "error" in is_ and "error" not in was:
            out.append(f"source table {table} is gone ({is_['error'].splitlines()[0]})")
            continue
        if was == is_:
            continue
        old = {c[0]: c for c in was.get("columns", [])}
        new = {c[0]: c for c in is_.get("columns", [])}
        for name in old.keys() - new.keys():
            out.append(f"source table {table}: column {name} was dropped")
        for name in new.keys() - old.keys():
            out.append(f"source table {table}: column {name} was added ({new[name][1]})")
        for name in old.keys() & new.keys():
            if old[name][1] != new[name][1]:
                out.append(
                    f"source table {table}: column {name} changed type "
                    f"{old[name][1]} -> {new[name][1]}"
                )
            elif old[name][2] != new[name][2]:
                nullable = "nullable" if new[name][2] else "NOT NULL"
                out.append(f"source table {table}: column {name} is now {nullable}")
        if was.get("primary_key") != is_.get("primary_key"):
            out.append(
                f"source table {table}: primary key {was.get('primary_key')} -> "
                f"{is_.get('primary_key')}"
            )
        if [c[0] for c in was.get("columns", [])] != [c[0] for c in is_.get("columns", [])] and (
            old.keys() == new.keys()
        ):
            out.append(f"source table {table}: columns were reordered")
    return out
