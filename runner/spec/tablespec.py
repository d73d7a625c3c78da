"""The table models of a job spec: table options, ``defaults:``, SQL steps, built-in defaults."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field, ValidationInfo, field_validator, model_validator

from runner.spec._base import SpecModel as _Model
from runner.spec.sanitizespec import SanitizeRule

MODES_ALL = ("copy", "incremental", "bulk", "sync", "backup", "purge")
"""Every mode DESIGN §3 names; :data:`runner.modes.MODES` says which are available."""

IfExists = Literal["replace", "append", "truncate", "fail"]


class Retention(_Model):
    """How many backups of a job to keep."""

    keep: Annotated[int, Field(ge=1)]
    """The newest N backups (the new one included) are kept; older ones are removed only after
    the new one has verified."""


class TableOptions(_Model):
    """Options that apply to a table; under ``defaults:`` they apply to every table."""

    mode: str | None = None
    """How the table moves: copy, incremental, bulk, sync, backup or purge."""
    where: str | None = None
    """One boolean SQL expression that filters the source rows; parsed by sqlglot, never pasted."""
    columns: list[str] | None = None
    """Only these source columns (default: all)."""
    exclude: list[str] | None = None
    """Source columns to leave out."""
    types: dict[str, str] | None = None
    """Column -> target SQL type, overriding the mapped type (e.g. {amount: "numeric(12,2)"})."""
    primary_key: list[str] | None = None
    """Key columns; taken from the source when it declares one. Chunks are ranges of the first."""
    chunk_rows: Annotated[int, Field(gt=0)] | None = None
    """Rows per chunk task (default 100000). Each chunk commits on its own and resumes alone."""
    if_exists: IfExists | None = None
    """What copy does with an existing target table: replace (atomic swap), append, truncate,
    fail."""
    on_error: Literal["stop", "reject"] | None = None
    """What a row that cannot be written does: stop (fail the chunk, nothing of it visible), or
    reject (the row goes to .etlrun/rejects/<job>/<run>/<table>.jsonl with its key, column and
    reason, the rest commits, and the run ends with exit 3)."""
    verify: Literal["count", "checksum", "off"] | None = None
    """After loading, before the swap or merge: the staged row count must equal the rows read
    (count), staging's checksums must equal the source's (checksum; sanitized and float columns
    by count only), or no check (off). A failure is exit 4 with the target unchanged."""
    strategy: Literal["cursor", "checksum"] | None = None
    """incremental: how changed rows are found: cursor (a watermark column, default), or
    checksum (no cursor: per-chunk checksums kept in the state store; changed chunks are
    bisected against the target and only the changed keys re-copied, deletes included)."""
    cursor: str | list[str] | None = None
    """incremental: the column (or list of columns, compared in order) that grows when a row
    changes, e.g. updated_at. Rows with cursor >= the last watermark (minus lookback) are
    re-read and merged by primary key; rows with a NULL cursor are re-read on every run."""
    lookback: str | int | None = None
    """incremental: how far before the watermark to re-read, for late commits and skewed
    clocks: a duration ("30s", "15m", "2h", "1d") for time cursors, an integer for integer
    cursors (default: none)."""
    max_shrink_pct: Annotated[float, Field(ge=0, le=100)] | None = None
    """bulk: refuse (exit 6) a source that has shrunk by more than this percentage against the
    current target (default 50)."""
    allow_empty: bool | None = None
    """bulk: allow a source with 0 rows to empty the target (default false: exit 6)."""
    delete: bool | None = None
    """sync: delete target rows the source no longer has (default true)."""
    max_delete: Annotated[int, Field(ge=0)] | None = None
    """sync, purge: refuse (exit 6) a run that would delete more rows than this (default: no
    limit)."""
    max_delete_pct: Annotated[float, Field(ge=0, le=100)] | None = None
    """sync, purge: refuse (exit 6) a run that would delete more than this percentage of the
    table's rows (sync default 50; purge default: no limit)."""
    keep_backups: Annotated[int, Field(ge=0)] | None = None
    """bulk: how many earlier versions of the target to keep as <table>__prev_<n> (default 1)."""
    format: Literal["parquet", "csv", "jsonl"] | None = None
    """File store targets (copy, backup): the file format: parquet (default), csv or jsonl."""
    compression: Literal["snappy", "gzip", "zstd", "brotli", "lz4", "none"] | None = None
    """File store targets, Parquet: the codec (default snappy)."""
    path: str | None = None
    """File store targets: the file path under the target URL, a template of {job}, {table},
    {run_id}, {run_date}, {chunk} and {ext} (copy default {table}.{ext}; backup default
    {job}/{run_id}/{table}.{ext}, which must contain {run_id})."""
    split: Literal["table", "chunk"] | None = None
    """File store targets: one file per table (default) or one per chunk (path needs
    {chunk})."""
    retention: Retention | None = None
    """backup: {keep: N}: after a new backup verifies, remove all but the newest N."""
    backup: str | Literal[False] | None = None
    """purge: the file store folder each chunk's rows are backed up to before they are deleted
    (file:///..., sftp://...); required unless written out as false."""
    batch_rows: Annotated[int, Field(gt=0)] | None = None
    """purge: rows per chunk (backed up, verified, deleted in one transaction); default 10000,
    so no lock is held long."""
    audit_table: bool | None = None
    """purge: also keep the audit trail (etlrun_purge_requests, etlrun_purge_details,
    etlrun_purge_log) in the source database, each chunk's row written in its DELETE's
    transaction (default false: the state store only)."""
    sanitize: dict[str, SanitizeRule] | None = None
    """Column -> rule, applied in flight before anything is written (e.g. {ssn: drop,
    phone: {mask: {keep_last: 4}}}). Under defaults: they apply to every table that has the
    column; a table's own rules add to them, column by column."""

    @field_validator("mode")
    @classmethod
    def _known_mode(cls, value: str | None) -> str | None:
        from runner.spec.validators import check_mode

        return None if value is None else check_mode(value)

    @field_validator("lookback")
    @classmethod
    def _duration(cls, value: str | int | None) -> str | int | None:
        from runner.modes._cursor_window import parse_duration

        if value is None or isinstance(value, int):
            return value
        parse_duration(value)  # ValueError: "lookback '5x' is not a duration (...)"
        return value

    @field_validator("where")
    @classmethod
    def _one_condition(cls, value: str | None, info: ValidationInfo) -> str | None:
        from runner.spec.validators import check_condition

        # The loader passes the source's dialect, so `a` = 1 is fine for MySQL and SQLite.
        dialect = (info.context or {}).get("source_dialect")
        return None if value is None else check_condition(value, dialect)


