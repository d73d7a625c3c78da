"""bulk: a full reload into staging, a guard, the old target kept as a backup, an atomic swap.

The chunks load a staging table exactly as copy does, so the target is untouched until the last
step, and a reload killed part way leaves the old data in place. Before anything destructive the
finalize step refuses (``SafetyError``, exit 6) a source that read 0 rows (unless
``allow_empty: true``) or one that shrank by more than ``max_shrink_pct`` (default 50) against
the current target. Then, in one transaction (one ``RENAME TABLE`` on MariaDB), the target becomes
``<table>__prev_<n>`` and staging becomes the target; backups beyond ``keep_backups`` (default 1)
are dropped afterwards, oldest first. A SQLite file target is also copied whole before the
run's first swap (file_backup.py: ``<stem>.prev-<run id>.db``, the newest ``keep_backups`` kept).
"""

from __future__ import annotations

import re
from typing import Any

from runner.errors import SafetyError, TaskError, VerifyError
from runner.execute.context import RunContext, TaskResult
from runner.modes import _stage_key as stage_key
from runner.modes import copy as copy_mode
from runner.plan.catalog import quote_ident, quote_table
from runner.plan.checksum import verify_checksum, verify_params
from runner.plan.compiler import TableContext
from runner.plan.plan import TablePlan, Task

MAX_SHRINK_PCT = 50.0
KEEP_BACKUPS = 1


def backup_name(target: str, number: int, limit: int) -> str:
    schema, _, table = target.rpartition(".")
    return (f"{schema}." if schema else "") + copy_mode._fit(table, f"__prev_{number}", limit)


def compile(ctx: TableContext, after: list[str]) -> tuple[TablePlan, list[Task]]:  # noqa: A001
    spec = ctx.spec
    names = copy_mode._names(ctx)
    tasks, ranges, read_sql, delete_sql = copy_mode.stage_tasks(ctx, "bulk")
    d = ctx.target_dialect
    stage_sql = quote_table(names["stage"], d)
    limit = ctx.target.capabilities.max_identifier_length
    max_shrink = MAX_SHRINK_PCT if spec.max_shrink_pct is None else spec.max_shrink_pct
    keep = KEEP_BACKUPS if spec.keep_backups is None else spec.keep_backups
    chunk_ids = tuple(t.id for t in tasks if t.kind == "chunk")
    tasks.append(
        Task(
            f"{ctx.target_name}:finalize",
            "finalize",
            ctx.target_name,
            "bulk",
            (*chunk_ids, *after),
            {
                "target": names["target"],
                "stage": names["stage"],
                "verify": spec.verify or "count",
                "dialect": d,
                "limit": limit,
                "target_pk": names["target_pk"],
                "stage_pk": names["stage_pk"],
                "create": copy_mode._finalize_steps(ctx, names, "replace")["new"],
                "count_stage": f"SELECT COUNT(*) FROM {stage_sql}",
                **stage_key.finalize_params(tasks[0].params),
                **(verify_params(ctx, names["stage"]) if spec.verify == "checksum" else {}),
                "count_target": f"SELECT COUNT(*) FROM {quote_table(names['target'], d)}",
                "max_shrink_pct": max_shrink,
                "allow_empty": bool(spec.allow_empty),
                "keep_backups": keep,
            },
        )
    )
    shown = _swap(tasks[-1].params, backup_name(ctx.target_name, 1, limit))
    plan = TablePlan(
        source=ctx.source_name,
        target=ctx.target_name,
        mode="bulk",
        key=ctx.key,
        rows=ctx.rows,
        bytes=ctx.bytes,
        columns=tuple(ctx.columns),
        chunks=tuple(tuple(r) for r in ranges),
        options={
            "chunk_rows": spec.chunk_rows,
            "verify": spec.verify,
            "where": spec.where,
            "max_shrink_pct": max_shrink,
            "allow_empty": bool(spec.allow_empty),
            "keep_backups": keep,
        },
        sql={
            "prepare": (tasks[0].params.get("create_unkeyed", tasks[0].params["create"]),),
            "read": tuple(read_sql),
            "write": tuple(delete_sql),
            "finalize": (
                *stage_key.shown(tasks[0].params),
                *(shown if ctx.target_exists else tasks[-1].params["create"][0]),
            ),
        },
        target_exists=ctx.target_exists,
    )
    return plan, tasks


