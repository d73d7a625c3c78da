"""Folders that ``delete: true`` empties on the target go too, on a local target and over SFTP
(a real sshd): deepest first, never one that still holds anything, never the entry's own
folder, never the target root."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.files_tree import tree, write_job
from tests.sftp_server import sftp_server  # noqa: F401 - the fixture


@pytest.fixture(params=["local", "sftp"])
def target(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[str, Path]:
    """(target URL, the folder it names on this machine)."""
    if request.param == "local":
        return f"file://{tmp_path / 'dst'}", tmp_path / "dst"
    server = request.getfixturevalue("sftp_server")
    return server.url("dst"), server.root / "dst"


def _write(root: Path, *paths: str) -> None:
    for path in paths:
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        (root / path).write_text(f"{path}\n")


def _folders(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*") if p.is_dir()}


def test_emptied_folders_are_removed(target: tuple[str, Path], tmp_path: Path, run_cli) -> None:
    url, dst = target
    src = tmp_path / "src"
    _write(
        src,
        "run01/a.csv", "run01/b.csv", "run02/deep/c.csv", "run02/deep/er/d.csv",
        "run03/e.csv", "run04/f.csv", "logs/2026/x.log", "logs/2026/y.log",
    )  # fmt: skip
    entries = (
        {"include": ["*.csv"], "exclude": ["logs/**"], "delete": True},
        {"path": "logs", "to": "instrument-logs", "include": ["*.log"], "delete": True},
    )
    spec = write_job(tmp_path / "job.yaml", "prune", f"file://{src}", url, *entries)
    first = run_cli("run", spec)
    assert first.returncode == 0, first.stderr
    _write(dst, "run03/notes.txt")  # on the target only, selected by no entry: kept
    for path in ("run01/a.csv", "run01/b.csv", "run02/deep/c.csv", "run02/deep/er/d.csv",
                 "run03/e.csv", "logs/2026/x.log", "logs/2026/y.log"):  # fmt: skip
        (src / path).unlink()

    done = run_cli("run", spec)
    assert done.returncode == 0, done.stderr
    assert set(tree(dst)) == {"run03/notes.txt", "run04/f.csv"}
    # run01 and run02 (with its nested folders) emptied: gone; run03 holds a file: kept;
    # instrument-logs is the second entry's own folder: kept, its emptied sub-folder gone
    assert _folders(dst) == {"run03", "run04", "instrument-logs"}
    assert "empty after the deletes" in done.stderr

    (src / "run04/f.csv").unlink()
    (dst / "run03/notes.txt").unlink()
    last = run_cli("run", spec)
    assert last.returncode == 0, last.stderr
    assert dst.is_dir() and _folders(dst) == {"run03", "instrument-logs"}  # run03: no delete
    assert tree(dst) == {}


def test_target_root_is_never_removed(target: tuple[str, Path], tmp_path: Path, run_cli) -> None:
    url, dst = target
    src = tmp_path / "src"
    _write(src, "only.csv", "sub/one.csv")
    spec = write_job(tmp_path / "job.yaml", "root", f"file://{src}", url, {"delete": True})
    assert run_cli("run", spec).returncode == 0
    (src / "only.csv").unlink()
    (src / "sub/one.csv").unlink()
    done = run_cli("run", spec)
    assert done.returncode == 0, done.stderr
    assert dst.is_dir() and list(dst.iterdir()) == []
