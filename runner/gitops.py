"""Folders of job specs, the ones changed since a git ref, and ``connections.yaml`` beside them.

A folder stands for every ``*.yaml`` / ``*.yml`` under it (sorted), except ``connections.yaml``,
which names connections for the specs in its folder::

    # jobs/connections.yaml
    clinic: ${CLINIC_URL:-sqlite:///demo/clinic.db}
    analytics: postgresql://etl:${ANALYTICS_PASSWORD}@db/analytics

    # jobs/nightly.yaml
    source: clinic
    target: analytics
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Callable
from pathlib import Path

import yaml

from runner.errors import UsageError

CONNECTIONS_FILE = "connections.yaml"
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


_CONNECTION_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*")


def resolve_connection(
    value: str, spec_file: str, lookup: Callable[[str], str | None], where: str
) -> tuple[str, str | None]:
    """``value`` if it is a URL; else the URL the ``connections.yaml`` beside ``spec_file``
    names it, ``${...}`` expanded (what it expands is registered as secret). Returns
    (url, error)."""
    if not _CONNECTION_NAME.fullmatch(value):
        return value, None
    folder = Path(spec_file).parent
    candidates = (folder / CONNECTIONS_FILE, folder / "connections.yml")
    file = next((c for c in candidates if c.is_file()), None)
    if file is None:
        return value, (
            f"'{value}' is neither a URL nor a named connection "
            f"(no {CONNECTIONS_FILE} in {folder or '.'})"
        )
    from runner import secrets
    from runner.spec._interpolate import interpolate

    try:
        data = yaml.safe_load(file.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        return value, f"{file}: cannot read: {exc}"
    if isinstance(data, dict) and isinstance(data.get("connections"), dict):
        data = data["connections"]
    if not isinstance(data, dict) or not all(isinstance(v, str) for v in data.values()):
        return value, f"{file}: expected a mapping of connection name -> URL"
    if value not in data:
        known = ", ".join(sorted(data)) or "none"
        return value, f"no connection '{value}' in {file} (defined: {known})"
    expansion = interpolate(data[value], lookup, where)
    if expansion.errors:
        return value, f"{file}: {value}: {'; '.join(expansion.errors)}"
    for name, used in expansion.used.items():
        if secrets.is_secret_name(name) or ":" in name:
            secrets.register(used)
    secrets.register_url(expansion.text)
    return expansion.text, None
