"""Named connections: a ``connections.yaml`` beside the job specs, referenced by name.

```yaml
# jobs/connections.yaml
clinic: ${CLINIC_URL:-sqlite:///demo/clinic.db}
analytics: postgresql://etl:${secret:ANALYTICS_PASSWORD}@db/analytics
files: sftp://backup@nas/etl/

# jobs/nightly.yaml
source: clinic
target: analytics
```

The file is a mapping of name -> URL (optionally under a top-level ``connections:``), read with
the spec loader's YAML (1.2, positions kept). A URL is expanded like a spec's: ``${VAR}`` from the
environment and the ``.env`` beside the spec, ``${secret:NAME}``, ``${file:/path}``; what it
expands that is secret is registered, so it is scrubbed from every output. Only the connections
a spec names are expanded, so one missing variable fails only the jobs that use it. Problems are
reported at their place in ``connections.yaml`` (file:line:col and the connection's name).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from runner.errors import SpecIssue

FILE_NAMES = ("connections.yaml", "connections.yml")
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*")


@dataclass
class Resolved:
    """The URL a ``source:`` / ``target:`` value stands for, and what went wrong finding it."""

    url: str
    error: str | None = None
    """A problem to report at the spec's own ``source:`` / ``target:`` value."""
    issues: list[SpecIssue] = field(default_factory=list)
    """Problems inside ``connections.yaml``, at their own positions."""


def is_name(value: str) -> bool:
    """True for a connection name (``clinic``, ``dw_prod``), False for anything URL-like."""
    return bool(_NAME.fullmatch(value))


def find(spec_file: str | Path) -> Path | None:
    folder = Path(spec_file).parent
    return next((folder / n for n in FILE_NAMES if (folder / n).is_file()), None)


class Connections:
    """The ``connections.yaml`` beside one spec, parsed once per load."""

    def __init__(self, spec_file: str) -> None:
        self.spec_file = spec_file
        self.file = find(spec_file)
        self._parsed: tuple[dict[str, Any], Any, list[SpecIssue]] | None = None

    def resolve(self, value: str, lookup: Callable[[str], str | None], where: str) -> Resolved:
        """``value`` as it is when it is a URL; else the URL of the connection it names."""
        if not is_name(value):
            return Resolved(value)
        if self.file is None:
            folder = Path(self.spec_file).parent
            return Resolved(
                value,
                f"'{value}' is neither a URL nor a named connection "
                f"(no {FILE_NAMES[0]} in {folder})",
            )
        entries, positions, issues = self._parse()
        if issues:
            return Resolved(value, f"{self.file} is invalid (see its errors)", issues)
        if value not in entries:
            known = ", ".join(sorted(entries)) or "none"
            return Resolved(value, f"no connection '{value}' in {self.file} (defined: {known})")
        return self._expand(value, entries[value], positions, lookup, where)

    def _parse(self) -> tuple[dict[str, Any], Any, list[SpecIssue]]:
        if self._parsed is None:
            self._parsed = _parse(self.file) if self.file else ({}, None, [])
        return self._parsed

    def _expand(
        self,
        name: str,
        entry: tuple[str, tuple[Any, ...]],
        positions: Any,
        lookup: Callable[[str], str | None],
        where: str,
    ) -> Resolved:
        from runner import secrets
        from runner.spec._interpolate import interpolate

        text, loc = entry
        expansion = interpolate(text, lookup, where)
        if expansion.errors:
            span = positions.value(loc)
            issues = [
                SpecIssue(str(self.file), span.line, span.col, name, secrets.scrub(e))
                for e in expansion.errors
            ]
            return Resolved(name, f"connection '{name}' in {self.file} cannot be expanded", issues)
        for variable, used in expansion.used.items():
            if secrets.is_secret_name(variable) or ":" in variable:  # ${secret:..}, ${file:..}
                secrets.register(used)
        secrets.register_url(expansion.text)
        return Resolved(expansion.text)


def template(spec_file: str | Path, name: str) -> str | None:
    """The URL text of connection ``name`` as written, ``${VAR}`` unexpanded (for Dask workers,
    which expand it from their own environment); None if there is no such connection."""
    file = find(spec_file)
    if file is None or not is_name(name):
        return None
    entries = _parse(file)[0]
    return entries[name][0] if name in entries else None


def _parse(file: Path) -> tuple[dict[str, Any], Any, list[SpecIssue]]:
    """name -> (URL text, its loc), the positions, and every structural problem."""
    from runner.spec._positions import render_path, snippet
    from runner.spec._yaml import parse

    try:
        text = file.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        return {}, None, [SpecIssue(str(file), 1, 1, "", f"cannot read: {exc}")]
    doc = parse(text)

    def issue(span: Any, loc: tuple[Any, ...], message: str) -> SpecIssue:
        return SpecIssue(
            str(file),
            span.line,
            span.col,
            render_path(loc),
            message,
            snippet(doc.positions.lines, span),
        )

    issues = [issue(p.span, p.loc, p.message) for p in doc.problems]
    if doc.fatal:
        return {}, doc.positions, issues
    data, base = doc.data, ()
    if isinstance(data, dict) and set(data) == {"connections"}:
        data, base = data["connections"], ("connections",)
    if data is None:
        data = {}
    if not isinstance(data, dict):
        span = doc.positions.value(base) if base else doc.positions.root()
        issues.append(issue(span, base, "expected a mapping of connection name -> URL"))
        return {}, doc.positions, issues
    entries: dict[str, tuple[str, tuple[Any, ...]]] = {}
    for name, url in data.items():
        loc = (*base, name)
        if loc in doc.bad:
            continue
        if not is_name(name):
            message = f"'{name}' is not a connection name (letters, digits, _ and -)"
            issues.append(issue(doc.positions.key(loc), loc, message))
        elif not isinstance(url, str):
            issues.append(issue(doc.positions.value(loc), loc, "expected a URL (a string)"))
        else:
            entries[name] = (url, loc)
    return entries, doc.positions, issues
