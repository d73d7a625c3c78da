"""The purge audit trail: the seed's PURGE_REQUEST / PURGE_REQUEST_DETAILS / PURGE_MODULE_INPUT
as ``etlrun_purge_requests`` (one row per run and table), ``etlrun_purge_details`` (one row per
chunk: key range, rows backed up and deleted, backup file and sha256) and ``etlrun_purge_log``
(the steps).

The functions here write to one SQLAlchemy connection, so the same rows go to the state store
and, with ``audit_table: true``, to the same tables in the source database. There, a chunk's
detail row is written in the transaction of its DELETE: the database's own audit can never
disagree with the rows it lost.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from runner.secrets import scrub

TABLE_NAMES = ("etlrun_purge_requests", "etlrun_purge_details", "etlrun_purge_log")


def _tables() -> tuple[sa.Table, sa.Table, sa.Table]:
    from runner.state import store

    return store.purge_requests, store.purge_details, store.purge_log


def create_tables(engine: Engine) -> None:
    """The audit tables in ``engine``'s database (a no-op where they exist)."""
    from runner.state.store import metadata

    metadata.create_all(engine, tables=list(_tables()))


def create_sql(dialect: Any) -> list[str]:
    """CREATE TABLE statements of the audit tables for a SQLAlchemy dialect (for --emit-sql)."""
    from sqlalchemy.schema import CreateIndex, CreateTable

    statements = []
    for table in _tables():
        statements.append(str(CreateTable(table, if_not_exists=True).compile(dialect=dialect)))
        for index in sorted(table.indexes, key=lambda i: str(i.name)):
            create = CreateIndex(index, if_not_exists=True)
            statements.append(str(create.compile(dialect=dialect)))
    return [" ".join(s.split()) for s in statements]


def now() -> Any:
    from runner.state.store import now as store_now

    return store_now()


def started(conn: Connection, run_id: str, job: str, table: str, where: str, planned: int) -> None:
    requests, _, _ = _tables()
    key = (requests.c.run_id == run_id, requests.c.table_name == table)
    if conn.execute(sa.select(requests.c.run_id).where(*key)).first() is None:
        conn.execute(
            requests.insert().values(
                run_id=run_id, job=job, table_name=table, where_sql=where, rows_planned=planned,
                rows_deleted=0, status="running", started_at=now(),
            )
        )  # fmt: skip
    else:  # a resumed purge
        conn.execute(requests.update().where(*key).values(status="running", finished_at=None))


def backed_up(
    conn: Connection, run_id: str, table: str, chunk: int, detail: dict[str, Any]
) -> None:
    """A chunk's backup is written and verified: recorded before anything is deleted."""
    _, details, _ = _tables()
    conn.execute(
        details.insert().values(
            run_id=run_id, table_name=table, chunk=chunk, status="backed_up", backed_up_at=now(),
            **detail,
        )
    )  # fmt: skip


def deleted(conn: Connection, run_id: str, table: str, backup_file: str, rows: int) -> None:
    requests, details, _ = _tables()
    conn.execute(
        details.update()
        .where(details.c.backup_file == backup_file)
        .values(status="deleted", rows_deleted=rows, deleted_at=now())
    )
    conn.execute(
        requests.update()
        .where(requests.c.run_id == run_id, requests.c.table_name == table)
        .values(rows_deleted=requests.c.rows_deleted + rows)
    )


def finished(conn: Connection, run_id: str, table: str, status: str) -> None:
    requests, _, _ = _tables()
    conn.execute(
        requests.update()
        .where(requests.c.run_id == run_id, requests.c.table_name == table)
        .values(status=status, finished_at=now())
    )


def step(conn: Connection, run_id: str, table: str, name: str, message: str = "") -> None:
    _, _, log = _tables()
    conn.execute(
        log.insert().values(
            run_id=run_id, table_name=table, at=now(), step=name, message=scrub(message)
        )
    )


def read(conn: Connection, job: str | None = None, limit: int = 20) -> list[dict[str, Any]]:
    """Purge requests, newest first, each with its chunk details and step log."""
    requests, details, log = _tables()
    query = sa.select(requests).order_by(requests.c.started_at.desc())
    if job:
        query = query.where(requests.c.job == job)
    found = [dict(r._mapping) for r in conn.execute(query.limit(limit))]
    for request in found:
        run_id, table = request["run_id"], request["table_name"]
        request["details"] = [
            dict(r._mapping)
            for r in conn.execute(
                sa.select(details)
                .where(details.c.run_id == run_id, details.c.table_name == table)
                .order_by(details.c.chunk, details.c.backed_up_at)
            )
        ]
        request["log"] = [
            dict(r._mapping)
            for r in conn.execute(
                sa.select(log)
                .where(log.c.run_id == run_id, log.c.table_name == table)
                .order_by(log.c.id)
            )
        ]
    return found


