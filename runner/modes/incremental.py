"""incremental (strategy: cursor): only the rows whose cursor moved, merged by primary key.

One run reads the window ``watermark - lookback <= cursor <= to``, where ``to`` is the source's
largest cursor value when the run is planned (shown by ``etlrun plan`` as "watermark from -> to").
The window's rows load a staging table chunk by chunk (delete-range + insert, as copy), and the
finalize step merges staging into the target by primary key in one transaction (PostgreSQL and
DuckDB ``ON CONFLICT DO UPDATE``, SQLite the same after ``WHERE true``, MariaDB ``ON DUPLICATE KEY
UPDATE``). The driver saves ``to`` as the new watermark only after that commit.

Why nothing is lost at the edges:

- ties: the lower bound is ``>=`` the watermark, so rows sharing the boundary value are read
  again; merging by primary key makes the re-read harmless (no duplicates).
- late commits and skewed clocks: ``lookback`` widens the window backwards.
- rows changed while the run reads: their cursor is above ``to``, so the next run reads them.
- NULL cursors: a row whose cursor (any column of a composite cursor) is NULL is read and merged
  on every run, since no watermark can say whether it changed.
- an empty table, or one whose cursor is NULL everywhere: the watermark stays unset, so the next
  run reads everything again.
- a crash after the merge commit and before the watermark is saved: the next run reads from the
  old watermark; the merge makes that harmless.

A small window of a PostgreSQL -> PostgreSQL run with a one-column integer, date or timestamp
cursor is read once instead (:func:`runner.modes._cursor_window.read_once`): every row from the
watermark on, in one chunk and one snapshot, and ``to`` is then the largest cursor value staged,
read by the finalize step with the staging row count. That saves a scan of the source.

A composite cursor (a list of columns) compares lexicographically; ``lookback`` moves its first
column. Deleted source rows are not carried over (use bulk, or sync when it is available).
"""

from __future__ import annotations

import dataclasses
from typing import Any

from runner.errors import VerifyError
from runner.execute.context import RunContext, TaskResult
from runner.modes import _stage_key as stage_key
from runner.modes import copy as copy_mode
from runner.modes._cursor_window import (
    cursor_types,
    lookback_from,
    plan_window,
    typed,
)
from runner.plan.catalog import plain, quote_ident, quote_table
from runner.plan.checksum import verify_checksum, verify_params
from runner.plan.compiler import TableContext
from runner.plan.plan import TablePlan, Task


# --- compile -----------------------------------------------------------------------------------
def merge_keys(ctx: TableContext) -> list[str]:
    """The primary key rows are merged by: the target's when it exists, else the source's."""
    keys = [k for k in (ctx.spec.primary_key or ctx.info.primary_key) if _written(ctx, k)]
    if not keys:
        raise ctx.issue(
            f"mode {ctx.spec.mode} merges by primary key, and {ctx.source_name} has none; "
            "set primary_key: [...]"
        )
    if ctx.target_exists:
        have = list(ctx.target.describe(ctx.target_name).primary_key)
        if not have:
            raise ctx.issue(
                f"target table '{ctx.target_name}' has no primary key to merge by; add one "
                f"({', '.join(keys)}), or drop the table and etlrun creates it with one"
            )
        return have
    return keys


def _written(ctx: TableContext, name: str) -> bool:
    return any(c.name == name for c in ctx.columns)


def merge_sql(ctx: TableContext, stage: str, keys: list[str]) -> str:
    """One statement: the staged rows into the target, updating the rows whose key exists."""
    d = ctx.target_dialect
    target = quote_table(ctx.target_name, d)
    names = [c.name for c in ctx.columns]
    columns = ", ".join(quote_ident(n, d) for n in names)
    others = [n for n in names if n not in keys]
    select = f"SELECT {columns} FROM {quote_table(stage, d)}"
    if d == "mysql":
        if not others:
            return f"INSERT IGNORE INTO {target} ({columns}) {select}"
        sets = ", ".join(f"{quote_ident(n, d)} = VALUES({quote_ident(n, d)})" for n in others)
        return f"INSERT INTO {target} ({columns}) {select} ON DUPLICATE KEY UPDATE {sets}"
    if d == "sqlite":
        select += " WHERE true"  # SQLite: ON CONFLICT after a SELECT needs a WHERE to parse
    conflict = ", ".join(quote_ident(k, d) for k in keys)
    if not others:
        action = "DO NOTHING"
    else:
        sets = ", ".join(f"{quote_ident(n, d)} = excluded.{quote_ident(n, d)}" for n in others)
        action = f"DO UPDATE SET {sets}"
    return f"INSERT INTO {target} ({columns}) {select} ON CONFLICT ({conflict}) {action}"


