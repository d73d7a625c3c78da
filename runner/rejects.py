"""Rows a target cannot hold: found in Arrow before the write, then stopped on or rejected.

``check(batch, dialect)`` tests each batch against what the target backend can store, one
vectorised test per column (NaN and infinity into MariaDB, NaN into SQLite, U+0000 in PostgreSQL
text, decimals wider than the 15 significant digits SQLite keeps). ``on_error: stop`` (the
default) fails the chunk on the first such row, so nothing of the chunk is visible;
``on_error: reject`` writes each one to ``.etlrun/rejects/<job>/<run>/<table>.jsonl`` as its
primary key, column and reason (never the value: a sanitized column's raw value cannot leak),
and the rest of the chunk commits. When the database refuses a batch anyway, ``bisect`` finds the
rows it refuses by writing halves.

Batches are checked after sanitize masked them in flight, so a key in a reject record is the
value the target would have held.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa

from runner._lazy import pc

DEFAULT_DIR = ".etlrun/rejects"
_APPEND = threading.Lock()
"""One lock for every reject file: chunks of a table run on parallel threads."""


@dataclass(frozen=True)
class Reject:
    key: dict[str, Any]
    column: str | None
    reason: str

    def record(self) -> dict[str, Any]:
        return {"key": self.key, "column": self.column, "reason": self.reason}


Test = Callable[[pa.Array], pa.Array | None]


def _nan(column: pa.Array) -> pa.Array:
    return pc.is_nan(column)


def _not_finite(column: pa.Array) -> pa.Array:
    return pc.invert(pc.is_finite(column))


def _nul(column: pa.Array) -> pa.Array:
    return pc.match_substring(column, "\x00")


def _over_15_digits(column: pa.Array) -> pa.Array:
    text = column.cast(pa.string())
    digits = pc.replace_substring(pc.replace_substring(text, "-", ""), ".", "")
    digits = pc.utf8_rtrim(pc.utf8_ltrim(digits, "0"), "0")
    return pc.greater(pc.utf8_length(digits), 15)


_ESCAPED = ("\x00", "\n", "\r", "\x1a", "'", '"', "\\")
"""Bytes PyMySQL escapes with a backslash: each takes two bytes of the statement."""


def _statement_bytes(column: pa.Array) -> pa.Array:
    """How many bytes each value takes in a MariaDB INSERT statement (escaped, as PyMySQL sends)."""
    size = pc.binary_length(column)
    for char in _ESCAPED:
        pattern = char.encode() if pa.types.is_binary(column.type) else char
        size = pc.add(size, pc.count_substring(column, pattern))
    return size


def tests_for(
    typ: pa.DataType, dialect: str, max_bytes: int | None = None, source: str | None = None
) -> list[tuple[Test, str]]:
    """The checks a column of ``typ`` needs before it is written to ``dialect``, with reasons.
    ``max_bytes``: the largest statement the server takes (MariaDB's max_allowed_packet)."""
    found: list[tuple[Test, str]] = []
    textual = pa.types.is_string(typ) or pa.types.is_large_string(typ)
    if max_bytes and (textual or pa.types.is_binary(typ) or pa.types.is_large_binary(typ)):
        limit = max_bytes - 4096  # the rest of the INSERT statement

        def too_big(column: pa.Array) -> pa.Array:
            return pc.greater(_statement_bytes(column), limit)

        found.append(
            (too_big, f"value longer than the server's max_allowed_packet ({max_bytes} bytes)")
        )
    if pa.types.is_floating(typ):
        if dialect == "mysql":
            found.append((_not_finite, "NaN or infinity: MariaDB/MySQL cannot store it"))
        elif dialect == "sqlite":
            found.append((_nan, "NaN: SQLite would store it as NULL"))
    elif pa.types.is_string(typ) or pa.types.is_large_string(typ):
        if dialect == "postgres" and source != "postgres":  # PostgreSQL text has no U+0000
            found.append((_nul, "text with U+0000: PostgreSQL text cannot hold it"))
    elif pa.types.is_decimal(typ) and dialect == "sqlite" and typ.precision > 15:
        found.append(
            (
                _over_15_digits,
                "more than 15 significant digits: SQLite keeps 15 significant digits of a decimal",
            )
        )
    return found


def check(
    batch: pa.RecordBatch, dialect: str, max_bytes: int | None = None, source: str | None = None
) -> tuple[pa.Array | None, list[tuple[int, str, str]]]:
    """``(mask of rows the target can hold or None when all are fine, [(row, column, reason)])``."""
    bad: pa.Array | None = None
    found: list[tuple[int, str, str]] = []
    for index, field_ in enumerate(batch.schema):
        for test, reason in tests_for(field_.type, dialect, max_bytes, source):
            hit = pc.fill_null(test(batch.column(index)), False)
            if not pc.any(hit).as_py():
                continue
            for row in pc.indices_nonzero(hit).to_pylist():
                found.append((row, field_.name, reason))
            bad = hit if bad is None else pc.or_(bad, hit)
    if bad is None:
        return None, []
    return pc.invert(bad), found


def _key_of(batch: pa.RecordBatch, row: int, keys: Iterable[str]) -> dict[str, Any]:
    out = {}
    for name in keys:
        if name in batch.schema.names:
            value = batch.column(batch.schema.get_field_index(name))[row].as_py()
            out[name] = value if isinstance(value, int | str | None) else str(value)
    return out


@dataclass
class RejectFile:
    """The reject file of one table of one run; appended to by every chunk, thread-safe."""

    path: Path
    keys: tuple[str, ...]
    count: int = 0
    """Rows this chunk rejected."""

    @classmethod
    def for_table(
        cls, job: str, run_id: str, table: str, keys: Iterable[str], root: str | None = None
    ) -> RejectFile:
        base = Path(root or DEFAULT_DIR)  # under the working folder, like the state store
        return cls(
            base / _safe(job) / _safe(run_id or "run") / f"{_safe(table)}.jsonl", tuple(keys)
        )

    def write(self, batch: pa.RecordBatch, rows: list[tuple[int, str | None, str]]) -> None:
        if not rows:
            return
        lines = [
            json.dumps(Reject(_key_of(batch, r, self.keys), c, why).record(), ensure_ascii=False)
            for r, c, why in rows
        ]
        with _APPEND:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with open(self.path, "a", encoding="utf-8") as out:
                out.write("\n".join(lines) + "\n")
            self.count += len({r for r, _c, _w in rows})


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "._-" else "_" for c in name)


