"""Row-version tokens: which chunks of a PostgreSQL source changed, without hashing their rows.

Every INSERT and UPDATE in PostgreSQL writes a new tuple version stamped with the writing
(sub)transaction's id, ``xmin``; a DELETE ends a version. A chunk's token is read from the key
and the system columns only (no column is decoded): its row count, the sum of a 64-bit hash of
``(tableoid, key)`` over its rows (``SourceTokens.row_token``), and how many of its rows were
written since the snapshot the stored token was read in (``xmin`` at or after that snapshot's
xmin, the oldest transaction then still running). A chunk is unchanged when that
count is 0 and the row count and sum equal the stored ones. Why that cannot say "unchanged"
about a chunk that changed:

- A version visible now whose xmin precedes the stored snapshot's xmin was committed before
  that snapshot, and a version never becomes visible again once deleted: so with no rows
  written since, the rows now are a subset of the rows then, and an equal count makes them the
  same rows. Updates and inserts (also by subtransactions: a subtransaction's id follows its
  parent's) are recent rows; deletes lower the count. The hash sum catches rows that entered or
  left a ``where:`` filter without being written (a filter on ``now()``), and rows moved
  between partitions or tables (``tableoid``). A single plain table read without a ``where:``
  filter has neither: its rows are not hashed (the sum is 0; the scan of 5M rows is ~0.2 s
  shorter) and its token names the table's oid instead, so a table swapped in under the same
  name (a reload elsewhere renaming tables) never matches.
- Freezing keeps the raw xmin since PostgreSQL 9.4 (it sets infomask bits); an older server
  overwrote it with the frozen id, which is never recent (and was committed long before).
  Ids are 32-bit and wrap: the recent rows are counted in the window ``[stored xmin, now)``
  modulo 2^32 (by ``age()``), and a token older than 2^30 transactions is not used; a wrapped
  ancient id falling in the window only costs a false "changed".
- Ids are only comparable within one line of history: the token carries the cluster's system
  identifier and timeline, so a promoted standby (its ids may repeat lost ones), a restored
  backup or another server never matches. ``pg_upgrade`` (a new cluster), a dump and
  restore, or an UPDATE that sets the same values, make chunks look changed: they then cost
  what every chunk costs without tokens (content checksum, compared with the stored one).
  VACUUM FULL and CLUSTER copy the tuple headers: xmin is kept, nothing looks changed.
- Views and foreign tables have no row versions of their own (a foreign table's xmin says
  nothing about the remote row): no tokens when the table or any partition or inheritance
  child it reads is one.

What tokens cannot see is a change without a row write: a renamed enum label
(``ALTER TYPE ... RENAME VALUE``) or a ``reg*`` column whose object was renamed. ``etlrun
check`` (it compares with the target itself) finds those, and a run with no stored checksums.

A token is stored only for a chunk whose source rows, in the statement that read the token,
had the checksum the target has (so "unchanged since" means "still equal to the target"): a
chunk found unchanged, or one whose content checksum was found equal in the same statement.
Chunks applied by the run store no token, because the rows the target got were read later than
any token: a row inserted after the token and deleted before the next run would leave the
token as it was and the row in the target. The next run checksums them and stores a token.
The stored snapshot xmin is read before the statements it covers (earlier is only safer).

The token scan reads every row's key and xmin. A plain table (PostgreSQL 14 or later) is read
in :data:`SCAN_PARTS` page ranges (TID range scans) by as many connections sharing one
exported snapshot: 5M rows in 0.8-1.0 s against 1.4 s in one statement (2 cores). It reads the
table's totals, not each chunk's (grouping 5M rows by chunk cost ~0.25 s), and names the chunks
holding a recent row; then, in the same snapshot, the content checksums of those chunks and of
chunks without a token (their counts and hash sums with them), by their key ranges. The other
chunks have no recent row, so each holds a subset of its stored rows: when together they hold
the stored count and hash sum, each holds its own (:meth:`SourceTokens.quick_scan`). When they
do not (a delete), the grouped scan reads every chunk's numbers: 5M rows with 1% changed in one
range, 0.7-0.8 s against 1.0 s.
"""

