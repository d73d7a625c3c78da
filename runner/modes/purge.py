"""purge: delete the rows matching ``where`` in bounded chunks, each after a verified backup,
with an audit row per chunk in the state store.

A chunk (at most ``batch_rows`` rows, a key range) is: read its matching rows -> write them to
a new backup file (temporary name, renamed when complete) -> read the file back and check its
sha256, row count and keys -> record the file in the audit (status backed_up) -> delete exactly
those keys in one transaction -> record the rows deleted. A backup that fails or does not verify
stops the run with exit 6 and nothing of that chunk deleted. Every attempt writes a file of its
own, so a re-run after a kill never overwrites a backup whose rows were deleted.

With ``backup: false`` (written out) a chunk is its key range's DELETE, in one transaction.
With ``audit_table: true`` the audit is kept in the source database too (see
:mod:`runner.state.purge_audit`).
"""

from __future__ import annotations

import uuid
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pyarrow as pa
from sqlglot import exp

from runner.connectors.fs import FsConnector, read_table, row_count, sha256_of
from runner.errors import SafetyError, TaskError
from runner.execute.context import RunContext, TaskResult
from runner.plan.catalog import literal, quote_ident, quote_table, table_expr
from runner.plan.compiler import TableContext
from runner.plan.plan import TablePlan, Task
from runner.plan.types import arrow_from_str
from runner.state.purge_audit import Audit

DEFAULT_BATCH_ROWS = 10_000


def compile(ctx: TableContext, after: list[str]) -> tuple[TablePlan, list[Task]]:  # noqa: A001
    from runner.modes.copy import _key_type, _range

    spec = ctx.spec
    if ctx.where is None:
        raise ctx.issue("purge needs 'where' (a purge without it would empty the table)")
    if ctx.key is None:
        raise ctx.issue("purge needs a primary key (declare one with primary_key:)")
    if ctx.sanitize is not None:
        raise ctx.issue("purge backs up the rows as they are; sanitize rules do not apply")
    batch_rows = spec.batch_rows or DEFAULT_BATCH_ROWS
    key_arrow = _key_type(ctx)
    bounds = ctx.catalog.key_bounds(
        ctx.source_name, ctx.key, ctx.where, ctx.rows, batch_rows, ctx.key_is_integer,
        text=key_arrow == "string",
    )  # fmt: skip
    edges = [None, *bounds, None]
    ranges = list(zip(edges[:-1], edges[1:], strict=True))
    d = ctx.source_dialect
    table = ctx.source_name
    where_sql = ctx.where.sql(dialect=d, identify=True)
    total = int(ctx.catalog.count(table, None))
    schema = [[c.name, c.arrow_type] for c in ctx.columns]
    guard_id = f"{table}:guard"
    common = {
        "table": table,
        "job": ctx.job.name,
        "where": where_sql,
        "key": ctx.key,
        "key_type": key_arrow,
        "dialect": d,
        "backup": spec.backup,
        "schema": schema,
        "audit_table": bool(spec.audit_table),
    }
    tasks = [
        Task(
            guard_id,
            "prepare",
            table,
            "purge",
            tuple(after),
            {
                **common,
                "count": exp.select("COUNT(*)")
                .from_(table_expr(table))
                .where(ctx.where.copy())
                .sql(dialect=d, identify=True),
                "count_all": f"SELECT COUNT(*) FROM {quote_table(table, d)}",
                "max_delete": getattr(spec, "max_delete", None),
                "max_delete_pct": getattr(spec, "max_delete_pct", None),
                "planned": ctx.rows,
            },
        )
    ]
    read_sql, delete_sql = [], []
    select = ctx.select()
    for number, (lo, hi) in enumerate(ranges, start=1):
        condition, _ = _range(ctx, lo, hi, params=False)
        query = select.copy()
        if condition is not None:
            query = query.where(condition)
        sql = query.sql(dialect=d, identify=True)
        read_sql.append(sql)
        delete = delete_statement(table, condition, ctx.where, d)
        delete_sql.append(delete + ("" if spec.backup is False else KEYS_NOTE.format(
            key=quote_ident(ctx.key, d))))  # fmt: skip
        tasks.append(
            Task(
                f"{table}:chunk:{number:04d}",
                "chunk",
                table,
                "purge",
                (guard_id,),
                {
                    **common,
                    "select": sql,
                    "delete": delete,
                    "chunk": number,
                    "chunks": len(ranges),
                    "bounds": [lo, hi],
                },
                rows=ctx.rows // len(ranges),
            )  # fmt: skip
        )
    chunk_ids = tuple(t.id for t in tasks if t.kind == "chunk")
    tasks.append(Task(f"{table}:finalize", "finalize", table, "purge", chunk_ids, dict(common)))
    guard = []
    if getattr(spec, "max_delete", None) is not None:
        guard.append(f"max_delete {spec.max_delete}")
    plan = TablePlan(
        source=table,
        target=table,
        mode="purge",
        key=ctx.key,
        rows=ctx.rows,
        bytes=ctx.bytes,
        columns=tuple(ctx.columns),
        chunks=tuple(tuple(r) for r in ranges),
        options={
            "where": spec.where,
            "matching_rows": ctx.rows,
            "table_rows": total,
            "batch_rows": batch_rows,
            "backup": spec.backup,
            "audit_table": bool(spec.audit_table),
            "guard": ", ".join(guard) or None,
        },
        sql={
            "guard": (tasks[0].params["count"], tasks[0].params["count_all"]),
            "read": tuple(read_sql) if spec.backup is not False else (),
            "delete": tuple(delete_sql),
        },
        target_exists=True,
    )
    return plan, tasks