def _cursor_columns(ctx: TableContext) -> list[str]:
    cursor = ctx.spec.cursor
    columns = [cursor] if isinstance(cursor, str) else list(cursor or [])
    read = ctx.columns if ctx.read_columns is None else ctx.read_columns
    for name in columns:
        if not any(c.name == name for c in read):
            known = ", ".join(c.name for c in read)
            raise ctx.issue(
                f"cursor column '{name}' is not read from the source (columns: {known})"
            )
    # the watermark is the cursor's raw maximum, kept in the state store and shown by plan
    ruled = {e["column"]: e["rule"] for e in (ctx.sanitize.report if ctx.sanitize else [])}
    for name in columns:
        if ruled.get(name) not in (None, "allowed"):
            raise ctx.issue(
                f"cursor column '{name}' has the sanitize rule {ruled[name]}, but its raw values "
                "would be kept as the watermark in the state store and shown by plan; use a "
                "cursor without a rule (under profile hipaa: list it in sanitize.allow)"
            )
    return columns


def compile(ctx: TableContext, after: list[str]) -> tuple[TablePlan, list[Task]]:  # noqa: A001
    spec = ctx.spec
    if spec.strategy == "checksum":
        from runner.modes import incremental_checksum

        return incremental_checksum.compile(ctx, after)
    columns = _cursor_columns(ctx)
    types = cursor_types(ctx, columns)
    keys = merge_keys(ctx)
    saved = ctx.state.get_watermark(ctx.job.name, ctx.target_name) if ctx.state else None
    start = saved[0] if saved else None
    if start is not None and not isinstance(start, list):
        start = [start]
    lower = None
    if start is not None:
        try:
            lower = [lookback_from(start[0], types[0], spec.lookback), *start[1:]]
        except ValueError as exc:
            raise ctx.issue(str(exc)) from None
    upper, where, rows, once = plan_window(ctx, columns, types, lower)
    bounds: list[Any] = []
    key_sanitized = ctx.sanitize is not None and ctx.sanitize.key_sanitized
    if ctx.key and not key_sanitized and not once:  # chunked by key range as copy does
        key_arrow = next((c.arrow_type for c in ctx.columns if c.name == ctx.key), None)
        if key_arrow not in ("binary", "large_binary"):
            bounds = ctx.catalog.key_bounds(
                ctx.source_name, ctx.key, where, rows, spec.chunk_rows or 100_000,
                ctx.key_is_integer, text=key_arrow == "string",
            )  # fmt: skip
    window_ctx = dataclasses.replace(ctx, where=where, rows=rows, bounds=bounds)
    tasks, ranges, read_sql, delete_sql = copy_mode.stage_tasks(window_ctx, "incremental")
    names = copy_mode._names(ctx)
    d = ctx.target_dialect
    stage_sql = quote_table(names["stage"], d)
    merge = merge_sql(ctx, names["stage"], keys)
    drop = f"DROP TABLE IF EXISTS {stage_sql}"
    create_steps = copy_mode._finalize_steps(ctx, names, "replace")["new"]
    advance = upper is not None and (
        start is None
        or [typed(v, t) for v, t in zip(upper, types, strict=True)]
        >= [typed(v, t) for v, t in zip(start, types, strict=True)]
    )
    mark = None
    if advance and upper is not None:
        mark = {"value": upper[0] if len(upper) == 1 else upper, "type": ",".join(types)}
    count_stage = f"SELECT COUNT(*) FROM {stage_sql}"
    if once:  # the new watermark is the largest cursor value staged
        cursor_sql = quote_ident(columns[0], d)
        count_stage = f"SELECT COUNT(*), MAX({cursor_sql}) FROM {stage_sql}"
    chunk_ids = tuple(t.id for t in tasks if t.kind == "chunk")
    tasks.append(
        Task(
            f"{ctx.target_name}:finalize",
            "finalize",
            ctx.target_name,
            "incremental",
            (*chunk_ids, *after),
            {
                "target": names["target"],
                "stage": names["stage"],
                "verify": spec.verify or "count",
                "merge": merge,
                "drop_stage": drop,
                "create": create_steps,
                **stage_key.finalize_params(tasks[0].params),
                "transactional_ddl": ctx.target.capabilities.transactional_ddl,
                "count_stage": count_stage,
                "watermark_read": once,
                "watermark_from": start,
                "watermark_type": ",".join(types),
                **(verify_params(window_ctx, names["stage"]) if spec.verify == "checksum" else {}),
                "watermark": mark,
            },
        )
    )

    def shown(value: list[Any] | None) -> Any:
        return None if value is None else (value[0] if len(value) == 1 else value)

    finalize = [merge, drop] if ctx.target_exists else [s for step in create_steps for s in step]
    finalize = [*stage_key.shown(tasks[0].params), *finalize]
    plan = TablePlan(
        source=ctx.source_name,
        target=ctx.target_name,
        mode="incremental",
        key=ctx.key,
        rows=rows,
        bytes=int(ctx.bytes * rows / ctx.rows) if ctx.rows else 0,
        columns=tuple(ctx.columns),
        chunks=tuple(tuple(r) for r in ranges),
        options={
            "strategy": spec.strategy or "cursor",
            "cursor": spec.cursor,
            "lookback": spec.lookback,
            "merge_key": keys,
            "watermark_from": shown(start),
            "read_from": shown(lower),
            "watermark_to": shown(upper),
            "watermark_read": once,
            "chunk_rows": spec.chunk_rows,
            "verify": spec.verify,
            "where": spec.where,
        },
        sql={
            "prepare": (tasks[0].params.get("create_unkeyed", tasks[0].params["create"]),),
            "read": tuple(read_sql),
            "write": tuple(delete_sql),
            "finalize": tuple(finalize),
        },
        target_exists=ctx.target_exists,
    )
    return plan, tasks


