"""Find the rows two tables disagree on by checksum bisection, moving checksums, not rows.

A key range whose checksums differ is split into ``split`` sub-ranges whose checksums are
computed on both sides at once (one grouped scan per side, plan/segments.py); the ones that
still differ are split again. A range stops splitting and its rows' keys and hashes are read
from both sides (the row diff) when it holds at most ``leaf`` rows, when it cannot be split, or
when most of its rows sit in differing sub-ranges (changes scattered everywhere: splitting
further would scan the same rows again and narrow nothing). Adjacent differing sub-ranges are
row-diffed together while they are small (:data:`RUN_ROWS`): a contiguous block of changes
would otherwise be scanned again at every level. The row diff names every key to insert,
update or delete. This is data-diff's technique, with the "scattered" stop added so that
1% of rows changed all over a table costs about two scans per side, not one per level.

Used by ``etlrun check`` (reports the ranges), ``incremental`` with ``strategy: checksum`` and
``sync`` (apply the keys).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
from sqlglot import exp

from runner.connectors.base import Connector
from runner.plan.catalog import Catalog, plain
from runner.plan.checksum import range_condition
from runner.plan.segments import bucket_sql, row_hashes_sql
from runner.plan.types import arrow_from_str

Sums = tuple[int, int, int]
EMPTY: Sums = (0, 0, 0)
SPLIT = 16
LEAF = 2000
DENSE = 0.5
"""Stop bisecting when more than this share of a range's rows is in differing sub-ranges."""
RUN_ROWS = 100_000
"""Adjacent differing sub-ranges holding at most this many rows in all are row-diffed together:
changes running across sub-range boundaries are a contiguous block (a day's rows, a batch
update), which every further level would scan again whole."""
SMALL_READ = 20_000
"""Row hashes of at most this many rows are fetched on the open connection (no Arrow reader)."""


def _int(value: Any) -> int:
    return int(value or 0)


@dataclass
class HashSide:
    """One database's table, hashed by key range."""

    connector: Connector
    table: str
    columns: list[tuple[str, str]]
    key: str
    key_type: str | None
    flavor: str
    where: exp.Expression | None = None
    normalize: frozenset[str] = frozenset()
    """json columns hashed as jsonb (json on one side, jsonb on the other)."""

    def __post_init__(self) -> None:
        self.catalog = Catalog(self.connector)

    @functools.cached_property
    def nullable(self) -> bool:
        """Whether the key column may hold NULL (a primary key's may not), from the catalog:
        only then does the first range also look for NULL keys."""
        return self.catalog.key_nullable(self.table, self.key)

    def _nullable(self, lo: Any, hi: Any) -> bool:
        """:attr:`nullable` where it matters (a first range with an upper end), so a whole-table
        statement does not describe the table first."""
        return self.nullable if lo is None and hi is not None else True

    @property
    def integer(self) -> bool:
        return self.key_type is not None and self.key_type.startswith(("int", "uint"))

    def condition(self, lo: Any, hi: Any) -> exp.Expression | None:
        ranged = range_condition(
            self.key, self.key_type, lo, hi, self.connector.dialect, self._nullable(lo, hi)
        )
        parts = [c for c in (self.where, ranged) if c is not None]
        if not parts:
            return None
        return parts[0] if len(parts) == 1 else exp.and_(*(exp.paren(p.copy()) for p in parts))

    def buckets(self, lo: Any, hi: Any, bounds: Sequence[Any]) -> list[Sums]:
        """The checksum of each range ``(lo, b1], ..., (bn, hi]``."""
        sql = bucket_sql(
            self.table, self.columns, self.connector.dialect, self.flavor, self.key,
            self.key_type, lo, hi, bounds, self.where, self.normalize, None,
            self._nullable(lo, hi),
        )  # fmt: skip
        found = {int(r[0]): (_int(r[1]), _int(r[2]), _int(r[3])) for r in self.connector.rows(sql)}
        return [found.get(i, EMPTY) for i in range(len(bounds) + 1)]

    def buckets_with(
        self, lo: Any, hi: Any, bounds: Sequence[Any], extra: str
    ) -> tuple[list[Sums], list[int]]:
        """:meth:`buckets`, and the sum of the SQL expression ``extra`` over each range's rows,
        computed by the same statement (one snapshot)."""
        rows = self.connector.rows(self.buckets_with_sql(lo, hi, bounds, extra))
        return buckets_with_rows(rows, len(bounds) + 1)

    def buckets_with_sql(self, lo: Any, hi: Any, bounds: Sequence[Any], extra: str) -> str:
        """The statement of :meth:`buckets_with` (its rows: :func:`buckets_with_rows`)."""
        return bucket_sql(
            self.table, self.columns, self.connector.dialect, self.flavor, self.key,
            self.key_type, lo, hi, bounds, self.where, self.normalize, extra,
            self._nullable(lo, hi),
        )  # fmt: skip

    def row_hashes(self, lo: Any, hi: Any, rows: int = 0) -> pa.Table:
        """``etlrun_k, etlrun_h1, etlrun_h2`` of every row in ``(lo, hi]``, as Arrow. About
        ``rows`` rows: few are fetched on the connection at hand, many by the fast Arrow reader
        (which opens its own connection)."""
        sql = row_hashes_sql(
            self.table, self.columns, self.connector.dialect, self.flavor, self.key,
            self.key_type, lo, hi, self.where, self.normalize, self._nullable(lo, hi),
        )  # fmt: skip
        key = arrow_from_str(self.key_type or "string")
        schema = pa.schema(
            [("etlrun_k", key), ("etlrun_h1", pa.int64()), ("etlrun_h2", pa.int64())]
        )
        if rows <= SMALL_READ:
            found = self.connector.rows(sql)
            columns = list(zip(*found, strict=True)) if found else [[], [], []]
            return pa.table(
                [pa.array([plain(k) for k in columns[0]], key), pa.array(columns[1], pa.int64()),
                 pa.array(columns[2], pa.int64())], schema=schema,
            )  # fmt: skip
        return pa.Table.from_batches(list(self.connector.read(sql, schema, 1 << 20)), schema)

    def split(self, lo: Any, hi: Any, rows: int, parts: int) -> list[Any]:
        """Inner boundaries cutting ``(lo, hi]`` into about ``parts`` ranges of this side."""
        if self.integer and isinstance(lo, int) and isinstance(hi, int):
            return even_bounds(lo, hi, parts)  # no query: the key is dense enough
        inner = self.catalog.key_bounds(
            self.table, self.key, self.condition(lo, hi), rows, max(1, math.ceil(rows / parts)),
            self.integer, text=self.key_type == "string",
        )  # fmt: skip
        return [b for b in inner if b != lo and b != hi]


