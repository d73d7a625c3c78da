"""``profile: hipaa``: the 18 Safe Harbor identifier classes, how columns holding them are found,
which rules are strong enough for each, and the rule ``etlrun plan`` suggests.

Safe Harbor (45 CFR 164.514(b)(2)(i)) de-identifies a data set by removing 18 kinds of
identifiers of the individual and of relatives, employers and household members, items (A) to
(R) below. A column is taken to hold one when its *name* says so (``ssn``, ``first_name``,
``zip``...), its *type* does (every date or timestamp; binary data, which may be a photograph),
or a *sample* of its values does (e-mail addresses, SSNs, phone numbers, IPs, URLs, ZIP codes,
dates in text, free text). The detector errs towards finding too much: a column found wrongly
costs one line under ``sanitize.allow``; a column missed would leak.

Nothing here decides silently. A column found and left without a rule stops the run
(:class:`runner.errors.SafetyError`, exit 6) with the rule to paste; a rule too weak for its
class (``mask`` on an SSN, ``truncate_date: month`` on a date) is a spec error.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pyarrow as pa

MAX_AGE = 89
"""Safe Harbor: ages over 89, and every date element (the year too) that implies one, are
aggregated into a single category of 90 or older."""
SAMPLE_ROWS = 500
"""Rows read per table to look at the content of text columns (values are never kept)."""


@dataclass(frozen=True)
class IdentifierClass:
    item: str
    """The item of 45 CFR 164.514(b)(2)(i) it is: A to R."""
    label: str


CLASSES: dict[str, IdentifierClass] = {
    "names": IdentifierClass("A", "names"),
    "geographic": IdentifierClass("B", "geographic subdivisions below a state"),
    "dates": IdentifierClass("C", "dates (except year), ages over 89"),
    "phone": IdentifierClass("D", "telephone numbers"),
    "fax": IdentifierClass("E", "fax numbers"),
    "email": IdentifierClass("F", "e-mail addresses"),
    "ssn": IdentifierClass("G", "social security numbers"),
    "medical_record": IdentifierClass("H", "medical record numbers"),
    "health_plan": IdentifierClass("I", "health plan beneficiary numbers"),
    "account": IdentifierClass("J", "account numbers"),
    "license": IdentifierClass("K", "certificate / license numbers"),
    "vehicle": IdentifierClass("L", "vehicle identifiers and serial numbers"),
    "device": IdentifierClass("M", "device identifiers and serial numbers"),
    "url": IdentifierClass("N", "web URLs"),
    "ip": IdentifierClass("O", "IP addresses"),
    "biometric": IdentifierClass("P", "biometric identifiers"),
    "photo": IdentifierClass("Q", "full-face photographs and comparable images"),
    "other_id": IdentifierClass("R", "other unique identifying numbers or codes"),
}
"""The 18 Safe Harbor classes, by the id etlrun uses for them."""

HINTS = {
    "birth": "birth date",
    "age": "age",
    "zip": "ZIP code",
    "first_name": "first name",
    "last_name": "last name",
    "free_text": "free text (may hold any identifier)",
    "entity_id": "a person's key",
    "text_dates": "dates stored as text",
    "unique_code": "distinct codes with digits (may identify a person or a record)",
}


@dataclass(frozen=True)
class Finding:
    """A column found to hold an identifier class."""

    column: str
    cls: str
    via: str
    """How it was found: name, type or content."""
    hint: str | None = None
    """What exactly, where it changes the rule: birth, age, zip, first_name, free_text, ..."""

    @property
    def label(self) -> str:
        text = f"({CLASSES[self.cls].item}) {CLASSES[self.cls].label}"
        return f"{text}: {HINTS[self.hint]}" if self.hint else text


# --- by name -------------------------------------------------------------------------------------
_PERSON = (
    r"patient|person|people|contact|customer|client|member|user|employee|subject|individual|"
    r"resident|student|guardian|parent|spouse|mother|father|relative|emergency_?contact"
)
_NAME_RULES: tuple[tuple[str, str | None, str], ...] = (
    # order matters: the first match wins (license_plate is a vehicle, not a license)
    ("ssn", None, r"ssn|social_?security(_?(no|num|number))?|socsec|sin_?(no|number)"),
    (
        "medical_record",
        None,
        r"mrn|medical_?record(_?(no|num|number|id))?|med_?rec(_?(no|num|number))?|"
        r"chart_?(no|num|number)|patient_?(no|num|number)|record_?(no|num|number)",
    ),
    (
        "health_plan",
        None,
        r"health_?plan(_?\w+)?|insurance_?(id|no|num|number)|member_?(id|no|num|number)|"
        r"policy_?(id|no|num|number)|subscriber_?(id|no|number)|beneficiary(_?\w+)?|"
        r"medicaid(_?\w+)?|medicare(_?\w+)?|payer_?id",
    ),
    ("vehicle", None, r"vin|vehicle(_?\w+)?|license_?plate|plate_?(no|num|number)"),
    (
        "account",
        None,
        r"account(_?(id|no|num|number))?|acct(_?(no|num|number))?|iban|bank_?account|"
        r"card_?(no|num|number)|credit_?card(_?\w+)?|cc_?(no|num|number)",
    ),
    (
        "license",
        None,
        r"licen[cs]e(_?(id|no|num|number))?|certificate(_?(id|no|num|number))?|"
        r"cert_?(no|num|number)|dea(_?(no|number))?|drivers?_?licen[cs]e",
    ),
    ("device", None, r"device(_?\w+)?|serial(_?(no|num|number))?|imei|udi|mac(_?addr(ess)?)?"),
    ("url", None, r"url|uri|website|web_?site|home_?page|homepage|link|web_?address"),
    ("ip", None, r"ip|ip_?addr(ess)?|ipv4|ipv6|remote_?addr(ess)?|client_?ip"),
    ("fax", None, r"fax(_?(no|num|number))?"),
    (
        "phone",
        None,
        r"phone(_?(no|num|number))?|tele?phone(_?(no|num|number))?|tel|mobile(_?\w+)?|cell|"
        r"cell_?phone|contact_?(no|num|number)|home_?phone|work_?phone",
    ),
    ("email", None, r"e_?mail(_?addr(ess)?)?|mail_?addr(ess)?"),
    (
        "biometric",
        None,
        r"finger_?print|biometrics?(_?\w+)?|retina(_?\w+)?|iris(_?\w+)?|voice_?print|"
        r"face_?(print|template|encoding|embedding)|dna(_?\w+)?|genome",
    ),
    (
        "photo",
        None,
        r"photo(graph)?s?|picture|image|img|avatar|portrait|head_?shot|selfie|mug_?shot",
    ),
    ("names", "first_name", r"first_?name|given_?name|fore_?name|fname"),
    ("names", "last_name", r"last_?name|surname|family_?name|lname|maiden_?name"),
    (
        "names",
        None,
        r"full_?name|middle_?name|nick_?name|display_?name|next_?of_?kin|signature|"
        rf"({_PERSON})_?name",
    ),
    ("geographic", "zip", r"zip|zip_?code|zipcode|postal_?code|post_?code|postcode|zip5"),
    (
        "geographic",
        None,
        r"(street_?|home_?|mailing_?|postal_?)?address(_?(line)?_?\d)?|addr\d?|street|city|town|"
        r"county|precinct|neighbou?rhood|latitude|longitude|lat|lon|lng|geo(_?\w+)?|"
        r"coordinates?|gps|geolocation|location",
    ),
    ("dates", "birth", r"dob|birth(_?(date|day|dt))?|date_?of_?birth|birthday|born(_?on)?"),
    ("dates", "age", r"age|age_?(years|yrs|at_?\w+)|patient_?age"),
    (
        "dates",
        None,
        r"admi(ssion|t|tted)(_?(date|dt|at|on))?|discharge(d)?(_?(date|dt|at|on))?|"
        r"death(_?(date|dt))?|deceased(_?(date|on))?|died(_?(on|at))?|dod|date_?of_?death",
    ),
    (
        "other_id",
        "entity_id",
        rf"passport(_?\w+)?|national_?id|tax_?id|tin|ein|({_PERSON})_?(id|no|num|number|key|uuid)",
    ),
    (
        "other_id",
        "free_text",
        r"notes?|comments?|remarks?|description|free_?text|narrative|memo|observations?|"
        r"history|complaint|findings|impression|summary",
    ),
)
_PERSON_TABLE = (
    rf"^(?:{_PERSON}|persons|patients|people|members|users|customers|"
    r"clients|employees|subjects|contacts|individuals|residents|students)$"
)


@functools.cache
def _compiled() -> tuple[tuple[str, str | None, re.Pattern[str]], ...]:
    """The name rules compiled, on first use: compiling them took ~15 ms of every command's
    start, and only ``profile: hipaa`` reads them."""
    return tuple((cls, hint, re.compile(rf"(?:{pattern})")) for cls, hint, pattern in _NAME_RULES)


def normalise(name: str) -> str:
    """``firstName`` / ``First-Name`` / ``FIRST_NAME`` -> ``first_name``.

    Example:
        >>> normalise("patientDOB"), normalise("E-Mail Address")
        ('patient_dob', 'e_mail_address')
    """
    spaced = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", name)
    return re.sub(r"[^a-z0-9]+", "_", spaced.lower()).strip("_")


def by_name(column: str, table: str = "", is_key: bool = False) -> Finding | None:
    """The class ``column``'s name says it holds, if any (whole ``_``-separated words only)."""
    normal = normalise(column)
    words = normal.split("_")
    # a pattern may match any run of whole words: `home_phone`, `patient_zip`, `ssn_hash`
    for cls, hint, pattern in _compiled():
        for start in range(len(words)):
            for stop in range(len(words), start, -1):
                if pattern.fullmatch("_".join(words[start:stop])):
                    return Finding(column, cls, "name", hint)
    if normal == "name":
        return Finding(column, "names", "name")
    bare_table = normalise(table.rpartition(".")[2])
    if is_key and re.match(_PERSON_TABLE, bare_table):
        return Finding(column, "other_id", "name", "entity_id")
    return None


