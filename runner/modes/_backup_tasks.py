"""What the tasks of ``backup`` (and of ``copy`` into a file store) do on the store: a chunk writes
its part file, a table's finalize makes its final files from the parts and checks their row
count, and the manifest step reads every file back, writes ``manifest.json`` and applies
``retention``. See :mod:`runner.modes.backup` for the order of it all."""

from __future__ import annotations

import contextlib
import json
import posixpath
from datetime import UTC, datetime
from typing import Any

import pyarrow as pa

from runner.connectors.fs import FsConnector, row_count, sha256_of
from runner.errors import TaskError, VerifyError
from runner.execute.context import RunContext, TaskResult
from runner.modes._assemble import PART_EXT, Assembler, assembler, forget, read_part, write_part
from runner.modes._backup_paths import manifest_path, render, run_date
from runner.modes._stage_chunk import source_batches
from runner.plan.plan import Task
from runner.plan.types import arrow_from_str


def run(task: Task, ctx: RunContext) -> TaskResult:
    body = {"chunk": _chunk, "finalize": _finalize, "manifest": _manifest}[task.kind]
    return body(task, ctx)


def _target(ctx: RunContext) -> FsConnector:
    if not isinstance(ctx.target, FsConnector):
        raise TaskError("backup tasks need a file store target")
    return ctx.target


def _run_id(task: Task, ctx: RunContext) -> str:
    run_id = getattr(ctx, "run_id", "")
    if not run_id:
        if task.params.get("mode") == "copy":
            return "run"
        # threads and Dask workers both get it (ChunkPayload.run_id): the files are named by it
        raise TaskError("a backup task needs the run's id to name its files; none was given")
    return str(run_id)


def _part(task: Task, ctx: RunContext, number: int) -> str:
    p = task.params
    final = _final(task, ctx, number)
    folder = posixpath.dirname(final)
    # split: table parts are Arrow IPC (see _assemble); split: chunk parts become the files
    ext = PART_EXT if p["split"] == "table" else p["ext"]
    name = f".etlrun-part-{_run_id(task, ctx)}-{p['table']}-{number:04d}.{ext}"
    return posixpath.join(folder, name)


def _final(task: Task, ctx: RunContext, number: int) -> str:
    p = task.params
    run_id = _run_id(task, ctx)
    chunk = f"{number:04d}" if p["split"] == "chunk" else ""
    return render(
        p["path"],
        job=p["job"],
        table=p["table"],
        run_id=run_id,
        run_date=run_date(run_id),
        chunk=chunk,
        ext=p["ext"],
    )


def _schema(p: dict[str, Any]) -> pa.Schema:
    return pa.schema([(name, arrow_from_str(typ)) for name, typ in p["schema"]])


def _chunk(task: Task, ctx: RunContext) -> TaskResult:
    p = task.params
    fs = _target(ctx)
    ctx.check_cancel()
    batches = source_batches(task, ctx)
    schema = _schema(p)
    part = _part(task, ctx, p["chunk"])
    if p["split"] == "table":
        run_id = _run_id(task, ctx)

        def make() -> Assembler:
            return Assembler(fs, _final(task, ctx, 1), p["format"], schema, p["compression"])

        into = assembler(fs, run_id, task.table, make if ctx.assemble else None)
        rows = write_part(fs, part, schema, batches, into, p["chunk"])
        return TaskResult(rows=rows, bytes=rows and _size(fs, part))
    written = fs.write_file(part, p["format"], schema, batches, p["compression"])
    return TaskResult(rows=written.rows, bytes=written.size)


def _size(fs: FsConnector, relative: str) -> int:
    with contextlib.suppress(Exception):
        return int(fs.fs.size(fs.path(relative)))
    return 0


def _finalize(task: Task, ctx: RunContext) -> TaskResult:
    p = task.params
    fs = _target(ctx)
    schema = _schema(p)
    parts = [_part(task, ctx, n) for n in range(1, p["chunks"] + 1)]
    expected = sum(
        r.rows for tid, r in ctx.results.items() if tid.startswith(f"{task.table}:chunk:")
    )
    files: list[dict[str, Any]] = []
    if p["split"] == "chunk":
        for number, part in enumerate(parts, start=1):
            final = _final(task, ctx, number)
            if fs.exists(part):
                fs.rename(part, final)
            elif not fs.exists(final):
                raise TaskError(f"{task.table}: part file {part} is gone; re-run with --fresh")
            files.append(_describe(fs, final, p))
    else:
        final = _final(task, ctx, 1)
        missing = [part for part in parts if not fs.exists(part)]
        if missing:
            if fs.exists(final) and len(missing) == len(parts):
                files.append(_describe(fs, final, p))  # an earlier attempt merged already
            else:
                raise TaskError(f"{task.table}: part file {missing[0]} is gone; re-run --fresh")
        else:
            if p["mode"] == "copy" and p.get("if_exists") == "fail" and fs.exists(final):
                raise TaskError(f"{final} exists and the spec says if_exists: fail")
            files.append(_assembled(task, ctx, fs, final, parts, schema))
            for part in parts:
                fs.remove(part)
    rows = sum(int(f["rows"]) for f in files)
    if rows != expected:
        raise VerifyError(f"{task.table}: the files hold {rows} rows but {expected} were read")
    if p["mode"] == "backup":
        fragment = {
            "table": p["table"],
            "format": p["format"],
            "schema": p["schema"],
            "arrow_schema": _schema_text(schema),
            "rows": rows,
            "primary_key": p["primary_key"],
            "files": files,
        }
        body = json.dumps(fragment, indent=2, default=str).encode()
        with fs.open_temp(_fragment(task, ctx, p["table"])) as (temp, out):
            out.write(body)
        fs.rename(temp, _fragment(task, ctx, p["table"]))
    return TaskResult(rows=rows, extra={"files": len(files)})