def even_bounds(lo: int, hi: int, parts: int) -> list[int]:
    """Inner boundaries cutting the integer range ``(lo, hi]`` into ``parts`` equal ranges
    (fewer when it holds fewer values)."""
    step = max(1, math.ceil((hi - lo) / parts))
    return list(range(lo + step, hi, step))


def buckets_with_rows(rows: Sequence[Sequence[Any]], ranges: int) -> tuple[list[Sums], list[int]]:
    """Per range, the checksum and the sum of ``extra`` of a :meth:`HashSide.buckets_with_sql`
    statement's rows (an empty range has no row)."""
    found = {_int(r[0]): r for r in rows}
    sums: list[Sums] = []
    more: list[int] = []
    for i in range(ranges):
        r = found.get(i)
        sums.append((_int(r[1]), _int(r[2]), _int(r[3])) if r else EMPTY)
        more.append(_int(r[4]) if r else 0)
    return sums, more


def _same_keys(source: pa.Table, target: pa.Table) -> pa.Table | None:
    """The two sides' row hashes side by side when both hold exactly the same keys (updates
    only, the usual case): sorted by key and compared in place, about half the time of the
    hash join (1M rows a side in near key order: 0.1-0.23 s against 0.2-0.4 s) and none of its
    hash table's memory. None when the keys differ, or are NULL."""
    if source.num_rows != target.num_rows or source.num_rows == 0:
        return None
    if source["etlrun_k"].null_count or target["etlrun_k"].null_count:
        return None
    a = source.take(pc.sort_indices(source["etlrun_k"]))
    b = target.take(pc.sort_indices(target["etlrun_k"]))
    if not pc.all(pc.equal(a["etlrun_k"], b["etlrun_k"])).as_py():
        return None
    return pa.table({
        "etlrun_k": a["etlrun_k"],
        "etlrun_h1_s": a["etlrun_h1"], "etlrun_h2_s": a["etlrun_h2"],
        "etlrun_h1_t": b["etlrun_h1"], "etlrun_h2_t": b["etlrun_h2"],
    })  # fmt: skip


def summable(key_type: str | None) -> bool:
    """Whether row hashes of this key type can be summed by key range in Arrow as the database
    sums them (:func:`bucket_sums`): integers, and text compared in code point order."""
    return key_type is not None and (
        key_type.startswith(("int", "uint")) or key_type in ("string", "large_string")
    )


