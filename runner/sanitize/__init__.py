"""Sanitize rules applied to Arrow batches in flight, before the first byte reaches a target.

The pieces, in the order data meets them:

- :data:`RULES` (this module): every rule by name, with the column types it fits, the type it
  writes and whether it needs the key. The spec models (:class:`runner.spec.models.SanitizeRule`)
  validate the options; the compiler asks :mod:`runner.sanitize._plan` to resolve each table's
  rules (``tables[].sanitize``, ``defaults.sanitize``, job-wide globs), to check they exist and
  fit, and, under ``profile: hipaa`` (:mod:`runner.sanitize.hipaa`), that no identifier is left
  without one. The result is plain data in each chunk task's ``params["sanitize"]``.
- :func:`apply` (here): a chunk's reader is wrapped by ``RunContext.stream(..., sanitize=...)``,
  so every batch is rebuilt by :class:`Sanitizer` from the raw batch before the writer sees it.
  Any mode that reads through ``ctx.stream`` with its task's params gets the rules for free,
  and the compiler refuses a plan whose reading tasks do not carry them.
- :mod:`runner.sanitize.rules`: the vectorised functions themselves; the keyed tokens (HMAC per
  distinct value, the digest cache) are in :mod:`runner.sanitize.keyed`.

The key never travels (:mod:`runner.sanitize._key`): the spec's ``sanitize.key`` is registered
when the job is validated (:func:`register_key`), tasks carry only its id (a keyed fingerprint),
and a worker looks the key up by that id, in this process or from ``ETLRUN_SANITIZE_KEY`` on a
Dask worker.

Once a job with rules is planned (or a chunk applies rules), :func:`redact_error`
(:mod:`runner.sanitize._redact`) takes values out of driver error messages (a PostgreSQL
``DETAIL: Key (ssn)=(...)``, MariaDB's ``Duplicate entry '...'``, Arrow's ``Failed to parse
string: '...'``), which is how a raw value could otherwise reach a log or the state store.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import pyarrow as pa

from runner._lazy import LazyModule
from runner.errors import TaskError
from runner.sanitize._key import KEY_ENV, key_for, key_id, register_key  # noqa: F401 - public
from runner.sanitize._redact import activate, deactivate, is_active, redact_error  # noqa: F401

# the rules load pyarrow.compute and the keyed tokens: a job without rules never needs them,
# while this package is imported by every command (error redaction lives here)
r: Any = LazyModule("runner.sanitize.rules")

KEYED = ("hash", "email", "fake", "shift_date")
"""Rules that need ``sanitize.key``."""
INSTALL_FAKER = 'pip install "etlrun[sanitize]"'


# --- the rule registry ---------------------------------------------------------------------------
def _text(t: pa.DataType) -> bool:
    return pa.types.is_string(t) or pa.types.is_large_string(t)


def _integer(t: pa.DataType) -> bool:
    return pa.types.is_integer(t)


def _number(t: pa.DataType) -> bool:
    return pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_decimal(t)


def _temporal(t: pa.DataType) -> bool:
    return pa.types.is_date(t) or pa.types.is_timestamp(t)


def _binary(t: pa.DataType) -> bool:
    return pa.types.is_binary(t) or pa.types.is_large_binary(t)


def _any(t: pa.DataType) -> bool:
    return True


Output = tuple[pa.DataType, int | None]
"""The Arrow type a rule writes, and the text length it fits in (None: unbounded or not text)."""


@dataclass(frozen=True)
class Rule:
    name: str
    fits: Callable[[pa.DataType], bool]
    fits_text: str
    """The column types it takes, in words (for the error when it does not fit)."""
    output: Callable[[pa.DataType, int | None, Any], Output]
    keyed: bool = False


def _same(t: pa.DataType, length: int | None, options: Any) -> Output:
    return t, length


def _constant_output(t: pa.DataType, length: int | None, value: Any) -> Output:
    return t, (max(length or 0, len(value)) or None) if isinstance(value, str) else length


def _hash_output(t: pa.DataType, length: int | None, options: Any) -> Output:
    if options.get("format") == "integer":
        return pa.int64(), None
    return pa.string(), options.get("length") or 64


def _text_output(t: pa.DataType, length: int | None, options: Any) -> Output:
    return pa.string(), None


def _mask_output(t: pa.DataType, length: int | None, options: Any) -> Output:
    return pa.string(), length if _text(t) else None


def _year_output(t: pa.DataType, length: int | None, options: Any) -> Output:
    return (pa.int16(), None) if options["to"] == "year" else (t, None)


def _age_output(t: pa.DataType, length: int | None, options: Any) -> Output:
    cap = options.get("cap", 90)
    return pa.string(), max(len(str(cap - 1)), len(f"{cap}+"))


def _zip3_output(t: pa.DataType, length: int | None, options: Any) -> Output:
    return pa.string(), 3


def _bucket_output(t: pa.DataType, length: int | None, edges: Any) -> Output:
    return pa.string(), max(len(label) for label in r.bucket_labels(edges))


RULES: dict[str, Rule] = {
    rule.name: rule
    for rule in (
        Rule("drop", _any, "any type", _same),
        Rule("null", _any, "any type", _same),
        Rule("constant", _any, "any type", _constant_output),
        Rule(
            "hash",
            lambda t: _text(t) or _number(t) or _binary(t) or _temporal(t),
            "text, numbers, binary, dates",
            _hash_output,
            keyed=True,
        ),
        Rule("mask", lambda t: _text(t) or _integer(t), "text or integers", _mask_output),
        Rule("email", _text, "text", _text_output, keyed=True),
        Rule("redact", _text, "text", _text_output),
        Rule("fake", _text, "text", _text_output, keyed=True),
        Rule("truncate_date", _temporal, "dates and timestamps", _year_output),
        Rule("shift_date", _temporal, "dates and timestamps", _same, keyed=True),
        Rule("age", lambda t: _temporal(t) or _number(t), "dates or numbers", _age_output),
        Rule("zip3", lambda t: _text(t) or _integer(t), "text or integers", _zip3_output),
        Rule("round", _number, "numbers", _same),
        Rule("bucket", _number, "numbers", _bucket_output),
        Rule("noise", _number, "numbers", _same),
    )
}  # fmt: skip
"""Every rule by name. The options' shapes are :class:`runner.spec.models.SanitizeRule`'s."""
assert set(RULES) >= set(KEYED) and all(RULES[k].keyed for k in KEYED)


# --- Faker ---------------------------------------------------------------------------------------
@lru_cache(maxsize=16)
def _faker(locale: str | None) -> Any:
    try:
        from faker import Faker
    except ImportError:
        raise ValueError(f"the fake rule needs Faker: {INSTALL_FAKER}") from None
    try:
        return Faker(locale) if locale else Faker()
    except AttributeError:
        raise ValueError(f"unknown Faker locale '{locale}' (e.g. en_US, de_DE, fr_FR)") from None


_NOT_PROVIDERS = {"seed", "seed_instance", "seed_locale", "random", "factories", "weights"}


def check_fake(provider: str, locale: str | None) -> None:
    """Raise ValueError unless Faker is installed and has ``provider`` (for ``locale``)."""
    faker = _faker(locale)
    try:
        method = getattr(faker, provider)
    except AttributeError:
        method = None
    if provider.startswith("_") or provider in _NOT_PROVIDERS or not callable(method):
        from runner.spec.validators import did_you_mean

        known = ["name", "first_name", "last_name", "address", "city", "phone_number", "email"]
        hint = did_you_mean(provider, [*known, *(a for a in dir(faker) if not a.startswith("_"))])
        raise ValueError(f"unknown Faker provider '{provider}'{hint} (e.g. {', '.join(known)})")


# --- applying the rules to batches ---------------------------------------------------------------
def read_schema(params: dict[str, Any]) -> list[list[str]]:
    """The columns a chunk reads: its sanitize plan's raw columns, else the columns it writes."""
    sanitize = params.get("sanitize")
    return list(sanitize["read"]) if sanitize else list(params["schema"])