class SqlStep(_Model):
    """One SQL step of ``before:`` / ``after:``: a statement, or a ``.sql`` file of statements.

    A bare string is shorthand: ``"DELETE FROM log"`` or ``"steps/prepare.sql"`` (on the target).
    """

    sql: str | None = None
    """One SQL statement (parsed by sqlglot: exactly one per entry), or, when loaded from
    ``file``, the file's text."""
    file: str | None = None
    """A ``.sql`` file of statements, relative to the spec; its text is part of the spec hash."""
    on: Literal["source", "target"] = "target"
    """Where the step runs: on the target (default) or on the source. etlrun reads YAML 1.2,
    so a bare ``on:`` key is the text 'on' here (``run_on:`` is accepted too)."""

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, data: Any, info: ValidationInfo) -> Any:
        from runner.steps import read_step

        return read_step(data, (info.context or {}).get("spec_dir"))

    @model_validator(mode="after")
    def _one_statement(self) -> SqlStep:
        from runner.steps import check_statements

        if self.sql is None:
            raise ValueError("a SQL step needs sql: (one statement) or file: (a .sql file)")
        check_statements(self.sql, from_file=self.file is not None)
        return self


class TableSpec(TableOptions):
    """One entry of ``tables:``; a bare string is shorthand for ``{name: ...}``."""

    name: str
    """A source table (``schema.table`` allowed) or a glob over the source's tables."""
    to: str | None = None
    """Target table name (default: the source name without its schema)."""
    before: list[SqlStep] | None = None
    """SQL steps run, in order, before the table's first task (its prepare)."""
    after: list[SqlStep] | None = None
    """SQL steps run, in order, after the table's last task (its finalize or swap)."""

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, data: Any) -> Any:
        return {"name": data} if isinstance(data, str) else data


DEFAULTS = TableOptions(
    mode="copy", chunk_rows=100_000, if_exists="replace", on_error="stop", verify="count"
)
"""Built-in values for every option a job and its tables leave unset."""
