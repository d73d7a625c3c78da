"""incremental (strategy: checksum): no cursor; the rows that changed are found by checksums.

The state store keeps, per chunk of the key (about ``chunk_rows`` rows), the checksum of the
target's rows as of the last run: row count and an order-independent sum of row hashes
(plan/segments.py, computed inside the database). A run:

1. computes the source's checksum of every stored chunk in one grouped scan of the source;
   on a PostgreSQL table, first the chunks' row-version tokens (runner/tokens.py: key and
   xmin only, no column decoded), and the checksum of only the chunks whose rows were written
   since the token stored with them (the others keep their stored checksum);
2. for each chunk whose checksum is not the stored one, bisects it against the target
   (segdiff.py: sub-range checksums on both sides at once, then the keys and hashes of the
   small ranges that still differ), which names exactly the keys inserted, updated and deleted;
   where the chunk's parts are stored (runner/segparts.py), its first level reads none;
3. applies the changed chunks in target transactions, each holding one or more whole chunks'
   changes: delete those keys, insert the source's rows for them (sanitized in flight);
4. after the last commit, stores the new chunk checksums (a chunk grown past twice
   ``chunk_rows`` by inserts is split), and a token for each chunk found equal.

So updates that touched no timestamp, deletes and inserts below the largest key are all
found, and unchanged chunks cost one hash per row on the source only. The first run (no target
table) is a copy followed by a checksum of the target; a run without stored checksums (state
lost, or the column set changed) compares every chunk with the target instead.

A crash after a target commit and before the state write is harmless: the next run finds the
chunk changed against the stored checksum, the bisection finds the target already equal, and
nothing is copied twice. What it trusts: nobody else writes the target (``etlrun check`` and
``mode: sync`` compare with the target itself), and, between two different databases, floating
point columns are not hashed (no portable text), so a change only in a float column is missed.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from loguru import logger

from runner.execute.context import RunContext, TaskResult
from runner.modes import copy as copy_mode
from runner.modes._apply_keys import apply_leaves as _apply
from runner.modes._checksum_detect import against_target, source_sums
from runner.modes.sync import report_where
from runner.plan.catalog import quote_table
from runner.plan.compiler import TableContext
from runner.plan.plan import TablePlan, Task
from runner.plan.segments import flavor_for, hashed_columns
from runner.segdiff import (
    DENSE,
    Differ,
    HashSide,
    Leaf,
    Sums,
    json_normalize,
    summable,
    total,
)
from runner.segparts import usable
from runner.tokens import SourceTokens

PASS_THROUGH = (None, "keep", "allow")
APPLY_KEYS = 50_000
"""Changed keys gathered before they are applied in one target transaction."""
SPAN_ROWS = 500_000
"""Scattered changes: adjacent changed chunks are compared by one row diff up to about this many
rows (one chunk at least). Keys and row hashes of both sides are held, sorted and compared in
memory: 11 chunks of 100k rows made 1.1M-row diffs and 310 MB of peak RSS at 5M rows (269 MB
at 1M), and bounding by chunks let ``chunk_rows`` scale it."""
UNKNOWN: Sums = (-1, 0, 0)
"""A stored checksum no source has: the chunk is compared with the target next run."""


# --- compile -----------------------------------------------------------------------------------
def _compared(ctx: TableContext) -> list[tuple[str, str]]:
    """The written columns the checksums cover: not sanitized (their values differ on purpose)."""
    read = {c.name for c in (ctx.columns if ctx.read_columns is None else ctx.read_columns)}
    report = ctx.sanitize.report if ctx.sanitize is not None else []
    sanitized = {e["column"] for e in report if e.get("rule") not in PASS_THROUGH}
    kept = [c for c in ctx.columns if c.name in read and c.name not in sanitized]
    return [(c.name, c.arrow_type) for c in kept]


def compile(ctx: TableContext, after: list[str]) -> tuple[TablePlan, list[Task]]:  # noqa: A001
    from runner.modes.incremental import merge_keys

    spec = ctx.spec
    keys = merge_keys(ctx)
    if len(keys) != 1 or ctx.key != keys[0]:
        raise ctx.issue(
            "strategy: checksum cuts the table into ranges of a one-column primary key; "
            f"this table's key is ({', '.join(keys)}): use strategy: cursor"
        )
    key_type = copy_mode._key_type(ctx)
    if key_type in ("binary", "large_binary") or (
        ctx.sanitize is not None and ctx.sanitize.key_sanitized
    ):
        raise ctx.issue("strategy: checksum needs a key that is not binary and not sanitized")
    flavor = flavor_for(ctx.source_dialect, ctx.target_dialect)
    columns = hashed_columns(_compared(ctx), flavor)
    as_jsonb = json_normalize(ctx.columns)
    signature = hashlib.sha256(
        json.dumps([3, flavor, columns, ctx.key, spec.where]).encode()  # 3: the hash scheme
    ).hexdigest()[:32]
    stored = tokens = 0
    if ctx.state is not None and hasattr(ctx.state, "get_chunk_checksums"):
        saved_signature, chunks = ctx.state.get_chunk_checksums(ctx.job.name, ctx.target_name)
        stored = len(chunks) if saved_signature == signature else 0
        tokens = sum(c[5] is not None for c in chunks) if stored else 0
    params = {
        "strategy": "checksum",
        "job": ctx.job.name,
        "source": ctx.source_name,
        "target": ctx.target_name,
        "key": ctx.key,
        "key_type": key_type,
        "columns": columns,
        "flavor": flavor,
        "as_jsonb": sorted(as_jsonb),
        "signature": signature,
        "chunk_rows": spec.chunk_rows or 100_000,
        "where": spec.where,
    }
    options = {
        "strategy": "checksum",
        "merge_key": keys,
        "hash": flavor,
        "stored_chunks": stored,
        "stored_tokens": tokens,
        "chunk_rows": spec.chunk_rows,
        "verify": spec.verify,
        "where": spec.where,
    }
    if not ctx.target_exists:  # the first run: a copy, then the target's chunk checksums
        plan, tasks = copy_mode.compile(ctx, after)
        finalize = next(t.id for t in tasks if t.kind == "finalize")
        tasks.append(
            Task(
                f"{ctx.target_name}:checksums",
                "checksums",
                ctx.target_name,
                "incremental",
                (finalize,),
                params,
            )  # fmt: skip
        )
        plan = dataclasses.replace(
            plan, mode="incremental", options={**plan.options, **options, "first": True}
        )
        return plan, tasks
    select = ctx.select().sql(dialect=ctx.source_dialect, identify=True)
    task = Task(
        f"{ctx.target_name}:checksum",
        "chunk",
        ctx.target_name,
        "incremental",
        tuple(after),
        {
            **params,
            "select": select,
            "schema": [[c.name, c.arrow_type] for c in ctx.columns],
            "bounds": [None, None],
            "chunk": 1,
            "chunks": 1,
        },
        rows=0,
    )
    target_sql = quote_table(ctx.target_name, ctx.target_dialect)
    plan = TablePlan(
        source=ctx.source_name,
        target=ctx.target_name,
        mode="incremental",
        key=ctx.key,
        rows=ctx.rows,
        bytes=ctx.bytes,
        columns=tuple(ctx.columns),
        chunks=((None, None),),
        options=options,
        sql={
            "read": (
                f"-- checksum of each stored chunk (one grouped scan); then {select}  "
                "-- WHERE key IN (changed keys)",
            ),
            "write": (
                f"DELETE FROM {target_sql} WHERE key IN (changed keys); INSERT ...  "
                "-- one transaction per changed chunk",
            ),
        },  # fmt: skip
        target_exists=True,
    )
    return plan, [task]


# --- task bodies -------------------------------------------------------------------------------
def run(task: Task, ctx: RunContext) -> TaskResult:
    if task.kind == "checksums":
        return _first_checksums(task, ctx)
    return _sync_chunks(task, ctx)


def _sides(p: dict[str, Any], ctx: RunContext) -> tuple[HashSide, HashSide, HashSide]:
    """(source, target) hashed comparably, and the source as the stored checksums hash it.

    The stored checksums only ever meet the source's, so they skip what only comparing with
    the target needs: json hashed as jsonb (parsing every document costs ~40% of a scan)."""
    columns = [(n, t) for n, t in p["columns"]]
    where = report_where(p, ctx)
    src = HashSide(ctx.source, p["source"], columns, p["key"], p["key_type"], p["flavor"],
                   where, frozenset(p["as_jsonb"]))  # fmt: skip
    tgt = HashSide(ctx.target, p["target"], columns, p["key"], p["key_type"], p["flavor"],
                   None, frozenset(p["as_jsonb"]))  # fmt: skip
    detect = src
    if p["as_jsonb"]:
        detect = HashSide(ctx.source, p["source"], columns, p["key"], p["key_type"], p["flavor"],
                          where)  # fmt: skip
    return src, tgt, detect


def _crash_point(name: str) -> None:
    """Test-only fault hook (ETLRUN_TEST_CRASH_AFTER=<task id>:applied): die after the target
    commits and before the chunk checksums reach the state store."""
    from runner.execute.run import _crash_point as crash

    crash(name)


def _store(ctx: RunContext) -> Any:
    from runner.state.store import StateStore

    return StateStore(ctx.state_url)


def _chunked(side: HashSide, lo: Any, hi: Any, rows: int, chunk_rows: int) -> list[tuple]:
    """``(lo, hi, rows, sum1, sum2)`` of about-``chunk_rows`` chunks of ``(lo, hi]`` on a side."""
    parts = math.ceil(rows / chunk_rows) if rows else 1
    inner = side.split(lo, hi, rows, parts) if parts > 1 else []
    edges = [lo, *inner, hi]
    sums = side.buckets(lo, hi, inner)
    return [(a, b, *s) for a, b, s in zip(edges[:-1], edges[1:], sums, strict=True)]


def _target_rows(p: dict[str, Any], ctx: RunContext) -> int:
    table = quote_table(p["target"], ctx.target.dialect)
    return int(ctx.target.scalar(f"SELECT COUNT(*) FROM {table}") or 0)  # type: ignore[call-overload]


def _first_checksums(task: Task, ctx: RunContext) -> TaskResult:
    """After the first copy: store the source's chunk checksums where the target equals the
    source, and an impossible checksum where not (the source changed after it was read), so
    the next run compares those chunks with the target."""
    p = task.params
    # every later run reads the target by key ranges: without statistics (a new table, before
    # its autovacuum) PostgreSQL expects a third of the rows in any range and scans them all
    ctx.target.analyze(p["target"])
    src, tgt, detect = _sides(p, ctx)
    tokens = SourceTokens.probe(src)
    with ThreadPoolExecutor(2) as pool:
        ranges, source, target, stored, found, parts = against_target(
            src, tgt, detect, _target_rows(p, ctx), p["chunk_rows"], pool, tokens
        )
    chunks = [
        (
            lo,
            hi,
            *(d if s == t else UNKNOWN),
            *(token or (None, None)),
            parts.get(i) if s == t else None,
        )
        for i, ((lo, hi), s, t, d, token) in enumerate(
            zip(ranges, source, target, stored, found, strict=True)
        )
    ]
    _store(ctx).set_chunk_checksums(p["job"], p["target"], p["signature"], chunks, ctx.run_id)
    return TaskResult(extra={"chunks": len(chunks)})


def _sync_chunks(task: Task, ctx: RunContext) -> TaskResult:
    p = task.params
    store = _store(ctx)
    src, tgt, detect = _sides(p, ctx)
    tokens = SourceTokens.probe(detect)  # PostgreSQL tables: row versions say what changed
    signature, stored = store.get_chunk_checksums(p["job"], p["target"])
    with ThreadPoolExecutor(2) as pool:
        differ = Differ(src, tgt, pool)
        stored_sums: list[Sums] | None = None  # without state: the sums to store, when not `sums`
        sums: list[Sums | None]
        if stored and signature == p["signature"]:
            ranges = [(c[0], c[1]) for c in stored]
            known: list[Sums] = [tuple(c[2:5]) for c in stored]  # type: ignore[misc]
            started = time.monotonic()
            held = [None if c[5] is None else (c[5], c[6]) for c in stored]
            stored_parts = [c[7] for c in stored]
            probe = detect is src and summable(p["key_type"])
            detected = source_sums(detect, tokens, ranges, known, held, pool, probe)
            sums, found, hashed = detected.sums, detected.tokens, detected.hashed
            source_parts = detected.parts
            scattered = " (scattered: the rest by row diff)" if detected.scattered else ""
            if detected.scattered and tokens is not None and not detected.tokens_read:
                scattered = " (scattered: row-version tokens not read, the rest by row diff)"
            logger.debug("{}: source checksums of {} chunk(s) in {:.2f}s{}", p["target"], hashed,
                         time.monotonic() - started, scattered)  # fmt: skip
            differ.scattered = detected.scattered
        else:  # no usable state: every chunk against the target itself
            rows = max(_target_rows(p, ctx), src.catalog.count(p["source"], src.where))
            ranges, sums, known, stored_sums, found, source_parts = against_target(  # type: ignore[assignment]
                src, tgt, detect, rows, p["chunk_rows"], pool, tokens if detect is src else None
            )
            stored_parts = [None] * len(ranges)
            hashed = len(ranges)
        totals = {"inserted": 0, "updated": 0, "deleted": 0}
        differs = [a is None or a != b for a, b in zip(sums, known, strict=True)]
        pending: list[Leaf] = []
        # most chunks changed: the changes are everywhere, bisecting them narrows nothing
        differ.scattered = differ.scattered or (
            len(ranges) > 2 and sum(differs) > DENSE * len(ranges)
        )
        i = 0
        while i < len(ranges):
            ctx.check_cancel()
            if not differs[i]:
                i += 1
                continue
            started = time.monotonic()
            if differ.scattered:  # changes all over: the run of differing chunks in one row diff
                j, rows = i, max(known[i][0], 0)
                while j + 1 < len(ranges) and differs[j + 1]:
                    more = max(known[j + 1][0], 0)  # the stored count (-1: unknown)
                    if rows + more > SPAN_ROWS:
                        break
                    j, rows = j + 1, rows + more
                t = total(known[i : j + 1])
                if any(s is None for s in sums[i : j + 1]):  # not hashed: the row diff sums them
                    inner = [hi for _, hi in ranges[i:j]]
                    leaf, sums[i : j + 1] = differ.row_diff_summed(
                        ranges[i][0], ranges[j][1], inner, t
                    )
                else:
                    leaf = differ.row_diff(ranges[i][0], ranges[j][1],
                                           total(sums[i : j + 1]), t)  # fmt: skip
                leaves = [leaf] if leaf.changed else []
            else:
                j = i
                a, b = source_parts.get(i), stored_parts[i]
                both = (a, b) if usable(*ranges[i], a, b, sums[i], known[i]) else None
                leaves = differ.diff(*ranges[i], sums[i], known[i], parts=both)  # type: ignore[arg-type]
            logger.debug("{} ({}, {}]: compared in {:.2f}s", p["target"], ranges[i][0],
                         ranges[j][1], time.monotonic() - started)  # fmt: skip
            i = j + 1
            pending += leaves
            for leaf in leaves:
                totals["inserted"] += len(leaf.inserts)
                totals["updated"] += len(leaf.updates)
                totals["deleted"] += len(leaf.deletes)
            if sum(leaf.changed for leaf in pending) >= APPLY_KEYS:
                _apply(task, ctx, pending)
                pending = []
        if pending:
            _apply(task, ctx, pending)
        to_store = sums if stored_sums is None else stored_sums
        new_chunks: list[tuple] = []
        for i, ((lo, hi), s, token) in enumerate(zip(ranges, to_store, found, strict=True)):
            if s[0] > 2 * p["chunk_rows"]:  # grown by inserts: split it (the target = source now)
                new_chunks += _chunked(detect, lo, hi, s[0], p["chunk_rows"])
            else:  # a token and parts only where the chunk was found equal (runner/segparts.py)
                kept = source_parts.get(i, stored_parts[i]) if sums[i] == known[i] else None
                new_chunks.append((lo, hi, *s, *(token or (None, None)), kept))
        changed_chunks = sum(a != b for a, b in zip(sums, known, strict=True))
    # after every target commit: the target now holds what the source held when hashed
    _crash_point(f"{task.id}:applied")
    store.set_chunk_checksums(p["job"], p["target"], p["signature"], new_chunks, ctx.run_id)
    changed = sum(totals.values())
    logger.info(
        "{}: {} of {} chunk(s) changed: {} inserted, {} updated, {} deleted ({} chunk(s) "
        "checksummed, {} skipped by row versions; {} checksum scans)",
        p["target"], changed_chunks, len(ranges), totals["inserted"], totals["updated"],
        totals["deleted"], hashed, len(ranges) - hashed, differ.scans + 1,
    )  # fmt: skip
    return TaskResult(
        rows=changed,
        extra={**totals, "chunks_changed": changed_chunks, "chunks": len(ranges),
               "chunks_hashed": hashed},
    )  # fmt: skip
