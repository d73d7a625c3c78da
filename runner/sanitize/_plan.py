"""Plan time: each table's rules resolved, checked and turned into plain data for its chunk tasks.

A column's rule comes from, in this order: the table's own ``sanitize:``, ``defaults.sanitize``,
then the first job-wide ``sanitize.rules`` glob its name matches. A table rule naming a column
the table does not have, or a rule that does not fit the column's type, is a spec error that
names ``tables[i].sanitize.<column>``. Under ``profile: hipaa`` every column is also checked by
:mod:`runner.sanitize.hipaa`: a rule too weak for its class is a spec error, and an identifier
without a rule (and not under ``sanitize.allow``) is collected for the compiler, which refuses
the whole job at once (exit 6) with the rules to paste.

Nothing here keeps a value: content sampling for detection is read, looked at and dropped.

Which rule a column gets is :mod:`runner.sanitize._resolve`; the checks beyond a rule fitting
its column, and those across the whole job, are :mod:`runner.sanitize._checks`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa

from runner.connectors.base import TableInfo
from runner.errors import SpecError
from runner.plan.plan import ColumnPlan
from runner.plan.types import arrow_from_str, source_type, target_type
from runner.sanitize import RULES, activate, key_id
from runner.sanitize._checks import (
    _check_inputs,
    _generated_from_ruled,
    check_constant,
    check_job,
)
from runner.sanitize._resolve import _allowed, _Choice, _choose
from runner.sanitize._sample import Sampler, sampler_for
from runner.sanitize._words import flow, report_text, rule_data, rule_text, unruled_message
from runner.sanitize.hipaa import MAX_AGE, Finding, detect, suggest, weakness
from runner.spec.models import Job, TableSpec
from runner.spec.validators import did_you_mean

__all__ = [
    "check_constant",
    "check_job",
    "flow",
    "report_text",
    "rule_data",
    "rule_text",
    "sampler_for",
    "unruled_message",
]
"""Re-exported from where they are: the words from :mod:`runner.sanitize._words`, the checks
from :mod:`runner.sanitize._checks`, the sampler from :mod:`runner.sanitize._sample`."""


@dataclass
class Unruled:
    """An identifier the profile found that has no rule: what to tell the user."""

    index: int
    table: str
    finding: Finding
    suggestion: Any


@dataclass
class TableSanitize:
    """One table's sanitize plan, as the compiler and the copy mode need it."""

    read: list[ColumnPlan]
    """The source columns to SELECT: the copied ones, plus those rules read (by, at)."""
    columns: list[ColumnPlan]
    """The columns written, after the rules (dropped ones gone, derived ones added)."""
    params: dict[str, Any] | None
    """Plain data for each chunk task: ``params["sanitize"]`` (no key, no values); None when
    no rule changes anything (the profile found nothing, or only allowed columns)."""
    report: list[dict[str, Any]]
    """column -> class -> rule for every column, for `etlrun plan` and the run record."""
    unruled: list[Unruled] = field(default_factory=list)
    key_sanitized: bool = False
    """The chunking key's values change, so chunks cannot find their rows by key range."""
    nullable: set[str] = field(default_factory=set)
    """Columns written as nullable: a sanitized column keeps nothing of the source but a type."""
    used_globs: set[str] = field(default_factory=set)
    used_allow: set[str] = field(default_factory=set)