KEYS_NOTE = " /* AND {key} IN (the keys read back from the chunk's verified backup) */"
"""How the plan shows a backed-up chunk's DELETE: at run time the statement is exactly this
with the IN list in place of the comment, so rows that came to match after the backup stay."""


def delete_statement(
    table: str, condition: exp.Expression | None, where: exp.Expression, dialect: str
) -> str:
    """``DELETE FROM table WHERE (key range) AND (where)`` in ``dialect``: a chunk's delete."""
    parts = [exp.paren(where.copy())]
    if condition is not None:
        parts.insert(0, exp.paren(condition.copy()))
    return f"DELETE FROM {quote_table(table, dialect)} WHERE " + exp.and_(*parts).sql(
        dialect=dialect, identify=True
    )


# --- task bodies -----------------------------------------------------------------------------
def run(task: Task, ctx: RunContext) -> TaskResult:
    return {"prepare": _guard, "chunk": _chunk, "finalize": _finalize}[task.kind](task, ctx)


def _audit(ctx: RunContext, p: dict[str, Any]) -> Audit:
    if not ctx.run_id:
        # the executors always pass it (Dask keeps purge chunks on driver threads for this)
        raise TaskError("a purge task needs the run's id and state store; none was given")
    return Audit(ctx.state_url, _engine(ctx) if p.get("audit_table") else None)


def _engine(ctx: RunContext) -> Any:
    engine = getattr(ctx.source, "engine", None)
    if engine is None:
        raise TaskError(f"purge cannot delete in {ctx.source.display_url}")
    return engine


def _guard(task: Task, ctx: RunContext) -> TaskResult:
    p = task.params
    matching = int(str(ctx.source.scalar(p["count"]) or 0))
    total = int(str(ctx.source.scalar(p["count_all"]) or 0))
    audit = _audit(ctx, p)
    try:
        audit.started(ctx.run_id, p["job"], p["table"], p["where"], matching)
        fixed = audit.reconcile(ctx.run_id, p["table"])
        if fixed:
            audit.step(
                ctx.run_id, p["table"], "reconciled",
                f"{fixed} chunk(s) deleted before the run was killed, as the source recorded",
            )  # fmt: skip
        audit.step(ctx.run_id, p["table"], "guard", f"{matching} of {total} rows match")
        limit, pct = p.get("max_delete"), p.get("max_delete_pct")
        refused = None
        if limit is not None and matching > limit:
            refused = f"{matching} rows match, more than max_delete {limit}"
        elif pct is not None and total and matching * 100 / total > pct:
            refused = (
                f"{matching} of {total} rows match ({matching * 100 / total:.1f}%), more than "
                f"max_delete_pct {pct}"
            )
        if refused:
            audit.step(ctx.run_id, p["table"], "refused", refused)
            audit.finished(ctx.run_id, p["table"], "refused")
            raise SafetyError(f"purge of {p['table']} refused: {refused}; nothing was deleted")
    finally:
        audit.close()
    return TaskResult(extra={"matching": matching})


def _keys_sql(p: dict[str, Any], keys: list[Any]) -> str:
    """The chunk's range DELETE, restricted to exactly the keys in its verified backup."""
    column = exp.column(p["key"], quoted=True)
    keys_in = exp.In(this=column, expressions=[literal(k) for k in keys])
    return f"{p['delete']} AND {keys_in.sql(dialect=p['dialect'], identify=True)}"


