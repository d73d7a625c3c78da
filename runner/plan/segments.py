"""Segment checksums of many key ranges in one scan, and per-row hashes, in each dialect's SQL.

Two flavors of row hash:

- ``portable`` (plan/checksum.py): md5 of the normalized row text, equal across databases for
  equal values; used whenever the two sides are different databases. Floating-point columns are
  left out (their text is not portable).
- ``native``: the same database on both sides (PostgreSQL -> PostgreSQL, DuckDB -> DuckDB) uses
  the database's own fast 64-bit hash, floats included. DuckDB: ``hash`` of the row text.
  PostgreSQL: each column's value by its type's seeded hash (``hashint8extended``,
  ``hash_numeric_extended``, ``hashtextextended``..., no text but for text-like columns), so
  int2/int4/int8, numerics of any scale, float4/float8 and json/jsonb hash alike, timestamptz
  whatever the session TimeZone; the columns' hashes XORed, the XOR hashed once more (see
  ``_pg_hash``). The 1M-row ``events`` table (13 columns) hashes in 0.42-0.51 s on one core,
  against 0.61-0.67 s for ``hash_record_extended(ROW(...))`` (the hash before) and 6 s for md5
  of the row text (load average 2-4 while measured; best of 9-12 runs each).
- ``portable-<dialect>``: the same database on both sides without a fast hash (SQLite,
  MariaDB): the portable md5, with float columns included in the database's own text.

``bucket_sql`` computes the checksum of every range ``(b[i-1], b[i]]`` between given boundaries
in one pass (a ``CASE`` or ``width_bucket`` picks the bucket, ``GROUP BY`` sums), so comparing
N segments costs one scan of the table per side, not N range scans (which PostgreSQL may each
turn into a full scan).
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from typing import Any

from sqlglot import exp

from runner.plan.catalog import binary_order, literal, quote_ident, quote_table
from runner.plan.checksum import _md5, _word, column_text, hashable, range_condition, row_text

NATIVE = ("postgres", "duckdb")
INTEGER_KEYS = ("int16", "int32", "int64")
"""Key types held exactly in a bigint."""
INT64_MAX = (1 << 63) - 1


def flavor_for(source_dialect: str, target_dialect: str) -> str:
    """``native`` when both sides are one database that has a fast hash, else ``portable``."""
    if source_dialect == target_dialect and source_dialect in NATIVE:
        return f"native-{source_dialect}"
    if source_dialect == target_dialect:  # md5, and floats in the database's own text
        return f"portable-{source_dialect}"
    return "portable"


def hashed_columns(columns: Sequence[tuple[str, str]], flavor: str) -> list[tuple[str, str]]:
    """The columns that go into the row hash of ``flavor`` (portable leaves floats out)."""
    if flavor != "portable":  # one kind of database on both sides: floats print alike
        return list(columns)
    return [(n, t) for n, t in columns if hashable(t)]


def _native_text(
    columns: Sequence[tuple[str, str]], dialect: str, normalize: Collection[str] = ()
) -> str:
    """DuckDB: the row as the database's own text of each column (both sides have the same
    column types: etlrun creates them so), times in the portable text."""
    parts = []
    for name, arrow_type in columns:
        c = quote_ident(name, dialect)
        if name in normalize and dialect == "postgres":
            text = f"CAST(CAST({c} AS JSONB) AS TEXT)"
        elif dialect == "postgres" or not arrow_type.startswith(("timestamp", "date")):
            text = f"CAST({c} AS TEXT)"  # PostgreSQL >= 12 prints floats exactly
        else:  # DuckDB: times in the portable text (fixed digits whatever the precision)
            text = column_text(name, arrow_type, dialect)
        parts.append(f"COALESCE({text}, '\\N')")
    return " || '|' || ".join(parts) if parts else "''"


MASK = (1 << 64) - 1


def _mix(n: int) -> int:
    """A fixed pseudo-random signed 64-bit constant for ``n`` (splitmix64)."""
    z = (n * 0x9E3779B97F4A7C15) & MASK
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK
    z ^= z >> 31
    return z - (1 << 64) if z >> 63 else z


_INTEGERS = ("int8", "int16", "int32", "int64", "uint8", "uint16", "uint32")
_TEXT_LIKE = ("string", "large_string", "extension<arrow.json>")


def _pg_column_hash(c: str, arrow_type: str, as_jsonb: bool, seed: int) -> tuple[str, bool]:
    """One column's seeded 64-bit hash by value, and whether it is NULL for NULL. Types that can
    differ between the two sides are cast to the one each kind hashes as (PostgreSQL hashes
    int2/int4/int8 alike, numerics by value whatever their scale, float4 as float8)."""
    if as_jsonb:  # json on one side, jsonb on the other
        return f"jsonb_hash_extended(CAST({c} AS JSONB), {seed})", True
    if arrow_type.startswith(_TEXT_LIKE):  # json has no hash; xml, enums, uuid... read as text
        # bytewise: a nondeterministic collation would hash 'A' and 'a' alike
        return f'hashtextextended(CAST({c} AS TEXT) COLLATE "C", {seed})', True
    if arrow_type in _INTEGERS:
        return f"hashint8extended(CAST({c} AS BIGINT), {seed})", True
    if arrow_type.startswith("decimal") or arrow_type == "uint64":
        return f"hash_numeric_extended(CAST({c} AS NUMERIC), {seed})", True
    if arrow_type in ("float", "double", "halffloat"):
        return f"hashfloat8extended(CAST({c} AS DOUBLE PRECISION), {seed})", True
    if arrow_type == "bool":
        return f"hashint4extended(CAST({c} AS INT), {seed})", True
    if arrow_type.startswith("timestamp[") and "tz=" in arrow_type:
        # the UTC wall clock by a fixed offset: no session TimeZone, no zone name looked up
        return f"timestamp_hash_extended({c} AT TIME ZONE INTERVAL '0', {seed})", True
    if arrow_type.startswith("timestamp["):
        return f"timestamp_hash_extended({c}, {seed})", True
    fallback = f"hash_record_extended(ROW({c}), {seed})"  # a one-column ROW hashes NULL as 0
    if arrow_type.startswith("date"):  # as days (a date is an int4); ±infinity cannot subtract
        days = f"hashint4extended({c} - DATE '2000-01-01', {seed})"
        return f"CASE WHEN isfinite({c}) THEN {days} ELSE {fallback} END", False
    # times, binary, intervals, arrays...: the type's own hash
    return fallback, False


def _pg_hash(columns: Sequence[tuple[str, str]], normalize: Collection[str]) -> str:
    """The row's hash: each column's hash seeded by its position (values swapped between two
    columns change it; NULL is a pseudo-random constant of the position), the hashes XORed, and
    the XOR hashed once more as the seed of ``hashint4extended`` (which mixes all 64 bits).

    Row hashes are summed per key range. A sum of plain XORs, or of ``hash_record_extended``'s
    weighted sums (which missed 2 swaps in 3 of one column's values between two rows), keeps
    enough structure to miss values moved between rows; a sum of hashes of them does not.
    Numeric NaN and ±Infinity hash alike (``hash_numeric_extended`` gives them the seed), as
    they did with ``hash_record_extended``."""
    parts = []
    for i, (name, arrow_type) in enumerate(columns, 1):
        seed, null = _mix(2 * i), _mix(2 * i + 1)
        c = quote_ident(name, "postgres")
        value, strict = _pg_column_hash(c, arrow_type, name in normalize, seed)
        parts.append(f"COALESCE({value}, {null})" if strict else f"({value} # {null})")
    return f"hashint4extended(0, {' # '.join(parts) if parts else '0'})"


def row_hash(
    columns: Sequence[tuple[str, str]], dialect: str, flavor: str, normalize: Collection[str] = ()
) -> tuple[str, str, str]:
    """SQL for a row's hash: (the expression an inner query names ``etlrun_h``, and the two
    integer parts an outer query reads from ``etlrun_h``)."""
    cols = hashed_columns(columns, flavor)
    if flavor == "native-postgres":
        return _pg_hash(cols, normalize), "etlrun_h", "0"
    if flavor == "native-duckdb":
        text = _native_text(cols, dialect, normalize)
        return f"CAST(hash({text}) >> 1 AS BIGINT)", "etlrun_h", "0"
    return (
        _md5(row_text(cols, dialect, floats=flavor != "portable"), dialect),
        _word("etlrun_h", 1, dialect),
        _word("etlrun_h", 9, dialect),
    )


def _key(key: str, key_type: str | None, dialect: str) -> exp.Expression:
    column: exp.Expression = exp.column(key, quoted=True)
    return binary_order(column, dialect) if key_type == "string" else column


def where_sql(
    key: str | None,
    key_type: str | None,
    lo: Any,
    hi: Any,
    dialect: str,
    where: exp.Expression | None,
    nullable: bool = True,
) -> str:
    ranged = range_condition(key, key_type, lo, hi, dialect, nullable)
    parts = [c for c in (where, ranged) if c is not None]
    if not parts:
        return ""
    condition = parts[0] if len(parts) == 1 else exp.and_(*(exp.paren(p.copy()) for p in parts))
    return " WHERE " + condition.sql(dialect=dialect, identify=True)


def bucket_sql(
    table: str,
    columns: Sequence[tuple[str, str]],
    dialect: str,
    flavor: str,
    key: str,
    key_type: str | None,
    lo: Any,
    hi: Any,
    bounds: Sequence[Any],
    where: exp.Expression | None = None,
    normalize: Collection[str] = (),
    extra: str | None = None,
    nullable: bool = True,
) -> str:
    """``SELECT bucket, count, sum1, sum2`` for the ranges ``(lo, b1], (b1, b2] ... (bn, hi]``.

    Bucket i is the range ending at ``bounds[i]`` (the last one at ``hi``); empty buckets are
    absent from the result. NULL keys belong to the first bucket, as in range_condition (which
    ``nullable`` says whether to look for). ``extra``: one more integer expression per row,
    summed per bucket as a fifth column in the same statement (so it sees the same snapshot as
    the checksum).
    """
    inner_hash, first, second = row_hash(columns, dialect, flavor, normalize)
    more = f", {extra} AS etlrun_x" if extra else ""
    # PostgreSQL estimates as many groups as the key has values (the CASE reads the key) and
    # sorts every row, hash and columns, to group them: 1M events rows spilled 250 MB to disk,
    # 5M rows took 6.4 s a side. OFFSET 0 keeps the subquery apart, so the planner assumes
    # few groups and hashes them (5M rows: 2.5 s, one process)
    fence = " OFFSET 0" if dialect == "postgres" else ""
    ranged = where_sql(key, key_type, lo, hi, dialect, where, nullable)
    inner = (
        f"SELECT {bucket_case(key, key_type, bounds, dialect)} AS etlrun_b, "
        f"{inner_hash} AS etlrun_h{more} FROM {quote_table(table, dialect)}{ranged}{fence}"
    )
    summed = ", COALESCE(SUM(etlrun_x), 0)" if extra else ""
    return (
        f"SELECT etlrun_b, COUNT(*), COALESCE(SUM({first}), 0), COALESCE(SUM({second}), 0)"
        f"{summed} FROM ({inner}) etlrun_rows GROUP BY etlrun_b"
    )


def bucket_case(key: str, key_type: str | None, bounds: Sequence[Any], dialect: str) -> str:
    """The number of the range ``(b[i-1], b[i]]`` a row's key falls in (NULL keys: 0).

    An integer key on PostgreSQL: ``width_bucket`` counts the bounds below the key by binary
    search (each bound plus one, as it counts thresholds at or below), where a ``CASE`` tries
    them one by one: 5M rows in 50 ranges, ~0.1 s less per 2.5M rows."""
    if not bounds:
        return "0"
    if dialect == "postgres" and key_type in INTEGER_KEYS and max(bounds) < INT64_MAX:
        thresholds = ",".join(str(int(b) + 1) for b in bounds)
        column = quote_ident(key, dialect)
        return f"COALESCE(width_bucket(CAST({column} AS BIGINT), '{{{thresholds}}}'::bigint[]), 0)"
    compared = _key(key, key_type, dialect)
    cases = [
        (exp.Is(this=exp.column(key, quoted=True), expression=exp.Null()), 0),
        *((exp.LTE(this=compared.copy(), expression=literal(b)), i) for i, b in enumerate(bounds)),
    ]
    bucket = exp.Case(
        ifs=[exp.If(this=c, true=exp.Literal.number(i)) for c, i in cases],
        default=exp.Literal.number(len(bounds)),
    )
    return bucket.sql(dialect=dialect, identify=True)


def row_hashes_sql(
    table: str,
    columns: Sequence[tuple[str, str]],
    dialect: str,
    flavor: str,
    key: str,
    key_type: str | None,
    lo: Any,
    hi: Any,
    where: exp.Expression | None = None,
    normalize: Collection[str] = (),
    nullable: bool = True,
) -> str:
    """``SELECT key, hash1, hash2`` of every row in ``(lo, hi]`` (for the final row diff)."""
    inner_hash, first, second = row_hash(columns, dialect, flavor, normalize)
    k = quote_ident(key, dialect)
    ranged = where_sql(key, key_type, lo, hi, dialect, where, nullable)
    inner = f"SELECT {k} AS etlrun_k, {inner_hash} AS etlrun_h FROM {quote_table(table, dialect)}"
    inner += ranged
    return (
        f"SELECT etlrun_k, {first} AS etlrun_h1, {second} AS etlrun_h2 FROM ({inner}) etlrun_rows"
    )