def plan_table(
    job: Job,
    raw: TableSpec,
    index: int,
    name: str,
    info: TableInfo,
    columns: list[ColumnPlan],
    keys: list[str],
    source_dialect: str,
    target_dialect: str,
    helper: Callable[[str], ColumnPlan],
    sampler: Sampler | None = None,
    target_name: str = "",
) -> TableSanitize | None:
    """Resolve and check ``name``'s rules; None when the job sanitizes nothing of this table.

    Args:
        columns: the copied columns as the compiler mapped them (source types, target DDL).
        keys: the key columns (the first one chunks the table).
        helper: maps a source column that is not copied (one a rule reads) to its ColumnPlan.
        sampler: reads a sample of text columns for the profile's content detection.
    """
    spec = job.sanitize
    profile = spec.profile if spec else None
    names = [name, name.rpartition(".")[2], target_name]
    available = {c.name for c in info.columns}
    errors: list[str] = []

    for column in raw.sanitize or {}:
        if column not in available:
            errors.append(
                f"tables[{index}].sanitize.{column}: column '{column}' does not exist in {name}"
                f"{did_you_mean(column, sorted(available))} "
                f"(columns: {', '.join(c.name for c in info.columns)})"
            )

    choices: dict[str, _Choice] = {}
    used_globs: set[str] = set()
    for plan in columns:
        choice, pattern = _choose(job, raw, index, plan.name, names)
        if choice is not None:
            choices[plan.name] = choice
        if pattern is not None:
            used_globs.add(pattern)
    if not choices and profile is None:
        if errors:
            raise SpecError("\n".join(errors))
        return None
    activate()  # from here on (sampling included), driver errors quote no values

    findings: dict[str, Finding] = {}
    if profile == "hipaa":
        arrows = [(c.name, arrow_from_str(c.arrow_type)) for c in columns]
        text_columns = [c for c, (_, a) in zip(columns, arrows, strict=True) if _is_text(a)]
        sample = sampler(text_columns) if sampler and text_columns else None
        findings = detect(name, arrows, keys, sample)

    allow = spec.allow if spec else []
    used_allow: set[str] = set()
    steps: list[dict[str, Any]] = []
    outputs: list[ColumnPlan] = []
    report: list[dict[str, Any]] = []
    unruled: list[Unruled] = []
    needed: set[str] = set()
    nullable: set[str] = set()
    key_sanitized = False
    by_name = {c.name: c for c in info.columns}

    for plan in columns:
        column, arrow = plan.name, arrow_from_str(plan.arrow_type)
        choice, finding = choices.get(plan.name), findings.get(plan.name)
        entry: dict[str, Any] = {"column": column, "class": None, "via": None, "rule": None}
        if finding is not None:
            entry["class"], entry["via"] = finding.label, finding.via
        allowed = [a for a in allow if _allowed(a, name, names[1:], column)]
        used_allow.update(allowed)
        if choice is None:
            entry["rule"] = "allowed" if allowed and finding else None
            report.append(entry)
            outputs.append(plan)
            needed.add(column)
            if finding is not None and not allowed:
                unruled.append(Unruled(index, name, finding, suggest(finding, arrow)))
            continue

        rule, where = choice.rule, choice.where
        definition = RULES[rule.name]
        if not definition.fits(arrow):
            errors.append(
                f"{where}: '{rule.name}' does not fit column '{column}' of type {arrow} "
                f"({plan.source_type}); it takes {definition.fits_text}"
            )
            continue
        options = rule.options
        if finding is not None:
            why = weakness(finding, rule.name, options if isinstance(options, dict) else {})
            if why:
                errors.append(f"{where}: under profile hipaa, {why}")
                continue
        note = None
        if (
            rule.name == "truncate_date"
            and profile == "hipaa"
            and finding is not None
            and finding.hint == "birth"
            and options.get("max_age") is None
        ):
            options = {**options, "max_age": MAX_AGE}
            note = f"max_age {MAX_AGE} (profile hipaa, birth date)"
        entry["rule"] = rule_text(rule) + (f"  [{note}]" if note else "")
        is_key = column in keys
        key_sanitized = key_sanitized or is_key
        if is_key and rule.name == "null":
            errors.append(f"{where}: 'null' on key column '{column}' would make every key NULL")
            continue
        if rule.name == "drop":
            report.append(entry)
            continue

        into = column
        if rule.name == "age" and options.get("into"):
            into = options["into"]
            entry["into"] = into
        options, problem = _check_inputs(rule.name, options, arrow, by_name, keys, needed, helper)
        if problem:
            errors.append(f"{where}: {problem}")
            continue
        in_length = source_type(by_name[column].type_sql, source_dialect).length
        out_arrow, out_length = definition.output(arrow, in_length, options)
        same = out_arrow.equals(arrow) and out_length == in_length
        if same:
            ddl = plan.target_type
        elif (raw.types or {}).get(column) or (job.defaults.types or {}).get(column):
            errors.append(
                f"{where}: '{rule.name}' writes {out_arrow}, so the types: override of "
                f"'{column}' cannot apply; remove one of them"
            )
            continue
        else:
            ddl = target_type(out_arrow, target_dialect, length=out_length, is_key=is_key).ddl
        outputs.append(ColumnPlan(into, plan.source_type, str(out_arrow), ddl, None))
        if not is_key:
            nullable.add(into)
        needed.add(column)
        steps.append(
            {"column": column, "into": into, "rule": rule.name, "options": options,
             "type": str(out_arrow)}
        )  # fmt: skip
        report.append(entry)

    seen: dict[str, int] = {}
    for plan in outputs:
        seen[plan.name] = seen.get(plan.name, 0) + 1
    for column, count in seen.items():
        if count > 1:
            errors.append(
                f"tables[{index}].sanitize: column '{column}' would be written twice "
                "(an age rule's 'into' names a column that is copied too)"
            )
    errors += _generated_from_ruled(index, info, choices, [c.name for c in columns])
    if errors:
        raise SpecError("\n".join(errors))

    read = [_read_plan(c.name, columns, helper) for c in info.columns if c.name in needed]
    keyed = any(RULES[s["rule"]].keyed for s in steps)
    key = spec.key.get_secret_value() if spec and spec.key else None
    changed = bool(steps) or [c.name for c in read] != [c.name for c in outputs]
    params = {
        "key_id": key_id(key) if keyed and key else None,
        "read": [[c.name, c.arrow_type] for c in read],
        "output": [[c.name, c.arrow_type] for c in outputs],
        "steps": steps,
    }
    return TableSanitize(
        read=read,
        columns=outputs,
        params=params if changed else None,
        report=report,
        unruled=unruled,
        key_sanitized=key_sanitized,
        nullable=nullable,
        used_globs=used_globs,
        used_allow=used_allow,
    )


def _is_text(arrow: pa.DataType) -> bool:
    return pa.types.is_string(arrow) or pa.types.is_large_string(arrow)


def _read_plan(
    name: str, columns: list[ColumnPlan], helper: Callable[[str], ColumnPlan]
) -> ColumnPlan:
    for plan in columns:
        if plan.name == name:
            return plan
    return helper(name)
