"""Segment checksums computed inside each database, equal across dialects for equal values.

A segment's checksum is ``(row count, sum of hash part 1, sum of hash part 2)``: each row is
written as one normalized text (the same text in every dialect for the same values), hashed
with md5, and the first two 32-bit words of the digest are summed. Sums do not depend on row
order, so no sort is needed, and two 32-bit sums fit a 64-bit integer for 2^31 rows (SQLite's
SUM would overflow on wider parts). This is data-diff's segment checksum.

Normalized text, per Arrow type of the column:

    integers      decimal digits                     booleans   0 / 1
    decimal(p,s)  fixed scale s ("12.50")             dates      YYYY-MM-DD
    timestamps    YYYY-MM-DD HH:MM:SS.ffffff in UTC  text       as is
    binary        lower-case hex                     NULL       \\N

Floating-point columns are left out of the hash (their text differs between databases for the
same double); the count still covers their rows, and ``etlrun check`` names them. Columns are
joined with ``|``. md5 is the database's own where it has one (PostgreSQL, MariaDB, DuckDB); on
SQLite etlrun registers ``etlrun_md5`` and ``etlrun_hex32`` on its connections.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlglot import exp

from runner.plan.catalog import binary_order, literal, quote_ident, quote_table

NULL = "\\N"
SEPARATOR = "|"


def hashable(arrow_type: str) -> bool:
    """Whether a column of this Arrow type goes into the hash (floats do not)."""
    return not (arrow_type.startswith(("double", "float", "halffloat")))


def _decimal_scale(arrow_type: str) -> int | None:
    if arrow_type.startswith("decimal"):
        return int(arrow_type.rstrip(")").split(",")[-1])
    return None


def column_text(name: str, arrow_type: str, dialect: str) -> str:
    """SQL for the normalized text of one column (NULL stays NULL; the caller marks it)."""
    c = quote_ident(name, dialect)
    scale = _decimal_scale(arrow_type)
    if arrow_type == "bool":
        return f"CASE WHEN {c} IS NULL THEN NULL WHEN {c} THEN '1' ELSE '0' END"
    if scale is not None:
        if dialect == "sqlite":
            return f"CASE WHEN {c} IS NULL THEN NULL ELSE printf('%.{scale}f', {c}) END"
        if dialect == "mysql":
            return f"CAST(CAST({c} AS DECIMAL(65,{scale})) AS CHAR)"
        return f"CAST(CAST({c} AS DECIMAL(38,{scale})) AS VARCHAR)"
    if arrow_type.startswith("timestamp"):
        aware = "tz=" in arrow_type
        if dialect == "postgres":
            value = f"{c} AT TIME ZONE 'UTC'" if aware else c
            return f"to_char({value}, 'YYYY-MM-DD HH24:MI:SS.US')"
        if dialect == "mysql":  # sessions run in UTC (see connectors/mariadb.py)
            return f"DATE_FORMAT({c}, '%Y-%m-%d %H:%i:%s.%f')"
        if dialect == "duckdb":  # sessions run in UTC (see connectors/duckdb.py)
            return f"strftime({c}, '%Y-%m-%d %H:%M:%S.%f')"
        if dialect == "sqlite":  # text as etlrun writes it, ISO with T, fewer digits, a date
            fraction = f"CASE WHEN substr({c}, 20, 1) = '.' THEN substr({c}, 21, 6) ELSE '' END"
            return (
                f"substr(replace({c}, 'T', ' ') || ' 00:00:00', 1, 19) || '.' || "
                f"substr(({fraction}) || '000000', 1, 6)"
            )
    if arrow_type.startswith("date"):
        if dialect == "postgres":
            return f"to_char({c}, 'YYYY-MM-DD')"
        if dialect == "mysql":
            return f"DATE_FORMAT({c}, '%Y-%m-%d')"
        if dialect == "duckdb":
            return f"strftime({c}, '%Y-%m-%d')"
        return f"substr({c}, 1, 10)"
    if arrow_type in ("binary", "large_binary"):
        if dialect == "postgres":
            return f"encode({c}, 'hex')"
        return f"lower(hex({c}))"
    if dialect == "mysql":
        return f"CAST({c} AS CHAR)"
    if dialect == "sqlite":
        return f"CAST({c} AS TEXT)"
    return f"CAST({c} AS VARCHAR)"


def row_text(columns: Sequence[tuple[str, str]], dialect: str, floats: bool = False) -> str:
    """SQL for a row's normalized text: every hashable column, NULL as ``\\N``, joined by ``|``.

    ``floats``: include floating-point columns too, in the database's own text (for two sides
    of one kind of database only)."""
    # MariaDB reads backslash escapes in string literals: there the marker is written '\\N'
    marker = NULL.replace("\\", "\\\\") if dialect == "mysql" else NULL
    parts = [
        f"COALESCE({column_text(n, t, dialect)}, '{marker}')"
        for n, t in columns
        if floats or hashable(t)
    ]
    if not parts:
        return "''"
    if dialect == "mysql":  # || is OR in MariaDB's default sql_mode
        return "CONCAT(" + f", '{SEPARATOR}', ".join(parts) + ")"
    return f" || '{SEPARATOR}' || ".join(parts)


def _md5(text: str, dialect: str) -> str:
    return f"etlrun_md5({text})" if dialect == "sqlite" else f"md5({text})"


def _word(hexdigest: str, start: int, dialect: str) -> str:
    """SQL: the 32-bit word of an md5 hex digest that starts at character ``start`` (1-based)."""
    part = f"substr({hexdigest}, {start}, 8)"
    if dialect == "postgres":
        return f"('x' || {part})::bit(32)::bigint"
    if dialect == "mysql":
        return f"CAST(CONV({part}, 16, 10) AS UNSIGNED)"
    if dialect == "duckdb":
        return f"CAST('0x' || {part} AS BIGINT)"
    return f"etlrun_hex32({part})"


def range_condition(
    key: str | None, key_type: str | None, lo: Any, hi: Any, dialect: str, nullable: bool = True
) -> exp.Expression | None:
    """``lo < key <= hi`` in code point order for text keys; the first range owns NULL keys,
    unless the key is not ``nullable`` (a primary key): then ``key <= hi`` alone, which an index
    reads as a range (``OR key IS NULL`` made PostgreSQL filter a scan of the whole index)."""
    if key is None or (lo is None and hi is None):
        return None
    column = exp.column(key, quoted=True)
    compared: exp.Expression = column
    if key_type == "string":
        compared = binary_order(column.copy(), dialect)
    parts: list[exp.Expression] = []
    if lo is not None:
        parts.append(exp.GT(this=compared.copy(), expression=literal(lo)))
    if hi is not None:
        parts.append(exp.LTE(this=compared.copy(), expression=literal(hi)))
    condition: exp.Expression = exp.and_(*parts) if len(parts) > 1 else parts[0]
    if lo is None and nullable:
        condition = exp.or_(exp.paren(condition), exp.Is(this=column.copy(), expression=exp.Null()))
    return condition


def checksum_sql(
    table: str,
    columns: Sequence[tuple[str, str]],
    dialect: str,
    where: exp.Expression | None = None,
) -> str:
    """``SELECT count, sum1, sum2`` of the rows of ``table`` matching ``where``."""
    where_sql = f" WHERE {where.sql(dialect=dialect, identify=True)}" if where is not None else ""
    inner = (
        f"SELECT {_md5(row_text(columns, dialect), dialect)} AS h "
        f"FROM {quote_table(table, dialect)}{where_sql}"
    )
    return (
        f"SELECT COUNT(*), COALESCE(SUM({_word('h', 1, dialect)}), 0), "
        f"COALESCE(SUM({_word('h', 9, dialect)}), 0) FROM ({inner}) etlrun_rows"
    )


def sqlite_functions(connection: Any) -> None:
    """Register ``etlrun_md5(text)`` and ``etlrun_hex32(hex)`` on a sqlite3 connection."""
    import hashlib

    def md5(text: Any) -> str | None:
        if text is None:
            return None
        return hashlib.md5(str(text).encode("utf-8"), usedforsecurity=False).hexdigest()

    def hex32(text: Any) -> int | None:
        return None if text is None else int(text, 16)

    connection.create_function("etlrun_md5", 1, md5, deterministic=True)
    connection.create_function("etlrun_hex32", 1, hex32, deterministic=True)


# --- verify: checksum (staging against the source, before the swap or merge) -------------------
PASS_THROUGH = (None, "keep", "allow")


def verify_params(ctx: Any, stage: str) -> dict[str, Any]:
    """The two checksum statements a finalize compares for ``verify: checksum``.

    ``ctx`` is the table's :class:`~runner.plan.compiler.TableContext` (with the ``where`` of
    the rows read). Sanitized columns are left out: their staged values differ on purpose.
    """
    read = {c.name for c in (ctx.columns if ctx.read_columns is None else ctx.read_columns)}
    report = ctx.sanitize.report if ctx.sanitize is not None else []
    sanitized = {e["column"] for e in report if e.get("rule") not in PASS_THROUGH}
    columns = [
        (c.name, c.arrow_type) for c in ctx.columns if c.name in read and c.name not in sanitized
    ]
    return {
        "checksum_source": checksum_sql(ctx.source_name, columns, ctx.source_dialect, ctx.where),
        "checksum_stage": checksum_sql(stage, columns, ctx.target_dialect),
    }


def verify_checksum(table: str, ctx: Any, params: dict[str, Any]) -> None:
    """Raise VerifyError when the staged rows' checksum is not the source's."""
    from runner.errors import VerifyError

    source = tuple(int(v or 0) for v in ctx.source.rows(params["checksum_source"])[0])
    staged = tuple(int(v or 0) for v in ctx.target.rows(params["checksum_stage"])[0])
    if source != staged:
        raise VerifyError(
            f"{table}: verify checksum failed: the source has {source[0]} rows (checksum "
            f"{source[1]:x}/{source[2]:x}), staging {staged[0]} rows (checksum "
            f"{staged[1]:x}/{staged[2]:x}); the target was left unchanged "
            f"('etlrun check' lists the differing key ranges)"
        )