class Audit:
    """What a purge task records: always in the state store; with ``mirror`` (the source's
    engine, ``audit_table: true``) in the source database's audit tables too."""

    def __init__(self, state_url: str | None, mirror: Engine | None = None) -> None:
        from runner.state.store import StateStore

        self.state = StateStore(state_url)
        self.mirror = mirror
        if mirror is not None:
            create_tables(mirror)

    def _both(self, fn: Any, *args: Any) -> None:
        if self.mirror is not None:
            with self.mirror.begin() as conn:
                fn(conn, *args)
        with self.state.engine.begin() as conn:
            fn(conn, *args)

    def started(self, run_id: str, job: str, table: str, where: str, planned: int) -> None:
        self._both(started, run_id, job, table, where, planned)

    def backed_up(self, run_id: str, table: str, chunk: int, detail: dict[str, Any]) -> None:
        self._both(backed_up, run_id, table, chunk, detail)

    def step(self, run_id: str, table: str, name: str, message: str = "") -> None:
        self._both(step, run_id, table, name, message)

    def finished(self, run_id: str, table: str, status: str) -> None:
        self._both(finished, run_id, table, status)

    def delete(
        self, engine: Engine, sql: str, run_id: str, table: str, backup_file: str,
        detail: dict[str, Any] | None = None,
    ) -> int:  # fmt: skip
        """Run the DELETE in one transaction of the source, which (with the mirror) also
        records the chunk there; then record it in the state store. The rows deleted.

        ``detail``: a chunk without a backup (``backup: false``), recorded as it is deleted.
        """
        from runner.connectors.base import map_driver_errors

        with map_driver_errors(f"deleting from {table}"), engine.begin() as conn:
            rows = int(conn.exec_driver_sql(sql).rowcount or 0)
            if self.mirror is not None:
                if detail is not None:
                    backed_up(conn, run_id, table, detail["chunk"], _without(detail, "chunk"))
                deleted(conn, run_id, table, backup_file, rows)
        with self.state.engine.begin() as conn:
            if detail is not None:
                backed_up(conn, run_id, table, detail["chunk"], _without(detail, "chunk"))
            deleted(conn, run_id, table, backup_file, rows)
        return rows

    def reconcile(self, run_id: str, table: str) -> int:
        """A resumed purge: chunks the source database recorded as deleted (in their DELETE's
        transaction) that the state store missed, because the run was killed in between, are
        recorded there too. Only with the mirror, which is exact; the chunks recorded."""
        if self.mirror is None:
            return 0
        _, details, _ = _tables()
        mine = (details.c.run_id == run_id, details.c.table_name == table)
        with self.mirror.connect() as conn:
            done = conn.execute(sa.select(details).where(*mine, details.c.status == "deleted"))
            mirrored = [dict(r._mapping) for r in done]
        fixed = 0
        with self.state.engine.begin() as conn:
            known = {r.backup_file: r.status for r in conn.execute(sa.select(details).where(*mine))}
            for d in mirrored:
                if known.get(d["backup_file"]) == "deleted":
                    continue
                if d["backup_file"] not in known:
                    keep = ("backup_file", "key_lo", "key_hi", "rows_backed_up", "sha256")
                    backed_up(conn, run_id, table, d["chunk"], {k: d[k] for k in keep})
                deleted(conn, run_id, table, d["backup_file"], int(d["rows_deleted"] or 0))
                fixed += 1
        return fixed

    def close(self) -> None:
        self.state.close()


def _without(detail: dict[str, Any], key: str) -> dict[str, Any]:
    return {k: v for k, v in detail.items() if k != key}


def read_database(url: str, job: str | None = None, limit: int = 20) -> list[dict[str, Any]]:
    """The audit a purge with ``audit_table: true`` kept in the database at ``url``."""
    from runner.connectors import connect
    from runner.errors import UsageError

    connector = connect(url)
    try:
        engine = getattr(connector, "engine", None)
        if engine is None:
            raise UsageError(f"--audit-db: {connector.display_url} is not a database")
        if not sa.inspect(engine).has_table(TABLE_NAMES[0]):
            raise UsageError(f"--audit-db: {connector.display_url} holds no purge audit tables")
        with engine.connect() as conn:
            return read(conn, job, limit)
    finally:
        connector.close()
