"""incremental ``strategy: checksum``: each stored chunk's checksum on the source now, or
none where the row diff is to give it (changes scattered over most chunks); and, without
stored checksums, chunks cut on the target and checksummed on both sides (:func:`against_target`).

Chunks whose row-version tokens say unchanged keep their stored checksum (runner/tokens.py);
the others are hashed by content and compared with the stored checksums. A changed chunk is
then bisected against the target, or, when most chunks changed (updates scattered all over the
table, the usual shape of a day's changes to a big one), row-diffed whole: its rows' hashes are
read on both sides, which is the content scan over again. So when there are many chunks to
hash, two probe chunks (a quarter and three quarters of the way) are hashed first; when both
changed, the other chunks skip the content scan and go straight to the row diff, whose source
row hashes give their new checksums (segdiff.bucket_sums). Where the probes mislead (changes
in those two chunks only), the row diff reads both sides where a content scan would have read
the source only: slower, never wrong.

The probes come before the row-version tokens are read: when the changes are everywhere, every
chunk's token says "written" anyway, and reading them was a scan of the whole table for nothing
(5M rows: ~1.7 s of a 13 s run). Where stored tokens can be used, a probe counts the rows
written since in its chunk (their xmins by key range, one statement for both: ~0.05-0.09 s at
5M rows) instead of hashing it (~0.19 s): where tokens then skip most chunks (the changes are
few), a probe chunk's hash was wasted. Without usable tokens the probes hash their chunks.
"""

from __future__ import annotations

import math
from concurrent.futures import Executor
from dataclasses import dataclass, field
from typing import Any

from runner.segdiff import HashSide, Sums, runs_of
from runner.segparts import Hashed, Parts, layout, per_chunk
from runner.tokens import SourceTokens, Token

PROBES = (0.25, 0.75)
"""Where the probe chunks sit among the stored chunks."""
MIN_CHUNKS = 8
"""Fewer chunks than this: no probe (the content scan is short, the probes not free)."""


@dataclass
class SourceSums:
    sums: list[Sums | None]
    """Per chunk: the source's checksum (the stored one where unchanged); None where the row
    diff is to compute it."""
    tokens: list[Token | None]
    """Row-version tokens to store (chunks found equal to the stored checksum)."""
    hashed: int
    """Chunks hashed by content or left to the row diff (not skipped by tokens)."""
    scattered: bool
    """Both probes changed: the changes are taken to be everywhere."""
    tokens_read: bool = False
    """The stored row-version tokens were compared (not when scattered: none would hold)."""
    parts: dict[int, Parts] = field(default_factory=dict)
    """The parts (runner/segparts.py) of the chunks read by content, where read."""


def source_sums(
    detect: HashSide,
    tokens: SourceTokens | None,
    ranges: list[tuple[Any, Any]],
    known: list[Sums],
    held: list[Token | None],
    pool: Executor,
    probe: bool,
) -> SourceSums:
    """The source's checksum of each stored chunk (see the module docstring). ``probe``: the
    row diff can sum chunk checksums for this table (segdiff.summable key, and ``detect``
    hashes as the row diff does)."""
    n = len(ranges)
    # read before any statement whose rows a stored token will describe (see runner/tokens.py)
    xmin = tokens.snapshot_xmin() if tokens is not None else 0
    extra = tokens.row_token if tokens is not None else None
    hashed: dict[int, Hashed] = {}
    scattered = False
    if probe and n >= MIN_CHUNKS:
        picks = sorted({int(n * f) for f in PROBES})
        since = tokens.usable_since(held, xmin) if tokens is not None else None
        if tokens is not None and since is not None:  # rows written since, not hashed
            scattered = all(tokens.written(ranges, picks, since))
        else:
            for future in [pool.submit(hash_runs, detect, ranges, [i], extra) for i in picks]:
                hashed.update(future.result())
            scattered = all(hashed[i][0] != known[i] for i in picks)
    same: list[bool] = [False] * n
    found: list[Token | None] = [None] * n
    read = False
    if tokens is not None and not scattered:  # scattered: every chunk goes to the row diff
        same, found, read_too = tokens.unchanged(ranges, known, held, xmin)
        hashed.update(read_too)
        read = True
    todo = [i for i in range(n) if not same[i]]
    if not scattered:
        hashed.update(hash_runs(detect, ranges, [i for i in todo if i not in hashed], extra, pool))
    sums: list[Sums | None] = list(known)
    parts: dict[int, Parts] = {}
    for i in todo:
        if i not in hashed:
            sums[i] = None
            continue
        s, total, chunk_parts = hashed[i]
        sums[i] = s
        if chunk_parts is not None:
            parts[i] = chunk_parts
        if tokens is not None:  # equal to the stored checksum, which the target has
            found[i] = (tokens.token(total), xmin) if s == known[i] else None
    return SourceSums(sums, found, len(todo), scattered, read, parts)


