"""SQL steps: ``before:`` / ``after:`` per job and per table, placed in the plan's DAG.

```yaml
before:                                   # job: before every table's first task
  - "INSERT INTO etl_log VALUES ('start')"
tables:
  - name: visits
    before: [{sql: "ANALYZE visits", on: source}]   # before this table's prepare
    after: [steps/visits_indexes.sql]               # after its finalize (the swap)
after:                                    # job: after every table's last task
  - "INSERT INTO etl_log VALUES ('end')"
```

Each inline entry is exactly one statement, parsed by sqlglot in the dialect of the side it runs
on (``on: target`` by default, or ``on: source``; ``run_on:`` is an alias, since other YAML 1.1
tools read a bare ``on`` as true); a ``.sql`` file (relative to the
spec) may hold several, run in order in one transaction. Steps are tasks of kind ``sql``: they
show in the plan, are recorded in the state store, and a resumed run does not repeat the ones
already done.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import sqlglot
from sqlglot.errors import ParseError, TokenError

from runner.errors import SpecError
from runner.execute.context import RunContext, TaskResult
from runner.plan.plan import TablePlan, Task

KIND = "sql"


def read_step(data: Any, spec_dir: Path | None) -> Any:
    """The shorthand (a statement or a ``.sql`` path) as a mapping; a file's text read in."""
    if isinstance(data, str):
        data = {"file": data} if data.strip().endswith(".sql") else {"sql": data}
    if isinstance(data, dict) and "run_on" in data:  # the alias, for YAML 1.1 linters' sake
        if "on" in data:
            raise ValueError("'on' and 'run_on' are the same key; write one of them")
        data = {("on" if k == "run_on" else k): v for k, v in data.items()}
    if isinstance(data, dict) and isinstance(data.get("file"), str) and data.get("sql") is None:
        path = Path(data["file"])
        if not path.is_absolute() and spec_dir is not None:
            path = Path(spec_dir) / path
        try:
            data = {**data, "sql": path.read_text(encoding="utf-8")}
        except OSError as exc:
            raise ValueError(f"cannot read the SQL file {path}: {exc.strerror}") from None
    return data


def split(sql: str, dialect: str | None) -> list[str]:
    """The statements of ``sql`` as sqlglot parses them (ValueError if it cannot)."""
    try:
        parsed = [e for e in sqlglot.parse(sql, read=dialect) if e is not None]
    except (ParseError, TokenError) as exc:
        message = str(exc).splitlines()[0]
        side = f" for {dialect}" if dialect else ""
        raise ValueError(f"not valid SQL{side}: {message}") from None
    return [e.sql(dialect=dialect) for e in parsed]


def check_statements(sql: str, from_file: bool) -> None:
    """At load time: an inline step is one statement. SQL that only parses in the dialect of
    the side it runs on is checked again, in that dialect, when the job is planned."""
    try:
        statements = split(sql, None)
    except ValueError:
        return
    if not statements:
        raise ValueError("the SQL step is empty")
    if not from_file and len(statements) != 1:
        raise ValueError(
            f"one statement per entry, not {len(statements)} (make each its own entry, "
            "or put them in a .sql file)"
        )


def _statements(step: Any, dialect: str, where: str) -> list[str]:
    try:
        statements = split(step.sql, dialect)
    except ValueError as exc:
        raise SpecError(f"{where}: {exc}") from None
    if not statements:
        raise SpecError(f"{where}: the SQL step is empty")
    if step.file is None:
        if len(statements) != 1:
            raise SpecError(f"{where}: one statement per entry, not {len(statements)}")
        return [step.sql.strip().rstrip(";").strip()]  # as written: it parsed as one statement
    return statements


def _tasks(
    steps: list[Any] | None,
    prefix: str,
    where: str,
    table: TablePlan,
    dialects: dict[str, str],
    deps: list[str],
) -> list[Task]:
    out: list[Task] = []
    for i, step in enumerate(steps or [], 1):
        label = f"{where}[{i - 1}]"
        statements = _statements(step, dialects[step.on], label)
        out.append(
            Task(
                id=f"{prefix}:{i}",
                kind=KIND,
                table=table.target,
                mode=table.mode,
                deps=tuple(deps if not out else [out[-1].id]),
                params={"run_on": step.on, "statements": statements, "file": step.file},
            )
        )
    return out


def place(
    job: Any,
    specs: list[Any],
    tables: list[TablePlan],
    tasks: list[Task],
    source_dialect: str,
    target_dialect: str,
) -> tuple[list[TablePlan], list[Task]]:
    """Put the SQL steps of ``job`` and of each table (``specs[i]`` planned as ``tables[i]``)
    into the DAG: job before -> table before -> the table's tasks -> table after -> job after.
    """
    has_table_steps = any(s.before or s.after for s in specs)
    if not (job.before or job.after or has_table_steps) or not tables:
        return tables, tasks
    dialects = {"source": source_dialect, "target": target_dialect}
    by_table: dict[str, list[Task]] = {t.target: [] for t in tables}
    others: list[Task] = []
    for task in tasks:
        (by_table[task.table] if task.table in by_table else others).append(task)
    job_before = _tasks(job.before, "job:before", "before", tables[0], dialects, [])
    ordered: list[Task] = [*job_before]
    lasts: list[str] = []
    new_tables: list[TablePlan] = []
    for index, (spec, table) in enumerate(zip(specs, tables, strict=True)):
        own = by_table[table.target]
        ids = {t.id for t in own}
        before = _tasks(
            spec.before,
            f"{table.target}:before",
            f"tables[{index}].before",
            table,
            dialects,
            [job_before[-1].id] if job_before else [],
        )
        gate = before[-1].id if before else (job_before[-1].id if job_before else None)
        if gate is not None:  # the table's first tasks (no dependency inside the table) wait
            own = [
                t if any(d in ids for d in t.deps) else dataclasses.replace(t, deps=(*t.deps, gate))
                for t in own
            ]
        after = _tasks(
            spec.after,
            f"{table.target}:after",
            f"tables[{index}].after",
            table,
            dialects,
            [own[-1].id],
        )
        ordered += [*before, *own, *after]
        lasts.append((after or own)[-1].id)
        new_tables.append(_with_sql(table, {"before": before, "after": after}))
    job_after = _tasks(job.after, "job:after", "after", tables[-1], dialects, lasts)
    ordered += job_after
    if job_before:
        new_tables[0] = _with_sql(new_tables[0], {"job before": job_before})
    if job_after:
        new_tables[-1] = _with_sql(new_tables[-1], {"job after": job_after})
    return new_tables, [*ordered, *others]


def _with_sql(table: TablePlan, steps: dict[str, list[Task]]) -> TablePlan:
    sql = dict(table.sql)
    for name, step_tasks in steps.items():
        if step_tasks:
            sql[name] = tuple(
                f"-- {t.id} on {t.params['run_on']}\n{statement}"
                for t in step_tasks
                for statement in t.params["statements"]
            )
    return dataclasses.replace(table, sql=sql)


def run(task: Task, ctx: RunContext) -> TaskResult:
    """Run a step's statements on its side, in one transaction."""
    connector = ctx.source if task.params["run_on"] == "source" else ctx.target
    connector.execute(task.params["statements"])
    return TaskResult()
