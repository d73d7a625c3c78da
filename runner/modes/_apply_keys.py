"""Apply the keys a checksum comparison named: delete them in the target, insert the source's
rows for them, in one target transaction, or two at once (incremental ``strategy: checksum``)."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pyarrow as pa
from loguru import logger

from runner.execute.context import RunContext
from runner.plan.catalog import literal, quote_ident, quote_table
from runner.plan.plan import Task
from runner.plan.types import arrow_from_str
from runner.sanitize import read_schema
from runner.segdiff import Leaf

KEYS_PER_STATEMENT = 5000
"""Keys listed in one ``IN (...)``: statements stay small enough for every database."""
RUN_KEYS = 100
"""Consecutive integer keys written as one BETWEEN from this many on."""
MAX_RUNS = 16
"""BETWEENs in one condition at most (see key_condition)."""
SPLIT_KEYS = 10_000
"""From this many keys on, a PostgreSQL target takes them in two transactions at once, half
the keys each (split at the median key): the target's COPY of the rows is what applying costs,
and one server process does one. 50,000 changed rows of the bench's ``events`` (psql, DELETE
and COPY, 3 runs each): 0.89-0.93 s in one transaction, 0.51-0.63 s in two at once. Each
half is whole (the other may fail, as a later batch of keys may): the chunks' checksums are
stored after both commit, and a run that stops before is done again by the next."""


def key_condition(keys: list[Any], key: str, key_type: str | None, dialect: str) -> str:
    """SQL: ``key`` in ``keys``: the longest runs of consecutive integers (at most ``MAX_RUNS``,
    each of ``RUN_KEYS`` keys or more) as BETWEEN, every other key in IN lists, which every
    database looks up by index or by hash. Never a long OR: PostgreSQL JIT-compiles an OR of
    thousands of terms for longer than any scan, without answering a cancel meanwhile.

    Integer keys are written as text directly: sqlglot copying and printing a tree of 10,000
    literals took 0.2 s of applying 10,000 changed rows."""
    singles: list[Any] = list(keys)
    runs: list[list[int]] = []
    integer = key_type is not None and key_type.startswith(("int", "uint"))
    if integer:
        ordered = sorted(int(k) for k in keys)
        start = 0
        for i in range(1, len(ordered) + 1):
            if i == len(ordered) or ordered[i] != ordered[i - 1] + 1:
                runs.append(ordered[start:i])
                start = i
        runs.sort(key=len, reverse=True)
        long = [r for r in runs[:MAX_RUNS] if len(r) >= RUN_KEYS]
        singles = [k for r in runs[len(long) :] for k in r]
        runs = long
    column = quote_ident(key, dialect)
    parts = [f"{column} BETWEEN {int(r[0])} AND {int(r[-1])}" for r in runs]
    for i in range(0, len(singles), KEYS_PER_STATEMENT):
        chunk = singles[i : i + KEYS_PER_STATEMENT]
        if integer:
            listed = ", ".join(str(int(k)) for k in chunk)
        else:
            listed = ", ".join(literal(k).sql(dialect=dialect) for k in chunk)
        parts.append(f"{column} IN ({listed})")
    return parts[0] if len(parts) == 1 else " OR ".join(f"({x})" for x in parts)


def apply_leaves(task: Task, ctx: RunContext, leaves: list[Leaf]) -> None:
    """Changes of one or more whole chunks: delete the keys in the target, insert the source's
    rows for them, in one target transaction; many keys on PostgreSQL, in two at once
    (:data:`SPLIT_KEYS`)."""
    gone = [k for leaf in leaves for k in (*leaf.updates, *leaf.deletes)]
    wanted = [k for leaf in leaves for k in (*leaf.inserts, *leaf.updates)]
    halves = _halves(gone, wanted) if ctx.target.dialect == "postgres" else None
    if halves is None:
        _apply_keys(task, ctx, gone, wanted)
        return
    (gone_a, wanted_a), (gone_b, wanted_b) = halves
    logger.debug("{}: {} keys applied in two transactions at once", task.params["target"],
                 len(set(gone) | set(wanted)))  # fmt: skip
    with ThreadPoolExecutor(1, thread_name_prefix=f"apply {task.id}") as pool:
        other = pool.submit(_apply_keys, task, ctx, gone_b, wanted_b)
        _apply_keys(task, ctx, gone_a, wanted_a)  # if it fails, the other ends before the task
    other.result()


def _halves(gone: list[Any], wanted: list[Any]) -> tuple[tuple[list[Any], list[Any]], ...] | None:
    """The keys split at their median, for two transactions; None below :data:`SPLIT_KEYS`."""
    keys = set(gone) | set(wanted)
    if len(keys) < SPLIT_KEYS:
        return None
    try:
        pivot = sorted(keys)[len(keys) // 2]
        return (
            ([k for k in gone if k < pivot], [k for k in wanted if k < pivot]),
            ([k for k in gone if k >= pivot], [k for k in wanted if k >= pivot]),
        )
    except TypeError:  # keys without one order
        return None


def _apply_keys(task: Task, ctx: RunContext, gone: list[Any], wanted: list[Any]) -> None:
    """One target transaction: delete ``gone``, insert the source's rows of ``wanted``."""
    p = task.params
    target_sql = quote_table(p["target"], ctx.target.dialect)
    before = []
    if gone:
        condition = key_condition(gone, p["key"], p["key_type"], ctx.target.dialect)
        before.append(f"DELETE FROM {target_sql} WHERE {condition}")
    schema = pa.schema([(n, arrow_from_str(t)) for n, t in p["schema"]])
    read = pa.schema([(n, arrow_from_str(t)) for n, t in read_schema(p)])
    batches: Any = iter(())
    if wanted:
        condition = key_condition(wanted, p["key"], p["key_type"], ctx.source.dialect)
        select = f"SELECT * FROM ({p['select']}) etlrun_src WHERE {condition}"
        batches = ctx.stream(
            ctx.source.read(select, read, ctx.batch_rows), task.id, task.table,
            sanitize=p.get("sanitize"),
        )  # fmt: skip
    if before and not wanted:
        ctx.target.execute(before)
    else:
        ctx.target.write(p["target"], schema, batches, before=before)
