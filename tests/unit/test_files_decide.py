"""What a file job decides for one file from its state row and the two listings (no I/O)."""

from __future__ import annotations

from datetime import datetime

import pytest

from runner.files.plan import _decide
from runner.files.state import FileRow
from runner.files.store import Stat

SOURCE = Stat(100, 1000.5)


def row(code: int = 1, size: int = 100, mtime: float = 1000.5, algo: str = "sha256") -> FileRow:
    return FileRow("a.csv", size, mtime, algo, "c" * 64, "/t/a.csv", size, datetime(2026, 1, 1),
                   "r", code)  # fmt: skip


@pytest.mark.parametrize(
    "state, there, compare, expected",
    [
        (None, None, "sha256", ("copy", "new")),
        (None, Stat(100, 1.0), "sha256", ("copy", "not in the state; replaces the target's")),
        (row(code=0), Stat(100, 1.0), "sha256", ("copy", "marked to copy (code 0)")),
        (row(code=2, size=5), None, "sha256", ("locked", "locked (code 2)")),
        (row(), None, "sha256", ("update", "missing on the target")),
        (row(), Stat(7, 1.0), "sha256",
         ("update", "changed on the target (7 bytes there, 100 copied)")),
        (row(size=90), Stat(90, 1.0), "sha256", ("update", "size changed (90 -> 100 bytes)")),
        (row(), Stat(100, 1.0), "sha256", ("unchanged", "size and mtime as copied")),
        (row(mtime=999.0), Stat(100, 1.0), "size_mtime", ("update", "mtime changed")),
        (row(mtime=999.0, algo="size_mtime"), Stat(100, 1.0), "md5",
         ("update", "mtime changed; no md5 recorded to compare")),
        (row(mtime=999.0), Stat(100, 1.0), "sha256", None),  # the content decides
    ],
)  # fmt: skip
def test_decide(state, there, compare, expected) -> None:  # type: ignore[no-untyped-def]
    action = _decide(0, "a.csv", "a.csv", SOURCE, there, state, compare)
    assert (None if action is None else (action.action, action.reason)) == expected


def etag_row(etag: str | None, mtime: float = 1000.0) -> FileRow:
    return FileRow("a.csv", 100, mtime, "sha256", "c" * 64, "/t/a.csv", 100,
                   datetime(2026, 1, 1), "r", 1, etag=etag)  # fmt: skip


@pytest.mark.parametrize(
    "state, source, compare, expected",
    [
        # rewritten within the second its mtime counts in, at the same size: the ETag tells
        (etag_row("e1"), Stat(100, 1000.0, etag="e2"), "sha256", None),
        (etag_row("e1"), Stat(100, 1000.0, etag="e2"), "size_mtime", ("update", "ETag changed")),
        (etag_row("e1"), Stat(100, 1000.0, etag="e1"), "sha256",
         ("unchanged", "size and mtime as copied")),
        # uploaded again with the same bytes: a new mtime, the same ETag; nothing is read
        (etag_row("e1"), Stat(100, 1200.0, etag="e1"), "size_mtime",
         ("unchanged", "touched: mtime changed, ETag equal")),
        # a row recorded before ETags were kept: size and mtime decide as before
        (etag_row(None), Stat(100, 1000.0, etag="e2"), "sha256",
         ("unchanged", "size and mtime as copied")),
    ],
)  # fmt: skip
def test_decide_by_etag(state, source, compare, expected) -> None:  # type: ignore[no-untyped-def]
    action = _decide(0, "a.csv", "a.csv", source, Stat(100, 1.0), state, compare)
    assert (None if action is None else (action.action, action.reason)) == expected
    if action is not None and action.action == "unchanged" and action.reason.startswith("touched"):
        assert action.touched and action.mtime == 1200.0 and action.etag == "e1"