def _schema(pairs: list[list[str]]) -> pa.Schema:
    from runner.plan.types import arrow_from_str

    return pa.schema([(name, arrow_from_str(typ)) for name, typ in pairs])


class Sanitizer:
    """One chunk's rules, ready to rebuild batches: raw batch in, sanitized batch out."""

    def __init__(self, plan: dict[str, Any], run_date: dt.date | None = None) -> None:
        activate()
        self.steps: dict[str, dict[str, Any]] = {s["into"]: s for s in plan["steps"]}
        self.output = _schema(plan["output"])
        self.run_date = run_date or dt.datetime.now(dt.UTC).date()
        keyed = any(RULES[s["rule"]].keyed for s in plan["steps"])
        self.key = key_for(plan["key_id"]) if keyed else b""

    def __call__(self, batch: pa.RecordBatch) -> pa.RecordBatch:
        arrays = []
        for field in self.output:
            step = self.steps.get(field.name)
            if step is None:
                arrays.append(batch.column(field.name))
            else:
                arrays.append(self._apply(step, batch, field.type))
        return pa.RecordBatch.from_arrays(arrays, schema=self.output)

    def _apply(self, step: dict[str, Any], batch: pa.RecordBatch, typ: pa.DataType) -> pa.Array:
        try:
            column = _RUN[step["rule"]](self, batch.column(step["column"]), step, batch)
            return column if column.type.equals(typ) else column.cast(typ)
        except TaskError:
            raise
        except Exception as exc:  # noqa: BLE001 - an Arrow message may quote the value
            raise TaskError(
                f"sanitize rule '{step['rule']}' on column '{step['column']}' failed "
                f"({type(exc).__name__}; the value is not shown)"
            ) from None

    def subkey(self, purpose: str) -> bytes:
        return r.subkey(self.key, purpose)


