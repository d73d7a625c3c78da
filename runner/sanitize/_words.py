"""The words sanitize shows: rules as a user writes them, the plan's column -> class -> rule
lines, and the profile's refusal with the rules to paste."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from runner.spec.models import SanitizeRule

if TYPE_CHECKING:
    from runner.sanitize._plan import Unruled


# --- rules as the user writes them ----------------------------------------------------------
_PLAIN = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]*$")
_SHORT = {"fake": "provider", "truncate_date": "to", "noise": "pct", "shift_date": "max_days"}


def flow(value: Any) -> str:
    """Plain data as one line of YAML flow style, the way a rule is pasted into a spec.

    Example:
        >>> flow({"truncate_date": {"to": "year", "max_age": 89}})
        '{truncate_date: {to: year, max_age: 89}}'
    """
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {flow(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list | tuple):
        return "[" + ", ".join(flow(v) for v in value) + "]"
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, int | float):
        return repr(value)
    text = str(value)
    reserved = text.lower() in ("null", "true", "false", "yes", "no", "on", "off", "~", "")
    return text if _PLAIN.match(text) and not reserved else json.dumps(text)


def rule_data(rule: SanitizeRule) -> Any:
    """``rule`` as the shortest plain data that says it: ``drop``, ``{mask: {keep_last: 4}}``."""
    name = rule.name
    value = getattr(rule, name)
    if name in ("drop", "null", "zip3"):
        return name
    if hasattr(value, "model_dump"):
        options = value.model_dump(exclude_defaults=True)
        if not options:
            return name
        if name in _SHORT and list(options) == [_SHORT[name]]:
            return {name: options[_SHORT[name]]}
        return {name: options}
    return {name: value}


def rule_text(rule: SanitizeRule) -> str:
    data = rule_data(rule)
    return data if isinstance(data, str) else flow(data)


def unruled_message(unruled: Sequence[Unruled]) -> str:
    """The refusal: each identifier column and its class, then the rules to paste."""
    width = max(len(f"{u.table}.{u.finding.column}") for u in unruled)
    lines = [
        f"sanitize: profile hipaa found {len(unruled)} column"
        f"{'s' if len(unruled) != 1 else ''} holding HIPAA Safe Harbor identifiers without a "
        "rule; nothing was read or written.",
    ]
    for u in unruled:
        where = f"{u.table}.{u.finding.column}"
        lines.append(f"  {where:<{width}}  {u.finding.label}  (found by {u.finding.via})")
    lines += [
        "Give each a rule, or list it under sanitize.allow to let it through as it is.",
        "Rules to paste (into each table's entry under tables:):",
    ]
    by_table: dict[tuple[int, str], list[Unruled]] = {}
    for u in unruled:
        by_table.setdefault((u.index, u.table), []).append(u)
    for (index, table), items in by_table.items():
        lines += [f"  # tables[{index}]: {table}", "    sanitize:"]
        lines += [f"      {u.finding.column}: {flow(u.suggestion)}" for u in items]
    return "\n".join(lines)


def report_text(report: Sequence[Mapping[str, Any]], profile: str | None) -> list[str]:
    """The plan's lines for one table: column -> class -> rule, every column."""
    if not report:
        return []
    head = "  sanitize" + (f" (profile {profile})" if profile else "") + ":"
    width = max(len(str(e["column"])) for e in report)
    cls_width = max(len(_cls(e)) for e in report)
    lines = [head]
    for e in report:
        rule = e["rule"] or "-"
        if e.get("into"):
            rule += f"  -> column {e['into']}"
        lines.append(f"    {e['column']:<{width}}  {_cls(e):<{cls_width}}  {rule}")
    return lines


def _cls(entry: Mapping[str, Any]) -> str:
    return str(entry["class"]) if entry["class"] else "-"
