"""Which rule a column gets: the table's own ``sanitize:``, then ``defaults.sanitize``, then the
first job-wide ``sanitize.rules`` glob its name matches; and which ``sanitize.allow`` entries
cover it. Globs match case-insensitively, on the bare column or on ``table.column``."""

from __future__ import annotations

import fnmatch
from collections.abc import Sequence
from dataclasses import dataclass

from runner.spec.models import Job, SanitizeRule, TableSpec


def _glob(pattern: str, *names: str) -> bool:
    return any(fnmatch.fnmatchcase(n.lower(), pattern.lower()) for n in names if n)


def _allowed(entry: str, table: str, targets: Sequence[str], column: str) -> bool:
    if "." not in entry:
        return _glob(entry, column)
    table_part, _, column_part = entry.rpartition(".")
    return _glob(column_part, column) and _glob(table_part, table, *targets)


@dataclass
class _Choice:
    rule: SanitizeRule
    where: str
    """The spec path of the rule, for errors: tables[1].sanitize.ssn, sanitize.rules["*ssn*"]."""


def _choose(
    job: Job, raw: TableSpec, index: int, column: str, names: Sequence[str]
) -> tuple[_Choice | None, str | None]:
    """The rule for ``column`` and the glob it came from (if it came from one)."""
    own = raw.sanitize or {}
    if column in own:
        return _Choice(own[column], f"tables[{index}].sanitize.{column}"), None
    defaults = job.defaults.sanitize or {}
    if column in defaults:
        return _Choice(defaults[column], f"defaults.sanitize.{column}"), None
    rules = job.sanitize.rules if job.sanitize else {}
    for pattern, rule in rules.items():
        if _glob(pattern, column, *(f"{n}.{column}" for n in names)):
            return _Choice(rule, f'sanitize.rules["{pattern}"] ({column})'), pattern
    return None, None
