"""Helpers the verbs share: reading specs, picking them, splitting --tables, the console."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from rich.console import Console

from runner.errors import UsageError


def _split_tables(values: list[str] | None) -> list[str] | None:
    if not values:
        return None
    return [name.strip() for value in values for name in value.split(",") if name.strip()]


def _load(path: str) -> Any:
    from runner.spec.load import load

    if not Path(path).exists():
        raise UsageError(f"{path}: no such file")
    return load(path)


def _job_files(path: str, changed_since: str | None) -> tuple[list[Path], bool]:
    """The specs ``path`` names (a folder: every spec under it), and whether it is a folder."""
    from runner.gitops import changed_since as changed
    from runner.gitops import expand

    files = expand([path])
    if changed_since:
        files = changed(changed_since, files)
        if not files:
            print(f"no job spec changed since {changed_since}", file=sys.stderr)
    return files, Path(path).is_dir() or bool(changed_since)


def _console() -> Console:
    # tables keep their ids and timestamps on one line in CI logs and pipes too
    console = Console()
    return console if console.is_terminal else Console(width=200)
