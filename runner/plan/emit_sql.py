"""``etlrun plan --emit-sql DIR``: the SQL of a plan as files a reviewer can read in a pull request.

Per table, under ``DIR/<job>/<table>/``:

- ``source.<dialect>.sql``: the statements the run executes on the source (reads; for purge the
  guard counts, the chunk reads and the DELETEs), in the source's dialect;
- ``target.<dialect>.sql``: those it executes on a database target (staging DDL, the per-chunk
  range DELETE before each load, the swap), in the target's dialect;
- ``script.<dialect>.sql`` for each dialect asked for with ``--sql-dialects`` (purge and copy
  only): the same steps as a script for a database etlrun does not reach live (PostgreSQL,
  MySQL, SQLite, Oracle, SQL Server ``tsql``, Redshift, Snowflake), rendered through sqlglot.

Statements are the plan's own text; bound parameters (a chunk's key bounds) are shown as
literals. What only exists at run time (the rows themselves, a purge chunk's key list) is a
comment, so every file parses back with sqlglot in its dialect.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import sqlglot
from sqlglot import exp

from runner.errors import UsageError
from runner.plan.catalog import literal, table_expr
from runner.plan.plan import Plan, TablePlan, Task
from runner.plan.types import arrow_from_str, target_type
from runner.secrets import mask_url, scrub

DIALECTS = ("postgres", "mysql", "sqlite", "oracle", "tsql", "redshift", "snowflake")
"""The dialects ``--sql-dialects`` writes scripts for (``all``: every one)."""
SCRIPT_MODES = ("purge", "copy")
_NATIVE_TYPES = ("postgres", "mysql", "sqlite")
"""Dialects etlrun creates tables in itself: their DDL types are the live ones (plan/types.py);
the others get PostgreSQL's, transpiled by sqlglot."""


def parse_dialects(text: str | None) -> list[str]:
    """``--sql-dialects`` as a list: comma-separated names, or ``all``."""
    if not text:
        return []
    names = [n.strip().lower() for n in text.split(",") if n.strip()]
    if names == ["all"]:
        return list(DIALECTS)
    unknown = [n for n in names if n not in DIALECTS]
    if unknown:
        raise UsageError(
            f"--sql-dialects: unknown dialect '{unknown[0]}' (use: all, {', '.join(DIALECTS)})"
        )
    return names


def _file_name(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]", "_", name)


def emit(plan: Plan, folder: str | Path, dialects: Sequence[str] = ()) -> list[Path]:
    """Write the plan's SQL under ``folder``; the files written."""
    written = []
    for table in plan.tables:
        base = Path(folder) / _file_name(plan.job) / _file_name(table.target)
        base.mkdir(parents=True, exist_ok=True)
        tasks = [t for t in plan.tasks if t.table == table.target]
        files = {f"source.{plan.source_dialect}.sql": _source(plan, table, tasks)}
        if plan.target_dialect and table.mode != "purge":
            files[f"target.{plan.target_dialect}.sql"] = _target(plan, table, tasks)
        if table.mode in SCRIPT_MODES and table.key is not None:
            for dialect in dialects:
                build = _purge_script if table.mode == "purge" else _copy_script
                files[f"script.{dialect}.sql"] = build(plan, table, tasks, dialect)
        for name, text in files.items():
            path = base / name
            path.write_text(scrub(text))
            written.append(path)
    return written


# --- the live statements -----------------------------------------------------------------------
def _header(plan: Plan, table: TablePlan, where: str) -> list[str]:
    return [
        f"-- etlrun plan --emit-sql: job {plan.job}, table {table.source} -> {table.target}, "
        f"mode {table.mode}",
        f"-- runs on the {where}; plan {plan.fingerprint}; key ranges (lo, hi] by {table.key}",
    ]


def _range(bounds: Sequence[Any]) -> str:
    lo, hi = bounds
    return f"({'-inf' if lo is None else lo}, {'+inf' if hi is None else hi}]"


