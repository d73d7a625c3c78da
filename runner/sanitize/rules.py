"""The rules themselves: pure functions of Arrow arrays, vectorised with ``pyarrow.compute``.

Each takes the raw column (and, where a rule needs them, another raw column of the same batch,
the HMAC key or the run date) and returns the new column. Nothing here reads a clock, a file or
the environment, and nothing keeps a value: the same inputs give the same output, which is what
makes a chunk replay harmless and joins across tables work.

Keyed rules (``hash``, ``email``, ``fake``, ``shift_date``) run HMAC-SHA256 once per *distinct*
value of the batch and spread the results with a vectorised ``take``: see
:mod:`runner.sanitize.keyed`.

NULL stays NULL under every rule but ``constant``. Errors raised here never quote a value: the
callers turn them into a message that names the column and the rule only.
"""

from __future__ import annotations

import datetime as dt
import hmac
import math
from collections.abc import Sequence
from functools import lru_cache
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from runner.sanitize.keyed import (
    CACHE,
    DigestCache,
    as_text,
    digests,
    distinct,
    hash_hex,
    hash_int,
    hmac_sha256,
    subkey,
    uint64,
)
from runner.sanitize.zip3 import RESTRICTED, SUPPRESSED

__all__ = ["CACHE", "DigestCache", "hash_hex", "hash_int", "hmac_sha256", "subkey"]
"""Re-exported: the keyed helpers live in :mod:`runner.sanitize.keyed`."""

EMAIL_TOKEN = 16
"""Hex characters of the keyed token that replaces an e-mail address's local part."""
FAKE_DOMAIN = "example.invalid"
"""The domain of e-mail addresses whose own domain is not kept (RFC 2606 reserves it)."""
_MICROS = {"s": 1, "ms": 1_000, "us": 1_000_000, "ns": 1_000_000_000}


# --- text --------------------------------------------------------------------------------------
def null(column: pa.Array) -> pa.Array:
    return pa.nulls(len(column), column.type)


def constant(column: pa.Array, value: Any) -> pa.Array:
    """``value`` on every row (NULL rows too), in the column's type."""
    scalar = pa.scalar(value)
    if not scalar.type.equals(column.type):
        scalar = scalar.cast(column.type)
    return pa.repeat(scalar, len(column))


def mask(column: pa.Array, keep_first: int = 0, keep_last: int = 0, char: str = "*") -> pa.Array:
    """Every character but the first ``keep_first`` and last ``keep_last`` replaced by ``char``.

    Lengths count characters (code points), so the output fits wherever the input did. A value
    no longer than ``keep_first + keep_last`` is masked whole: keeping all of it would hide
    nothing.
    """
    text = as_text(column).cast(pa.string())
    length = pc.utf8_length(text)
    kept = keep_first + keep_last
    fill = pa.scalar(char, pa.string())
    # NULL stays NULL through every part (skip_nulls=False); the kept ends are sliced only when
    # kept, and whole-value masks are built only when some value is that short (they rarely are)
    hidden = pc.max_element_wise(pc.subtract(length, pa.scalar(kept, length.type)), 0,
                                 skip_nulls=False)  # fmt: skip
    parts = [pc.utf8_slice_codeunits(text, 0, keep_first)] if keep_first else []
    parts.append(pc.binary_repeat(fill, hidden))
    if keep_last:
        parts.append(pc.utf8_slice_codeunits(text, -keep_last))
    partial = parts[0] if len(parts) == 1 else pc.binary_join_element_wise(*parts, "")
    short = pc.less_equal(length, kept)
    if not kept or not pc.any(short).as_py():
        return partial
    return pc.if_else(short, pc.binary_repeat(fill, length), partial)