# --- task bodies -------------------------------------------------------------------------------
def run(task: Task, ctx: RunContext) -> TaskResult:
    if task.params.get("strategy") == "checksum":
        from runner.modes import incremental_checksum

        return incremental_checksum.run(task, ctx)
    body = {"prepare": copy_mode._prepare, "chunk": copy_mode._chunk, "finalize": _finalize}[
        task.kind
    ]
    return body(task, ctx)


def _finalize(task: Task, ctx: RunContext) -> TaskResult:
    p, target = task.params, ctx.target
    if not target.table_exists(p["stage"]):
        # merged by an earlier attempt that stopped before recording it. The watermark is not
        # moved: the next run reads from the old one, which the merge makes harmless.
        return TaskResult(extra={"already": "merged"})
    expected = sum(
        r.rows for tid, r in ctx.results.items() if tid.startswith(f"{task.table}:chunk:")
    )
    stage_key.ensure(task, ctx)  # a first run's staging table, loaded without its key
    mark = p["watermark"]
    if p.get("watermark_read"):
        counted, largest = target.rows(p["count_stage"])[0]
        staged, mark = int(counted or 0), _staged_mark(p, largest)
    else:
        staged = int(target.scalar(p["count_stage"]) or 0)
    if p["verify"] == "count" and staged != expected:
        raise VerifyError(
            f"{task.table}: staging holds {staged} rows but {expected} were read; "
            "the target was left unchanged"
        )
    if p["verify"] == "checksum":
        verify_checksum(task.table, ctx, p)
    ctx.check_cancel()
    if not target.table_exists(p["target"]):
        for statements in p["create"]:  # the first run: staging becomes the target, key and all
            target.execute(statements)
    elif p["transactional_ddl"]:
        target.execute([p["merge"], p["drop_stage"]])
    else:
        target.execute([p["merge"]])  # MariaDB: DROP TABLE would commit on its own
        target.execute([p["drop_stage"]])
    return TaskResult(rows=staged, extra={"watermark": mark, "merged": staged})


def _staged_mark(p: dict[str, Any], largest: Any) -> dict[str, Any] | None:
    """The watermark a one-read run saves: the largest cursor value it staged, unless that is
    below the stored one (a ``lookback`` window with nothing newer) or there is none (nothing
    read but NULL cursors): then the stored watermark stays."""
    if largest is None:
        return None
    value, kind = plain(largest), p["watermark_type"]
    start = p["watermark_from"]
    if start is not None and typed(value, kind) < typed(start[0], kind):
        return None
    return {"value": value, "type": kind}