def _chunks(tasks: Iterable[Task]) -> list[Task]:
    return [t for t in tasks if t.kind == "chunk"]


def _statement(sql: str) -> str:
    return sql.rstrip().rstrip(";") + ";"


def _source(plan: Plan, table: TablePlan, tasks: list[Task]) -> str:
    lines = _header(plan, table, f"source [{plan.source_dialect}]")
    chunks = _chunks(tasks)
    if table.mode == "purge":
        o = table.options
        lines.append(f"-- where: {o['where']}; backup: {_backup(o)}; guard: {o['guard'] or 'none'}")
        if o.get("audit_table"):
            lines += ["", "-- audit_table: true: the audit tables, created when missing"]
            lines += [_statement(s) for s in _audit_ddl(plan.source_dialect)]
        lines += ["", "-- guard: rows matching, rows in the table"]
        lines += [_statement(s) for s in table.sql.get("guard", ())]
        for number, (task, delete) in enumerate(zip(chunks, table.sql["delete"], strict=True), 1):
            lines += [
                "",
                f"-- chunk {number} of {len(chunks)}: key in {_range(task.params['bounds'])}",
            ]
            if o["backup"] is not False:
                lines.append("-- read; written to the backup, read back and verified before:")
                lines.append(_statement(task.params["select"]))
                lines.append("-- in one transaction, with the chunk's audit row:")
            lines.append(_statement(delete))
        return "\n".join(lines) + "\n"
    for number, task in enumerate(chunks, 1):
        lines += ["", f"-- chunk {number} of {len(chunks)}: key in {_range(task.params['bounds'])}"]
        lines.append(_statement(task.params["select"]))
    return "\n".join(lines) + "\n"


def _backup(options: dict[str, Any]) -> str:
    backup = options["backup"]
    return "false (no backup)" if backup is False else mask_url(str(backup))


def _bind(sql: str, bounds: Sequence[Any], dialect: str) -> str:
    """A statement with its bound parameters (the chunk's non-open bounds) shown as literals."""
    values = [literal(b).sql(dialect=dialect) for b in bounds if b is not None]
    marker = "%s" if "%s" in sql else "?"
    parts = sql.split(marker)
    if len(parts) - 1 != len(values):
        return sql
    text = parts[0]
    for value, rest in zip(values, parts[1:], strict=True):
        text += value + rest
    return text.replace("%%", "%") if marker == "%s" else text


def _target(plan: Plan, table: TablePlan, tasks: list[Task]) -> str:
    d = plan.target_dialect
    lines = _header(plan, table, f"target [{d}]")
    by_kind = {t.kind: t for t in tasks if t.kind != "chunk"}
    prepare = by_kind.get("prepare")
    if prepare is not None and "create" in prepare.params:
        lines += ["", "-- prepare: a fresh staging table"]
        lines += [_statement(prepare.params["drop_stage"]), _statement(prepare.params["create"])]
    for number, task in enumerate(_chunks(tasks), 1):
        lines += ["", f"-- chunk {number}: key in {_range(task.params['bounds'])}, one transaction"]
        if "delete" in task.params:
            delete = task.params["delete"].split("  -- ")[0]
            lines.append(_statement(_bind(delete, task.params["bounds"], d)))
        stage = task.params.get("stage", table.target)
        lines.append(f"-- + the rows read (source.{plan.source_dialect}.sql) loaded into {stage}")
    finalize = by_kind.get("finalize")
    steps = finalize.params.get("steps") if finalize is not None else None
    if steps:
        case = "existing" if table.target_exists else "new"
        lines += ["", f"-- finalize ({'the target exists' if case == 'existing' else 'new'})"]
        for number, transaction in enumerate(steps[case], 1):
            lines.append(f"-- transaction {number}")
            lines += [_statement(s) for s in transaction]
        if case == "existing":
            lines.append("-- cleanup")
            lines += [_statement(s) for s in steps.get("cleanup", ())]
    elif table.sql:
        for step, statements in table.sql.items():
            if step == "read":
                continue
            lines += ["", f"-- {step}"]
            lines += [_statement(s.split("  -- ")[0]) for s in statements]
    return "\n".join(lines) + "\n"


