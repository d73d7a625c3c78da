"""File stores: formats round trip, atomic writes, a failing write leaves nothing behind."""

from __future__ import annotations

import datetime as dt
import errno
import hashlib
from decimal import Decimal
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from runner.connectors import connector_for
from runner.connectors.fs import TEMP_PREFIX, FsConnector, read_table, row_count

SCHEMA = pa.schema(
    [
        ("id", pa.int64()),
        ("name", pa.string()),
        ("price", pa.decimal128(12, 2)),
        ("born", pa.date32()),
        ("seen", pa.timestamp("us", tz="UTC")),
        ("blob", pa.binary()),
        ("ok", pa.bool_()),
        ("score", pa.float64()),
    ]
)


def batch() -> pa.RecordBatch:
    return pa.record_batch(
        [
            [1, 2, None],
            ["a", 'Zoé, "quoted"\nline', None],
            [Decimal("1.10"), Decimal("-99999.99"), None],
            [dt.date(1999, 12, 31), dt.date(1, 1, 1), None],
            [dt.datetime(2020, 1, 1, 12, 0, 0, 123456, tzinfo=dt.UTC), None, None],
            [b"\x00\xff", b"", None],
            [True, False, None],
            [0.5, -1e300, None],
        ],
        schema=SCHEMA,
    )


def test_schemes_are_registered() -> None:
    for url in ("file:///tmp/x/", "sftp://u@h/p/", "s3://bucket/p/"):
        assert connector_for(url) is FsConnector


@pytest.mark.parametrize("fmt", ["parquet", "csv", "jsonl"])
def test_round_trip(tmp_path: Path, fmt: str) -> None:
    store = FsConnector(f"file://{tmp_path}/out/")
    written = store.write_file(f"t.{fmt}", fmt, SCHEMA, [batch(), batch()])
    assert written.rows == 6
    data = (tmp_path / "out" / f"t.{fmt}").read_bytes()
    assert written.size == len(data)
    assert written.sha256 == hashlib.sha256(data).hexdigest()
    assert row_count(data, fmt) == 6
    table = read_table(data, fmt, SCHEMA).cast(SCHEMA)
    expected = pa.Table.from_batches([batch(), batch()])
    if fmt == "csv":  # CSV has no binary type: bytes are written as they are; compare the rest
        table, expected = table.drop_columns(["blob"]), expected.drop_columns(["blob"])
    assert table.equals(expected)
    assert [p.name for p in (tmp_path / "out").iterdir()] == [f"t.{fmt}"]


class _Full:
    """A file on a disk that fills up after ``budget`` bytes."""

    def __init__(self, inner: Any, budget: list[int]) -> None:
        self.inner, self.budget = inner, budget

    def write(self, data: Any) -> int:
        size = len(memoryview(data).cast("B"))
        if size > self.budget[0]:
            raise OSError(errno.ENOSPC, "No space left on device")
        self.budget[0] -= size
        return int(self.inner.write(data))

    def __getattr__(self, name: str) -> Any:
        if name == "inner":  # looked up before __init__ ran (copy, pickle): no recursion
            raise AttributeError(name)
        return getattr(self.inner, name)

    def __enter__(self) -> _Full:
        return self

    def __exit__(self, *exc: object) -> None:
        self.inner.close()


def full_disk_filesystem(budget: int) -> Any:
    """An fsspec local filesystem whose files fail with ENOSPC after ``budget`` bytes in all."""
    from fsspec.implementations.local import LocalFileSystem

    left = [budget]

    class FullDisk(LocalFileSystem):  # type: ignore[misc]
        def open(self, path: str, mode: str = "rb", **kwargs: Any) -> Any:
            opened = super().open(path, mode, **kwargs)
            return _Full(opened, left) if "w" in mode else opened

    return FullDisk(skip_instance_cache=True)


def test_a_full_disk_fails_and_leaves_no_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import runner.connectors.fs as fs_module

    monkeypatch.setattr(
        fs_module, "filesystem", lambda url: (full_disk_filesystem(1000), str(tmp_path / "out"))
    )
    store = FsConnector(f"file://{tmp_path}/out/")
    big = pa.Table.from_batches([batch()] * 200).to_batches()
    with pytest.raises(OSError, match="No space left"):
        store.write_file("t.parquet", "parquet", SCHEMA, big)
    leftovers = list((tmp_path / "out").iterdir())
    assert leftovers == [], leftovers
    assert not any(p.name.startswith(TEMP_PREFIX) for p in leftovers)