def describe(batch: pa.RecordBatch, row: int, column: str | None, reason: str, keys: Any) -> str:
    key = _key_of(batch, row, keys)
    shown = ", ".join(f"{k}={v!r}" for k, v in key.items()) or f"row {row + 1} of its batch"
    return f"{shown}: column {column}: {reason}" if column else f"{shown}: {reason}"


def screen(
    batches: Iterable[pa.RecordBatch],
    dialect: str,
    on_reject: Callable[[pa.RecordBatch, list[tuple[int, str, str]]], None],
    max_bytes: int | None = None,
    source: str | None = None,
) -> Iterator[pa.RecordBatch]:
    """``batches`` without the rows the target cannot hold; those go to ``on_reject`` first
    (which raises to stop, or records them)."""
    for batch in batches:
        keep, found = check(batch, dialect, max_bytes, source)
        if keep is None:
            yield batch
            continue
        on_reject(batch, found)
        yield batch.filter(keep)


def bisect(
    batch: pa.RecordBatch,
    write: Callable[[pa.RecordBatch], None],
    refused: Callable[[BaseException], bool],
) -> list[tuple[int, str]]:
    """Write ``batch`` in halves until every row the database refuses is alone; returns
    ``[(row, reason)]`` of those rows. ``write`` commits what it is given."""
    out: list[tuple[int, str]] = []

    def go(offset: int, length: int) -> None:
        if length == 0:
            return
        try:
            write(batch.slice(offset, length))
        except BaseException as exc:
            if not refused(exc):
                raise
            if length == 1:
                out.append((offset, str(exc)))
                return
            half = length // 2
            go(offset, half)
            go(offset + half, length - half)

    go(0, batch.num_rows)
    return out