def _at(s: Sanitizer, step: dict[str, Any], batch: pa.RecordBatch) -> Any:
    at = step["options"].get("at", "run_date")
    return s.run_date if at == "run_date" else batch.column(at)


def _hash(s: Sanitizer, column: pa.Array, step: dict[str, Any], batch: pa.RecordBatch) -> Any:
    options = step["options"]
    if options.get("format") == "integer":
        return r.hash_int(column, s.subkey("hash"), r.CACHE)
    return r.hash_hex(column, s.subkey("hash"), options.get("length") or 64, r.CACHE)


_RUN: dict[str, Callable[[Sanitizer, pa.Array, dict[str, Any], pa.RecordBatch], pa.Array]] = {
    "null": lambda s, c, st, b: r.null(c),
    "constant": lambda s, c, st, b: r.constant(c, st["options"]),
    "hash": _hash,
    "mask": lambda s, c, st, b: r.mask(c, **st["options"]),
    "email": lambda s, c, st, b: r.email(c, s.subkey("email"), st["options"]["keep_domain"]),
    "redact": lambda s, c, st, b: r.redact(c, st["options"]["pattern"], st["options"]["replace"]),
    "fake": lambda s, c, st, b: r.fake(
        c,
        s.subkey("fake"),
        r.fake_pool(
            s.subkey("fake-pool"),
            st["options"]["provider"],
            st["options"]["locale"],
            st["options"]["pool"],
        ),
        r.CACHE,
    ),
    "truncate_date": lambda s, c, st, b: r.truncate_date(
        c, st["options"]["to"], st["options"].get("max_age"), s.run_date
    ),
    "shift_date": lambda s, c, st, b: r.shift_date(
        c, b.column(st["options"]["by"]), s.subkey("shift_date"), st["options"]["max_days"]
    ),
    "age": lambda s, c, st, b: r.age(c, _at(s, st, b), st["options"]["cap"]),
    "zip3": lambda s, c, st, b: r.zip3(c),
    "round": lambda s, c, st, b: r.round_(c, st["options"]),
    "bucket": lambda s, c, st, b: r.bucket(c, st["options"]),
    "noise": lambda s, c, st, b: r.noise(c, st["options"]["pct"]),
}
assert set(_RUN) == set(RULES) - {"drop"}


def apply(
    batches: Iterator[pa.RecordBatch], plan: dict[str, Any] | None
) -> Iterator[pa.RecordBatch]:
    """``batches`` with a chunk's sanitize ``plan`` applied to each (as they are, without one)."""
    if not plan:
        yield from batches
        return
    sanitizer = Sanitizer(plan)
    for batch in batches:
        yield sanitizer(batch)


__all__ = [
    "KEYED",
    "RULES",
    "Rule",
    "Sanitizer",
    "activate",
    "apply",
    "check_fake",
    "is_active",
    "key_for",
    "key_id",
    "read_schema",
    "redact_error",
    "register_key",
]
