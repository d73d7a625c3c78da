"""What users write: the pydantic models of a job spec (DESIGN §3).

Attribute docstrings become the descriptions in ``schemas/job.schema.json``.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    ValidationInfo,
    ValidatorFunctionWrapHandler,
    field_validator,
    model_validator,
)

from runner.spec.filespec import FileSpec, check_file_job

MODES_ALL = ("copy", "incremental", "bulk", "sync", "backup", "purge")
"""Every mode DESIGN §3 names; :data:`runner.modes.MODES` says which are available."""

IfExists = Literal["replace", "append", "truncate", "fail"]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", use_attribute_docstrings=True, frozen=True)


# --- sanitize rules ------------------------------------------------------------------------------
# Each rule is one key of SanitizeRule; its options are a model of their own. A bare rule name
# (`ssn: drop`, `email: hash`) is shorthand for the rule with its defaults.


def _anyof(*forms: dict[str, Any]) -> Any:
    """A ``json_schema_extra`` that also accepts the shorthand ``forms`` besides the mapping."""

    def extra(schema: dict[str, Any]) -> None:
        mapping = dict(schema)
        description = mapping.pop("description", None)
        schema.clear()
        schema["anyOf"] = [*forms, mapping]
        if description:
            schema["description"] = description

    return extra


class HashOptions(_Model):
    """``hash``: a keyed HMAC-SHA256 token; the same value gives the same token in every table
    and run that uses the same key."""

    format: Literal["hex", "integer"] = "hex"
    """hex: lowercase hex text; integer: a stable non-negative 64-bit integer surrogate (for keys
    and the columns that join to them)."""
    length: Annotated[int, Field(ge=1, le=64)] | None = None
    """Keep this many of the 64 hex characters (format hex only). Short tokens collide."""

    @model_validator(mode="after")
    def _length_is_hex(self) -> HashOptions:
        if self.length is not None and self.format != "hex":
            raise ValueError("'length' applies to format: hex only")
        return self


class MaskOptions(_Model):
    """``mask``: every character replaced by ``char`` but the first / last few."""

    keep_first: Annotated[int, Field(ge=0)] = 0
    """Characters kept at the start."""
    keep_last: Annotated[int, Field(ge=0)] = 0
    """Characters kept at the end. A value no longer than keep_first + keep_last is masked
    whole."""
    char: Annotated[str, Field(min_length=1, max_length=1)] = "*"
    """The character that replaces the others."""


class EmailOptions(_Model):
    """``email``: ``<keyed token>@<domain>``, so addresses stay addresses and stay unique."""

    keep_domain: bool = False
    """Keep the address's own domain; otherwise it becomes example.invalid."""


class RedactOptions(_Model):
    """``redact``: every match of a regular expression replaced."""

    pattern: str
    """A regular expression (RE2 syntax, as Arrow uses), e.g. '\\d{3}-\\d{2}-\\d{4}'."""
    replace: str = "***"
    """What replaces each match; \\1 refers to a group."""

    @field_validator("pattern")
    @classmethod
    def _valid_pattern(cls, value: str) -> str:
        from runner.sanitize.rules import check_pattern

        try:
            check_pattern(value)
        except ValueError as exc:
            raise ValueError(f"not a regular expression: {exc}") from None
        return value


class FakeOptions(_Model):
    """``fake``: a made-up value from Faker, picked by a keyed hash of the real one, so the same
    person gets the same fake name in every table. Needs ``pip install "etlrun[sanitize]"``."""

    model_config = ConfigDict(json_schema_extra=_anyof({"type": "string"}))

    provider: str
    """The Faker provider: name, first_name, last_name, address, city, phone_number, email,
    company, ..."""
    locale: str | None = None
    """A Faker locale such as de_DE or ja_JP (default en_US)."""
    pool: Annotated[int, Field(ge=1, le=100_000)] = 1000
    """How many different fake values there are; values are picked from this pool."""

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, data: Any) -> Any:
        return {"provider": data} if isinstance(data, str) else data

    @model_validator(mode="after")
    def _known_provider(self) -> FakeOptions:
        from runner.sanitize import check_fake

        check_fake(self.provider, self.locale)
        return self


