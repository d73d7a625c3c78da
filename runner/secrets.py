"""The secret values of this process, and the one function that keeps them out of every output.

Secrets are registered where they enter (a URL's password, a ``${VAR}`` whose name says it is a
secret); every printed line, log record, stored error and plan passes through :func:`scrub`.
"""

from __future__ import annotations

import re
import threading
from urllib.parse import quote, quote_plus

from sqlalchemy.engine import make_url

MASK = "***"
_SECRET_NAME = re.compile(r"PASS|SECRET|KEY|TOKEN|CREDENTIAL|PWD", re.IGNORECASE)
_lock = threading.Lock()
_values: set[str] = set()


def register(value: str | None) -> None:
    """Remember ``value`` (and its URL-encoded forms) as something never to print."""
    if not value or len(value) < 3:
        return
    with _lock:
        # as written, fully URL-encoded, form-encoded, and as SQLAlchemy renders it in a URL
        _values.update({value, quote(value, safe=""), quote_plus(value), quote(value, safe=" +")})


def is_secret_name(name: str) -> bool:
    return bool(_SECRET_NAME.search(name))


def scrub(text: str) -> str:
    """Replace every registered secret in ``text`` with ``***``."""
    if not _values or not text:
        return text
    with _lock:
        values = sorted(_values, key=len, reverse=True)
    for value in values:
        if value in text:
            text = text.replace(value, MASK)
    return text


def register_url(url: str) -> None:
    """Register the password of a SQLAlchemy- or fsspec-style URL, if it has one."""
    try:
        password = make_url(url).password
    except Exception:  # noqa: BLE001 - not a SQLAlchemy URL; try the generic form
        match = re.match(r"^[a-z0-9+.-]+://[^:/@]*:([^@]*)@", url, re.IGNORECASE)
        password = match.group(1) if match else None
    if password:
        register(str(password))


def mask_url(url: str) -> str:
    """``postgresql://u:pw@h/db`` -> ``postgresql://u:***@h/db``; other text is only scrubbed."""
    masked = re.sub(r"^([a-z0-9+.-]+://[^:/@]*:)([^@]*)@", rf"\1{MASK}@", url, flags=re.IGNORECASE)
    return scrub(masked)
