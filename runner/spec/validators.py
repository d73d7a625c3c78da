"""Field checks shared by the spec models: mode names, SQL conditions and types, cron expressions.

Each raises ``ValueError`` with a message in the user's words; the loader puts it at the line.
sqlglot raises more than ``ParseError`` on odd input, so its calls here catch ``Exception``:
a spec must fail as a spec error, never as a crash.
"""

from __future__ import annotations

import difflib
import re
from typing import Any, cast

import sqlglot
from sqlglot import exp
from sqlglot.tokens import Token, TokenType


def did_you_mean(word: str, known: list[str] | tuple[str, ...]) -> str:
    """`` (did you mean 'x'?)`` for the closest of ``known``, or ``""``.

    Example:
        >>> did_you_mean("bulkk", ["copy", "bulk"])
        " (did you mean 'bulk'?)"
    """
    close = difflib.get_close_matches(word, list(known), n=1, cutoff=0.6)
    return f" (did you mean '{close[0]}'?)" if close else ""


def check_mode(value: str) -> str:
    from runner.modes import MODES
    from runner.spec.tablespec import MODES_ALL

    if value in MODES:
        return value
    if value in MODES_ALL:
        raise ValueError(
            f"mode '{value}' is not available yet (available: {', '.join(sorted(MODES))})"
        )
    raise ValueError(
        f"unknown mode '{value}'{did_you_mean(value, MODES_ALL)}; "
        f"use one of: {', '.join(MODES_ALL)}"
    )


_BOOLEAN = (exp.Predicate, exp.Connector, exp.Not, exp.Boolean, exp.Exists)


def _first_line(exc: Exception) -> str:
    """sqlglot's error without its terminal colours, class paths or 'Failed to parse' wrapper."""
    errors = getattr(exc, "errors", None)
    if errors and isinstance(errors[0], dict) and errors[0].get("description"):
        first = errors[0]
        text = str(first["description"])
        if first.get("highlight") and isinstance(first.get("col"), int):
            # sqlglot's col is where the token ends
            start = first["col"] - len(first["highlight"]) + 1
            text += f" at '{first['highlight']}' (character {start})"
    else:
        text = (str(exc).splitlines() or [type(exc).__name__])[0]
    text = re.sub(r"<class '(?:[\w.]+\.)?(\w+)'>", r"\1", text)
    return text[:1].lower() + text[1:]


def _sql(what: str, dialect: str | None) -> str:
    return f"{dialect} SQL {what}" if dialect else f"SQL {what}"


def _tokens(text: str, dialect: str | None, what: str) -> list[Token]:
    """Tokens of ``text``, refusing what could smuggle a second statement past the parser."""
    try:
        tokens = sqlglot.tokenize(text, read=dialect)
    except Exception as exc:
        raise ValueError(f"not a {_sql(what, dialect)}: {_first_line(exc)}") from None
    if any(t.token_type == TokenType.SEMICOLON for t in tokens):
        raise ValueError(f"must be one SQL {what}; ';' is not allowed")
    if any(t.comments for t in tokens) or "--" in text or "/*" in text:
        raise ValueError(f"must be one SQL {what}; comments are not allowed")
    return tokens


def parse_condition(text: str, dialect: str | None = None) -> exp.Condition:
    """Parse ``text`` as exactly one boolean SQL expression, or raise ValueError saying why.

    Example:
        >>> parse_condition("id > 10 AND name IS NOT NULL", "postgres").sql()
        'id > 10 AND name IS NOT NULL'
    """
    _tokens(text, dialect, "expression")
    try:
        tree = cast(exp.Condition, sqlglot.parse_one(text, read=dialect, into=exp.Condition))
    except Exception as exc:
        raise ValueError(f"not a {_sql('expression', dialect)}: {_first_line(exc)}") from None
    node = tree.unnest()
    if not isinstance(node, _BOOLEAN):
        raise ValueError(f"must be a condition such as 'amount > 0', not '{node.sql(dialect)}'")
    if any(isinstance(n, (exp.Query, exp.Command, exp.DDL, exp.DML)) for n in tree.walk()):
        raise ValueError("must not contain a statement or subquery")
    return tree


def parse_type(text: str, dialect: str | None = None) -> exp.DataType:
    """Parse ``text`` as one SQL data type of ``dialect``, or raise ValueError saying why.

    ``DataType.build`` alone ignores trailing text (``int; drop table x`` builds INT), so the
    type must also be all of ``CAST(NULL AS <text>)``.

    Example:
        >>> parse_type("numeric(12,2)", "postgres").sql("postgres")
        'DECIMAL(12, 2)'
    """
    _tokens(text, dialect, "type")
    built: exp.DataType | None = None
    as_cast: Any = None
    try:
        built = exp.DataType.build(text, dialect=dialect)
        as_cast = sqlglot.parse_one(f"CAST(NULL AS {text})", read=dialect)
    except Exception:
        pass
    if built is None or not isinstance(as_cast, exp.Cast):
        where = f" in {dialect}" if dialect else ""
        raise ValueError(f"'{text}' is not a SQL data type{where} (e.g. integer, varchar(40))")
    return built


def check_condition(value: str, dialect: str | None = None) -> str:
    parse_condition(value, dialect)
    return value


def check_cron(value: str) -> str:
    from croniter import croniter

    try:
        valid = croniter.is_valid(value)
    except Exception:
        valid = False
    if not valid:
        raise ValueError(
            f"'{value}' is not a valid cron expression (minute hour day month weekday)"
        )
    return value
