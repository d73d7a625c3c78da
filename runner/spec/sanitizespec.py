"""The ``sanitize:`` models of a job spec: a rule per column, its options, the job-wide block."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    field_validator,
    model_validator,
)

from runner.spec._base import SpecModel as _Model

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
