"""copy: a full copy of each table, loaded into a staging table chunk by chunk, then swapped in.

Every ``if_exists`` goes through staging, so the target only changes in the final step, in one
transaction (or one atomic RENAME TABLE where DDL is not transactional):

    replace   the staging table replaces the target        (default)
    append    staged rows are inserted into the target
    truncate  the target's rows are replaced by the staged rows
    fail      like replace, but refuses when the target already exists

A chunk is ``DELETE <its key range> FROM staging`` + its inserts in one target transaction, so
re-running a chunk after a crash can neither duplicate nor lose rows.
"""

from __future__ import annotations

import hashlib
from typing import Any

from sqlglot import exp

from runner.errors import TaskError, VerifyError
from runner.execute.context import RunContext, TaskResult
from runner.modes import _stage_key as stage_key
from runner.modes._stage_chunk import chunk as _chunk
from runner.plan.catalog import binary_order, quote_ident, quote_table
from runner.plan.checksum import verify_checksum, verify_params
from runner.plan.compiler import TableContext
from runner.plan.plan import TablePlan, Task


def _fit(name: str, suffix: str, limit: int) -> str:
    """``name + suffix`` within the backend's identifier limit, kept unique by a hash."""
    if len(name) + len(suffix) <= limit:
        return name + suffix
    digest = hashlib.sha1(name.encode()).hexdigest()[:8]
    return f"{name[: limit - len(suffix) - 9]}_{digest}{suffix}"


def _names(ctx: TableContext) -> dict[str, str]:
    schema, _, table = ctx.target_name.rpartition(".")
    limit = ctx.target.capabilities.max_identifier_length
    prefix = f"{schema}." if schema else ""
    return {
        "target": ctx.target_name,
        "stage": prefix + _fit(table, "__etlrun_stage", limit),
        "old": prefix + _fit(table, "__etlrun_old", limit),
        "stage_pk": _fit(table, "__etlrun_stage_pkey", limit),
        "target_pk": _fit(table, "_pkey", limit),
    }


def _stage_keys(ctx: TableContext) -> list[str]:
    keys = list(ctx.spec.primary_key or ctx.info.primary_key)
    return [k for k in keys if any(c.name == k for c in ctx.columns)]


def _key_sql(ctx: TableContext, names: dict[str, str]) -> str:
    d = ctx.target_dialect
    constraint = f"CONSTRAINT {quote_ident(names['stage_pk'], d)} " if d == "postgres" else ""
    return f"{constraint}PRIMARY KEY ({', '.join(quote_ident(k, d) for k in _stage_keys(ctx))})"


def _create_sql(ctx: TableContext, names: dict[str, str], keyed: bool = True) -> str:
    d = ctx.target_dialect
    nullable = {c.name: c.nullable for c in ctx.info.columns}
    keys = _stage_keys(ctx)
    lines = [
        f"  {quote_ident(c.name, d)} {c.target_type}"
        + ("" if nullable.get(c.name, True) and c.name not in keys else " NOT NULL")
        for c in ctx.columns
    ]
    if keys and keyed:
        lines.append(f"  {_key_sql(ctx, names)}")
    body = ",\n".join(lines)
    # code point order without PAD SPACE: keys 'a' and 'a ' stay apart, and text key ranges
    # compare as the source's chunk bounds were cut (see plan/catalog.binary_order)
    suffix = (
        " ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_nopad_bin" if d == "mysql" else ""
    )
    return f"CREATE TABLE {quote_table(names['stage'], d)} (\n{body}\n){suffix}"


def _rename(ctx: TableContext, old: str, new: str) -> str:
    d = ctx.target_dialect
    if d == "mysql":
        return f"RENAME TABLE {quote_table(old, d)} TO {quote_table(new, d)}"
    return f"ALTER TABLE {quote_table(old, d)} RENAME TO {quote_ident(new.rpartition('.')[2], d)}"


