"""Apply the keys a checksum comparison named: delete them in the target, insert the source's
rows for them, in one target transaction (incremental ``strategy: checksum``)."""

from __future__ import annotations

from typing import Any

import pyarrow as pa
from sqlglot import exp

from runner.execute.context import RunContext
from runner.plan.catalog import literal, quote_table
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


def key_condition(keys: list[Any], key: str, key_type: str | None) -> exp.Expression:
    """``key`` in ``keys``: the longest runs of consecutive integers (at most ``MAX_RUNS``,
    each of ``RUN_KEYS`` keys or more) as BETWEEN, every other key in IN lists, which every
    database looks up by index or by hash. Never a long OR: PostgreSQL JIT-compiles an OR of
    thousands of terms for longer than any scan, without answering a cancel meanwhile."""
    column = exp.column(key, quoted=True)
    singles: list[Any] = list(keys)
    runs: list[list[int]] = []
    if key_type is not None and key_type.startswith(("int", "uint")):
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
    parts: list[exp.Expression] = [
        exp.Between(this=column.copy(), low=literal(r[0]), high=literal(r[-1])) for r in runs
    ]
    for i in range(0, len(singles), KEYS_PER_STATEMENT):
        listed = [literal(k) for k in singles[i : i + KEYS_PER_STATEMENT]]
        parts.append(exp.In(this=column.copy(), expressions=listed))
    return parts[0] if len(parts) == 1 else exp.or_(*parts)


def apply_leaves(task: Task, ctx: RunContext, leaves: list[Leaf]) -> None:
    """Changes of one or more whole chunks in one target transaction: delete the keys, insert
    the source's rows for them."""
    p = task.params
    gone = [k for leaf in leaves for k in (*leaf.updates, *leaf.deletes)]
    wanted = [k for leaf in leaves for k in (*leaf.inserts, *leaf.updates)]
    target_sql = quote_table(p["target"], ctx.target.dialect)
    before = []
    if gone:
        condition = key_condition(gone, p["key"], p["key_type"])
        before.append(
            f"DELETE FROM {target_sql} WHERE "
            + condition.sql(dialect=ctx.target.dialect, identify=True)
        )
    schema = pa.schema([(n, arrow_from_str(t)) for n, t in p["schema"]])
    read = pa.schema([(n, arrow_from_str(t)) for n, t in read_schema(p)])
    batches: Any = iter(())
    if wanted:
        condition = key_condition(wanted, p["key"], p["key_type"])
        select = f"SELECT * FROM ({p['select']}) etlrun_src WHERE " + condition.sql(
            dialect=ctx.source.dialect, identify=True
        )
        batches = ctx.stream(
            ctx.source.read(select, read, ctx.batch_rows), task.id, task.table,
            sanitize=p.get("sanitize"),
        )  # fmt: skip
    if before and not wanted:
        ctx.target.execute(before)
    else:
        ctx.target.write(p["target"], schema, batches, before=before)
