"""A chunk task of the staging modes (copy, bulk, incremental): one key range of the source into
the staging table, in one target transaction (``DELETE`` of the range, then its rows).

A PostgreSQL -> PostgreSQL chunk whose column types allow it moves as undecoded binary COPY
bytes (:mod:`runner.connectors.pg_pipe`); any other streams Arrow batches from the source's
reader to the target's writer, sanitized in flight, screened for rows the target cannot hold
(``on_error: stop`` stops the chunk at the first; ``on_error: reject`` sends them to the
reject file and bisects batches the database still refuses).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pyarrow as pa

from runner import rejects
from runner.errors import TaskError, TransientError
from runner.execute.context import Cancelled, RunContext, TaskResult
from runner.plan.plan import Task
from runner.plan.types import arrow_from_str
from runner.sanitize import read_schema


def source_batches(task: Task, ctx: RunContext) -> Iterator[pa.RecordBatch]:
    """The chunk's rows from the source as Arrow batches, read on a second thread while the
    caller writes, sanitized in flight: sanitize rules (if any) turn the columns read
    (``read_schema``) into the columns written."""
    p = task.params
    read = pa.schema([(name, arrow_from_str(typ)) for name, typ in read_schema(p)])
    return ctx.stream(
        ctx.source.read(p["select"], read, ctx.batch_rows),
        task.id,
        task.table,
        sanitize=p.get("sanitize"),
    )


def _bound_params(task: Task, ctx: RunContext) -> list[Any]:
    p = task.params
    values = [b for b in p["bounds"] if b is not None]
    if not values or p["key_type"] is None:
        return []
    typ = arrow_from_str(p["key_type"])
    array = pa.array(values)
    if not array.type.equals(typ):
        try:
            array = array.cast(typ)
        except pa.ArrowInvalid:
            if not (pa.types.is_timestamp(typ) and typ.tz):
                raise
            # an instant's bound without an offset (MariaDB TIMESTAMP comes back as the wall
            # clock of the session, which runs in UTC): read it as UTC
            array = array.cast(pa.timestamp(typ.unit)).cast(typ)
    return list(ctx.target.encode(array))


def chunk(task: Task, ctx: RunContext) -> TaskResult:
    p = task.params
    ctx.check_cancel()
    schema = pa.schema([(name, arrow_from_str(typ)) for name, typ in p["schema"]])
    params = _bound_params(task, ctx)
    delete = (p["delete"], params) if params else p["delete"]
    # the range is cleared first, for a chunk that committed in an attempt that was not
    # recorded; a staging table this process created without its key (modes/_stage_key) holds
    # nothing of this chunk before its first attempt here, and would be scanned whole
    before = [] if p["stage"] in ctx.unkeyed and ctx.first_attempt(task.id) else [delete]
    if not p.get("sanitize") and p.get("on_error") != "reject":
        piped = _piped(task, ctx, schema, before)
        if piped is not None:
            return piped
    batches = source_batches(task, ctx)
    if p.get("on_error") == "reject":
        return _chunk_rejecting(task, ctx, schema, batches, delete)
    keys = [n for n in p.get("keys", ()) if n in schema.names]

    def stop(batch: pa.RecordBatch, found: list[tuple[int, str, str]]) -> None:
        row, column, reason = found[0]
        where = rejects.describe(batch, row, column, reason, keys)
        raise TaskError(f"{task.table}: a row the target cannot hold: {where}")

    screened = rejects.screen(
        batches, ctx.target.dialect, stop, _max_bytes(ctx), ctx.source.dialect
    )
    written = ctx.target.write(p["stage"], schema, screened, before=before)
    return TaskResult(rows=written.rows, bytes=written.bytes)


def _piped(task: Task, ctx: RunContext, schema: pa.Schema, before: list[Any]) -> TaskResult | None:
    """The chunk moved by the target's own bulk path from a source of its kind, undecoded
    (PostgreSQL to PostgreSQL: binary COPY bytes), when the target has one and the column
    types allow it; else None, and the chunk goes through Arrow."""
    pipe_from = getattr(ctx.target, "pipe_from", None)
    if pipe_from is None or "pipe_select" not in task.params:
        return None
    if os.environ.get("ETLRUN_PG_PIPE") == "0":  # a switch for measuring and troubleshooting
        return None
    ctx.check_cancel()
    moved = pipe_from(
        ctx.source,
        task.params["pipe_select"],
        task.params["stage"],
        schema.names,
        before,
        ctx.check_cancel,
        lambda rows, nbytes: ctx.progress(task.id, task.table, rows, nbytes),
    )
    return None if moved is None else TaskResult(rows=moved.rows, bytes=moved.bytes)


def _max_bytes(ctx: RunContext) -> int | None:
    """The largest statement the target takes, where it has such a limit (MariaDB)."""
    limit = getattr(ctx.target, "max_statement_bytes", None)
    return limit() if callable(limit) else None


def _chunk_rejecting(
    task: Task, ctx: RunContext, schema: pa.Schema, batches: Any, delete: Any
) -> TaskResult:
    """``on_error: reject``: rows the target cannot hold go to the reject file, the rest commits.
    Rows found in Arrow are split off before the write; when the database still refuses the
    chunk, the chunk is read again and written batch by batch, bisecting refused batches."""
    p = task.params
    keys = [n for n in p.get("keys", ()) if n in schema.names]
    file = rejects.RejectFile.for_table(p.get("job", "job"), ctx.run_id, task.table, keys)
    found_rows: list[tuple[pa.RecordBatch, list[tuple[int, str, str]]]] = []

    def note(batch: pa.RecordBatch, found: list[tuple[int, str, str]]) -> None:
        found_rows.append((batch, found))

    screened = rejects.screen(
        batches, ctx.target.dialect, note, _max_bytes(ctx), ctx.source.dialect
    )
    try:
        written = ctx.target.write(p["stage"], schema, screened, before=[delete])
    except TaskError as exc:
        if isinstance(exc, TransientError | Cancelled):
            raise
        return _chunk_bisecting(task, ctx, schema, delete, file)
    for batch, found in found_rows:
        file.write(batch, found)
    return TaskResult(rows=written.rows, bytes=written.bytes, extra={"rejected": file.count})


def _chunk_bisecting(
    task: Task, ctx: RunContext, schema: pa.Schema, delete: Any, file: rejects.RejectFile
) -> TaskResult:
    p = task.params
    batches = source_batches(task, ctx)
    ctx.target.write(p["stage"], schema, [], before=[delete])
    rows = nbytes = 0

    def write(part: pa.RecordBatch) -> None:
        nonlocal rows, nbytes
        ctx.check_cancel()
        ctx.target.write(p["stage"], schema, [part])
        rows, nbytes = rows + part.num_rows, nbytes + part.nbytes

    def refused(exc: BaseException) -> bool:
        return isinstance(exc, TaskError) and not isinstance(exc, TransientError | Cancelled)

    limit = _max_bytes(ctx)
    source = ctx.source.dialect
    for batch in rejects.screen(batches, ctx.target.dialect, file.write, limit, source):
        refusals = rejects.bisect(batch, write, refused)
        file.write(batch, [(row, None, why) for row, why in refusals])
    return TaskResult(rows=rows, bytes=nbytes, extra={"rejected": file.count})
