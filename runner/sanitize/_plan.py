"""Plan time: each table's rules resolved, checked and turned into plain data for its chunk tasks.

A column's rule comes from, in this order: the table's own ``sanitize:``, ``defaults.sanitize``,
then the first job-wide ``sanitize.rules`` glob its name matches. A table rule naming a column
the table does not have, or a rule that does not fit the column's type, is a spec error that
names ``tables[i].sanitize.<column>``. Under ``profile: hipaa`` every column is also checked by
:mod:`runner.sanitize.hipaa`: a rule too weak for its class is a spec error, and an identifier
without a rule (and not under ``sanitize.allow``) is collected for the compiler, which refuses
the whole job at once (exit 6) with the rules to paste.

Nothing here keeps a value: content sampling for detection is read, looked at and dropped.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa

from runner.connectors.base import Connector, TableInfo
from runner.errors import SafetyError, SpecError
from runner.plan.plan import ColumnPlan
from runner.plan.types import arrow_from_str, source_type, target_type
from runner.sanitize import RULES, activate, key_id
from runner.sanitize._words import flow, report_text, rule_data, rule_text, unruled_message
from runner.sanitize.hipaa import MAX_AGE, SAMPLE_ROWS, Finding, detect, suggest, weakness
from runner.spec.models import Job, SanitizeRule, TableSpec
from runner.spec.validators import did_you_mean

__all__ = ["flow", "report_text", "rule_data", "rule_text", "unruled_message"]
"""Re-exported from :mod:`runner.sanitize._words`, where the words are."""

Sampler = Callable[[list[ColumnPlan]], Mapping[str, Sequence[str]]]
"""Reads up to a few hundred values of the given text columns (for content detection)."""


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


# --- resolution ---------------------------------------------------------------------------------
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


def _generated_from_ruled(
    index: int, info: TableInfo, choices: Mapping[str, _Choice], copied: Sequence[str]
) -> list[str]:
    """A generated column copied as it is, computed from a column that has a rule, carries what
    the rule takes away (``ssn_last4 GENERATED ALWAYS AS (right(ssn, 4))``): a spec error."""
    errors = []
    for column in info.columns:
        if not column.generated or column.name not in copied or column.name in choices:
            continue
        sources = [
            name for name in choices
            if re.search(rf"(?<![\w$]){re.escape(name)}(?![\w$])", column.generated, re.I)
        ]  # fmt: skip
        if sources:
            errors.append(
                f"tables[{index}].sanitize: column '{column.name}' is generated from "
                f"{', '.join(repr(n) for n in sources)}, which has a rule, so its values carry "
                f"what the rule removes; give it a rule too (e.g. {column.name}: drop) "
                "or leave it out with exclude:"
            )
    return errors


def _is_text(arrow: pa.DataType) -> bool:
    return pa.types.is_string(arrow) or pa.types.is_large_string(arrow)


def _read_plan(
    name: str, columns: list[ColumnPlan], helper: Callable[[str], ColumnPlan]
) -> ColumnPlan:
    for plan in columns:
        if plan.name == name:
            return plan
    return helper(name)


def _check_inputs(
    rule: str,
    options: Any,
    arrow: pa.DataType,
    by_name: Mapping[str, Any],
    keys: list[str],
    needed: set[str],
    helper: Callable[[str], ColumnPlan],
) -> tuple[Any, str | None]:
    """The options completed (``shift_date``'s default ``by``), the other columns a rule reads
    added to ``needed``, and the problem with them, if any."""
    if rule == "shift_date":
        by = options.get("by") or (keys[0] if keys else None)
        if by is None:
            return options, "shift_date needs 'by' (the column naming the entity): no key"
        if by not in by_name:
            return options, f"shift_date by: no column '{by}'{did_you_mean(by, list(by_name))}"
        needed.add(by)
        return {**options, "by": by}, None
    if rule == "age":
        at = options.get("at", "run_date")
        if at != "run_date":
            if at not in by_name:
                hint = did_you_mean(at, ["run_date", *by_name])
                return options, f"age at: '{at}' is neither run_date nor a column{hint}"
            typ = arrow_from_str(helper(at).arrow_type)
            if not (pa.types.is_date(typ) or pa.types.is_timestamp(typ)):
                return options, f"age at: column '{at}' is {typ}, not a date or timestamp"
            needed.add(at)
        return options, None
    if rule == "constant":
        return options, check_constant(options, arrow)
    return options, None


def check_constant(value: Any, arrow: pa.DataType) -> str | None:
    """Why ``value`` cannot be written to a column of ``arrow``, or None."""
    if value is None:
        return None
    try:
        scalar = pa.scalar(value)
        if not scalar.type.equals(arrow):
            scalar.cast(arrow)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError, OverflowError):
        return f"constant {flow(value)} is not a {arrow} value"
    return None


def sampler_for(source: Connector, table: str, as_text: set[str]) -> Sampler:
    """Reads up to :data:`~runner.sanitize.hipaa.SAMPLE_ROWS` rows of text columns of ``table``
    for content detection; what it returns is looked at and dropped, never stored or shown."""

    def sample(columns: list[ColumnPlan]) -> dict[str, list[Any]]:
        from sqlglot import exp

        from runner.plan.catalog import table_expr

        arrows = [arrow_from_str(c.arrow_type) for c in columns]
        projections = [
            source.read_expression(c.name, a, c.name in as_text)
            for c, a in zip(columns, arrows, strict=True)
        ]
        query = exp.select(*projections).from_(table_expr(table)).limit(SAMPLE_ROWS)
        schema = pa.schema([(c.name, a) for c, a in zip(columns, arrows, strict=True)])
        found: dict[str, list[Any]] = {c.name: [] for c in columns}
        sql = query.sql(dialect=source.dialect, identify=True)
        for batch in source.read(sql, schema, SAMPLE_ROWS):
            for c in columns:
                found[c.name].extend(batch.column(c.name).to_pylist())
        return found

    return sample


# --- the whole job ------------------------------------------------------------------------------
def check_job(job: Job, plans: Sequence[TableSanitize], all_tables: bool) -> None:
    """Checks across tables: allow entries and globs that match nothing (when every table was
    planned), then identifiers without a rule (SafetyError, with the rules to paste)."""
    spec = job.sanitize
    seen = {e["column"] for p in plans for e in p.report}
    missing = [c for c in job.defaults.sanitize or {} if c not in seen]
    if missing and all_tables:  # a rule for a column no table has is a typo, not a no-op
        raise SpecError(
            "\n".join(
                f"defaults.sanitize.{c}: column '{c}' is in none of the job's tables"
                f"{did_you_mean(c, sorted(seen))}"
                for c in missing
            )
        )
    if spec is not None and all_tables:
        used_allow = set().union(*(p.used_allow for p in plans)) if plans else set()
        unknown = [a for a in spec.allow if a not in used_allow]
        if unknown and spec.profile:
            raise SpecError(
                "\n".join(
                    f"sanitize.allow[{spec.allow.index(a)}]: '{a}' matches no copied column "
                    "of this job (write table.column; globs allowed)"
                    for a in unknown
                )
            )
        used_globs = set().union(*(p.used_globs for p in plans)) if plans else set()
        from loguru import logger

        for pattern in spec.rules:
            if pattern not in used_globs:
                logger.warning(f'sanitize.rules["{pattern}"] matches no column of this job')
    unruled = [u for p in plans for u in p.unruled]
    if unruled:
        raise SafetyError(unruled_message(unruled))
