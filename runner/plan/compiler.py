"""Job -> Plan: resolve tables, map their types, split them into chunks, ask each mode for tasks.

Compiling reads the source's catalog and checks whether target tables exist; it writes nothing.
Each table is worked out by :mod:`runner.plan._table_context` into a :class:`TableContext`
(which the modes import from here); this module orders the tables and asks their modes.
"""

from __future__ import annotations

import dataclasses
import fnmatch
import hashlib
import json
from typing import Any

from runner.connectors.base import Connector
from runner.errors import SpecError
from runner.modes import mode_module
from runner.plan._table_context import TableContext, table_context
from runner.plan.catalog import Catalog
from runner.plan.plan import Plan, TablePlan, Task
from runner.sanitize import _plan as sanitize_plan
from runner.spec.models import Job, TableSpec


def spec_hash(job: Job) -> str:
    text = job.model_dump_json(exclude_defaults=True)
    if job.sanitize is not None and job.sanitize.key is not None:
        # the key dumps as '**********': its id makes a new key a new spec (no resuming across)
        text += sanitize_plan.key_id(job.sanitize.key.get_secret_value())
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def compile(
    job: Job,
    source: Connector,
    target: Connector,
    tables: list[str] | None = None,
    state: Any = None,
    sizes: bool = True,
) -> Plan:  # noqa: A001
    """Turn a job into a plan by reading the source's catalog. ``sizes``: estimate each
    table's bytes from sample rows, which only ``etlrun plan`` shows (0 otherwise).

    Example:
        >>> plan = compile(job, connect(job.source), connect(job.target))  # doctest: +SKIP
        >>> [t.id for t in plan.tasks][:2]  # doctest: +SKIP
        ['patients:prepare', 'patients:chunk:0001']
    """
    catalog = Catalog(source)
    target_catalog = Catalog(target)
    contexts: list[TableContext] = []
    seen: dict[str, str] = {}
    for index, raw in enumerate(job.tables):
        spec = job.resolve(raw)
        names = catalog.resolve(spec.name)
        if not names:
            raise SpecError(
                f"tables[{index}]: '{spec.name}' matches no table in {source.display_url}"
            )
        for name in names:
            if tables and not _selected(name, spec, tables):
                continue
            ctx = table_context(
                job, spec, index, name, catalog, target_catalog, source, target, sizes
            )
            ctx.state = state
            if ctx.target_name in seen:
                raise ctx.issue(
                    f"target table '{ctx.target_name}' is also written by '{seen[ctx.target_name]}'"
                )
            seen[ctx.target_name] = name
            contexts.append(ctx)
    if tables and not contexts:
        raise SpecError(f"--tables {','.join(tables)} matches no table of job '{job.name}'")
    # every identifier of every table is named at once, before any table is planned further
    planned = [c.sanitize for c in contexts if c.sanitize is not None]
    sanitize_plan.check_job(job, planned, all_tables=not tables)
    contexts = _by_foreign_keys(contexts)

    table_plans: list[TablePlan] = []
    tasks: list[Task] = []
    finalizers: dict[str, str] = {}
    file_target = bool(getattr(target, "file_store", False))
    for ctx in contexts:
        module = mode_module(ctx.spec.mode or "copy")
        parents = [finalizers[r] for r in _parents(ctx, contexts) if r in finalizers]
        compile_table = module.compile
        check_file_options(ctx.spec, file_target, ctx.index)
        if file_target:  # a folder of files: copy and backup write files (modes/backup.py)
            mode = ctx.spec.mode or "copy"
            if mode not in target.capabilities.modes:
                raise ctx.issue(
                    f"mode {mode} cannot write to a file store {target.display_url} "
                    f"(use one of: {', '.join(target.capabilities.modes)})"
                )
            from runner.modes import backup

            compile_table = backup.compile_copy if mode == "copy" else backup.compile
        table_plan, table_tasks = compile_table(ctx, after=parents)
        table_plan = _with_sanitize(ctx, table_plan, table_tasks)
        table_plans.append(table_plan)
        tasks.extend(table_tasks)
        finalizers[ctx.source_name] = table_tasks[-1].id
    from runner import steps  # before:/after: SQL steps around the tables' tasks

    table_plans, tasks = steps.place(
        job, [c.spec for c in contexts], table_plans, tasks, source.dialect, target.dialect
    )
    if any(t.mode == "backup" for t in table_plans):
        from runner.modes import backup

        tasks.append(backup.manifest_task(table_plans, tasks, job, job.source, spec_hash(job)))
    return Plan(
        job=job.name,
        spec_hash=spec_hash(job),
        source=source.display_url,
        target=target.display_url,
        source_dialect=source.dialect,
        target_dialect=target.dialect,
        tables=tuple(table_plans),
        tasks=tuple(tasks),
        workers=job.workers,
    )


def check_file_options(spec: Any, file_target: bool, index: int) -> None:
    """Cross-field rules of the file options (format, split, ..., retention), as spec errors."""
    mode = spec.mode or "copy"
    given = [k for k in ("format", "split", "compression", "path") if getattr(spec, k, None)]
    if given and not file_target and mode != "purge":
        raise SpecError(
            f"tables[{index}].{given[0]}: applies to a file store target "
            "(file://, sftp://, s3://) only"
        )
    if getattr(spec, "retention", None) is not None and mode != "backup":
        raise SpecError(f"tables[{index}].retention: applies to mode backup only")


def _with_sanitize(ctx: TableContext, plan: TablePlan, tasks: list[Task]) -> TablePlan:
    """The table's rules into every task that reads the source, and its column -> class -> rule
    report into the plan. Done here rather than by each mode, so no mode can forget them."""
    if ctx.sanitize is None:
        return plan
    for task in tasks:
        if "select" in task.params and ctx.sanitize.params is not None:
            task.params["sanitize"] = ctx.sanitize.params
    profile = ctx.job.sanitize.profile if ctx.job.sanitize else None
    report = {"profile": profile, "columns": ctx.sanitize.report}
    return dataclasses.replace(plan, options={**plan.options, "sanitize": report})


def _selected(name: str, spec: TableSpec, wanted: list[str]) -> bool:
    candidates = {name, name.rpartition(".")[2], spec.to or ""}
    return any(fnmatch.fnmatchcase(c, w) for c in candidates if c for w in wanted)


def _parents(ctx: TableContext, contexts: list[TableContext]) -> list[str]:
    names = {c.source_name for c in contexts}
    bare = {c.source_name.rpartition(".")[2]: c.source_name for c in contexts}
    return [bare.get(r, r) for r in ctx.info.references if (bare.get(r, r) in names)]


def _by_foreign_keys(contexts: list[TableContext]) -> list[TableContext]:
    """Parents before children (stable otherwise); cycles keep the spec's order."""
    ordered: list[TableContext] = []
    placed: set[str] = set()
    pending = list(contexts)
    while pending:
        for ctx in pending:
            parents = [p for p in _parents(ctx, contexts) if p != ctx.source_name]
            if all(p in placed for p in parents):
                break
        else:
            ctx = pending[0]
        pending.remove(ctx)
        ordered.append(ctx)
        placed.add(ctx.source_name)
    return ordered


def plan_json_hash(data: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(data, sort_keys=True, default=str).encode()).hexdigest()[:16]