class TruncateDateOptions(_Model):
    """``truncate_date``: a date or timestamp cut to its year (an integer) or month."""

    model_config = ConfigDict(json_schema_extra=_anyof({"enum": ["year", "month"]}))

    to: Literal["year", "month"]
    """year: the year as an integer; month: the first day of the month, in the same type."""
    max_age: Annotated[int, Field(ge=1, le=150)] | None = None
    """For birth dates: a year that could mean an age above this at the run date becomes NULL
    (profile hipaa applies 89 to birth dates)."""

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, data: Any) -> Any:
        return {"to": data} if isinstance(data, str) else data


class ShiftDateOptions(_Model):
    """``shift_date``: every date of one entity moved by the same keyed random number of days,
    so the intervals between a person's dates survive."""

    model_config = ConfigDict(json_schema_extra=_anyof({"type": "integer"}))

    max_days: Annotated[int, Field(ge=1, le=3650)]
    """Largest shift, in days either way (never 0)."""
    by: str | None = None
    """The column naming the entity (e.g. patient_id); default: the table's primary key."""

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, data: Any) -> Any:
        return {"max_days": data} if isinstance(data, int) and not isinstance(data, bool) else data


class AgeOptions(_Model):
    """``age``: whole years from a birth date (or an age column capped), as text; ages from
    ``cap`` on become one category such as '90+'."""

    into: str | None = None
    """The column the age goes into (default: this column, replaced); the date is not copied."""
    at: str = "run_date"
    """run_date (the day the run starts, UTC) or a date column of the same row."""
    cap: Annotated[int, Field(ge=1, le=150)] = 90
    """Ages from this on are written as '<cap>+'."""


class NoiseOptions(_Model):
    """``noise``: each number times a random factor within ±pct percent (not stable across
    runs)."""

    model_config = ConfigDict(json_schema_extra=_anyof({"type": "number"}))

    pct: Annotated[float, Field(gt=0, le=100)]
    """Largest change, in percent of the value."""

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, data: Any) -> Any:
        number = isinstance(data, int | float) and not isinstance(data, bool)
        return {"pct": data} if number else data


RULE_NAMES = (
    "drop", "null", "constant", "hash", "mask", "email", "redact", "fake",
    "truncate_date", "shift_date", "age", "zip3", "round", "bucket", "noise",
)  # fmt: skip
"""Every rule a column can have."""
_BARE = {
    "drop": True, "null": True, "zip3": True, "hash": {}, "mask": {}, "email": {}, "age": {},
}  # fmt: skip
"""Rules that can be written as a bare name, and what the name stands for."""


class SanitizeRule(_Model):
    """One column's rule: a bare rule name (drop, null, hash, mask, email, zip3, age) or a
    mapping of one rule to its options, e.g. {mask: {keep_last: 4}}. YAML null is the null
    rule."""

    model_config = ConfigDict(
        json_schema_extra=_anyof({"enum": sorted(_BARE), "type": "string"}, {"type": "null"})
    )

    drop: Literal[True] | None = None
    """The column is not read and not written."""
    null: Literal[True] | None = None
    """Every value becomes NULL."""
    constant: str | int | float | bool | None = None
    """Every row gets this value (NULL rows too)."""
    hash: HashOptions | None = None
    """A keyed HMAC-SHA256 token (needs sanitize.key)."""
    mask: MaskOptions | None = None
    """Characters replaced by '*' but the first / last few."""
    email: EmailOptions | None = None
    """An address made of a keyed token and a domain (needs sanitize.key)."""
    redact: RedactOptions | None = None
    """Matches of a regular expression replaced."""
    fake: FakeOptions | None = None
    """A Faker provider's value, picked by a keyed hash (needs sanitize.key and Faker)."""
    truncate_date: TruncateDateOptions | None = None
    """year or month, or {to, max_age}."""
    shift_date: ShiftDateOptions | None = None
    """{max_days, by}: dates moved by a keyed per-entity offset (needs sanitize.key)."""
    age: AgeOptions | None = None
    """{into, at, cap}: the age in years, with ages from cap on as '<cap>+'."""
    zip3: Literal[True] | None = None
    """The first three digits of a ZIP code; the restricted areas become '000'."""
    round: Annotated[int, Field(ge=-18, le=18)] | None = None
    """Numbers rounded to this many decimals (negative: to tens, hundreds, ...)."""
    bucket: Annotated[list[float], Field(min_length=1)] | None = None
    """Ascending edges; each number becomes the label of its interval, e.g. '[18, 65)'."""
    noise: NoiseOptions | None = None
    """{pct}: numbers moved randomly by up to pct percent."""

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, data: Any) -> Any:
        if data is None:
            return {"null": True}
        if isinstance(data, str):
            if data in _BARE:
                return {data: _BARE[data]}
            from runner.spec.validators import did_you_mean

            if data in RULE_NAMES:
                raise ValueError(f"'{data}' needs options: write {{{data}: ...}}")
            raise ValueError(
                f"unknown rule '{data}'{did_you_mean(data, RULE_NAMES)}; "
                f"use one of: {', '.join(RULE_NAMES)}"
            )
        if isinstance(data, dict):
            # `hash:` / `drop:` with nothing after them mean the rule with its defaults
            return {k: _BARE.get(k, v) if v is None and k in _BARE else v for k, v in data.items()}
        return data

    @model_validator(mode="after")
    def _one_rule(self) -> SanitizeRule:
        given = [name for name in RULE_NAMES if name in self.model_fields_set]
        if not given:
            raise ValueError(f"no rule given; use one of: {', '.join(RULE_NAMES)}")
        if len(given) > 1:
            raise ValueError(f"one rule per column, not {len(given)} ({', '.join(given)})")
        edges = self.bucket or []
        if any(a >= b for a, b in zip(edges, edges[1:], strict=False)):
            raise ValueError("bucket edges must be in ascending order, each once")
        return self

    @property
    def name(self) -> str:
        """The rule's name: drop, hash, mask, ..."""
        return next(n for n in RULE_NAMES if n in self.model_fields_set)

    @property
    def options(self) -> Any:
        """The rule's options as plain data (a mapping, a value, or True)."""
        value = getattr(self, self.name)
        return value.model_dump() if isinstance(value, BaseModel) else value