from __future__ import annotations

import os
import time
from typing import Any

from loguru import logger
from sqlglot import exp

from runner.errors import EtlrunError
from runner.plan.catalog import quote_ident, quote_table
from runner.plan.segments import INTEGER_KEYS, bucket_case, where_sql
from runner.segdiff import HashSide, Sums, _int, buckets_with_rows, runs_of
from runner.segparts import Hashed, layout, per_chunk

KINDS = ("r", "p", "m")
"""pg_class.relkind with row versions: tables, partitioned tables, materialized views."""
WINDOW = 1 << 30
"""Transactions a stored token stays usable for (ids wrap at 2^32)."""
WRAP = 1 << 32

SCHEME = 4
"""The token formula's version, part of every stored token: tokens of another formula are not
compared (their chunks are hashed by content once, and get tokens of this one)."""
FIRST_NORMAL_XID = 3
"""Ids below it are special (frozen, bootstrap, invalid): never a row's xmin, never a snapshot's."""
SCAN_PARTS = 2
"""Page ranges a big table's token scan is split in, each read by its own server process (the
detection's other statements also run two at a time)."""
QUICK_SHARE = 4
"""The totals scan (:meth:`SourceTokens.quick_scan`) is used while at most one range in this
many needs its own numbers; past that, the grouped scan reads them all at once."""
SPLIT_PAGES = int(os.environ.get("ETLRUN_TOKEN_SPLIT_PAGES", 4096))
"""Tables smaller than this (32 MB of 8 kB pages) are scanned in one statement."""

Token = tuple[str, int]
"""What a chunk stores: ("<cluster>:<hash sum>", the 64-bit snapshot xmin it holds from)."""