def _finalize_steps(ctx: TableContext, names: dict[str, str], if_exists: str) -> dict[str, Any]:
    """The statements of the last step, as transactions (lists of statements), per case."""
    d = ctx.target_dialect
    stage, target, old = (quote_table(names[k], d) for k in ("stage", "target", "old"))
    columns = ", ".join(quote_ident(c.name, d) for c in ctx.columns)
    drop_stage = [f"DROP TABLE IF EXISTS {stage}"]
    cleanup = [f"DROP TABLE IF EXISTS {old}"]
    if if_exists in ("append", "truncate"):
        move = [
            f"INSERT INTO {target} ({columns}) SELECT {columns} FROM {stage}",
            f"DELETE FROM {stage}",
        ]
        if if_exists == "truncate":
            move.insert(0, f"DELETE FROM {target}")
        new = [[_rename(ctx, names["stage"], names["target"])]]
        return {"existing": [move, drop_stage], "new": new, "cleanup": cleanup}
    if not ctx.target.capabilities.transactional_ddl:
        # MariaDB: RENAME TABLE swaps both names atomically; DDL in a transaction would not be
        existing = [[f"RENAME TABLE {target} TO {old}, {stage} TO {target}"], cleanup]
        return {
            "existing": existing,
            "new": [[_rename(ctx, names["stage"], names["target"])]],
            "cleanup": cleanup,
        }
    swap = [f"DROP TABLE {target}", _rename(ctx, names["stage"], names["target"])]
    if d == "postgres" and ctx.info.primary_key:
        swap.append(
            "ALTER INDEX IF EXISTS "
            f"{quote_table(_schema_of(names['stage']) + names['stage_pk'], d)}"
            f" RENAME TO {quote_ident(names['target_pk'], d)}"
        )
    new = swap[1:]
    return {"existing": [swap], "new": [new], "cleanup": cleanup}


def _schema_of(name: str) -> str:
    schema = name.rpartition(".")[0]
    return f"{schema}." if schema else ""


_PARAM = "__etlrun_param__"


def _range(
    ctx: TableContext, lo: Any, hi: Any, params: bool
) -> tuple[exp.Expression | None, list[Any]]:
    """``lo < key <= hi`` (either side open), with literals or with placeholders for ``params``."""
    if ctx.key is None or (lo is None and hi is None):
        return None, []
    column = exp.column(ctx.key, quoted=True)
    compared: exp.Expression = column
    if not params and _key_type(ctx) == "string":
        # the source compares text keys in the target's (code point) order: see binary_order
        compared = binary_order(column.copy(), ctx.source_dialect)
    parts: list[exp.Expression] = []
    values: list[Any] = []
    for bound, op in ((lo, exp.GT), (hi, exp.LTE)):
        if bound is None:
            continue
        value: exp.Expression
        if not params:
            value = (
                exp.Literal.number(bound) if isinstance(bound, int) else exp.Literal.string(bound)
            )
        else:
            value = exp.var(_PARAM)
            values.append(bound)
        parts.append(op(this=compared.copy(), expression=value))
    condition: exp.Expression = exp.and_(*parts) if len(parts) > 1 else parts[0]
    if lo is None:  # the first chunk also owns NULL keys (possible for a declared primary_key)
        condition = exp.or_(exp.paren(condition), exp.Is(this=column.copy(), expression=exp.Null()))
    return condition, values


def _key_later(
    ctx: TableContext, names: dict[str, str], mode: str, if_exists: str
) -> dict[str, str]:
    """The statements of a staging table loaded without its primary key (modes/_stage_key):
    on PostgreSQL, where the table becomes the target whole (copy's ``if_exists: replace``,
    bulk, incremental's first run), and not under ``on_error: reject``, whose bisection needs
    the database to refuse a duplicate key row by row. Nothing where it does not apply."""
    whole = (
        mode == "bulk"
        or (mode == "copy" and if_exists == "replace")
        or (mode == "incremental" and not ctx.target_exists)
    )
    if (
        ctx.target_dialect != "postgres"
        or not _stage_keys(ctx)
        or ctx.spec.on_error == "reject"
        or not whole
    ):
        return {}
    return stage_key.statements(
        quote_table(names["stage"], ctx.target_dialect),
        _create_sql(ctx, names, keyed=False),
        _key_sql(ctx, names),
    )


