"""pydantic's validation errors, retold at a position in the user's words."""

from __future__ import annotations

import re
from typing import Any, get_args, get_origin

from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

from runner.spec._positions import Loc, Positions
from runner.spec._yaml import Problem
from runner.spec.models import (
    FileSpec,
    Job,
    SanitizeRule,
    SanitizeSpec,
    Schedule,
    TableOptions,
    TableSpec,
)
from runner.spec.validators import did_you_mean

LATER = {
    "audit_table": "'audit_table' (the purge audit mirrored into the source database) is not "
    "available yet; the audit is in the state store ('etlrun history --purges')",
    "connections": "named connections go in a connections.yaml beside the spec (name: URL); "
    "then write the name as source: or target:",
}
"""Keys DESIGN §3 promises that this version does not read yet."""

_WANTED = {
    Job: "a mapping of keys (source, target, tables, ...)",
    TableSpec: "a table name or a mapping (name, mode, ...)",
    Schedule: "a cron string or a mapping {cron, timezone}",
    TableOptions: "a mapping of table options",
    FileSpec: "a mapping (include, exclude, path, to, compare, delete, ...)",
    SanitizeSpec: "a mapping (key, profile, allow, rules)",
    SanitizeRule: "a rule name (drop, null, hash, mask, email, zip3, age) or {rule: options}",
}


def problems(exc: ValidationError, data: Any, positions: Positions, bad: set[Loc]) -> list[Problem]:
    """One :class:`Problem` per error, skipping values already reported while reading YAML."""
    out = []
    for error in exc.errors():
        loc = clean_loc(error["loc"], data, keep_last=error["type"] == "missing")
        if any(loc[: len(b)] == b for b in bad):
            continue
        out.append(_problem(error, loc, positions))
    return out


def clean_loc(loc: tuple[Any, ...], data: Any, keep_last: bool = False) -> Loc:
    """pydantic's ``loc`` with union and validator tags dropped, so it matches the data."""
    out: list[str | int] = []
    current = data
    for i, item in enumerate(loc):
        if isinstance(current, dict) and isinstance(item, str) and item in current:
            current = current[item]
        elif isinstance(current, list) and isinstance(item, int) and 0 <= item < len(current):
            current = current[item]
        elif keep_last and i == len(loc) - 1 and isinstance(item, str):
            pass  # the missing key itself
        else:
            continue  # e.g. 'function-before[_shorthand(), TableSpec]', or inside a shorthand
        out.append(item)
    return tuple(out)


def model_at(loc: Loc) -> type[BaseModel] | None:
    """The model that validates the mapping at ``loc``, walking the fields from :class:`Job`."""
    model: type[BaseModel] | None = Job
    mapping_key = False
    for item in loc:
        if isinstance(item, int):
            continue
        if mapping_key:  # a key of a `dict[str, Model]` field (sanitize: {ssn: ...}), not a field
            mapping_key = False
            continue
        if model is None or item not in model.model_fields:
            return None
        annotation = model.model_fields[item].annotation
        mapping_key = _is_mapping(annotation)
        model = _inner_model(annotation)
    return model


def _is_mapping(annotation: Any) -> bool:
    origin = get_origin(annotation)
    if origin is dict:
        return True
    return any(_is_mapping(arg) for arg in get_args(annotation))


def _inner_model(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in get_args(annotation):
        found = _inner_model(arg)
        if found is not None:
            return found
    return None


def describe(value: Any) -> str:
    """A value as the user wrote it: ``'abc'``, ``12``, ``true``, ``nothing``, ``a list``."""
    if value is None:
        return "nothing"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return f"'{value}'" if len(value) <= 60 else f"'{value[:57]}...'"
    return "a list" if isinstance(value, list) else "a mapping"


def _problem(error: ErrorDetails, loc: Loc, positions: Positions) -> Problem:
    kind = error["type"]
    if kind == "extra_forbidden":
        return Problem(positions.key(loc), loc, _unknown_key(loc))
    if kind == "missing":
        parent = loc[:-1]
        span = positions.value(parent) if parent else positions.root()
        return Problem(span, parent, f"missing required key '{loc[-1]}'")
    return Problem(positions.value(loc), loc, message(error, loc))


def _unknown_key(loc: Loc) -> str:
    key = str(loc[-1])
    if key in LATER:
        return f"unknown key: {LATER[key]}"
    model = model_at(loc[:-1])
    known = list(model.model_fields) if model else []
    hint = did_you_mean(key, known)
    if not hint and model in (TableOptions, TableSpec):
        later = did_you_mean(key, list(LATER))
        if later:
            close = later.split("'")[1]
            return f"unknown key{later[:-2]}? {LATER[close]})"
    if hint or not known:
        return f"unknown key{hint}"
    return f"unknown key (valid here: {', '.join(known)})"


def message(error: ErrorDetails, loc: Loc) -> str:
    """The text for one pydantic error, in the user's words."""
    kind, value, ctx = error["type"], error.get("input"), error.get("ctx") or {}
    got = describe(value)
    if kind in ("value_error", "assertion_error"):
        return re.sub(r"^(Value|Assertion) error, ", "", error["msg"])
    if kind in ("int_parsing", "int_type", "int_from_float"):
        return f"expected an integer, got {got}"
    if kind in ("float_parsing", "float_type"):
        return f"expected a number, got {got}"
    if kind in ("bool_parsing", "bool_type"):
        return f"expected true or false, got {got}"
    if kind == "string_type":
        quote = f"; quote it if you mean the text ('{value}')" if _is_scalar(value) else ""
        return f"expected a string, got {got}{quote}"
    if kind == "list_type":
        one = f" (write [{value}] for a list of one)" if isinstance(value, str) else ""
        return f"expected a list, got {got}{one}"
    if kind in ("dict_type", "model_type", "model_attributes_type"):
        model = model_at(loc) if loc else Job
        wanted = _WANTED.get(model, "a mapping") if model else "a mapping"
        return f"expected {wanted}, got {got}"
    if kind == "literal_error":
        allowed = re.findall(r"'([^']*)'|(\d+)", str(ctx.get("expected", "")))
        names = [a or b for a, b in allowed]
        hint = did_you_mean(value, names) if isinstance(value, str) else ""
        return f"{got} is not one of: {', '.join(names)}{hint}"
    bounds = {
        "greater_than": "must be greater than {gt}",
        "greater_than_equal": "must be at least {ge}",
        "less_than": "must be less than {lt}",
        "less_than_equal": "must be at most {le}",
        "too_short": "must have at least {min_length} item(s)",
        "too_long": "must have at most {max_length} item(s)",
    }
    if kind in bounds:
        return bounds[kind].format(**ctx)
    text = str(error["msg"])
    return text[:1].lower() + text[1:]


def _is_scalar(value: Any) -> bool:
    return isinstance(value, bool | int | float)