def email(column: pa.Array, key: bytes, keep_domain: bool = False) -> pa.Array:
    """``<token>@<domain>``: the token a keyed hash of the whole address (trimmed, lower case),
    the domain the address's own when ``keep_domain``, else ``example.invalid``. A value that
    is not an address gets a token too, with ``example.invalid``."""
    normal = pc.utf8_lower(pc.utf8_trim_whitespace(as_text(column).cast(pa.string())))
    token = hash_hex(normal, key, EMAIL_TOKEN)
    if keep_domain:
        found = pc.struct_field(pc.extract_regex(normal, r"^.+@(?P<d>[^@\s]+)$"), [0])
        domain = pc.fill_null(found, FAKE_DOMAIN)
    else:
        domain = pa.scalar(FAKE_DOMAIN)
    return pc.binary_join_element_wise(token, pa.scalar("@"), domain, "")


def check_pattern(pattern: str) -> None:
    """Raise ValueError when ``pattern`` is not a regular expression Arrow (RE2) accepts."""
    try:
        pc.replace_substring_regex(pa.array([""]), pattern=pattern, replacement="")
    except pa.ArrowInvalid as exc:
        raise ValueError(str(exc).removeprefix("Invalid regular expression: ")) from None


def redact(column: pa.Array, pattern: str, replace: str = "***") -> pa.Array:
    """Every match of ``pattern`` (RE2 syntax) replaced by ``replace`` (``\\1`` for groups)."""
    return pc.replace_substring_regex(as_text(column), pattern=pattern, replacement=replace)


@lru_cache(maxsize=32)
def fake_pool(key: bytes, provider: str, locale: str | None, size: int) -> pa.Array:
    """``size`` values of the Faker ``provider``, from a generator seeded by the key.

    A pool, not a Faker call per value: one call costs ~0.2 ms, so a million distinct values
    would take minutes. The same key, provider, locale, size and Faker version give the same
    pool in every process.
    """
    from faker import Faker

    faker = Faker(locale) if locale else Faker()
    seed = hmac.digest(key, f"pool/{provider}/{locale or ''}/{size}".encode(), "sha256")
    faker.seed_instance(int.from_bytes(seed[:8], "little"))
    method = getattr(faker, provider)
    return pa.array([str(method()) for _ in range(size)], pa.string())


def fake(
    column: pa.Array, key: bytes, pool: pa.Array, cache: DigestCache | None = None
) -> pa.Array:
    """Each value replaced by the pool entry its keyed hash picks: the same value (a person's
    name, in any table) always gets the same fake. The pick is the digest's first 8 bytes
    (little-endian) modulo the pool size, computed on whole arrays."""
    values, indices = distinct(column)
    number = uint64(digests(key, values, cache))
    size = pa.scalar(len(pool), pa.uint64())
    picks = pc.subtract(number, pc.multiply(pc.divide(number, size), size))
    return pool.take(picks).take(indices)


# --- dates --------------------------------------------------------------------------------------
def truncate_date(
    column: pa.Array, to: str, max_age: int | None = None, run_date: dt.date | None = None
) -> pa.Array:
    """``year``: the year as an integer; ``month``: the first day of the month, same type.

    With ``max_age`` (birth dates), a year that could belong to someone older than ``max_age``
    at ``run_date`` (``run_date.year - year > max_age``) becomes NULL: Safe Harbor suppresses
    every date element indicative of an age over 89, the year included.
    """
    years = pc.year(column)
    out = years.cast(pa.int16()) if to == "year" else pc.floor_temporal(column, unit="month")
    if max_age is None:
        return out
    if run_date is None:
        raise ValueError("max_age needs the run date")
    too_old = pc.greater(pc.subtract(pa.scalar(run_date.year, pa.int64()), years), max_age)
    return pc.if_else(too_old, pa.nulls(len(out), out.type), out)


def day_offsets(by: pa.Array, key: bytes, max_days: int) -> pa.Array:
    """One offset per entity in ``by``: a whole number of days in [-max_days, max_days], never 0."""
    values, indices = distinct(by)
    offsets = []
    for digest in hmac_sha256(key, values):
        offset = int.from_bytes(digest[:8], "little") % (2 * max_days) - max_days
        offsets.append(offset + 1 if offset >= 0 else offset)
    return pa.array(offsets, pa.int32()).take(indices)


