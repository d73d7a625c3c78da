"""A PostgreSQL staging table loaded without its primary key, which it gets once loaded.

Copy (``if_exists: replace``), bulk and incremental's first run make the staging table the
target whole, so it needs its key only from then on: loaded without it, the key is one index
build instead of an index insert per row. 1M ``events`` rows: ``COPY`` 1.6 s + 0.31 s for the
key, against 2.2-2.5 s into the keyed table; the bench's W1 at 5M rows took 12.1-12.7 s against
13.9-15.7 s.

Where every chunk runs in this process (the threads executor), ``prepare`` creates the table
without the key and notes it in ``RunContext.unkeyed``; a chunk's first attempt in this process
then skips clearing its range (nothing of it is in the fresh table, and the delete would scan
the table whole: modes/_stage_chunk), a retry clears it as before. ``finalize`` adds the key
before it counts the rows; rows read with one key value twice fail there, the target unchanged.
A resumed run adds the key in ``prepare``, before its chunks clear and load their ranges, and a
Dask run creates the key with the table, as before.
"""

from __future__ import annotations

from typing import Any

from sqlglot import exp

from runner.errors import EtlrunError, TaskError, TransientError
from runner.execute.context import RunContext
from runner.plan.plan import Task

_DUPLICATE = ("UniqueViolation", "could not create unique index")
"""How the driver's error reads when the rows hold a key value twice."""


def statements(stage_sql: str, create_unkeyed: str, key_sql: str) -> dict[str, str]:
    """The prepare task's extra statements: the table without its key, the key, and a query
    telling whether the table has it."""
    name = exp.Literal.string(stage_sql).sql(dialect="postgres")
    return {
        "create_unkeyed": create_unkeyed,
        "add_key": f"ALTER TABLE {stage_sql} ADD {key_sql}",
        "has_key": "SELECT COUNT(*) FROM pg_constraint "
        f"WHERE conrelid = to_regclass({name}) AND contype = 'p'",
    }


def finalize_params(prepare: dict[str, Any]) -> dict[str, Any]:
    """What the finalize task needs of the prepare task's statements (none where not used)."""
    return {k: prepare[k] for k in ("add_key", "has_key") if k in prepare}


def shown(prepare: dict[str, Any]) -> tuple[str, ...]:
    """The statement adding the key once loaded, as the plan shows it first in finalize."""
    if "add_key" not in prepare:
        return ()
    return (prepare["add_key"] + "  -- once loaded (a Dask run creates the key with the table)",)


def ensure(task: Task, ctx: RunContext) -> None:
    """Give the staging table its key when it was loaded without it (a no-op otherwise)."""
    p, target = task.params, ctx.target
    if "add_key" not in p or int(target.scalar(p["has_key"]) or 0):  # type: ignore[call-overload]
        return
    try:
        target.execute([p["add_key"]])
    except TransientError:
        raise
    except EtlrunError as exc:
        if not any(marker in str(exc) for marker in _DUPLICATE):
            raise
        raise TaskError(
            f"{task.table}: the rows read hold a primary key value more than once, so the "
            "staging table cannot take its key; the target was left unchanged (once the "
            f"source's key is unique, re-run with --fresh) ({exc})"
        ) from None