def _audit_ddl(dialect: str) -> list[str]:
    from sqlalchemy.dialects import mssql, mysql, oracle, postgresql, sqlite

    from runner.state.purge_audit import create_sql

    native = {
        "postgres": postgresql.dialect(), "mysql": mysql.dialect(), "sqlite": sqlite.dialect(),
        "oracle": oracle.dialect(), "tsql": mssql.dialect(),
    }  # fmt: skip
    if dialect in native:
        return create_sql(native[dialect])
    return [
        sqlglot.transpile(s, read="postgres", write=dialect)[0]
        for s in create_sql(postgresql.dialect())
    ]


# --- scripts for other dialects ----------------------------------------------------------------
def _key_range(key: str, bounds: Sequence[Any]) -> exp.Expression | None:
    lo, hi = bounds
    column = exp.column(key, quoted=True)
    parts = []
    if lo is not None:
        parts.append(exp.GT(this=column.copy(), expression=literal(lo)))
    if hi is not None:
        parts.append(exp.LTE(this=column.copy(), expression=literal(hi)))
    if not parts:
        return None
    condition: exp.Expression = exp.and_(*parts) if len(parts) > 1 else parts[0]
    if lo is None:  # the first chunk also owns NULL keys, as in the run
        condition = exp.or_(exp.paren(condition), exp.Is(this=column.copy(), expression=exp.Null()))
    return condition


def _and(*parts: exp.Expression | None) -> exp.Expression | None:
    given = [exp.paren(p.copy()) for p in parts if p is not None]
    if not given:
        return None
    return exp.and_(*given) if len(given) > 1 else given[0].this


def _sql(expression: exp.Expression, dialect: str) -> str:
    return _statement(expression.sql(dialect=dialect, identify=True))


def _script_header(plan: Plan, table: TablePlan, dialect: str) -> list[str]:
    return [
        f"-- etlrun plan --emit-sql: job {plan.job}, {table.mode} of {table.source} as a script "
        f"for {dialect}",
        f"-- rendered by sqlglot from the plan (live: {plan.source_dialect}, plan "
        f"{plan.fingerprint}); key ranges (lo, hi] by {table.key}",
    ]


def _begin(dialect: str) -> list[str]:
    # Oracle opens a transaction with the first statement (its BEGIN starts a PL/SQL block)
    return [] if dialect == "oracle" else [_sql(exp.Transaction(), dialect)]


def _where(plan: Plan, table: TablePlan) -> exp.Expression | None:
    text = table.options.get("where")
    return sqlglot.parse_one(text, read=plan.source_dialect) if text else None


def _purge_script(plan: Plan, table: TablePlan, tasks: list[Task], dialect: str) -> str:
    o = table.options
    where = _where(plan, table)
    source = table_expr(table.source)
    lines = _script_header(plan, table, dialect)
    lines.append(f"-- where: {o['where']}; backup: {_backup(o)}; guard: {o['guard'] or 'none'}")
    lines += ["", "-- guard: rows matching, rows in the table"]
    lines.append(_sql(exp.select("COUNT(*)").from_(source.copy()).where(where.copy()), dialect))
    lines.append(_sql(exp.select("COUNT(*)").from_(source.copy()), dialect))
    columns = [exp.column(c.name, quoted=True) for c in table.columns]
    chunks = _chunks(tasks)
    for number, task in enumerate(chunks, 1):
        condition = _and(_key_range(table.key or "", task.params["bounds"]), where)
        lines += ["", f"-- chunk {number} of {len(chunks)}: key in {_range(task.params['bounds'])}"]
        if o["backup"] is not False:
            lines.append("-- back these rows up, and verify the copy, before the delete:")
            lines.append(_sql(exp.select(*columns).from_(source.copy()).where(condition), dialect))
        lines += _begin(dialect)
        lines.append(_sql(exp.delete(source.copy(), where=condition), dialect))
        lines.append(_sql(exp.Commit(), dialect))
    return "\n".join(lines) + "\n"