def hash_runs(
    side: HashSide,
    ranges: list[tuple[Any, Any]],
    chunks: list[int],
    extra: str | None = None,
    pool: Executor | None = None,
) -> dict[int, Hashed]:
    """The content checksum of each of ``chunks`` (indexes into ``ranges``), runs of adjacent
    chunks in one statement each (on ``pool``'s threads at once, when given), with the sum of
    the SQL expression ``extra`` (0 without), and the chunk's parts where the side reads them
    (runner/segparts.py)."""
    runs = runs_of(sorted(chunks))

    def run(i: int, j: int) -> dict[int, Hashed]:
        inner, sizes = layout(side, ranges, i, j)
        if extra is None:
            sums, totals = side.buckets(ranges[i][0], ranges[j][1], inner), [0] * sum(sizes)
        else:
            sums, totals = side.buckets_with(ranges[i][0], ranges[j][1], inner, extra)
        return {i + n: chunk for n, chunk in enumerate(per_chunk(sums, totals, sizes))}

    found: dict[int, Hashed] = {}
    if pool is None or len(runs) < 2:
        parts = [run(i, j) for i, j in runs]
    else:
        parts = [f.result() for f in [pool.submit(run, i, j) for i, j in runs]]
    for part in parts:
        found.update(part)
    return found


def against_target(
    src: HashSide,
    tgt: HashSide,
    detect: HashSide,
    rows: int,
    chunk_rows: int,
    pool: Any,
    tokens: SourceTokens | None = None,
) -> tuple[
    list[tuple[Any, Any]], list[Sums], list[Sums], list[Sums], list[Token | None], dict[int, Parts]
]:
    """Chunks cut on the target: (ranges, source sums, target sums, source sums as stored,
    row-version tokens of the chunks found equal, the source's parts of the chunks where read
    and stored as they are: runner/segparts.py).

    Tokens are read by the source's checksum statement itself, so where its checksum equals
    the target's the token describes rows the target has; only when the stored checksum is
    that same statement's (no json hashed as jsonb)."""
    parts = math.ceil(rows / chunk_rows) if rows else 1
    bounds = tgt.split(None, None, rows, parts) if parts > 1 else []
    edges = [None, *bounds, None]
    ranges = list(zip(edges[:-1], edges[1:], strict=True))
    # the source's statement reads the chunks' parts too, where they are stored as read
    if detect is src:
        inner, sizes = layout(src, ranges, 0, len(ranges) - 1)
    else:
        inner, sizes = bounds, [1] * len(ranges)
    reader = tokens if detect is src else None  # the statement reads the tokens too
    xmin = reader.snapshot_xmin() if reader is not None else 0
    if reader is not None:
        a = pool.submit(src.buckets_with, None, None, inner, reader.row_token)
    else:
        a = pool.submit(lambda: (src.buckets(None, None, inner), [0] * sum(sizes)))
    b = pool.submit(tgt.buckets, None, None, bounds)
    (fine, more), target = a.result(), b.result()
    chunks = per_chunk(fine, more, sizes)
    source = [c[0] for c in chunks]
    kept = {i: c[2] for i, c in enumerate(chunks) if c[2] is not None}
    if reader is not None:
        found: list[Token | None] = [
            (reader.token(c[1]), xmin) if c[0] == t else None
            for c, t in zip(chunks, target, strict=True)
        ]
        return ranges, source, target, source, found, kept
    stored = source if detect is src else detect.buckets(None, None, bounds)
    return ranges, source, target, stored, [None] * len(ranges), kept