class SourceTokens:
    """Row-version tokens of one PostgreSQL source table (see the module docstring)."""

    def __init__(
        self, side: HashSide, cluster: str, pages: int | None = None, plain: int | None = None
    ) -> None:
        self.side = side
        self.cluster = f"{cluster}#{SCHEME}" if plain is None else f"{cluster}#{SCHEME}/{plain}"
        self.pages = pages
        """The table's size in pages, when its token scan can be split by page ranges."""
        key = quote_ident(side.key, "postgres")
        self.row_token = (  # an integer key: one hash seeded with the oid; any other: a record's
            "0"
            if plain is not None
            else f"hashint8extended(CAST({key} AS BIGINT), CAST(tableoid AS BIGINT))"
            if side.key_type in INTEGER_KEYS
            else f"hash_record_extended(ROW(tableoid, {key}), 0)"
        )
        """A row's token, as SQL; 0 for a single plain table read whole (``plain``: its oid)."""

    @classmethod
    def probe(cls, side: HashSide) -> SourceTokens | None:
        """Tokens for ``side``'s table, or None: not PostgreSQL, not a table (a view), or the
        cluster's identity unreadable."""
        if side.connector.dialect != "postgres":
            return None
        name = exp.Literal.string(quote_table(side.table, "postgres")).sql(dialect="postgres")
        try:  # the relation and every partition or inheritance child it reads
            found = side.connector.rows(
                "WITH RECURSIVE tree(oid) AS ("
                f"SELECT CAST(to_regclass({name}) AS oid) UNION "
                "SELECT i.inhrelid FROM pg_inherits i JOIN tree t ON i.inhparent = t.oid) "
                "SELECT (SELECT string_agg(DISTINCT CAST(c.relkind AS TEXT), '') "
                "FROM tree t JOIN pg_class c ON c.oid = t.oid), "
                "s.system_identifier, k.timeline_id, (SELECT COUNT(*) FROM tree), "
                f"CAST(to_regclass({name}) AS oid), "
                "CAST(current_setting('server_version_num') AS INT), "
                f"pg_relation_size(to_regclass({name})) / "
                "CAST(current_setting('block_size') AS INT) "
                "FROM pg_control_system() s CROSS JOIN pg_control_checkpoint() k"
            )
        except EtlrunError as exc:  # e.g. pg_control_* not granted: compare as without tokens
            logger.debug("{}: no row-version tokens ({})", side.table, exc)
            return None
        kinds, system, timeline, members, oid, version, pages = found[0]
        if not kinds or any(k not in KINDS for k in str(kinds)):
            # a view, or a foreign table anywhere in the tree: rows without versions of ours
            logger.debug("{}: relkind {!r} has no row versions: no tokens", side.table, kinds)
            return None
        # TID range scans (PostgreSQL 14) read a page range of one table and no more
        single = kinds == "r" and _int(members) == 1
        split = single and _int(version) >= 140000
        plain = _int(oid) if single and side.where is None else None
        return cls(side, f"{system}/{timeline}", _int(pages) if split else None, plain)

    def snapshot_xmin(self) -> int:
        """The 64-bit xmin of a snapshot taken now: every transaction below it has ended."""
        value = self.side.connector.scalar("SELECT txid_snapshot_xmin(txid_current_snapshot())")
        return int(value)  # type: ignore[call-overload]

    def token(self, total: int) -> str:
        return f"{self.cluster}:{total}"

    def _recent(self, since: int) -> str:
        """SQL: the row was written at or after the 64-bit xid ``since``.

        Both ``age()``s count from one transaction id, taken once per transaction (beyond every
        id the read-only snapshot sees), and a negative age (an id so old it wrapped) is not
        recent. The age of an integer is ~0.3 s per 5M rows cheaper than turning xmin into a
        number by text."""
        first = max(since % WRAP, FIRST_NORMAL_XID)  # ids below it are never a row's xmin
        return f"age(xmin) BETWEEN 0 AND (SELECT age(CAST('{first}' AS xid)))"

    def _part_conditions(self) -> list[list[str]]:
        """Per page range of the table (:data:`SCAN_PARTS` when it is big enough, else one):
        the conditions its rows are read under, the ``where:`` filter included."""
        s = self.side
        filtered = where_sql(s.key, s.key_type, None, None, "postgres", s.where)
        pages = self.pages or 0
        parts = SCAN_PARTS if pages >= SPLIT_PAGES else 1
        found = []
        for n in range(parts):
            conditions = [filtered.removeprefix(" WHERE ")] if filtered else []
            if n > 0:
                conditions.append(f"ctid >= '({pages * n // parts},0)'")
            if n < parts - 1:
                conditions.append(f"ctid < '({pages * (n + 1) // parts},0)'")
            found.append(conditions)
        return found

    def _grouped(self, bounds: list[Any], since: int, conditions: list[str]) -> str:
        """Per range: rows, hash sum and recent rows of the rows read under ``conditions``."""
        s = self.side
        bucket = bucket_case(s.key, s.key_type, bounds, "postgres")
        return (
            f"SELECT etlrun_b, COUNT(*), COALESCE(SUM(etlrun_t), 0), "
            "COUNT(*) FILTER (WHERE etlrun_r) FROM ("
            f"SELECT {bucket} AS etlrun_b, {self.row_token} AS etlrun_t, "
            f"{self._recent(since)} AS etlrun_r "
            f"FROM {quote_table(s.table, 'postgres')}{_where(conditions)}) etlrun_rows "
            "GROUP BY etlrun_b"
        )

    def scan_statements(self, bounds: list[Any], since: int) -> list[str]:
        """Per range: rows, hash sum, and rows written at or after the 64-bit xid ``since``;
        one statement per page range of the table (:data:`SCAN_PARTS` when it is big enough)."""
        return [self._grouped(bounds, since, c) for c in self._part_conditions()]

    def scan(self, bounds: list[Any], since: int) -> dict[int, tuple[int, int, int]]:
        """Per range (by its number): rows, hash sum, recent rows (:meth:`scan_statements`)."""
        parts = self.side.connector.rows_in_one_snapshot(  # type: ignore[attr-defined]
            self.scan_statements(bounds, since)
        )
        return _summed(parts)

    def totals_statements(self, bounds: list[Any], since: int) -> list[str]:
        """Per page range: rows, hash sum, and the numbers of the ranges holding a recent row.

        No GROUP BY: on the 2-core machine, grouping 2.5M rows by range took 0.2-0.25 s of a
        0.7 s statement. The ranges are numbered for the recent rows only."""
        s = self.side
        bucket = bucket_case(s.key, s.key_type, bounds, "postgres")
        return [
            "SELECT COUNT(*), COALESCE(SUM(etlrun_t), 0), "
            "array_agg(DISTINCT etlrun_b) FILTER (WHERE etlrun_b IS NOT NULL) FROM ("
            f"SELECT CASE WHEN {self._recent(since)} THEN {bucket} END AS etlrun_b, "
            f"{self.row_token} AS etlrun_t "
            f"FROM {quote_table(s.table, 'postgres')}{_where(c)}) etlrun_rows"
            for c in self._part_conditions()
        ]

    def quick_scan(
        self,
        ranges: list[tuple[Any, Any]],
        known: list[Sums],
        stored: list[Token | None],
        since: int,
    ) -> tuple[dict[int, tuple[int, int, int]], dict[int, Hashed]] | None:
        """What :meth:`scan` returns for the ranges without a recent row, from the table's
        totals; and, for the others (holding a recent row, or without a stored token), their
        content checksums, hash sums and parts (what ``_checksum_detect.hash_runs`` returns),
        read in the same snapshot. None when the totals do not add up (rows deleted, or gone from a
        ``where:`` filter, in a range without recent rows): :meth:`scan` then tells which
        ranges.

        Every range without a recent row holds a subset of its stored rows (see the module
        docstring), so when all of them together hold as many rows as were stored for them,
        with the same hash sum, each holds exactly its stored rows: each is given its stored
        count and sum, and no recent row. The ranges that need their own numbers get them from
        their content checksum, which the caller needs of them anyway (a third statement over
        those ranges cost 0.23 s of 1.6 at 5M rows)."""
        n = len(ranges)
        bounds = [hi for _, hi in ranges[:-1]]
        held = [_held_sum(t, self.cluster) for t in stored]
        own: list[int] = []
        runs: list[tuple[int, int]] = []
        sizes: list[list[int]] = []

        def detail(parts: list[list[tuple[Any, ...]]]) -> list[str]:
            flagged = {_int(b) for part in parts for b in (part[0][2] or ())}
            own.extend(i for i in range(n) if i in flagged or held[i] is None)
            if len(own) * QUICK_SHARE > n:
                return []
            runs.extend(runs_of(own))
            statements = []
            for a, b in runs:
                inner, cut = layout(self.side, ranges, a, b)
                sizes.append(cut)
                statements.append(self.side.buckets_with_sql(
                    ranges[a][0], ranges[b][1], inner, self.row_token
                ))  # fmt: skip
            return statements

        if all(h is None for h in held):
            return None
        results = self.side.connector.rows_in_one_snapshot(  # type: ignore[attr-defined]
            self.totals_statements(bounds, since), then=detail
        )
        if len(own) * QUICK_SHARE > n:
            return None
        parts = results[: len(results) - len(runs)]
        hashed: dict[int, Hashed] = {}
        for (a, _), cut, rows in zip(runs, sizes, results[len(parts) :], strict=True):
            sums, more = buckets_with_rows(rows, sum(cut))
            hashed.update((a + k, chunk) for k, chunk in enumerate(per_chunk(sums, more, cut)))
        count = sum(_int(p[0][0]) for p in parts) - sum(h[0][0] for h in hashed.values())
        total = sum(_int(p[0][1]) for p in parts) - sum(h[1] for h in hashed.values())
        rest = [i for i in range(n) if i not in hashed]
        if (count, total) != (sum(known[i][0] for i in rest), sum(held[i] or 0 for i in rest)):
            return None
        return {i: (known[i][0], held[i] or 0, 0) for i in rest}, hashed

    def written(self, ranges: list[tuple[Any, Any]], chunks: list[int], since: int) -> list[int]:
        """Rows written at or after the 64-bit xid ``since`` in each of ``chunks`` (indexes
        into ``ranges``), in one statement reading those key ranges: their xmins only, no
        column hashed (two chunks of 100,000 rows: 50 ms, where hashing them took 0.19 s)."""
        conditions = []
        for i in chunks:
            condition = self.side.condition(*ranges[i])
            conditions.append(
                "TRUE" if condition is None else condition.sql(dialect="postgres", identify=True)
            )
        counts = ", ".join(f"COUNT(*) FILTER (WHERE {c})" for c in conditions)
        anywhere = " OR ".join(f"({c})" for c in conditions)
        found = self.side.connector.rows(
            f"SELECT {counts} FROM {quote_table(self.side.table, 'postgres')} "
            f"WHERE {self._recent(since)} AND ({anywhere})"
        )
        return [_int(n) for n in found[0]]

    def usable_since(self, stored: list[Token | None], now: int) -> int | None:
        """The oldest stored snapshot xmin, when the stored tokens can be used at all."""
        held = [t for t in stored if t is not None and _held_sum(t, self.cluster) is not None]
        if not held:
            return None
        since = min(t[1] for t in held)
        if not 0 <= now - since < WINDOW:
            logger.debug("{}: stored tokens from xid {}, now {}: not used", self.side.table,
                         since, now)  # fmt: skip
            return None
        return since

    def unchanged(
        self,
        ranges: list[tuple[Any, Any]],
        known: list[Sums],
        stored: list[Token | None],
        xmin: int,
    ) -> tuple[list[bool], list[Token | None], dict[int, Hashed]]:
        """Which chunks the stored tokens show unchanged, and their tokens (holding from
        ``xmin``, the 64-bit snapshot xmin read before this and the statements it covers); and
        the content checksums, hash sums and parts read of other chunks on the way (by chunk
        number: what ``_checksum_detect.hash_runs`` returns, read after ``xmin``)."""
        bounds = [hi for _, hi in ranges[:-1]]
        since = self.usable_since(stored, xmin)
        same = [False] * len(ranges)
        tokens: list[Token | None] = [None] * len(ranges)
        hashed: dict[int, Hashed] = {}
        if since is not None:
            started = time.monotonic()
            quick = self.quick_scan(ranges, known, stored, since)
            if quick is None:
                found = self.scan(bounds, since)
            else:
                found, hashed = quick
            logger.debug("{}: row-version tokens of {} chunk(s) read in {:.2f}s ({})",
                         self.side.table, len(ranges), time.monotonic() - started,
                         "totals" if quick is not None else "grouped")  # fmt: skip
            for i, token in enumerate(stored):
                if i in hashed:  # read by content: the caller compares it
                    continue
                rows, total, recent = found.get(i, (0, 0, 0))
                if token is not None and (rows, self.token(total)) == (known[i][0], token[0]):
                    same[i] = recent == 0
                    tokens[i] = (token[0], xmin) if same[i] else None
        return same, tokens, hashed


def _where(conditions: list[str]) -> str:
    return " WHERE " + " AND ".join(f"({c})" for c in conditions) if conditions else ""


def _summed(parts: list[list[tuple[Any, ...]]]) -> dict[int, tuple[int, int, int]]:
    """Per range: the rows, hash sums and recent rows of grouped statements, added up."""
    found: dict[int, tuple[int, int, int]] = {}
    for part in parts:
        for bucket, *values in part:
            before = found.get(_int(bucket), (0, 0, 0))
            found[_int(bucket)] = tuple(  # type: ignore[assignment]
                a + _int(b) for a, b in zip(before, values, strict=True)
            )
    return found


def _held_sum(token: Token | None, cluster: str) -> int | None:
    """The hash sum a stored token holds, when it is a token of ``cluster`` (and scheme)."""
    if token is None or not token[0].startswith(f"{cluster}:"):
        return None
    return int(token[0][len(cluster) + 1 :])