def _column_type(arrow_text: str, dialect: str, is_key: bool) -> exp.DataType:
    arrow = arrow_from_str(arrow_text)
    if dialect in _NATIVE_TYPES:
        ddl = target_type(arrow, dialect, is_key=is_key).ddl
        return exp.DataType.build(ddl.split(" COLLATE ")[0], dialect=dialect)
    ddl = target_type(arrow, "postgres").ddl
    if is_key and ddl == "TEXT" and dialect in ("oracle", "tsql", "redshift"):
        ddl = "VARCHAR(255)"  # a key cannot be a CLOB / VARCHAR(MAX)
    return exp.DataType.build(ddl, dialect="postgres")


def _copy_script(plan: Plan, table: TablePlan, tasks: list[Task], dialect: str) -> str:
    where = _where(plan, table)
    stage_name = f"{table.target}__etlrun_stage"
    stage, target, source = (
        table_expr(stage_name),
        table_expr(table.target),
        table_expr(table.source),
    )
    key = table.key or ""
    lines = _script_header(plan, table, dialect)
    lines.append("-- source and target tables in one database (or the source reachable by name)")
    definitions: list[exp.Expression] = [
        exp.ColumnDef(
            this=exp.to_identifier(c.name, quoted=True),
            kind=_column_type(c.arrow_type, dialect, c.name == key),
            constraints=[exp.ColumnConstraint(kind=exp.NotNullColumnConstraint())]
            if c.name == key
            else [],
        )
        for c in table.columns
    ]
    definitions.append(exp.PrimaryKey(expressions=[exp.to_identifier(key, quoted=True)]))
    create = exp.Create(this=exp.Schema(this=stage.copy(), expressions=definitions), kind="TABLE")
    lines += ["", "-- prepare: a fresh staging table"]
    lines.append(_sql(exp.Drop(tables=[stage.copy()], kind="TABLE", exists=True), dialect))
    lines.append(_sql(create, dialect))
    names = [exp.column(c.name, quoted=True) for c in table.columns]
    chunks = _chunks(tasks)
    for number, task in enumerate(chunks, 1):
        key_range = _key_range(key, task.params["bounds"])
        lines += ["", f"-- chunk {number} of {len(chunks)}: key in {_range(task.params['bounds'])}"]
        lines += _begin(dialect)
        delete = (
            exp.delete(stage.copy(), where=key_range) if key_range else exp.delete(stage.copy())
        )
        lines.append(_sql(delete, dialect))
        select = exp.select(*[n.copy() for n in names]).from_(source.copy())
        condition = _and(key_range, where)
        if condition is not None:
            select = select.where(condition)
        insert = exp.insert(
            select,
            stage.copy(),
            columns=[exp.to_identifier(c.name, quoted=True) for c in table.columns],
        )
        lines.append(_sql(insert, dialect))
        lines.append(_sql(exp.Commit(), dialect))
    rename = exp.Alter(
        this=stage.copy(),
        kind="TABLE",
        actions=[exp.AlterRename(this=target.copy())],
    )
    lines += ["", "-- finalize: the staging table replaces the target"]
    lines += _begin(dialect)
    if table.target_exists:
        lines.append(_sql(exp.Drop(tables=[target.copy()], kind="TABLE", exists=True), dialect))
    lines.append(_sql(rename, dialect))
    lines.append(_sql(exp.Commit(), dialect))
    return "\n".join(lines) + "\n"
