"""Plan-time checks of sanitize rules beyond fitting their column's type: the other columns a
rule reads (``shift_date``'s ``by``, ``age``'s ``at``), a constant's value, generated columns
computed from a column with a rule, and, across the whole job, ``allow`` entries and globs that
match nothing and identifiers left without a rule."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from runner.connectors.base import TableInfo
from runner.errors import SafetyError, SpecError
from runner.plan.plan import ColumnPlan
from runner.plan.types import arrow_from_str
from runner.sanitize._resolve import _Choice
from runner.sanitize._words import flow, unruled_message
from runner.spec.models import Job
from runner.spec.validators import did_you_mean

if TYPE_CHECKING:
    from runner.sanitize._plan import TableSanitize


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
