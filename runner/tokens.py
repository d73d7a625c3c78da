"""Row-version tokens: which chunks of a PostgreSQL source changed, without hashing their rows.

Every INSERT and UPDATE in PostgreSQL writes a new tuple version stamped with the writing
(sub)transaction's id, ``xmin``; a DELETE ends a version. A chunk's token is read from the key
and the system columns only (no column is decoded): its row count, the sum of a 64-bit hash of
``(tableoid, key, xmin)`` over its rows (:meth:`SourceTokens._token`), and how many of its rows
were written since the snapshot the stored token was read in (``xmin`` at or after that
snapshot's xmin, the oldest transaction then still running). A chunk is unchanged when that
count is 0 and the row count and sum equal the stored ones. Why that cannot say "unchanged"
about a chunk that changed:

- A version visible now whose xmin precedes the stored snapshot's xmin was committed before
  that snapshot, and a version never becomes visible again once deleted: so with no rows
  written since, the rows now are a subset of the rows then, and an equal count makes them the
  same rows. Updates and inserts (also by subtransactions: a subtransaction's id follows its
  parent's) are recent rows; deletes lower the count. The hash sum catches rows that entered or
  left a ``where:`` filter without being written (a filter on ``now()``), and rows moved
  between partitions or tables (``tableoid``).
- Freezing keeps the raw xmin since PostgreSQL 9.4 (it sets infomask bits); an older server
  overwrote it, which only makes a frozen chunk look changed. Ids are 32-bit and wrap: the
  recent rows are counted in the window ``[stored xmin, now)`` modulo 2^32, and a token older
  than 2^30 transactions is not used; a wrapped ancient id falling in the window only costs a
  false "changed".
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
"""

from __future__ import annotations

from typing import Any

from loguru import logger
from sqlglot import exp

from runner.errors import EtlrunError
from runner.plan.catalog import quote_ident, quote_table
from runner.plan.segments import bucket_case, where_sql
from runner.segdiff import HashSide, Sums, _int

KINDS = ("r", "p", "m")
"""pg_class.relkind with row versions: tables, partitioned tables, materialized views."""
WINDOW = 1 << 30
"""Transactions a stored token stays usable for (ids wrap at 2^32)."""
WRAP = 1 << 32

SCHEME = 2
"""The token formula's version, part of every stored token: tokens of another formula are not
compared (their chunks are hashed by content once, and get tokens of this one)."""
INTEGER_KEYS = ("int16", "int32", "int64")

Token = tuple[str, int]
"""What a chunk stores: ("<cluster>:<hash sum>", the 64-bit snapshot xmin it holds from)."""


class SourceTokens:
    """Row-version tokens of one PostgreSQL source table (see the module docstring)."""

    def __init__(self, side: HashSide, cluster: str) -> None:
        self.side = side
        self.cluster = f"{cluster}#{SCHEME}"
        self.row_token = self._token("tableoid", "xmin", "CAST(CAST(xmin AS TEXT) AS BIGINT)")

    def _token(self, oid: str, xid: str, xid_number: str) -> str:
        """A row's token from its table's oid, its xmin, and that xmin as a number (the SQL
        expression of each). An integer key and those two numbers in one ``hashint8extended``
        (the table's oid in the seed's high 32 bits, the 32-bit xmin in the low ones) cost
        0.40 s per 1M rows with the number computed once, against 0.47-0.51 s for the record
        hash that any other key takes."""
        key = quote_ident(self.side.key, "postgres")
        if self.side.key_type in INTEGER_KEYS:
            return f"hashint8extended(CAST({key} AS BIGINT), ({oid}::bigint << 32) + {xid_number})"
        return f"hash_record_extended(ROW({oid}, {key}, {xid}), 0)"

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
                "s.system_identifier, k.timeline_id "
                "FROM pg_control_system() s CROSS JOIN pg_control_checkpoint() k"
            )
        except EtlrunError as exc:  # e.g. pg_control_* not granted: compare as without tokens
            logger.debug("{}: no row-version tokens ({})", side.table, exc)
            return None
        kinds, system, timeline = found[0]
        if not kinds or any(k not in KINDS for k in str(kinds)):
            # a view, or a foreign table anywhere in the tree: rows without versions of ours
            logger.debug("{}: relkind {!r} has no row versions: no tokens", side.table, kinds)
            return None
        return cls(side, f"{system}/{timeline}")

    def snapshot_xmin(self) -> int:
        """The 64-bit xmin of a snapshot taken now: every transaction below it has ended."""
        value = self.side.connector.scalar("SELECT txid_snapshot_xmin(txid_current_snapshot())")
        return int(value)  # type: ignore[call-overload]

    def token(self, total: int) -> str:
        return f"{self.cluster}:{total}"

    def scan_sql(self, bounds: list[Any], since: int) -> str:
        """Per range: rows, hash sum, and rows written at or after the 64-bit xid ``since``
        (modulo 2^32, up to the statement's own snapshot: parallel-safe, unlike ``age``)."""
        s = self.side
        recent = (
            f"mod(etlrun_x - {since % WRAP} + {WRAP}, {WRAP}) < "
            f"(SELECT txid_snapshot_xmax(txid_current_snapshot())) - {since}"
        )
        # xmin as a number once per row (the fence keeps the subquery from being flattened,
        # which would compute it twice): the text cast is most of what a token costs
        versions = (
            f"SELECT {quote_ident(s.key, 'postgres')}, tableoid AS etlrun_oid, "
            "xmin AS etlrun_xid, CAST(CAST(xmin AS TEXT) AS BIGINT) AS etlrun_x "
            f"FROM {quote_table(s.table, 'postgres')}"
            f"{where_sql(s.key, s.key_type, None, None, 'postgres', s.where)} OFFSET 0"
        )
        token = self._token("etlrun_oid", "etlrun_xid", "etlrun_x")
        inner = (
            f"SELECT {bucket_case(s.key, s.key_type, bounds, 'postgres')} AS etlrun_b, "
            f"{token} AS etlrun_t, {recent} AS etlrun_r FROM ({versions}) etlrun_versions"
        )
        return (
            "SELECT etlrun_b, COUNT(*), COALESCE(SUM(etlrun_t), 0), "
            f"COUNT(*) FILTER (WHERE etlrun_r) FROM ({inner}) etlrun_rows GROUP BY etlrun_b"
        )

    def usable_since(self, stored: list[Token | None], now: int) -> int | None:
        """The oldest stored snapshot xmin, when the stored tokens can be used at all."""
        held = [t for t in stored if t is not None and t[0].startswith(f"{self.cluster}:")]
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
    ) -> tuple[list[bool], list[Token | None]]:
        """Which chunks the stored tokens show unchanged, and their tokens (holding from
        ``xmin``, the 64-bit snapshot xmin read before this and the statements it covers)."""
        bounds = [hi for _, hi in ranges[:-1]]
        since = self.usable_since(stored, xmin)
        same = [False] * len(ranges)
        tokens: list[Token | None] = [None] * len(ranges)
        if since is not None:
            scanned = self.side.connector.rows(self.scan_sql(bounds, since))
            found: dict[int, tuple[Any, ...]] = {_int(r[0]): r[1:] for r in scanned}
            for i, token in enumerate(stored):
                rows, total, recent = (_int(v) for v in found.get(i, (0, 0, 0)))
                if token is not None and (rows, self.token(total)) == (known[i][0], token[0]):
                    same[i] = recent == 0
                    tokens[i] = (token[0], xmin) if same[i] else None
        return same, tokens