def _schema_text(schema: pa.Schema) -> dict[str, str]:
    return {f.name: str(f.type) for f in schema}


def _fragment(task: Task, ctx: RunContext, table: str) -> str:
    job = task.params["job"]
    return f"{job}/.etlrun-part-{_run_id(task, ctx)}-{table}.json"


def _describe(fs: FsConnector, path: str, p: dict[str, Any]) -> dict[str, Any]:
    data = fs.read_bytes(path)
    return {"path": path, "rows": row_count(data, p["format"]), "bytes": len(data),
            "sha256": sha256_of(data)}  # fmt: skip


def _assembled(
    task: Task, ctx: RunContext, fs: FsConnector, final: str, parts: list[str], schema: pa.Schema
) -> dict[str, Any]:
    """The table's one file, renamed into place: the one the chunks assembled while they ran
    when it holds every chunk, else one written now from the part files."""
    p = task.params
    run_id = _run_id(task, ctx)
    into = assembler(fs, run_id, task.table, None)
    forget(fs, run_id, task.table)
    if into is not None and into.complete(p["chunks"]):
        temp, rows, size, sha256 = into.close()
        fs.rename(temp, final)
        return {"path": final, "rows": rows, "bytes": size, "sha256": sha256}
    if into is not None:
        into.discard()
    written = fs.write_file(final, p["format"], schema, _merge(fs, parts), p["compression"])
    return {"path": written.path, "rows": written.rows, "bytes": written.size,
            "sha256": written.sha256}  # fmt: skip


def _merge(fs: FsConnector, parts: list[str]) -> Any:
    for part in parts:
        yield from read_part(fs, part)


def verify_files(fs: FsConnector, files: list[dict[str, Any]], fmt: str) -> None:
    """Read every file back: its sha256 and row count must be those recorded."""
    for f in files:
        try:
            data = fs.read_bytes(f["path"])
        except FileNotFoundError:
            raise VerifyError(f"backup file {f['path']} is missing") from None
        if sha256_of(data) != f["sha256"]:
            raise VerifyError(f"backup file {f['path']}: sha256 differs from the manifest")
        if row_count(data, fmt) != f["rows"]:
            raise VerifyError(f"backup file {f['path']}: row count differs from the manifest")


def _manifest(task: Task, ctx: RunContext) -> TaskResult:
    from runner import __version__ as version

    p = task.params
    fs = _target(ctx)
    run_id = _run_id(task, ctx)
    tables = {}
    for table in p["tables"]:
        fragment = _fragment(task, ctx, table)
        try:
            tables[table] = json.loads(fs.read_bytes(fragment))
        except FileNotFoundError:
            raise TaskError(f"{table}: the finalize record is gone; re-run with --fresh") from None
    for info in tables.values():  # read back before the manifest exists
        verify_files(fs, info["files"], info["format"])
    manifest = {
        "etlrun_manifest": 1,
        "job": p["job"],
        "run_id": run_id,
        "run_date": run_date(run_id),
        "created_at": datetime.now(UTC).isoformat(timespec="microseconds"),
        "etlrun_version": version,
        "spec_hash": p["spec_hash"],
        "source": p["source"],
        "manifest": manifest_path(p["job"], run_id),
        "tables": tables,
    }
    body = json.dumps(manifest, indent=2, default=str).encode()
    final = manifest_path(p["job"], run_id)
    with fs.open_temp(final) as (temp, out):
        out.write(body)
    fs.rename(temp, final)
    for table in p["tables"]:
        fs.remove(_fragment(task, ctx, table))
    removed = apply_retention(fs, p["job"], p["keep"], run_id) if p["keep"] else []
    rows = sum(int(t["rows"]) for t in tables.values())
    return TaskResult(rows=0, extra={"manifest": final, "rows": rows, "removed": removed})


def apply_retention(fs: FsConnector, job: str, keep: int, current: str) -> list[str]:
    """Remove the backups of ``job`` older than the newest ``keep`` (the current one counts)."""
    folder = fs.path(job)
    mine = posixpath.basename(manifest_path(job, current))
    others = []
    for name in fs.fs.ls(folder, detail=False):
        name = posixpath.basename(name)
        if name.startswith("manifest-") and name.endswith(".json") and name != mine:
            manifest = json.loads(fs.read_bytes(f"{job}/{name}"))
            # run ids of one second differ by a random suffix: order by creation time
            others.append((str(manifest.get("created_at", "")), name, manifest))
    others.sort()
    removed = []
    for _, name, manifest in others[: max(len(others) - (keep - 1), 0)]:
        relative = f"{job}/{name}"
        fs.remove(relative)  # first: a backup without its manifest is known to be incomplete
        for info in manifest["tables"].values():
            for f in info["files"]:
                fs.remove(f["path"])
                with contextlib.suppress(OSError):  # the run's folder, once empty
                    fs.fs.rmdir(posixpath.dirname(fs.path(f["path"])))
        removed.append(relative)
    return removed