# --- by type and content -------------------------------------------------------------------------
_CONTENT: tuple[tuple[str, str | None, re.Pattern[str]], ...] = (
    ("email", None, re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")),
    ("ssn", None, re.compile(r"^\d{3}-\d{2}-\d{4}$")),
    ("url", None, re.compile(r"^(?:(?:https?|ftp)://|www\.)\S+$", re.IGNORECASE)),
    ("ip", None, re.compile(r"^(?:\d{1,3}\.){3}\d{1,3}$|^[0-9a-f]*:[0-9a-f:]*:[0-9a-f]*$", re.I)),
    ("geographic", "zip", re.compile(r"^\d{5}(?:-\d{4})?$")),
    ("dates", "text_dates", re.compile(r"^\d{4}-\d{2}-\d{2}(?:[ T]\d{2}:\d{2}.*)?$")),
    ("phone", None, re.compile(r"^\+?[\d\s().-]{7,20}$")),
)
_WORDS = re.compile(r"\S+\s+\S+\s+\S+")
_CODE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9 ./_-]{3,39}$")
UNIQUE_MIN = 20
"""Sampled values needed before a column of distinct codes counts as unique identifiers."""


def by_type(column: str, arrow: pa.DataType) -> Finding | None:
    """Every date or timestamp is a date element; binary data may be a photograph."""
    if pa.types.is_date(arrow) or pa.types.is_timestamp(arrow):
        return Finding(column, "dates", "type")
    if pa.types.is_binary(arrow) or pa.types.is_large_binary(arrow):
        return Finding(column, "photo", "type")
    return None


