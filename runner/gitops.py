"""Folders of job specs, and the ones changed since a git ref.

A folder stands for every ``*.yaml`` / ``*.yml`` under it (sorted), except ``connections.yaml``,
which names connections for the specs in its folder (:mod:`runner.connections`).
"""

from __future__ import annotations

import subprocess
from pathlib import Path

from runner.connections import FILE_NAMES
from runner.errors import UsageError

CONNECTIONS_FILE = FILE_NAMES[0]
SPEC_SUFFIXES = (".yaml", ".yml")
NOT_SPECS = frozenset({CONNECTIONS_FILE, "connections.yml", ".pre-commit-hooks.yaml"})


def is_spec(path: Path) -> bool:
    return path.suffix in SPEC_SUFFIXES and path.name not in NOT_SPECS


def expand(paths: list[str]) -> list[Path]:
    """Spec files named by ``paths``: a file as given, a folder as its specs (sorted).

    Raises:
        UsageError: a path that does not exist, or a folder with no spec in it.
    """
    files: list[Path] = []
    for given in paths:
        path = Path(given)
        if path.is_dir():
            found = sorted(p for p in path.rglob("*") if p.is_file() and is_spec(p))
            if not found:
                raise UsageError(f"{given}: no *.yaml or *.yml job specs in this folder")
        elif path.exists():
            found = [path]
        else:
            raise UsageError(f"{given}: no such file or folder")
        files += [f for f in found if f not in files]
    return files


def changed_since(ref: str, files: list[Path]) -> list[Path]:
    """The specs of ``files`` that differ from git ``ref`` (edited, added or untracked).

    A changed ``connections.yaml`` or ``.env`` selects every spec in its folder, since each
    may resolve to something new.
    """
    if not files:
        return []
    top = _git(["rev-parse", "--show-toplevel"], Path(files[0]).resolve().parent).strip()
    root = Path(top)
    changed = _git(["diff", "--name-only", ref, "--"], root).splitlines()
    changed += _git(["ls-files", "--others", "--exclude-standard"], root).splitlines()
    changed_paths = {(root / name).resolve() for name in changed if name}
    shared_dirs = {
        p.parent for p in changed_paths if p.name in (CONNECTIONS_FILE, "connections.yml", ".env")
    }
    return [f for f in files if f.resolve() in changed_paths or f.resolve().parent in shared_dirs]


def _git(args: list[str], cwd: Path) -> str:
    try:
        done = subprocess.run(
            ["git", *args], cwd=cwd, capture_output=True, text=True, check=False, timeout=60
        )
    except FileNotFoundError:
        raise UsageError("--changed-since needs git, and git is not installed") from None
    if done.returncode != 0:
        message = done.stderr.strip().splitlines()[-1] if done.stderr.strip() else "failed"
        raise UsageError(f"--changed-since: git {args[0]}: {message}")
    return done.stdout