def _chunk(task: Task, ctx: RunContext) -> TaskResult:
    p = task.params
    ctx.check_cancel()
    if p["backup"] is False:
        return _chunk_without_backup(task, ctx)
    schema = pa.schema([(name, arrow_from_str(typ)) for name, typ in p["schema"]])
    batches = list(ctx.source.read(p["select"], schema, ctx.batch_rows))
    table = pa.Table.from_batches(batches, schema=schema)
    audit = _audit(ctx, p)
    try:
        if table.num_rows == 0:
            audit.step(ctx.run_id, p["table"], "chunk", f"chunk {p['chunk']}: no rows")
            return TaskResult()
        keys = table.column(p["key"]).to_pylist()
        path = (
            f"{p['job']}/{p['table']}/{ctx.run_id}/"
            f"chunk-{p['chunk']:04d}-{uuid.uuid4().hex[:8]}.parquet"
        )
        store = FsConnector(p["backup"])
        try:
            try:
                written = store.write_file(path, "parquet", schema, table.to_batches())
                data = store.read_bytes(path)
            except Exception as exc:
                audit.step(ctx.run_id, p["table"], "backup_failed", f"chunk {p['chunk']}: {exc}")
                raise SafetyError(
                    f"purge of {p['table']} chunk {p['chunk']}: the backup failed ({exc}); "
                    "nothing of this chunk was deleted"
                ) from exc
        finally:
            store.close()
        back = read_table(data, "parquet")
        problems = []
        if sha256_of(data) != written.sha256:
            problems.append("sha256 differs")
        if row_count(data, "parquet") != table.num_rows:
            problems.append("row count differs")
        if back.column(p["key"]).to_pylist() != keys:
            problems.append("keys differ")
        if problems:
            audit.step(ctx.run_id, p["table"], "verify_failed", ", ".join(problems))
            raise SafetyError(
                f"purge of {p['table']} chunk {p['chunk']}: the backup {path} does not verify "
                f"({', '.join(problems)}); nothing of this chunk was deleted"
            )
        lo, hi = min(k for k in keys if k is not None), max(k for k in keys if k is not None)
        backup_file = file_url(store.display_url, path)
        audit.backed_up(
            ctx.run_id,
            p["table"],
            p["chunk"],
            {"backup_file": backup_file, "key_lo": str(lo), "key_hi": str(hi),
             "rows_backed_up": table.num_rows, "sha256": written.sha256},
        )  # fmt: skip
        ctx.check_cancel()
        deleted = _delete(ctx, audit, p, _keys_sql(p, keys), backup_file)
        audit.step(
            ctx.run_id,
            p["table"],
            "deleted",
            f"chunk {p['chunk']}: {deleted} rows, keys {lo}..{hi}",
        )
    finally:
        audit.close()
    return TaskResult(rows=deleted, bytes=written.size)


def file_url(folder_url: str, path: str) -> str:
    """The URL of ``path`` under the store at ``folder_url``, its query (``?endpoint_url=``,
    ``?known_hosts=``) kept at the end where it belongs."""
    parts = urlsplit(folder_url)
    return urlunsplit(parts._replace(path=f"{parts.path.rstrip('/')}/{path}"))


def _chunk_without_backup(task: Task, ctx: RunContext) -> TaskResult:
    """``backup: false``: the chunk's range DELETE, recorded in its own transaction's audit."""
    p = task.params
    lo, hi = p["bounds"]
    audit = _audit(ctx, p)
    try:
        record = f"(no backup) {ctx.run_id} {p['table']} chunk {p['chunk']} {uuid.uuid4().hex[:8]}"
        detail = {"chunk": p["chunk"], "backup_file": record, "rows_backed_up": 0, "sha256": "",
                  "key_lo": None if lo is None else str(lo),
                  "key_hi": None if hi is None else str(hi)}  # fmt: skip
        deleted = _delete(ctx, audit, p, p["delete"], record, detail)
        audit.step(
            ctx.run_id, p["table"], "deleted",
            f"chunk {p['chunk']}: {deleted} rows, no backup (backup: false)",
        )  # fmt: skip
    finally:
        audit.close()
    return TaskResult(rows=deleted)


def _delete(
    ctx: RunContext, audit: Audit, p: dict[str, Any], sql: str, backup_file: str,
    detail: dict[str, Any] | None = None,
) -> int:  # fmt: skip
    """Run the DELETE in one transaction (with its audit row, under ``audit_table``)."""
    # no bound parameters: a % in a value or name must not read as a placeholder
    text = sql.replace("%", "%%") if ctx.source.placeholder == "%s" else sql
    return audit.delete(_engine(ctx), text, ctx.run_id, p["table"], backup_file, detail)


def _finalize(task: Task, ctx: RunContext) -> TaskResult:
    p = task.params
    audit = _audit(ctx, p)
    try:
        deleted = sum(
            r.rows for tid, r in ctx.results.items() if tid.startswith(f"{task.table}:chunk:")
        )
        audit.step(ctx.run_id, p["table"], "finished", f"{deleted} rows deleted")
        audit.finished(ctx.run_id, p["table"], "succeeded")
    finally:
        audit.close()
    return TaskResult(extra={"deleted": deleted})
