"""sync (tables): make the target equal to the source, deletes included, moving only what differs.

A target that does not exist yet is loaded as copy does (staging + swap). An existing one gets one
task: the segment checksums of ``etlrun check`` (plan/checksum.py) are computed on both sides
and bisected down to the key ranges that differ; the keys of those ranges are read from both
sides to count the rows to insert, update and delete; the ``max_delete`` / ``max_delete_pct``
guard refuses (``SafetyError``, exit 6) before anything is written; then each differing range is
replaced in one target transaction (``DELETE`` of the range + insert of the source's rows of
it, sanitized in flight like every other mode). Replaying a range is harmless, so a crash part
way leaves a target that the next run finishes.
"""

from __future__ import annotations

import dataclasses
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pyarrow as pa
from sqlglot import exp

from runner.check import Side, compare_table
from runner.errors import SafetyError
from runner.execute.context import RunContext, TaskResult
from runner.modes import copy as copy_mode
from runner.plan.catalog import literal, plain, quote_table, table_expr
from runner.plan.checksum import range_condition
from runner.plan.compiler import TableContext
from runner.plan.plan import ColumnPlan, TablePlan, Task
from runner.plan.types import arrow_from_str
from runner.sanitize import read_schema

MAX_DELETE_PCT = 50.0


def compile(ctx: TableContext, after: list[str]) -> tuple[TablePlan, list[Task]]:  # noqa: A001
    spec = ctx.spec
    if not (spec.primary_key or ctx.info.primary_key):
        raise ctx.issue(
            "mode sync compares by primary key, and the table has none; set primary_key"
        )
    if ctx.sanitize is not None and ctx.sanitize.key_sanitized:
        raise ctx.issue("mode sync cannot compare a table whose key is sanitized")
    if not ctx.target_exists:  # the first run: a plain copy, then syncs from there on
        plan, tasks = copy_mode.compile(ctx, after)
        return dataclasses.replace(
            plan, mode="sync", options={**plan.options, "first": True}
        ), tasks
    select = ctx.select().sql(dialect=ctx.source_dialect, identify=True)
    limit = None if spec.max_delete_pct == 100 else spec.max_delete_pct
    task = Task(
        f"{ctx.target_name}:sync",
        "chunk",
        ctx.target_name,
        "sync",
        tuple(after),
        {
            "source": ctx.source_name,
            "target": ctx.target_name,
            "key": ctx.key,
            "columns": [[c.name, c.arrow_type] for c in ctx.columns],
            "schema": [[c.name, c.arrow_type] for c in ctx.columns],
            "sanitize_report": ctx.sanitize.report if ctx.sanitize is not None else None,
            "where": spec.where,
            "select": select,
            "delete": spec.delete is not False,
            "max_delete": spec.max_delete,
            "max_delete_pct": MAX_DELETE_PCT if spec.max_delete_pct is None else limit,
            "chunk": 1,
            "chunks": 1,
        },
        rows=0,
    )
    plan = TablePlan(
        source=ctx.source_name,
        target=ctx.target_name,
        mode="sync",
        key=ctx.key,
        rows=ctx.rows,
        bytes=ctx.bytes,
        columns=tuple(ctx.columns),
        chunks=((None, None),),
        options={
            "delete": spec.delete is not False,
            "max_delete": spec.max_delete,
            "max_delete_pct": task.params["max_delete_pct"],
            "where": spec.where,
            "verify": spec.verify,
        },
        sql={
            "read": (select + "  -- per differing key range",),
            "write": (
                f"DELETE FROM {quote_table(ctx.target_name, ctx.target_dialect)} "
                "WHERE <differing key range>; INSERT ...",
            ),
        },
        target_exists=True,
    )
    return plan, [task]