def stage_tasks(
    ctx: TableContext, mode: str, if_exists: str = "replace"
) -> tuple[list[Task], list[tuple[Any, Any]], list[str], list[str]]:
    """The prepare task (a fresh staging table) and one chunk task per key range of
    ``ctx.bounds`` (delete-range + insert into staging), as copy, incremental and bulk share them.

    Returns the tasks, the key ranges, and the read / write SQL shown by the plan.
    """
    names = _names(ctx)
    d_src, d_tgt = ctx.source_dialect, ctx.target_dialect
    table = ctx.target_name
    prepare_id = f"{table}:prepare"
    create = _create_sql(ctx, names)
    later = _key_later(ctx, names, mode, if_exists)
    bounds = [None, *ctx.bounds, None]
    ranges = list(zip(bounds[:-1], bounds[1:], strict=True))
    schema = [[c.name, c.arrow_type] for c in ctx.columns]
    stage_sql = quote_table(names["stage"], d_tgt)
    tasks: list[Task] = [
        Task(
            prepare_id,
            "prepare",
            table,
            mode,
            (),
            {
                "target": names["target"],
                "stage": names["stage"],
                "if_exists": if_exists,
                "create": create,
                "drop_stage": f"DROP TABLE IF EXISTS {stage_sql}",
                "chunks": len(ranges),
                **later,
            },
        ),
    ]
    select = ctx.select()
    # same database on both sides: chunks may move as the target's own bulk format, undecoded
    raw = ctx.raw_select() if d_src == d_tgt == "postgres" else None
    read_sql, delete_sql = [], []
    per_chunk = ctx.rows // max(len(ranges), 1)
    for number, (lo, hi) in enumerate(ranges, start=1):
        condition, _ = _range(ctx, lo, hi, params=False)
        query = select.copy()
        if condition is not None:
            query = query.where(condition)
        sql = query.sql(dialect=d_src, identify=True)
        piped = {}
        if raw is not None:
            raw_query = raw.where(condition) if condition is not None else raw
            piped = {"pipe_select": raw_query.sql(dialect=d_src, identify=True)}
        target_condition, params = _range(ctx, lo, hi, params=True)
        delete = f"DELETE FROM {stage_sql}"
        if target_condition is not None:
            delete += f" WHERE {target_condition.sql(dialect=d_tgt, identify=True)}"
        if params and ctx.target.placeholder == "%s":  # a % in a name must not read as a parameter
            delete = delete.replace("%", "%%")
        delete = delete.replace(_PARAM, ctx.target.placeholder)
        read_sql.append(sql)
        shown = f"({'-inf' if lo is None else lo}, {'+inf' if hi is None else hi}]"
        notes = [f"key in {shown}"] if params else []
        if later:  # see modes/_stage_key: a first attempt has nothing to clear
            notes.append("on a retry or a resumed run only")
        delete_sql.append(delete + (f"  -- {'; '.join(notes)}" if notes else ""))
        tasks.append(
            Task(
                f"{table}:chunk:{number:04d}",
                "chunk",
                table,
                mode,
                (prepare_id,),
                {
                    "select": sql,
                    **piped,
                    "delete": delete,
                    "bounds": [lo, hi],
                    "key_type": _key_type(ctx),
                    "stage": stage_sql,
                    "schema": schema,
                    "chunk": number,
                    "chunks": len(ranges),
                    **_on_error(ctx),
                },
                rows=per_chunk
                if number < len(ranges)
                else ctx.rows - per_chunk * (len(ranges) - 1),
            )
        )
    return tasks, ranges, read_sql, delete_sql


def compile(ctx: TableContext, after: list[str]) -> tuple[TablePlan, list[Task]]:  # noqa: A001
    spec = ctx.spec
    if_exists = spec.if_exists or "replace"
    names = _names(ctx)
    table = ctx.target_name
    tasks, ranges, read_sql, delete_sql = stage_tasks(ctx, "copy", if_exists)
    stage_sql = quote_table(names["stage"], ctx.target_dialect)
    create = tasks[0].params["create"]
    steps = _finalize_steps(ctx, names, if_exists)
    chunk_ids = tuple(t.id for t in tasks if t.kind == "chunk")
    tasks.append(
        Task(
            f"{table}:finalize",
            "finalize",
            table,
            "copy",
            (*chunk_ids, *after),
            {
                "target": names["target"],
                "stage": names["stage"],
                "if_exists": if_exists,
                "verify": spec.verify or "count",
                "steps": steps,
                "count_stage": f"SELECT COUNT(*) FROM {stage_sql}",
                **stage_key.finalize_params(tasks[0].params),
                **(verify_params(ctx, names["stage"]) if spec.verify == "checksum" else {}),
            },
        )
    )
    finalize_shown = steps["existing"] if ctx.target_exists else steps["new"]
    plan = TablePlan(
        source=ctx.source_name,
        target=table,
        mode="copy",
        key=ctx.key,
        rows=ctx.rows,
        bytes=ctx.bytes,
        columns=tuple(ctx.columns),
        chunks=tuple(tuple(r) for r in ranges),
        options={
            "if_exists": if_exists,
            "chunk_rows": spec.chunk_rows,
            "verify": spec.verify,
            "where": spec.where,
        },
        sql={
            "prepare": (tasks[0].params.get("create_unkeyed", create),),
            "read": tuple(read_sql),
            "write": tuple(delete_sql),
            "finalize": (
                *stage_key.shown(tasks[0].params),
                *(s for step in finalize_shown for s in step),
            ),
        },
        target_exists=ctx.target_exists,
    )
    return plan, tasks


