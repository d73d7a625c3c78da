"""Source trees for the file-job tests (many small files and one big one), and their checksums.

The big file is made once per test session with ``os.urandom`` in chunks and hard-linked into
each test's source folder (a link costs nothing and no test writes to it).
"""

from __future__ import annotations

import hashlib
import json
import os
import random
from pathlib import Path

import pytest

SMALL_FILES = 500
BIG_SIZE = 200 * 1024 * 1024
BIG_NAME = "raw/big.bin"
TEMP_PREFIX = ".etlrun-tmp-"


def make_small(root: Path, count: int = SMALL_FILES, seed: int = 7) -> list[str]:
    """``count`` files of 50 B - 4 kB of random bytes in ten folders; their relative paths."""
    rng = random.Random(seed)
    paths = []
    for i in range(count):
        relative = f"run{i % 10:02d}/data_{i:03d}.csv"
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(rng.randbytes(rng.randint(50, 4000)))
        paths.append(relative)
    return paths


def make_big(path: Path, size: int = BIG_SIZE) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    chunk = 8 << 20
    with open(path, "wb") as f:
        left = size
        while left:
            n = min(chunk, left)
            f.write(os.urandom(n))
            left -= n
    return path


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(8 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def tree(root: Path) -> dict[str, str]:
    """relative path -> sha256 of every file under ``root`` but temporary ones."""
    return {
        str(p.relative_to(root)): sha256(p)
        for p in sorted(root.rglob("*"))
        if p.is_file() and not p.name.startswith(TEMP_PREFIX)
    }


def temps(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob(f"{TEMP_PREFIX}*") if p.is_file())


def write_job(path: Path, name: str, source: str, target: str, *entries: dict[str, object],
              mode: str = "sync", workers: int = 4) -> Path:  # fmt: skip
    """A file job spec; URLs and entries written as JSON (valid YAML, quoting everything)."""
    lines = [
        f"job: {name}",
        f"mode: {mode}",
        f"workers: {workers}",
        f"source: {json.dumps(source)}",
        f"target: {json.dumps(target)}",
        "files:",
        *(f"  - {json.dumps(entry)}" for entry in entries or ({"include": ["*"]},)),
    ]
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture(scope="session")
def big_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One 200 MB file of random bytes for the whole session."""
    return make_big(tmp_path_factory.mktemp("big") / "big.bin")


def cli_json(done) -> object:  # type: ignore[no-untyped-def]
    """The JSON a ``run_cli(..., "--format", "json")`` printed (exit 4, "different", allowed)."""
    assert done.returncode in (0, 4), done.stdout + done.stderr
    return json.loads(done.stdout)


def last_tasks(run_cli, job: str) -> tuple[int, set[str]]:  # type: ignore[no-untyped-def]
    """Rows moved and task ids of the job's latest run (``etlrun history`` then ``show``)."""
    history = cli_json(run_cli("history", job, "--format", "json"))
    shown = cli_json(run_cli("show", history[0]["run_id"], "--format", "json"))  # type: ignore[index]
    return shown["rows"], {t["task_id"] for t in shown["tasks"]}  # type: ignore[index]
