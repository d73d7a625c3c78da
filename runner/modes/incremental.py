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

A composite cursor (a list of columns) compares lexicographically; ``lookback`` moves its first
column. Deleted source rows are not carried over (use bulk, or sync when it is available).
"""

from __future__ import annotations

import dataclasses
import re
from datetime import date, datetime, timedelta
from typing import Any

from sqlglot import exp

from runner.errors import VerifyError
from runner.execute.context import RunContext, TaskResult
from runner.modes import copy as copy_mode
from runner.plan.catalog import literal, plain, quote_ident, quote_table, table_expr
from runner.plan.checksum import verify_checksum, verify_params
from runner.plan.compiler import TableContext
from runner.plan.plan import TablePlan, Task

_DURATION = re.compile(r"^\s*(\d+)\s*(s|m|h|d)\s*$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}


def parse_duration(text: str) -> timedelta:
    """``"15m"`` -> 15 minutes; units s, m, h, d.

    Example:
        >>> parse_duration("2h")
        datetime.timedelta(seconds=7200)
    """
    found = _DURATION.match(text)
    if not found:
        raise ValueError(
            f"'{text}' is not a duration; write a number and a unit: 30s, 15m, 2h or 1d"
        )
    return timedelta(**{_UNITS[found.group(2)]: int(found.group(1))})


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


def _cursor_types(ctx: TableContext, columns: list[str]) -> list[str]:
    read = ctx.columns if ctx.read_columns is None else ctx.read_columns
    return [next(c.arrow_type for c in read if c.name == name) for name in columns]


def source_max(ctx: TableContext, columns: list[str]) -> list[Any] | None:
    """The largest cursor value in the source now (lexicographic for several columns)."""
    query = exp.select(*(exp.column(c, quoted=True) for c in columns)).from_(
        table_expr(ctx.source_name)
    )
    conditions = [exp.Not(this=exp.Is(this=exp.column(c, quoted=True), expression=exp.Null()))
                  for c in columns]  # fmt: skip
    if ctx.where is not None:
        conditions.append(ctx.where.copy())
    query = query.where(exp.and_(*conditions))
    query = query.order_by(*(exp.Ordered(this=exp.column(c, quoted=True), desc=True)
                             for c in columns)).limit(1)  # fmt: skip
    rows = ctx.source.rows(query.sql(dialect=ctx.source_dialect, identify=True))
    if not rows:
        return None
    return [plain(v) for v in rows[0]]


def _count_and_max(
    ctx: TableContext, column: str, lower: list[Any] | None
) -> tuple[int, list[Any] | None]:
    """One scan for a one-column cursor: the rows of the window (``cursor >= lower``, or every
    row on a first run, NULL cursors included) and the largest cursor value among them. Every
    non-NULL cursor is at most that largest value, so these are the rows of ``window(lower,
    upper)`` as :func:`source_max` and a count would have found them in two scans."""
    c = exp.column(column, quoted=True)
    null = exp.Is(this=c.copy(), expression=exp.Null())
    conditions: list[exp.Expression] = []
    if lower is not None:
        conditions.append(exp.or_(_lexicographic([column], lower, ">="), null))
    if ctx.where is not None:
        conditions.append(exp.paren(ctx.where.copy()))
    query = exp.select(exp.Count(this=exp.Star()), exp.Max(this=c.copy())).from_(
        table_expr(ctx.source_name)
    )
    if conditions:
        query = query.where(exp.and_(*(exp.paren(x) for x in conditions)))
    rows, largest = ctx.source.rows(query.sql(dialect=ctx.source_dialect, identify=True))[0]
    return int(rows or 0), None if largest is None else [plain(largest)]


def _typed(value: Any, arrow_type: str) -> Any:
    """A watermark value as something that compares in the column's order."""
    if value is None or isinstance(value, int):
        return value
    if arrow_type.startswith("timestamp"):
        parsed = datetime.fromisoformat(str(value))
        return parsed.replace(tzinfo=None) - (parsed.utcoffset() or timedelta(0))
    if arrow_type.startswith("date"):
        return date.fromisoformat(str(value)[:10])
    if arrow_type.startswith(("int", "uint")):
        return int(value)
    return value


