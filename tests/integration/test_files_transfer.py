"""One file's transfer, in process: a source that changes while it is copied is copied again,
and one that keeps changing is never put under its final name."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from runner.files import transfer
from runner.files.store import FileStore
from runner.files.transfer import FileChangedError, copy_file
from tests.files_tree import temps

SIZE = 5 * (1 << 20) + 123  # a few chunks


def _stores(tmp_path: Path) -> tuple[FileStore, FileStore, Path, Path]:
    src, dst = tmp_path / "src", tmp_path / "dst"
    src.mkdir()
    (src / "a.bin").write_bytes(os.urandom(SIZE))
    return FileStore(f"file://{src}"), FileStore(f"file://{dst}"), src, dst


@pytest.fixture(autouse=True)
def _no_waiting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(transfer, "RETRY_WAIT", (0.0,))


def test_a_file_changed_while_copied_is_copied_again(tmp_path: Path) -> None:
    source, target, src, dst = _stores(tmp_path)
    writes: list[int] = []

    def on_bytes(n: int) -> None:
        if not writes:  # the instrument appends a line while the first attempt is reading
            with open(src / "a.bin", "ab") as f:
                f.write(b"one more measurement\n")
        writes.append(n)

    copied = copy_file(source, target, "a.bin", "a.bin", "sha256", "t", on_bytes)
    final = (src / "a.bin").read_bytes()
    assert copied.attempts == 2
    assert copied.size == len(final) == SIZE + 21
    assert copied.checksum == hashlib.sha256(final).hexdigest()
    assert (dst / "a.bin").read_bytes() == final
    assert sum(writes) == len(final), "the abandoned attempt's bytes were taken back"
    assert (dst / "a.bin").stat().st_mtime_ns == (src / "a.bin").stat().st_mtime_ns
    assert temps(dst) == []


def test_a_file_that_keeps_changing_is_never_put_in_place(tmp_path: Path) -> None:
    source, target, src, dst = _stores(tmp_path)
    (dst / "a.bin").parent.mkdir()
    (dst / "a.bin").write_bytes(b"the previous version")

    def on_bytes(n: int) -> None:
        with open(src / "a.bin", "ab") as f:
            f.write(b"x")

    with pytest.raises(FileChangedError, match="kept changing while being copied"):
        copy_file(source, target, "a.bin", "a.bin", "md5", "t", on_bytes)
    assert (dst / "a.bin").read_bytes() == b"the previous version"
    assert temps(dst) == []


def test_an_interrupted_copy_removes_its_temporary_file(tmp_path: Path) -> None:
    source, target, src, dst = _stores(tmp_path)
    with pytest.raises(transfer.Stopped):
        copy_file(source, target, "a.bin", "a.bin", "sha256", "t", stopped=lambda: True)
    assert temps(dst) == [] and not (dst / "a.bin").exists()


def test_size_mtime_copies_without_hashing(tmp_path: Path) -> None:
    source, target, src, dst = _stores(tmp_path)
    copied = copy_file(source, target, "a.bin", "sub/b.bin", "size_mtime", "t")
    assert copied.checksum is None and copied.attempts == 1
    assert (dst / "sub" / "b.bin").read_bytes() == (src / "a.bin").read_bytes()