# --- task body ---------------------------------------------------------------------------------
def run(task: Task, ctx: RunContext) -> TaskResult:
    if task.kind != "chunk":  # prepare / chunk / finalize of a first run are copy's
        return copy_mode.run(task, ctx)
    p = task.params
    columns = [(n, t) for n, t in p["columns"]]
    table = TablePlan(
        source=p["source"], target=p["target"], mode="sync", key=p["key"], rows=0, bytes=0,
        columns=tuple(ColumnPlan(n, "", t, "") for n, t in columns),
        chunks=(), options={"where": p["where"], "sanitize": {"columns": p["sanitize_report"]}},
    )  # fmt: skip
    with ThreadPoolExecutor(4) as pool:
        report = compare_table(table, ctx.source, ctx.target, pool)
    if report.equal:
        return TaskResult(extra={"ranges": 0})
    key_type = next(t for n, t in columns if n == p["key"])
    src = Side(ctx.source, p["source"], report_where(p, ctx))
    tgt = Side(ctx.target, p["target"], None)
    ranges = [(d.lo, d.hi) for d in report.differences]
    inserts = updates = deletes = 0
    for lo, hi in ranges:
        s_keys = set(_keys(src, p["key"], key_type, lo, hi))
        t_keys = set(_keys(tgt, p["key"], key_type, lo, hi))
        inserts += len(s_keys - t_keys)
        deletes += len(t_keys - s_keys)
        updates += len(s_keys & t_keys)
    if deletes and p["delete"]:
        _guard(deletes, report.target_rows, p["max_delete"], p["max_delete_pct"], p["target"])
    schema = pa.schema([(n, arrow_from_str(t)) for n, t in columns])
    read = pa.schema([(n, arrow_from_str(t)) for n, t in read_schema(p)])
    written = 0
    target_sql = quote_table(p["target"], ctx.target.dialect)
    for lo, hi in ranges:
        ctx.check_cancel()
        s_cond = range_condition(p["key"], key_type, lo, hi, ctx.source.dialect,
                                 src.nullable(p["key"], lo, hi))  # fmt: skip
        t_cond = range_condition(p["key"], key_type, lo, hi, ctx.target.dialect,
                                 tgt.nullable(p["key"], lo, hi))  # fmt: skip
        select = f"SELECT * FROM ({p['select']}) etlrun_src"
        if s_cond is not None:
            select += f" WHERE {s_cond.sql(dialect=ctx.source.dialect, identify=True)}"
        before = [f"DELETE FROM {target_sql}"]
        if not p["delete"]:  # keep target-only rows: replace only the keys the source has
            keys = _keys(src, p["key"], key_type, lo, hi)
            listed = exp.In(
                this=exp.column(p["key"], quoted=True), expressions=[literal(k) for k in keys]
            )
            where = listed.sql(dialect=ctx.target.dialect, identify=True)
            before = [f"{before[0]} WHERE {where}"] if keys else []
        elif t_cond is not None:
            before[0] += f" WHERE {t_cond.sql(dialect=ctx.target.dialect, identify=True)}"
        batches = ctx.stream(
            ctx.source.read(select, read, ctx.batch_rows), task.id, task.table,
            sanitize=p.get("sanitize"),
        )  # fmt: skip
        written += ctx.target.write(p["target"], schema, batches, before=before).rows
    return TaskResult(
        rows=written,
        extra={"ranges": len(ranges), "inserted": inserts, "updated": updates, "deleted": deletes},
    )


def report_where(p: dict[str, Any], ctx: RunContext) -> exp.Expression | None:
    if not p["where"]:
        return None
    from sqlglot.optimizer.normalize_identifiers import normalize_identifiers

    from runner.spec.validators import parse_condition

    dialect = ctx.source.dialect
    return normalize_identifiers(parse_condition(p["where"], dialect), dialect=dialect)


def _keys(side: Side, key: str, key_type: str, lo: Any, hi: Any) -> list[Any]:
    condition = side.condition(key, key_type, lo, hi)
    query = exp.select(exp.column(key, quoted=True)).from_(table_expr(side.table))
    if condition is not None:
        query = query.where(condition)
    sql = query.sql(dialect=side.connector.dialect, identify=True)
    return [plain(r[0]) for r in side.connector.rows(sql)]


def _guard(
    deletes: int, target_rows: int, max_delete: int | None, max_pct: float | None, table: str
) -> None:
    if max_delete is not None and deletes > max_delete:
        raise SafetyError(
            f"{table}: sync would delete {deletes} rows, more than max_delete ({max_delete}); "
            "nothing was changed"
        )
    if max_pct is not None and target_rows and 100.0 * deletes / target_rows > max_pct:
        raise SafetyError(
            f"{table}: sync would delete {deletes} of {target_rows} rows "
            f"({100.0 * deletes / target_rows:.1f}%), more than max_delete_pct ({max_pct:g}); "
            "nothing was changed"
        )
