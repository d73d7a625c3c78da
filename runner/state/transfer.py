"""State for ephemeral runners: ``etlrun state export|import URL`` and ``etlrun state unlock JOB``.

A CI runner that starts empty imports the state at the start of a job and exports it at the end:

    etlrun state import s3://bucket/etlrun/state.json.gz || true   # the first time there is none
    etlrun run jobs/
    etlrun state export s3://bucket/etlrun/state.json.gz

The export is JSON (gzip when the URL ends in ``.gz``): every row of every state table, so it
moves between backends too (sqlite on a laptop, PostgreSQL for a team). Locks are not exported:
a lock means a live process on one machine. Any fsspec URL works (a local path, ``file://``,
``s3://`` with s3fs, ``sftp://`` with paramiko). A team that shares one store points ``--state``
at PostgreSQL instead and needs none of this.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import fsspec
import sqlalchemy as sa

from runner.errors import ConnectError, LockedError, UsageError
from runner.secrets import mask_url, scrub
from runner.state.store import StateStore, _pid_alive, locks, metadata, runs

FORMAT = "etlrun-state"
FORMAT_VERSION = 1
SKIP = {locks.name}


def _tables() -> list[sa.Table]:
    return [t for t in metadata.sorted_tables if t.name not in SKIP]


def _plain(value: Any) -> Any:
    if isinstance(value, dt.datetime | dt.date):
        return value.isoformat()
    return value


def _typed(column: sa.Column[Any], value: Any) -> Any:
    if value is not None and isinstance(column.type, sa.DateTime):
        return dt.datetime.fromisoformat(value)
    return value


def export_state(state_url: str | None, url: str) -> str:
    """Write every row of the state store to ``url``; returns a one-line summary."""
    store = StateStore(state_url)
    try:
        with store.engine.connect() as conn:
            data = {
                t.name: [
                    {k: _plain(v) for k, v in row.items()}
                    for row in conn.execute(sa.select(t)).mappings()
                ]
                for t in _tables()
            }
    finally:
        store.close()
    document = {"format": FORMAT, "format_version": FORMAT_VERSION, "tables": data}
    try:
        with fsspec.open(url, "wt", compression="infer", encoding="utf-8") as out:
            json.dump(document, out)
    except (OSError, ValueError, ImportError) as exc:
        raise ConnectError(f"cannot write the state to {mask_url(url)}: {scrub(str(exc))}") from exc
    count = len(data.get(runs.name, []))
    return f"exported {count} run(s) from {mask_url(store.url)} to {mask_url(url)}"


def import_state(state_url: str | None, url: str, force: bool = False) -> str:
    """Load an export into the state store. A store that already has runs is refused unless
    ``force``, which replaces its contents (locks are kept)."""
    try:
        with fsspec.open(url, "rt", compression="infer", encoding="utf-8") as file:
            document = json.load(file)
    except FileNotFoundError:
        raise UsageError(f"no state export at {mask_url(url)}") from None
    except (OSError, ValueError, ImportError) as exc:
        raise ConnectError(f"cannot read the state at {mask_url(url)}: {scrub(str(exc))}") from exc
    if not isinstance(document, dict) or document.get("format") != FORMAT:
        raise UsageError(f"{mask_url(url)} is not an etlrun state export")
    if document.get("format_version") != FORMAT_VERSION:
        raise UsageError(
            f"{mask_url(url)}: state export format {document.get('format_version')} "
            f"is not supported (this etlrun reads {FORMAT_VERSION})"
        )
    store = StateStore(state_url)
    try:
        with store.engine.begin() as conn:
            existing = conn.execute(sa.select(sa.func.count()).select_from(runs)).scalar_one()
            if existing and not force:
                raise UsageError(
                    f"the state store {mask_url(store.url)} already has {existing} run(s); "
                    "--force replaces them with the import"
                )
            for table in reversed(_tables()):
                conn.execute(table.delete())
            for table in _tables():
                rows = document["tables"].get(table.name, [])
                known = {c.name: c for c in table.columns}
                typed = [
                    {k: _typed(known[k], v) for k, v in row.items() if k in known} for row in rows
                ]
                if typed:
                    conn.execute(table.insert(), typed)
        count = len(document["tables"].get(runs.name, []))
    finally:
        store.close()
    return f"imported {count} run(s) from {mask_url(url)} into {mask_url(store.url)}"


def unlock(state_url: str | None, job: str, force: bool = False) -> str:
    """Clear ``job``'s lock. A lock held by a live process on this host is refused (exit 5)
    unless ``force``; on another host etlrun cannot tell, so the caller vouches for it."""
    store = StateStore(state_url)
    try:
        with store.engine.begin() as conn:
            holder = conn.execute(sa.select(locks).where(locks.c.job == job)).mappings().first()
            if holder is None:
                return f"job '{job}' is not locked"
            if holder["host"] == store.host and _pid_alive(holder["pid"]) and not force:
                raise LockedError(
                    f"job '{job}' is locked by run {holder['run_id']}, pid {holder['pid']} on "
                    f"{holder['host']}, which is alive; stop it, or --force"
                )
            conn.execute(
                locks.delete().where((locks.c.job == job) & (locks.c.run_id == holder["run_id"]))
            )
    finally:
        store.close()
    return (
        f"unlocked job '{job}' (run {holder['run_id']}, pid {holder['pid']} on {holder['host']}); "
        f"'etlrun run' resumes that run"
    )