def bucket_sums(hashes: pa.Table, bounds: Sequence[Any]) -> list[Sums]:
    """The checksum of each range ``(b[i-1], b[i]]`` of row hashes (``etlrun_k, etlrun_h1,
    etlrun_h2``), exactly as ``bucket_sql`` sums them: the count, and the sums of both parts as
    unbounded integers. NULL keys fall in the first range, as there."""
    keys = hashes["etlrun_k"]
    bucket = pa.array([0] * hashes.num_rows, pa.int64()) if not bounds else None
    for bound in bounds:  # a row's range: how many bounds its key is above (text: UTF-8 bytes,
        # which order as code points, as binary_order has the database compare them)
        above = pc.cast(pc.fill_null(pc.greater(keys, pa.scalar(bound, keys.type)), False),
                        pa.int64())  # fmt: skip
        bucket = above if bucket is None else pc.add(bucket, above)
    columns = {"b": bucket}
    for c in ("etlrun_h1", "etlrun_h2"):  # 32-bit halves: int64 sums of them cannot overflow
        columns[c + "_hi"] = pc.shift_right(hashes[c], 32)
        columns[c + "_lo"] = pc.bit_wise_and(hashes[c], pa.scalar(0xFFFFFFFF, pa.int64()))
    summed = (
        pa.table(columns)
        .group_by("b")
        .aggregate([("b", "count"), *((c, "sum") for c in columns if c != "b")])
    )
    found = {
        r["b"]: (
            r["b_count"],
            (r["etlrun_h1_hi_sum"] << 32) + r["etlrun_h1_lo_sum"],
            (r["etlrun_h2_hi_sum"] << 32) + r["etlrun_h2_lo_sum"],
        )
        for r in summed.to_pylist()
    }
    return [found.get(i, EMPTY) for i in range(len(bounds) + 1)]


def json_normalize(columns: Sequence[Any]) -> frozenset[str]:
    """json columns both sides hash as jsonb: those that are json on one side and jsonb on the
    other (jsonb keeps no text: json's text must be normalized to compare).

    ``columns`` are ColumnPlans (source_type, target_type as the plan shows them)."""
    return frozenset(
        c.name
        for c in columns
        if {c.source_type.upper(), c.target_type.upper()} == {"JSON", "JSONB"}
    )


@dataclass
class Leaf:
    """A key range the row diff looked at, and what differs in it."""

    lo: Any
    hi: Any
    source_rows: int
    target_rows: int
    inserts: list[Any] = field(default_factory=list)
    updates: list[Any] = field(default_factory=list)
    deletes: list[Any] = field(default_factory=list)

    @property
    def changed(self) -> int:
        return len(self.inserts) + len(self.updates) + len(self.deletes)