def _on_error(ctx: TableContext) -> dict[str, Any]:
    """The key columns (named in errors and reject records), and ``on_error: reject``'s needs."""
    copied = {c.name for c in ctx.columns}
    keys = [k for k in ctx.spec.primary_key or ctx.info.primary_key if k in copied]
    if ctx.spec.on_error != "reject":
        return {"keys": keys}  # named in the error that stops the chunk
    return {"on_error": "reject", "job": ctx.job.name, "keys": keys}


def _key_type(ctx: TableContext) -> str | None:
    return next((c.arrow_type for c in ctx.columns if c.name == ctx.key), None)


# --- task bodies (run on a thread or a Dask worker) -------------------------------------------
def run(task: Task, ctx: RunContext) -> TaskResult:
    return {"prepare": _prepare, "chunk": _chunk, "finalize": _finalize}[task.kind](task, ctx)


def _prepare(task: Task, ctx: RunContext) -> TaskResult:
    p, target = task.params, ctx.target
    if p["if_exists"] == "fail" and target.table_exists(p["target"]):
        raise TaskError(f"target table '{p['target']}' exists and the spec says if_exists: fail")
    resumed_chunks = [t for t in ctx.done if t.startswith(f"{task.table}:chunk:")]
    if resumed_chunks:
        if target.table_exists(p["stage"]):
            # loaded without its key by the earlier attempt: the key first, so the chunks left
            # delete their range by it before they load (see modes/_stage_chunk)
            stage_key.ensure(task, ctx)
            return TaskResult(extra={"kept_stage": len(resumed_chunks)})
        if len(resumed_chunks) == p.get("chunks") and target.table_exists(p["target"]):
            # every chunk was staged and the stage is gone: the finalize step of an earlier
            # attempt swapped (or merged) it in and stopped before recording that
            return TaskResult(extra={"already": "finalized"})
        raise TaskError(
            f"staging table '{p['stage']}' of an unfinished run is gone; "
            "re-run with --fresh to start over"
        )
    # the key after loading only where every chunk runs in this process, which can then tell a
    # chunk's first attempt (nothing of it in the fresh table) from a retry (see _stage_chunk)
    unkeyed = "create_unkeyed" in p and ctx.assemble
    target.execute([p["drop_stage"], p["create_unkeyed"] if unkeyed else p["create"]])
    if unkeyed:  # as the chunks name it
        ctx.unkeyed.add(quote_table(p["stage"], target.dialect))
    return TaskResult()


def _finalize(task: Task, ctx: RunContext) -> TaskResult:
    p, target = task.params, ctx.target
    steps = p["steps"]
    expected = sum(
        r.rows for tid, r in ctx.results.items() if tid.startswith(f"{task.table}:chunk:")
    )
    if not target.table_exists(p["stage"]):
        if target.table_exists(p["target"]):
            # an earlier attempt swapped and then stopped before recording it
            target.execute(steps["cleanup"])
            return TaskResult(extra={"already": "swapped"})
        raise TaskError(f"staging table '{p['stage']}' is missing; re-run with --fresh")
    stage_key.ensure(task, ctx)
    staged = int(target.scalar(p["count_stage"]) or 0)
    if p["if_exists"] in ("append", "truncate") and staged == 0 and expected > 0:
        target.execute(steps["existing"][-1])  # rows already moved by an earlier attempt
        return TaskResult(extra={"already": "moved"})
    if p["verify"] == "count" and staged != expected:
        raise VerifyError(
            f"{task.table}: staging holds {staged} rows but {expected} were read; "
            "the target was left unchanged"
        )
    if p["verify"] == "checksum":
        verify_checksum(task.table, ctx, p)
    exists = target.table_exists(p["target"])
    for statements in steps["existing" if exists else "new"]:
        ctx.check_cancel()
        target.execute(statements)
    if exists:
        target.execute(steps["cleanup"])
    return TaskResult(rows=staged, extra={"verified": p["verify"] != "off"})