_FIRST_DAY, _LAST_DAY = -719_162, 2_932_896
"""0001-01-01 and 9999-12-31 in days since 1970-01-01: the dates every database stores."""


def shift_date(column: pa.Array, by: pa.Array, key: bytes, max_days: int) -> pa.Array:
    """Every date of an entity (the value of ``by`` in the same row) moved by the same offset, so
    intervals between one person's dates survive. A row whose entity is NULL gets NULL. A date
    moved past 0001-01-01 or 9999-12-31 stops there, so it still fits the target column."""
    offsets = day_offsets(by, key, max_days)
    typ = column.type
    if pa.types.is_date32(typ):
        unit = 1
    elif pa.types.is_date64(typ):
        unit = 86_400_000
    else:
        unit = 86_400 * _MICROS[typ.unit]
    raw = column.cast(pa.int32() if pa.types.is_date32(typ) else pa.int64()).cast(pa.int64())
    moved = pc.add(raw, pc.multiply(offsets.cast(pa.int64()), unit))
    if unit <= 86_400 * _MICROS["us"]:  # in ns, int64 holds 1677..2262 only: nothing to clamp
        last = (_LAST_DAY + 1) * unit - 1  # the last instant of 9999-12-31
        moved = _within(moved, _FIRST_DAY * unit, last)
    return moved.cast(pa.int32() if pa.types.is_date32(typ) else pa.int64()).cast(typ)


def _month_day(values: pa.Array | pa.Scalar) -> Any:
    return pc.add(pc.multiply(pc.month(values), 100), pc.day(values))


def ages(column: pa.Array, at: pa.Array | dt.date) -> pa.Array:
    """Whole years from each date in ``column`` to ``at`` (a date, or a date column)."""
    if isinstance(at, dt.date):
        at_year: Any = pa.scalar(at.year, pa.int64())
        at_md: Any = pa.scalar(at.month * 100 + at.day, pa.int64())
    else:
        at_year, at_md = pc.year(at), _month_day(at)
    years = pc.subtract(at_year, pc.year(column))
    before_birthday = pc.less(at_md, _month_day(column))
    return pc.subtract(years, before_birthday.cast(pa.int64()))


def age(column: pa.Array, at: pa.Array | dt.date | None = None, cap: int = 90) -> pa.Array:
    """Ages as text: ``"0"`` to ``str(cap - 1)``, and ``"<cap>+"`` from ``cap`` on (Safe Harbor
    groups every age over 89 into one category). ``column`` holds birth dates (the age is taken
    at ``at``) or ages already (numbers, floored). A negative age is NULL."""
    if pa.types.is_temporal(column.type):
        if at is None:
            raise ValueError("an age from a date needs the date to take it at")
        years = ages(column, at)
    else:
        years = pc.floor(column.cast(pa.float64())).cast(pa.int64())
    text = years.cast(pa.string())
    out = pc.if_else(pc.greater_equal(years, cap), pa.scalar(f"{cap}+"), text)
    return pc.if_else(pc.less(years, 0), pa.nulls(len(out), pa.string()), out)


# --- places and numbers -------------------------------------------------------------------------
_ZIP = r"^(?P<zip3>[0-9]{3})[0-9]{2}(?:[-\s]?[0-9]{4})?$"