@dataclass
class Differ:
    source: HashSide
    target: HashSide
    pool: Executor
    split: int = SPLIT
    leaf: int = LEAF
    scans: int = 0
    """Checksum queries run (both sides), for reports and the benchmark."""
    on_leaf: Callable[[Leaf], None] | None = None
    scattered: bool = False
    """The last top segment's changes were scattered over it (see diff)."""

    def both(self, lo: Any, hi: Any, bounds: Sequence[Any]) -> tuple[list[Sums], list[Sums]]:
        a = self.pool.submit(self.source.buckets, lo, hi, bounds)
        b = self.pool.submit(self.target.buckets, lo, hi, bounds)
        self.scans += 2
        return a.result(), b.result()

    def row_diff(self, lo: Any, hi: Any, s: Sums, t: Sums) -> Leaf:
        return self._row_diff(lo, hi, s, t)[0]

    def row_diff_summed(
        self, lo: Any, hi: Any, bounds: Sequence[Any], t: Sums
    ) -> tuple[Leaf, list[Sums]]:
        """:meth:`row_diff` of ``(lo, hi]`` without the source's checksum, and the source's
        checksum of each range ``(lo, b1], ..., (bn, hi]``, summed from the row hashes read
        (equal to what :meth:`HashSide.buckets` computes in the database). Integer and text
        keys only (:func:`summable`)."""
        leaf, source = self._row_diff(lo, hi, (-1, 0, 0), t)
        sums = bucket_sums(source, bounds)
        leaf.source_rows = sum(x[0] for x in sums)
        return leaf, sums

    def _row_diff(self, lo: Any, hi: Any, s: Sums, t: Sums) -> tuple[Leaf, pa.Table]:
        rows = max(s[0], t[0])  # a stored checksum may say -1: unknown
        a = self.pool.submit(self.source.row_hashes, lo, hi, rows)
        b = self.pool.submit(self.target.row_hashes, lo, hi, rows)
        source, target = a.result(), b.result()
        joined = _same_keys(source, target)
        if joined is None:
            joined = source.join(
                target, keys="etlrun_k", join_type="full outer", left_suffix="_s",
                right_suffix="_t",
            )  # fmt: skip
        h1s, h2s = joined["etlrun_h1_s"], joined["etlrun_h2_s"]
        h1t, h2t = joined["etlrun_h1_t"], joined["etlrun_h2_t"]
        missing_s, missing_t = pc.is_null(h1s), pc.is_null(h1t)
        differ = pc.or_(pc.not_equal(h1s, h1t), pc.not_equal(h2s, h2t))
        changed = joined.filter(pc.or_kleene(pc.or_kleene(missing_s, missing_t), differ))
        leaf = Leaf(lo, hi, s[0], t[0])
        if changed.num_rows:  # sorted by Arrow: 50,000 keys in a Python loop took 0.15 s, this 0.02
            only_s, only_t = pc.is_null(changed["etlrun_h1_t"]), pc.is_null(changed["etlrun_h1_s"])
            both = pc.invert(pc.or_(only_s, only_t))
            keys = changed["etlrun_k"]
            leaf.inserts, leaf.deletes, leaf.updates = (
                [plain(k) for k in keys.filter(mask).to_pylist()] for mask in (only_s, only_t, both)
            )
        if self.on_leaf is not None:
            self.on_leaf(leaf)
        return leaf, source

    def diff(
        self,
        lo: Any,
        hi: Any,
        s: Sums,
        t: Sums,
        top: bool = True,
        parts: tuple[list[Sums], list[Sums]] | None = None,
    ) -> list[Leaf]:
        """Every leaf of ``(lo, hi]`` that differs, given the range's checksums on both sides.

        ``top``: a caller's whole segment (not a sub-range). When the last top segment turned
        out scattered, the next one goes straight to the row diff: changes spread over every
        chunk would otherwise cost a sub-range scan per chunk that narrows nothing.

        ``parts``: both sides' checksums of the :data:`SPLIT` even sub-ranges of an integer
        ``(lo, hi]`` (runner/segparts.py), known already: the first level reads none."""
        if s == t:
            return []
        rows = max(s[0], t[0])
        if rows <= self.leaf:
            return [self.row_diff(lo, hi, s, t)]
        if top and self.scattered:
            leaf = self.row_diff(lo, hi, s, t)
            self.scattered = leaf.changed >= self.split  # few changes: bisect the next one
            return [leaf]
        if parts is not None:
            inner: list[Any] = even_bounds(lo, hi, SPLIT)  # as they were cut
            ss, tt = parts
        else:
            side = self.source if s[0] >= t[0] else self.target
            inner = side.split(lo, hi, rows, self.split)
        if not inner:
            return [self.row_diff(lo, hi, s, t)]
        edges = [lo, *inner, hi]
        subs = list(zip(edges[:-1], edges[1:], strict=True))
        if parts is None:
            ss, tt = self.both(lo, hi, inner)
        differing = [i for i in range(len(subs)) if ss[i] != tt[i]]
        spread = sum(max(ss[i][0], tt[i][0]) for i in differing)
        if len(differing) > 1 and spread > DENSE * rows:
            self.scattered = self.scattered or top
            return [self.row_diff(lo, hi, s, t)]  # scattered: one row diff beats more levels
        if top:
            self.scattered = False
        leaves: list[Leaf] = []
        for a, b in runs_of(differing):
            if a == b:
                leaves += self.diff(*subs[a], ss[a], tt[a], top=False)
                continue
            s_run, t_run = total(ss[a : b + 1]), total(tt[a : b + 1])
            if max(s_run[0], t_run[0]) <= RUN_ROWS:
                leaves.append(self.row_diff(subs[a][0], subs[b][1], s_run, t_run))
            else:
                for i in range(a, b + 1):
                    leaves += self.diff(*subs[i], ss[i], tt[i], top=False)
        return leaves


def runs_of(indexes: list[int]) -> list[tuple[int, int]]:
    """Sorted ``indexes`` as runs of consecutive ones: ``[1, 2, 3, 7]`` -> ``[(1, 3), (7, 7)]``."""
    runs: list[tuple[int, int]] = []
    for i in indexes:
        if runs and runs[-1][1] == i - 1:
            runs[-1] = (runs[-1][0], i)
        else:
            runs.append((i, i))
    return runs


def total(sums: Sequence[Sums]) -> Sums:
    """The checksum of adjacent ranges together, from theirs."""
    return (sum(x[0] for x in sums), sum(x[1] for x in sums), sum(x[2] for x in sums))
