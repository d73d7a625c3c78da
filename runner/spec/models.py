"""What users write: the pydantic models of a job spec (DESIGN §3).

The :class:`Job` lives here; its parts live beside it and are re-exported, so
``from runner.spec.models import ...`` keeps working for every model: tables and steps in
:mod:`runner.spec.tablespec`, sanitize rules in :mod:`runner.spec.sanitizespec`, the schedule
in :mod:`runner.spec.schedulespec`, file entries in :mod:`runner.spec.filespec`.

Attribute docstrings become the descriptions in ``schemas/job.schema.json``.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import (
    Field,
    ValidationError,
    ValidatorFunctionWrapHandler,
    field_validator,
    model_validator,
)

from runner.spec._base import SpecModel as _Model
from runner.spec.filespec import FileSpec, check_file_job
from runner.spec.sanitizespec import (
    RULE_NAMES,
    AgeOptions,
    EmailOptions,
    FakeOptions,
    HashOptions,
    MaskOptions,
    NoiseOptions,
    RedactOptions,
    SanitizeRule,
    SanitizeSpec,
    ShiftDateOptions,
    TruncateDateOptions,
)
from runner.spec.schedulespec import Schedule
from runner.spec.tablespec import (
    DEFAULTS,
    MODES_ALL,
    IfExists,
    Retention,
    SqlStep,
    TableOptions,
    TableSpec,
)

__all__ = [
    "DEFAULTS",
    "MODES_ALL",
    "RULE_NAMES",
    "AgeOptions",
    "EmailOptions",
    "FakeOptions",
    "FileSpec",
    "HashOptions",
    "IfExists",
    "Job",
    "MaskOptions",
    "NoiseOptions",
    "RedactOptions",
    "Retention",
    "SanitizeRule",
    "SanitizeSpec",
    "Schedule",
    "ShiftDateOptions",
    "SqlStep",
    "TableOptions",
    "TableSpec",
    "TruncateDateOptions",
]


class Job(_Model):
    """A job spec: where data comes from, where it goes, and which tables move how."""

    version: Literal[1] = 1
    """Spec format version."""
    job: str | None = None
    """The job's name (default: the file's stem); one live run per name."""
    description: str | None = None
    """Free text shown in plans and history."""
    source: str
    """Where data comes from: a SQLAlchemy URL (sqlite:///x.db, postgresql://..., mariadb://...,
    duckdb:///x.duckdb), or the name of a connection in the connections.yaml beside the spec."""
    target: str
    """Where data goes: a SQLAlchemy URL, or a file store folder (file:///out/,
    sftp://user@host/path/, s3://bucket/prefix/) for copy and backup, or the name of a
    connection in the connections.yaml beside the spec."""
    schedule: Schedule | None = None
    """When `etlrun schedule` runs the job: a cron string or {cron, timezone}."""
    workers: Annotated[int, Field(gt=0, le=256)] = 4
    """Chunk tasks run at once."""
    executor: str | None = None
    """Where chunk tasks run: threads (default), dask-local[:N] (a local Dask cluster of N worker
    processes, default 2) or dask://HOST:PORT (a Dask scheduler). --executor and
    ETLRUN_EXECUTOR override it."""
    defaults: TableOptions = TableOptions()
    """Options applied to every table unless the table sets them."""
    tables: Annotated[list[TableSpec], Field(min_length=1)] = []
    """The tables to move: names, globs, or entries with options (a file job has files:)."""
    mode: Literal["copy", "sync"] | None = None
    """File jobs: copy (default; new and changed files, never a delete) or sync (delete: true
    may also delete target files whose source is gone)."""
    files: Annotated[list[FileSpec], Field(min_length=1)] | None = None
    """File jobs (source and target are file stores): which files move, instead of tables:."""
    sanitize: SanitizeSpec | None = None
    """Job-wide sanitizing: the HMAC key, a profile (hipaa), columns allowed through, and rules
    by column-name glob."""
    before: list[SqlStep] | None = None
    """SQL steps run, in order, before any table's first task."""
    after: list[SqlStep] | None = None
    """SQL steps run, in order, after every table's last task."""

    @model_validator(mode="wrap")
    @classmethod
    def _tables_or_files(cls, data: Any, handler: ValidatorFunctionWrapHandler) -> Job:
        """``tables`` is required unless the job lists ``files``, reported with the other errors
        of the pass as pydantic reports a missing key; then the checks of a file job, each at its
        own key (:func:`runner.spec.filespec.check_file_job`)."""
        missing = isinstance(data, dict) and "tables" not in data and data.get("files") is None
        line = {"type": "missing", "loc": ("tables",), "input": data}
        try:
            job: Job = handler(data)
        except ValidationError as exc:
            if not missing:
                raise
            try:
                more = ValidationError.from_exception_data(exc.title, [*exc.errors(), line])  # type: ignore[list-item]
            except Exception:  # an error type pydantic cannot rebuild: report the others
                raise exc from None
            raise more from None
        lines = [line] if missing else []
        lines += [
            {"type": "value_error", "loc": loc, "input": None, "ctx": {"error": ValueError(text)}}
            for loc, text in check_file_job(job)
        ]
        if lines:
            raise ValidationError.from_exception_data(cls.__name__, lines)  # type: ignore[arg-type]
        return job

    @model_validator(mode="after")
    def _keyed_rules_have_a_key(self) -> Job:
        from runner.sanitize import KEYED

        scopes: list[tuple[str, dict[str, SanitizeRule] | None]] = [
            ("sanitize.rules", self.sanitize.rules if self.sanitize else None),
            ("defaults.sanitize", self.defaults.sanitize),
            *((f"tables[{i}].sanitize", t.sanitize) for i, t in enumerate(self.tables)),
        ]
        if self.sanitize is not None and self.sanitize.key is not None:
            return self
        keyed = [
            f"{where}.{column}" if where != "sanitize.rules" else f'{where}["{column}"]'
            for where, rules in scopes
            for column, rule in (rules or {}).items()
            if rule.name in KEYED
        ]
        if keyed:
            more = f" and {len(keyed) - 3} more" if len(keyed) > 3 else ""
            raise ValueError(
                f"{', '.join(keyed[:3])}{more}: keyed rules ({', '.join(KEYED)}) need "
                "sanitize.key, e.g. key: ${SANITIZE_KEY}"
            )
        return self

    @model_validator(mode="after")
    def _mode_options(self) -> Job:
        """Options of one mode given to a table of another, and what a mode needs."""
        owners = {
            "strategy": "incremental", "cursor": "incremental", "lookback": "incremental",
            "max_shrink_pct": "bulk", "allow_empty": "bulk", "keep_backups": "bulk",
            "delete": "sync",
        }  # fmt: skip
        problems = []
        for index, raw in enumerate(self.tables):
            table = self.resolve(raw)
            for key, mode in owners.items():
                if key in raw.model_fields_set and table.mode != mode:
                    problems.append(
                        f"tables[{index}].{key}: '{key}' is an option of mode {mode}, "
                        f"but this table's mode is {table.mode}"
                    )
            if table.mode != "incremental":
                continue
            if table.strategy == "checksum":
                for key in ("cursor", "lookback"):
                    if getattr(table, key) is not None:
                        problems.append(
                            f"tables[{index}].{key}: strategy checksum needs no {key} "
                            "(it finds changed rows by checksum); remove it"
                        )
            elif not table.cursor:
                problems.append(
                    f"tables[{index}]: mode incremental needs 'cursor' (a column that grows "
                    "when a row changes, e.g. cursor: updated_at)"
                )
        if problems:
            raise ValueError("; ".join(problems))
        return self

    @model_validator(mode="after")
    def _purge_options(self) -> Job:
        """purge needs `where` and `backup` (or `backup: false`); its options are its own."""
        problems = []
        for index, raw in enumerate(self.tables):
            table = self.resolve(raw)
            own = ("backup", "batch_rows", "audit_table")
            if "max_delete_pct" in raw.model_fields_set and table.mode not in ("sync", "purge"):
                problems.append(
                    f"tables[{index}].max_delete_pct: 'max_delete_pct' is an option of modes "
                    f"sync and purge, but this table's mode is {table.mode}"
                )
            for key in own:
                if key in raw.model_fields_set and table.mode != "purge":
                    problems.append(
                        f"tables[{index}].{key}: '{key}' is an option of mode purge, "
                        f"but this table's mode is {table.mode}"
                    )
            if table.mode != "purge":
                continue
            if not table.where:
                problems.append(
                    f"tables[{index}]: purge needs 'where' (a purge without it would empty "
                    "the table)"
                )
            if table.backup is None:
                problems.append(
                    f"tables[{index}]: purge needs 'backup' (a file store URL), or "
                    "'backup: false' written out to delete without one"
                )
            elif isinstance(table.backup, str) and table.backup.split(":", 1)[0] not in (
                "file", "sftp", "s3",
            ):  # fmt: skip
                problems.append(
                    f"tables[{index}].backup: must be a file store URL (file://, sftp://, "
                    f"s3://), got '{table.backup}'"
                )
        if problems:
            raise ValueError("; ".join(problems))
        return self

    @field_validator("executor")
    @classmethod
    def _known_executor(cls, value: str | None) -> str | None:
        from runner.execute.dask import parse_executor

        if value is not None:
            parse_executor(value)  # ValueError: "unknown executor 'x' (use threads, ...)"
        return value

    @property
    def name(self) -> str:
        return self.job or "job"

    def resolve(self, table: TableSpec) -> TableSpec:
        """``table`` with every unset option taken from ``defaults:``, then :data:`DEFAULTS`."""
        merged: dict[str, Any] = {}
        for layer in (DEFAULTS, self.defaults, table):
            merged.update({k: getattr(layer, k) for k in layer.model_fields_set})
        if self.defaults.sanitize and table.sanitize:
            # column by column: a table's rules add to the defaults', never drop them silently
            merged["sanitize"] = {**self.defaults.sanitize, **table.sanitize}
        merged["name"] = table.name
        # Every value is validated already; validating again would re-parse `where` without
        # the source's dialect and could refuse what the loader accepted.
        return TableSpec.model_construct(**merged)