def by_content(column: str, values: Sequence[str]) -> Finding | None:
    """The class most of a text column's sampled values look like, if any."""
    present = [v.strip() for v in values if v is not None and v.strip()]
    if not present:
        return None
    need = max(1, (len(present) + 1) // 2)  # at least half of the non-blank values
    for cls, hint, pattern in _CONTENT:
        hits = sum(1 for v in present if pattern.match(v))
        if hits >= need:
            if cls == "phone" and sum(c.isdigit() for c in present[0]) < 7:
                continue
            return Finding(column, cls, "content", hint)
    long_prose = [v for v in present if len(v) >= 30 and _WORDS.search(v)]
    if len(long_prose) >= need:
        return Finding(column, "other_id", "content", "free_text")
    # item (R), "any other unique identifying number, characteristic, or code": a column whose
    # sampled values are nearly all different codes with at least 5 digits in each (a policy
    # number, a badge, a case reference) whatever its name says
    codes = [v for v in present if _CODE.match(v) and sum(c.isdigit() for c in v) >= 5]
    if len(codes) >= max(UNIQUE_MIN, need) and len(set(codes)) * 10 >= len(codes) * 9:
        return Finding(column, "other_id", "content", "unique_code")
    return None


def detect(
    table: str,
    columns: Sequence[tuple[str, pa.DataType]],
    keys: Sequence[str] = (),
    sample: Mapping[str, Sequence[str]] | None = None,
) -> dict[str, Finding]:
    """Columns of ``table`` that hold a Safe Harbor identifier: by name, then type, then content.

    Example:
        >>> found = detect("patients", [("id", pa.int64()), ("dob", pa.date32()), ("sex", pa.string())],
        ...                keys=["id"])
        >>> sorted((f.column, f.cls, f.hint) for f in found.values())
        [('dob', 'dates', 'birth'), ('id', 'other_id', 'entity_id')]
    """  # noqa: E501
    found: dict[str, Finding] = {}
    for name, arrow in columns:
        finding = by_name(name, table, is_key=name in keys)
        if finding is not None and finding.cls == "dates" and finding.hint is None:
            if not (pa.types.is_date(arrow) or pa.types.is_timestamp(arrow)):
                finding = Finding(name, "dates", "name", "text_dates")
        if finding is None:
            finding = by_type(name, arrow)
        if finding is None and sample is not None and name in sample:
            finding = by_content(name, sample[name])
        if finding is not None:
            found[name] = finding
    return found


# --- what to do about them -----------------------------------------------------------------------
_KEYED_ID = ("hash",)
_REMOVE = ("drop", "null", "constant")
_REPLACE = (*_REMOVE, "hash", "fake", "email")
"""Removed, or replaced by a keyed surrogate: what Safe Harbor accepts for an identifier."""


def suggest(finding: Finding, arrow: pa.DataType) -> Any:
    """The rule ``etlrun plan`` says to paste, as plain data (a rule name or a mapping)."""
    hint, cls = finding.hint, finding.cls
    if hint == "birth":
        if pa.types.is_date(arrow) or pa.types.is_timestamp(arrow):
            return {"truncate_date": {"to": "year", "max_age": MAX_AGE}}
        return "drop"
    if hint == "age":
        return {"age": {"cap": MAX_AGE + 1}}
    if cls == "dates":
        if pa.types.is_date(arrow) or pa.types.is_timestamp(arrow):
            return {"truncate_date": "year"}
        return "drop"
    if hint == "zip":
        return "zip3"
    if hint in ("first_name", "last_name"):
        return {"fake": hint}
    if cls == "names":
        return {"fake": "name"}
    if hint == "free_text" or cls in ("geographic", "photo", "biometric", "url", "ip", "fax"):
        return "drop"
    if pa.types.is_integer(arrow):
        return {"hash": {"format": "integer"}}
    if pa.types.is_string(arrow) or pa.types.is_large_string(arrow) or pa.types.is_decimal(arrow):
        return "hash"
    return "drop"


def weakness(finding: Finding, rule: str, options: Mapping[str, Any]) -> str | None:
    """Why ``rule`` is too weak for what ``finding`` found under Safe Harbor, or None if it is not.

    Safe Harbor accepts an identifier removed, or replaced by a code not derived from it that
    cannot be turned back into it (a keyed hash or a fake value picked by one); dates reduced
    to their year (and no year implying an age over 89); ages over 89 grouped; ZIP codes cut to
    their first three digits with the small areas set to 000.
    """
    cls, hint = finding.cls, finding.hint
    what = CLASSES[cls].label if hint is None else HINTS[hint]
    if rule in _REMOVE:
        return None
    if cls == "dates" and hint in ("birth", "text_dates", None):
        if rule == "truncate_date":
            if options.get("to") != "year":
                return f"'truncate_date: {options.get('to')}' keeps the month of {what}; "\
                       "Safe Harbor keeps the year only (use truncate_date: year)"  # fmt: skip
            max_age = options.get("max_age")
            if hint == "birth" and max_age is not None and max_age > MAX_AGE:
                return f"max_age {max_age} lets birth years of people over {MAX_AGE} through " \
                       f"(use max_age: {MAX_AGE} or leave it out)"  # fmt: skip
            return None
        if rule == "age":
            return _cap(options)
        if rule == "hash":
            return None
        return f"'{rule}' keeps date elements of {what}; use truncate_date: year" + (
            " (or age)" if hint == "birth" else ""
        )
    if hint == "age":
        if rule == "age":
            return _cap(options)
        return f"'{rule}' keeps ages over {MAX_AGE}; use {{age: {{cap: {MAX_AGE + 1}}}}}"
    if hint == "zip" and rule == "zip3":
        return None
    if rule == "email" and options.get("keep_domain"):
        return "'email' with keep_domain keeps part of the address; use keep_domain: false"
    if rule in _REPLACE:
        return None
    return (
        f"'{rule}' is too weak for {what}: Safe Harbor requires it removed or replaced by a "
        f"keyed surrogate (use drop, null, constant, hash or fake"
        + (", or zip3 for a ZIP code)" if hint == "zip" else ")")
    )


def _cap(options: Mapping[str, Any]) -> str | None:
    cap = options.get("cap", MAX_AGE + 1)
    if cap > MAX_AGE + 1:
        return f"cap {cap} keeps ages over {MAX_AGE}; use cap: {MAX_AGE + 1} (or lower)"
    return None
