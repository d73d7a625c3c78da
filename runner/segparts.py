"""A chunk's parts: the checksums of its :data:`~runner.segdiff.SPLIT` even sub-ranges, kept
with the chunk's own checksum in the state store.

When a chunk's source checksum no longer matches the stored one, the bisection's first level
reads the checksums of its sub-ranges on both sides (segdiff.Differ.diff). The source's are
read with the chunk's own checksum instead (the same scan, grouped finer), and the target's
are the stored parts: the target held exactly the chunk's stored rows, so its sub-ranges hold
what they held when the parts were read. So a changed chunk goes straight to the row diff of
its changed sub-ranges. On the bench's 5M-row table (C1: 50,000 rows changed in one chunk) the
first level cost 0.19-0.27 s, both sides at once.

Parts are stored only for a chunk found equal to its stored checksum (the parts were read from
rows the target holds) and carried over while the chunk stays unchanged; a chunk the run
applied, grew or split has none until a later run finds it equal. PostgreSQL integer keys
only (:func:`finer`), and only chunks with both ends known (the first and last chunks are
open-ended).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from runner.plan.segments import INTEGER_KEYS
from runner.segdiff import SPLIT, HashSide, Sums, even_bounds, total

Parts = list[Sums]
Hashed = tuple[Sums, int, Parts | None]
"""A chunk read by content: its checksum, the sum of the statement's extra expression over its
rows (0 without one), and its parts (None: not read)."""


def finer(side: HashSide) -> bool:
    """Whether ``side``'s checksum statements read parts too: a PostgreSQL integer key, whose
    range ``width_bucket`` finds by binary search (a ``CASE`` elsewhere tries every bound in
    turn, so 16 times the bounds would cost each row 16 times the comparisons)."""
    return side.connector.dialect == "postgres" and side.key_type in INTEGER_KEYS


def layout(
    side: HashSide, ranges: Sequence[tuple[Any, Any]], a: int, b: int
) -> tuple[list[Any], list[int]]:
    """The inner bounds of one checksum statement over the chunks ``a..b``, cut into their
    parts where :func:`finer`; and the number of ranges each chunk has in it."""
    if finer(side):
        return fine_bounds(ranges, a, b)
    return [hi for _, hi in ranges[a:b]], [1] * (b - a + 1)


def per_chunk(sums: Sequence[Sums], more: Sequence[int], sizes: Sequence[int]) -> list[Hashed]:
    """A statement's ranges (:func:`layout`) back to one :data:`Hashed` per chunk."""
    return [
        (total(group), sum(extra), group if len(group) > 1 else None)
        for group, extra in zip(regroup(sums, sizes), regroup(more, sizes), strict=True)
    ]


def part_bounds(lo: Any, hi: Any) -> list[int] | None:
    """The inner bounds of the chunk ``(lo, hi]``'s parts; None when it has none (not an
    integer range, or one too narrow to split)."""
    if type(lo) is not int or type(hi) is not int:
        return None
    return even_bounds(lo, hi, SPLIT) or None


def fine_bounds(ranges: Sequence[tuple[Any, Any]], a: int, b: int) -> tuple[list[Any], list[int]]:
    """The inner bounds of the run of chunks ``a..b`` (indexes into ``ranges``) cut into their
    parts, and the number of ranges each chunk then has (1: no parts)."""
    bounds: list[Any] = []
    sizes: list[int] = []
    for k in range(a, b + 1):
        lo, hi = ranges[k]
        inner = part_bounds(lo, hi) or []
        bounds += inner
        if k < b:
            bounds.append(hi)
        sizes.append(len(inner) + 1)
    return bounds, sizes


def regroup(fine: Sequence[Any], sizes: Sequence[int]) -> list[list[Any]]:
    """``fine`` (one value per range of :func:`fine_bounds`) grouped by chunk."""
    groups, at = [], 0
    for size in sizes:
        groups.append(list(fine[at : at + size]))
        at += size
    return groups


def usable(lo: Any, hi: Any, source: Parts | None, stored: Parts | None, s: Sums, t: Sums) -> bool:
    """Whether both sides' parts of ``(lo, hi]`` can stand for the first bisection level: both
    known, cut as :func:`part_bounds` cuts the range now, and adding up to the chunk's
    checksums (``s`` the source's, ``t`` the stored one)."""
    bounds = part_bounds(lo, hi)
    if bounds is None or source is None or stored is None:
        return False
    if not len(source) == len(stored) == len(bounds) + 1:
        return False
    return total(source) == s and total(stored) == t