class SanitizeSpec(_Model):
    """Job-wide ``sanitize:``: the HMAC key, an optional profile, and rules by column-name glob."""

    key: SecretStr | None = None
    """The HMAC key of the keyed rules (hash, email, fake, shift_date), at least 16 characters;
    take it from a variable, e.g. ${SANITIZE_KEY}. The same key gives the same tokens in every
    run and table; it never appears in plans, state or logs."""
    profile: Literal["hipaa"] | None = None
    """hipaa: find the 18 HIPAA Safe Harbor identifier classes among the columns and refuse to
    run (exit 6) while one has no rule; rules too weak for their class are errors."""
    allow: list[str] = []
    """Columns the profile lets through as they are: table.column (globs allowed) or column."""
    rules: dict[str, SanitizeRule] = {}
    """Rules by column-name glob (case-insensitive) for every table, e.g. {"*email*": hash};
    a table's own sanitize: wins, then defaults:, then the first glob that matches."""

    @field_validator("key")
    @classmethod
    def _strong_key(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None:
            return None
        from runner import secrets

        secret = value.get_secret_value()
        secrets.register(secret)  # scrubbed from every output, whatever its variable is called
        if len(secret) < 16:
            raise ValueError("the key must be at least 16 characters long")
        from runner.sanitize import register_key

        register_key(secret)
        return value


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
        from runner.modes.incremental import parse_duration

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


class Schedule(_Model):
    """When ``etlrun schedule`` runs the job; a bare string is shorthand for ``{cron: ...}``."""

    cron: str
    """A five-field cron expression, e.g. "0 2 * * *"."""
    timezone: str = "UTC"
    """IANA time zone the cron expression is read in."""
    catchup: bool = False
    """After a gap (scheduler stopped, machine asleep), run once for the missed fire times;
    by default they are skipped and logged."""

    @field_validator("cron")
    @classmethod
    def _valid_cron(cls, value: str) -> str:
        from runner.spec.validators import check_cron

        return check_cron(value)

    @field_validator("timezone")
    @classmethod
    def _known_timezone(cls, value: str) -> str:
        import zoneinfo

        from runner.spec.validators import did_you_mean

        try:
            zoneinfo.ZoneInfo(value)
            return value
        except Exception:  # not found, a folder, a path: all mean "no such zone"
            pass
        known = sorted(zoneinfo.available_timezones())
        exact = [k for k in known if k.lower() == value.lower()]
        hint = f" (did you mean '{exact[0]}'?)" if exact else did_you_mean(value, known)
        raise ValueError(f"unknown time zone '{value}'{hint}; use an IANA name like Europe/Oslo")

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, data: Any) -> Any:
        return {"cron": data} if isinstance(data, str) else data


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