def lookback_from(value: Any, arrow_type: str, lookback: str | int | None) -> Any:
    """``value`` moved back by ``lookback``, written the way the source wrote ``value``."""
    if not lookback or value is None:
        return value
    if arrow_type.startswith(("int", "uint")):
        if not isinstance(lookback, int):
            raise ValueError(f"lookback '{lookback}' is a duration, and the cursor is an integer")
        return int(value) - lookback
    delta = timedelta(seconds=lookback) if isinstance(lookback, int) else parse_duration(lookback)
    text = str(value)
    if arrow_type.startswith("date") and len(text) == 10:
        return (date.fromisoformat(text) - timedelta(days=max(delta.days, 1))).isoformat()
    if arrow_type.startswith(("timestamp", "date")):
        moved = datetime.fromisoformat(text) - delta
        return moved.isoformat(
            sep="T" if "T" in text else " ", timespec="microseconds" if "." in text else "seconds"
        )
    raise ValueError(f"lookback needs a time or integer cursor, not {arrow_type}")


def _lexicographic(columns: list[str], values: list[Any], op: str) -> exp.Expression:
    """``(c1, c2, ...) >= (v1, v2, ...)`` (or ``<=``) spelled out, for every dialect."""
    strict = exp.GT if op == ">=" else exp.LT
    last = exp.GTE if op == ">=" else exp.LTE
    column = exp.column(columns[-1], quoted=True)
    condition: exp.Expression = last(this=column, expression=literal(values[-1]))
    for name, value in zip(reversed(columns[:-1]), reversed(values[:-1]), strict=True):
        column = exp.column(name, quoted=True)
        equal = exp.EQ(this=column.copy(), expression=literal(value))
        condition = exp.or_(
            strict(this=column, expression=literal(value)),
            exp.paren(exp.and_(equal, exp.paren(condition))),
        )
    return condition


def window(
    columns: list[str], lower: list[Any] | None, upper: list[Any] | None
) -> exp.Expression | None:
    """The rows a run reads: ``lower <= cursor <= upper``, plus every row with a NULL cursor."""
    if lower is None and upper is None:
        return None  # first run of a table without a cursor value: everything
    null = exp.or_(*(exp.Is(this=exp.column(c, quoted=True), expression=exp.Null())
                     for c in columns))  # fmt: skip
    bounds = []
    if upper is not None:
        if lower is not None:
            bounds.append(_lexicographic(columns, lower, ">="))
        bounds.append(_lexicographic(columns, upper, "<="))
    if not bounds:
        return null
    return exp.or_(exp.paren(exp.and_(*(exp.paren(b) for b in bounds))), null)


def compile(ctx: TableContext, after: list[str]) -> tuple[TablePlan, list[Task]]:  # noqa: A001
    spec = ctx.spec
    if spec.strategy == "checksum":
        from runner.modes import incremental_checksum

        return incremental_checksum.compile(ctx, after)
    columns = _cursor_columns(ctx)
    types = _cursor_types(ctx, columns)
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
    counted = _count_and_max(ctx, columns[0], lower) if len(columns) == 1 else None
    upper = source_max(ctx, columns) if counted is None else counted[1]
    condition = window(columns, lower, upper)
    where = ctx.where
    if condition is not None:
        where = condition if where is None else exp.and_(exp.paren(where.copy()), condition)
    rows = ctx.catalog.count(ctx.source_name, where) if counted is None else counted[0]
    bounds: list[Any] = []
    key_sanitized = ctx.sanitize is not None and ctx.sanitize.key_sanitized
    if ctx.key and not key_sanitized:  # chunked by key range as copy does (see the compiler)
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
        or [_typed(v, t) for v, t in zip(upper, types, strict=True)]
        >= [_typed(v, t) for v, t in zip(start, types, strict=True)]
    )
    mark = None
    if advance and upper is not None:
        mark = {"value": upper[0] if len(upper) == 1 else upper, "type": ",".join(types)}
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
                "transactional_ddl": ctx.target.capabilities.transactional_ddl,
                "count_stage": f"SELECT COUNT(*) FROM {stage_sql}",
                **(verify_params(window_ctx, names["stage"]) if spec.verify == "checksum" else {}),
                "watermark": mark,
            },
        )
    )

    def shown(value: list[Any] | None) -> Any:
        return None if value is None else (value[0] if len(value) == 1 else value)

    finalize = [merge, drop] if ctx.target_exists else [s for step in create_steps for s in step]
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
            "chunk_rows": spec.chunk_rows,
            "verify": spec.verify,
            "where": spec.where,
        },
        sql={
            "prepare": (tasks[0].params["create"],),
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
    return TaskResult(rows=staged, extra={"watermark": p["watermark"], "merged": staged})