def _swap(p: dict[str, Any], backup: str) -> list[str]:
    """One transaction (one statement on MariaDB): target -> backup, staging -> target."""
    d = p["dialect"]
    target, stage, prev = (quote_table(n, d) for n in (p["target"], p["stage"], backup))
    if d == "mysql":  # RENAME TABLE is atomic in MariaDB; DDL in a transaction is not
        return [f"RENAME TABLE {target} TO {prev}, {stage} TO {target}"]
    schema = p["target"].rpartition(".")[0]
    prefix = f"{schema}." if schema else ""
    steps = []
    if d == "postgres":  # the old key's index name must be free for the new one
        old_pk = quote_table(prefix + p["target_pk"], d)
        steps.append(
            f"ALTER INDEX IF EXISTS {old_pk} RENAME TO "
            f"{quote_ident(copy_mode._fit(backup.rpartition('.')[2], '_pkey', p['limit']), d)}"
        )
    steps += [
        f"ALTER TABLE {target} RENAME TO {quote_ident(backup.rpartition('.')[2], d)}",
        f"ALTER TABLE {stage} RENAME TO {quote_ident(p['target'].rpartition('.')[2], d)}",
    ]
    if d == "postgres":
        steps.append(
            f"ALTER INDEX IF EXISTS {quote_table(prefix + p['stage_pk'], d)} "
            f"RENAME TO {quote_ident(p['target_pk'], d)}"
        )
    return steps


def _backups(ctx: RunContext, target: str) -> list[tuple[int, str]]:
    """The target's earlier versions, ``(number, name)``, oldest first."""
    schema, _, table = target.rpartition(".")
    pattern = re.compile(re.escape(table) + r"__prev_(\d+)$")
    found = []
    for name in ctx.target.list_tables():
        bare = name.rpartition(".")[2]
        if matched := pattern.match(bare):
            found.append((int(matched.group(1)), (f"{schema}." if schema else "") + bare))
    return sorted(found)


# --- task bodies -------------------------------------------------------------------------------
def run(task: Task, ctx: RunContext) -> TaskResult:
    body = {"prepare": copy_mode._prepare, "chunk": copy_mode._chunk, "finalize": _finalize}
    return body[task.kind](task, ctx)


def guard(staged: int, current: int | None, max_shrink_pct: float, allow_empty: bool) -> None:
    """Refuse a reload that would empty the target or shrink it past the limit."""
    if staged == 0 and allow_empty:
        return  # emptying the target is what the spec asks for
    if staged == 0:
        raise SafetyError(
            "the source has 0 rows; refusing to replace the target with an empty table "
            "(set allow_empty: true if that is meant). The target was left unchanged"
        )
    if current:
        shrink = 100.0 * (current - staged) / current
        if shrink > max_shrink_pct:
            raise SafetyError(
                f"the source has {staged} rows against {current} in the target: it shrank by "
                f"{shrink:.1f}%, more than max_shrink_pct ({max_shrink_pct:g}). The target was "
                "left unchanged; raise max_shrink_pct if that is meant"
            )


def _finalize(task: Task, ctx: RunContext) -> TaskResult:
    p, target = task.params, ctx.target
    if not target.table_exists(p["stage"]):
        if target.table_exists(p["target"]):  # swapped by an attempt that stopped right after
            return TaskResult(extra={"already": "swapped"})
        raise TaskError(f"staging table '{p['stage']}' is missing; re-run with --fresh")
    expected = sum(
        r.rows for tid, r in ctx.results.items() if tid.startswith(f"{task.table}:chunk:")
    )
    stage_key.ensure(task, ctx)
    staged = int(target.scalar(p["count_stage"]) or 0)
    if p["verify"] == "count" and staged != expected:
        raise VerifyError(
            f"{task.table}: staging holds {staged} rows but {expected} were read; "
            "the target was left unchanged"
        )
    if p["verify"] == "checksum":
        verify_checksum(task.table, ctx, p)
    exists = target.table_exists(p["target"])
    current = int(target.scalar(p["count_target"]) or 0) if exists else None
    guard(staged, current, p["max_shrink_pct"], p["allow_empty"])
    ctx.check_cancel()
    if not exists:
        for statements in p["create"]:
            target.execute(statements)
        return TaskResult(rows=staged)
    copied = None
    if p["dialect"] == "sqlite" and getattr(target, "path", None):  # the seed's file backup
        from runner.modes.file_backup import backup_file

        copied = backup_file(target.path, ctx.run_id, p["keep_backups"])
    backups = _backups(ctx, p["target"])
    number = (backups[-1][0] + 1) if backups else 1
    backup = backup_name(p["target"], number, p["limit"])
    target.execute(_swap(p, backup))
    backups.append((number, backup))
    dropped = []
    for _, name in backups[: max(len(backups) - p["keep_backups"], 0)]:
        target.execute([f"DROP TABLE IF EXISTS {quote_table(name, p['dialect'])}"])
        dropped.append(name)
    kept = backup if p["keep_backups"] else None
    return TaskResult(
        rows=staged,
        extra={"backup": kept, "dropped": dropped, "file_backup": copied and str(copied)},
    )
