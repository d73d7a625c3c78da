"""Taking values out of driver error messages once sanitizing is on (a job with rules planned, or
a chunk applying them): PostgreSQL's ``DETAIL: Key (ssn)=(...)``, MariaDB's ``Duplicate entry
'...'`` and Arrow's ``Failed to parse string: '...'`` are how a raw value could otherwise reach a
log or the state store."""

from __future__ import annotations

import re
import threading

_active = threading.Event()
_DETAIL = re.compile(r"\s*(?:DETAIL:|Key \(|Failing row contains|CONTEXT:).*", re.DOTALL)
_LITERALS = (
    # PostgreSQL quotes a bad value after a colon: invalid input syntax for type integer: "x"
    (re.compile(r':(\s*)"(?:[^"\\]|\\.)*"'), r':\1"…"'),
    # MariaDB, SQLite and Arrow quote values (and some names) in single quotes or backticks
    (re.compile(r"'(?:[^'\\]|\\.|'')*'"), "'…'"),
    (re.compile(r"`[^`]*`"), "`…`"),
    # Arrow: "Integer value 300 not in range", "Float value 1.5 was truncated"
    (re.compile(r"\b([Vv]alue) [-+]?\d[\w.+-]*"), r"\1 …"),
)


def activate() -> None:
    """From now on, this process's driver error messages are redacted (see :func:`redact_error`)."""
    _active.set()


def deactivate() -> None:
    """Undo :func:`activate` (for tests)."""
    _active.clear()


def is_active() -> bool:
    return _active.is_set()


def redact_error(text: str) -> str:
    """``text`` without the values a database or Arrow quotes in an error, once sanitizing is on.

    Drops PostgreSQL's DETAIL / CONTEXT (``Key (ssn)=(...)``, ``Failing row contains (...)``)
    and replaces quoted literals by ``'…'``; PostgreSQL's double-quoted names stay.

    Example:
        >>> activate()
        >>> redact_error("Duplicate entry '123-45-6789' for key 'PRIMARY'")
        "Duplicate entry '…' for key '…'"
        >>> redact_error('duplicate key value violates unique constraint "t_pkey" DETAIL:  Key (ssn)=(1)')
        'duplicate key value violates unique constraint "t_pkey"'
        >>> deactivate()
    """  # noqa: E501
    if not _active.is_set() or not text:
        return text
    text = _DETAIL.sub("", text)
    for pattern, replacement in _LITERALS:
        text = pattern.sub(replacement, text)
    return text
