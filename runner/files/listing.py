"""What a store's listing says of a file (size, mtime, ETag), read the same way whichever
store answered, and the small helpers both ends of a transfer share."""

from __future__ import annotations

import contextlib
import hashlib
import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from urllib.parse import unquote, urlsplit

CHUNK = 1 << 20
"""Bytes read and written at a time (and the granularity of progress and of a stop)."""


@dataclass(frozen=True)
class Stat:
    size: int
    mtime: float
    """Seconds since the epoch (what the state keeps; a float holds ~0.2 us at today's dates)."""
    mtime_ns: int | None = None
    """The exact nanoseconds, where the store has them (local files)."""
    etag: str | None = None
    """The object's version tag where the store has one (an S3 ETag): a rewrite within the
    second its mtime counts in, at the same size, still changes it."""


@dataclass
class Listing:
    files: dict[str, Stat] = field(default_factory=dict)
    """Relative path -> stat, temporary files left out."""
    temps: list[str] = field(default_factory=list)
    """Temporary files (``.etlrun-tmp-*``) found, relative paths."""


def new_hash(algo: str) -> Any:
    if algo == "md5":  # a change detector here, not a security measure
        return hashlib.md5(usedforsecurity=False)
    return hashlib.new(algo)


def local_root(url: str) -> str:
    """The folder of a ``file://`` URL: ``file:///data/raw`` is /data/raw, ``file://data/raw``
    data/raw (relative), ``file:///C:/data`` C:/data (Windows).

    Example:
        >>> local_root("file:///data/raw/"), local_root("file://data/raw"), local_root("file:///C:/x")
        ('/data/raw', 'data/raw', 'C:/x')
    """
    parts = urlsplit(url)
    path = unquote(parts.netloc + parts.path)
    if re.match(r"^/[A-Za-z]:", path):
        path = path[1:]
    return path.rstrip("/") or "/"


def mtime_of(info: dict[str, Any], whole_seconds: bool = False) -> float:
    """``whole_seconds``: S3 lists LastModified in milliseconds on some servers (MinIO) but
    HEAD answers in whole seconds; floored, a file's listed and stat'ed mtimes agree, so the
    mtime a copy records is the one the next listing shows."""
    seconds = _any_mtime(info)
    return float(int(seconds)) if whole_seconds else seconds


def etag_of(info: dict[str, Any]) -> str | None:
    value = info.get("ETag") or info.get("etag")
    return str(value).strip('"') if value else None


def _any_mtime(info: dict[str, Any]) -> float:
    for key in ("mtime", "LastModified", "last_modified", "modified", "created"):
        value = info.get(key)
        if isinstance(value, datetime):
            return value.timestamp()
        if isinstance(value, int | float):
            return float(value)
        if isinstance(value, str):
            with contextlib.suppress(ValueError):
                return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
    return 0.0