def zip3(column: pa.Array) -> pa.Array:
    """The first three digits of a US ZIP code (``12345`` or ``12345-6789``), ``000`` for the
    restricted areas (:mod:`runner.sanitize.zip3`); anything else is NULL. An integer column
    is read as the digits with their leading zeros put back (``3601`` is ``03601``)."""
    if pa.types.is_integer(column.type):
        text = column.cast(pa.string())
        long = pc.greater(pc.utf8_length(text), 5)
        text = pc.if_else(
            long, pc.utf8_lpad(text, width=9, padding="0"), pc.utf8_lpad(text, 5, padding="0")
        )
    else:
        text = pc.utf8_trim_whitespace(as_text(column).cast(pa.string()))
    prefix = pc.struct_field(pc.extract_regex(text, _ZIP), [0])
    restricted = pc.is_in(prefix, value_set=pa.array(sorted(RESTRICTED)))
    return pc.if_else(restricted, pa.scalar(SUPPRESSED), prefix)


def round_(column: pa.Array, ndigits: int) -> pa.Array:
    """Rounded to ``ndigits`` decimals (negative: to tens, hundreds, ...), ties away from 0."""
    if pa.types.is_integer(column.type) and ndigits >= 0:
        return column
    out = pc.round(column, ndigits=ndigits, round_mode="half_towards_infinity")
    return out if out.type.equals(column.type) else out.cast(column.type)


def _number(edge: float) -> str:
    return str(int(edge)) if float(edge).is_integer() else repr(float(edge))


def bucket_labels(edges: Sequence[float]) -> list[str]:
    """``["<e0", "[e0, e1)", ..., ">=en"]`` for ascending ``edges``.

    Example:
        >>> bucket_labels([18, 65])
        ['<18', '[18, 65)', '>=65']
    """
    names = [_number(e) for e in edges]
    inner = [f"[{a}, {b})" for a, b in zip(names[:-1], names[1:], strict=True)]
    return [f"<{names[0]}", *inner, f">={names[-1]}"]


def bucket(column: pa.Array, edges: Sequence[float]) -> pa.Array:
    """The label of the interval each number falls in (see :func:`bucket_labels`)."""
    values = column.cast(pa.float64())
    index = None
    for edge in edges:
        above = pc.greater_equal(values, float(edge)).cast(pa.int8())
        index = above if index is None else pc.add(index, above)
    assert index is not None
    return pa.array(bucket_labels(edges), pa.string()).take(index)


def noise(column: pa.Array, pct: float) -> pa.Array:
    """Each number times a random factor in [1 - pct/100, 1 + pct/100], in the column's type
    (integers rounded, decimals rounded to their scale, both kept within what the type holds,
    so the largest value of a column cannot overflow it). Random per run: not keyed, not
    stable."""
    typ = column.type
    factor = pc.add(pc.multiply(pc.subtract(pc.multiply(pc.random(len(column)), 2.0), 1.0),
                                pct / 100.0), 1.0)  # fmt: skip
    moved = pc.multiply(column.cast(pa.float64(), safe=False), factor)
    if pa.types.is_floating(typ):
        return moved.cast(typ)
    if pa.types.is_decimal(typ):
        moved = pc.round(moved, ndigits=typ.scale, round_mode="half_towards_infinity")
        largest = float(10 ** (typ.precision - typ.scale)) - 10.0**-typ.scale
        return _within(moved, -largest, largest).cast(typ, safe=False)
    low, high = _INT_RANGE[typ.bit_width, pa.types.is_signed_integer(typ)]
    moved = pc.round(moved, round_mode="half_towards_infinity")
    # float64 holds 2**63 - 1 only as 2**63, which would wrap: the largest float below it
    top = float(high) if float(high) <= high else math.nextafter(float(high), 0.0)
    return _within(moved, float(low), top).cast(typ, safe=False)


_INT_RANGE = {
    (bits, signed): ((-(2 ** (bits - 1)), 2 ** (bits - 1) - 1) if signed else (0, 2**bits - 1))
    for bits in (8, 16, 32, 64)
    for signed in (True, False)
}


def _within(values: pa.Array, low: float | int, high: float | int) -> pa.Array:
    """``values`` clamped to [low, high]; NULL stays NULL."""
    above = pc.max_element_wise(values, low, skip_nulls=False)
    return pc.min_element_wise(above, high, skip_nulls=False)
