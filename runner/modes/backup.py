"""backup: tables to Parquet / CSV / JSON Lines files in a file store, with a manifest.

The same task bodies also serve ``copy`` into a file store (``target: file:///out/``): one file
per table, no manifest.

Chunks write their rows to hidden part files (``.etlrun-part-...``), each under a temporary name
first. A table's finalize step makes the final files (``split: table`` merges the parts into
one, ``split: chunk`` renames each part) and a backup's last step reads every file back, checks
row counts and sha256, and only then writes ``manifest.json``; older backups beyond
``retention: {keep: N}`` are removed after that. So a backup without a manifest is an
unfinished one, and a file under its final name is always complete.

This module compiles the tasks; what they do is :mod:`runner.modes._backup_tasks` (``run``,
and ``verify_files`` that ``etlrun restore`` uses too), the path templates
:mod:`runner.modes._backup_paths`.
"""

from __future__ import annotations

from typing import Any

from runner.connectors.fs import FORMATS, FsConnector
from runner.modes._backup_paths import (  # noqa: F401 - every path helper, importable from here
    DEFAULT_BACKUP_CHUNK_PATH,
    DEFAULT_BACKUP_PATH,
    DEFAULT_COPY_PATH,
    PLACEHOLDERS,
    check_path,
    manifest_path,
    render,
    run_date,
)
from runner.modes._backup_tasks import apply_retention, run, verify_files  # noqa: F401 - see the docstring
from runner.plan.compiler import TableContext
from runner.plan.plan import TablePlan, Task
from runner.secrets import mask_url


# --- compile -----------------------------------------------------------------------------------
def compile(ctx: TableContext, after: list[str]) -> tuple[TablePlan, list[Task]]:  # noqa: A001
    return _compile(ctx, after, "backup")


def compile_copy(ctx: TableContext, after: list[str]) -> tuple[TablePlan, list[Task]]:
    return _compile(ctx, after, "copy")


def _compile(ctx: TableContext, after: list[str], mode: str) -> tuple[TablePlan, list[Task]]:
    from runner.modes.copy import _key_type, _range

    spec = ctx.spec
    if not isinstance(ctx.target, FsConnector):
        raise ctx.issue(f"mode {mode} into files needs a file store target (file://, sftp://)")
    fmt = getattr(spec, "format", None) or "parquet"
    split = getattr(spec, "split", None) or "table"
    compression = getattr(spec, "compression", None)
    if mode == "copy":
        if (spec.if_exists or "replace") not in ("replace", "fail"):
            raise ctx.issue(
                f"if_exists: {spec.if_exists} is not possible for a file target "
                "(use replace or fail)"
            )
        default = DEFAULT_COPY_PATH if split == "table" else "{table}/{chunk}.{ext}"
    else:
        default = DEFAULT_BACKUP_PATH if split == "table" else DEFAULT_BACKUP_CHUNK_PATH
    template = getattr(spec, "path", None) or default
    try:
        check_path(template, mode, split)
    except ValueError as exc:
        raise ctx.issue(str(exc)) from None
    table = ctx.target_name
    schema = [[c.name, c.arrow_type] for c in ctx.columns]
    bounds = [None, *ctx.bounds, None]
    ranges = list(zip(bounds[:-1], bounds[1:], strict=True))
    common = {
        "format": fmt,
        "ext": FORMATS[fmt],
        "compression": compression,
        "path": template,
        "split": split,
        "job": ctx.job.name,
        "table": table,
        "schema": schema,
        "chunks": len(ranges),
        "mode": mode,
        "if_exists": spec.if_exists or "replace",
        "primary_key": [
            k
            for k in (spec.primary_key or ctx.info.primary_key)
            if any(c.name == k for c in ctx.columns)
        ],  # fmt: skip
    }
    tasks: list[Task] = []
    read_sql: list[str] = []
    per_chunk = ctx.rows // max(len(ranges), 1)
    select = ctx.select()
    for number, (lo, hi) in enumerate(ranges, start=1):
        condition, _ = _range(ctx, lo, hi, params=False)
        query = select.copy()
        if condition is not None:
            query = query.where(condition)
        sql = query.sql(dialect=ctx.source_dialect, identify=True)
        read_sql.append(sql)
        rows = per_chunk if number < len(ranges) else ctx.rows - per_chunk * (len(ranges) - 1)
        tasks.append(
            Task(
                f"{table}:chunk:{number:04d}",
                "chunk",
                table,
                "backup",
                (),
                {**common, "select": sql, "chunk": number, "bounds": [lo, hi]},
                rows=rows,
            )
        )
    chunk_ids = tuple(t.id for t in tasks)
    tasks.append(
        Task(f"{table}:finalize", "finalize", table, "backup", (*chunk_ids, *after), dict(common))
    )
    files = [render(template, job=ctx.job.name, table=table, run_id="<run_id>",
                    run_date="<run_date>", chunk=f"{n:04d}", ext=FORMATS[fmt])
             for n in (range(1, len(ranges) + 1) if split == "chunk" else [1])]  # fmt: skip
    plan = TablePlan(
        source=ctx.source_name,
        target=table,
        mode=mode,
        key=ctx.key,
        rows=ctx.rows,
        bytes=ctx.bytes,
        columns=tuple(ctx.columns),
        chunks=tuple(tuple(r) for r in ranges),
        options={
            "format": fmt,
            "split": split,
            "compression": compression,
            "files": files,
            "where": spec.where,
            "key_type": _key_type(ctx),
        },
        sql={"read": tuple(read_sql)},
        target_exists=False,
    )
    return plan, tasks


def manifest_task(
    plan_tables: list[TablePlan], tasks: list[Task], job: Any, source: str, spec_hash: str
) -> Task:
    """The job's last step: verify every table's files, write the manifest, apply retention."""
    backups = [t for t in plan_tables if t.mode == "backup"]
    finals = tuple(f"{t.target}:finalize" for t in backups)
    retention = None
    for raw in job.tables:
        keep = getattr(job.resolve(raw), "retention", None)
        if keep is not None:
            retention = keep.keep if retention is None else max(retention, keep.keep)
    first = next(t for t in tasks if t.id == finals[0])
    return Task(
        f"{backups[-1].target}:manifest",
        "manifest",
        backups[-1].target,
        "backup",
        finals,
        {
            "job": job.name,
            "source": mask_url(source),
            "tables": [t.target for t in backups],
            "keep": retention,
            "spec_hash": spec_hash,
            "path": first.params["path"],
        },
    )
