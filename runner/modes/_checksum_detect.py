"""incremental ``strategy: checksum``: each stored chunk's checksum on the source now, or
none where the row diff is to give it (changes scattered over most chunks).

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

from concurrent.futures import Executor
from dataclasses import dataclass
from typing import Any

from runner.segdiff import HashSide, Sums, runs_of
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
    hashed: dict[int, tuple[Sums, int]] = {}
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
    for i in todo:
        if i not in hashed:
            sums[i] = None
            continue
        s, total = hashed[i]
        sums[i] = s
        if tokens is not None:  # equal to the stored checksum, which the target has
            found[i] = (tokens.token(total), xmin) if s == known[i] else None
    return SourceSums(sums, found, len(todo), scattered, read)


def hash_runs(
    side: HashSide,
    ranges: list[tuple[Any, Any]],
    chunks: list[int],
    extra: str | None = None,
    pool: Executor | None = None,
) -> dict[int, tuple[Sums, int]]:
    """The content checksum of each of ``chunks`` (indexes into ``ranges``), runs of adjacent
    chunks in one statement each (on ``pool``'s threads at once, when given), with the sum of
    the SQL expression ``extra`` (0 without)."""
    runs = runs_of(sorted(chunks))

    def run(i: int, j: int) -> dict[int, tuple[Sums, int]]:
        inner = [hi for _, hi in ranges[i:j]]
        if extra is None:
            part, totals = side.buckets(ranges[i][0], ranges[j][1], inner), [0] * (j - i + 1)
        else:
            part, totals = side.buckets_with(ranges[i][0], ranges[j][1], inner, extra)
        return {i + n: (s, total) for n, (s, total) in enumerate(zip(part, totals, strict=True))}

    found: dict[int, tuple[Sums, int]] = {}
    if pool is None or len(runs) < 2:
        parts = [run(i, j) for i, j in runs]
    else:
        parts = [f.result() for f in [pool.submit(run, i, j) for i, j in runs]]
    for part in parts:
        found.update(part)
    return found
