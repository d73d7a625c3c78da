"""The rules of runner.sanitize.rules on the values that break things, and the Safe Harbor vectors.

Every rule meets NULL, '', '   ', unicode, a maximum-length value and case variants; its output
must have the type and fit the length the planner declares for it (so it fits the target
column), and for the rules that replace values, no output may equal a value of the input.
"""

from __future__ import annotations

import datetime as dt
import hmac
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pytest

from runner import sanitize
from runner.sanitize import RULES, Sanitizer, register_key
from runner.sanitize import rules as r
from runner.sanitize.zip3 import RESTRICTED


@pytest.fixture(autouse=True)
def _redaction_off_afterwards() -> Iterator[None]:
    """Sanitizing switches driver-error redaction on for the process: off again after each
    test, so tests elsewhere see driver messages as the drivers wrote them."""
    yield
    sanitize.deactivate()


KEY = b"unit-test-key-0123456789abcdef"
OTHER_KEY = b"another-key-abcdef0123456789xyz"
MAX = 255
EDGE = [
    None,
    "",
    "   ",
    "Zoë Ødegård-李王 🎨",
    "x" * MAX,
    "é" * MAX,
    "ABC-123",
    "abc-123",
    "Abc-123",
    "123-45-6789",
    "john.smith@Example.ORG",
    "JOHN.SMITH@example.org",
]
"""Text edge values: NULL, empty, blank, unicode (2-byte, 3-byte, 4-byte), the longest values
a VARCHAR(255) holds (in 1- and 2-byte characters), case variants."""
TEXT = pa.array(EDGE, pa.string())


def lengths(array: pa.Array) -> list[int]:
    return [n for n in pc.utf8_length(array).to_pylist() if n is not None]


def fits(rule: str, options: Any, source: pa.Array, out: pa.Array, source_length: int | None):
    """``out`` has the type and fits the length the planner gives the rule's target column."""
    typ, length = RULES[rule].output(source.type, source_length, options)
    assert out.type.equals(typ), f"{rule}: {out.type} is not the planned {typ}"
    if length is not None:
        assert max(lengths(out), default=0) <= length, f"{rule}: longer than {length}"
    assert len(out) == len(source)


def nulls_stay(source: pa.Array, out: pa.Array) -> None:
    assert [i for i, v in enumerate(source.to_pylist()) if v is None] == [
        i for i, v in enumerate(out.to_pylist()) if v is None
    ]


def disjoint(source: pa.Array, out: pa.Array) -> None:
    """No non-blank output equals a value of the input (NULL and '' carry nothing to hide)."""
    before = {v for v in source.to_pylist() if v is not None}
    after = {v for v in out.to_pylist() if v not in (None, "")}
    assert not before & after, sorted(before & after)


# --- HMAC ----------------------------------------------------------------------------------------
def test_hmac_is_rfc_2104_hmac_sha256() -> None:
    values = [b"", b"a", b"x" * 1000, "李".encode()]
    for key in (b"k", KEY, b"k" * 100):  # short, normal, longer than the block size
        assert r.hmac_sha256(key, values) == [hmac.digest(key, v, "sha256") for v in values]


# --- each rule on the edge values ----------------------------------------------------------------
def test_hash_hex() -> None:
    out = r.hash_hex(TEXT, KEY)
    fits("hash", {}, TEXT, out, MAX)
    nulls_stay(TEXT, out)
    disjoint(TEXT, out)
    assert all(len(t) == 64 and int(t, 16) >= 0 for t in out.to_pylist() if t is not None)
    tokens = out.to_pylist()
    assert len({tokens[6], tokens[7], tokens[8]}) == 3, "case variants are different values"
    assert tokens[1] != tokens[2], "'' and '   ' are different values"
    short = r.hash_hex(TEXT, KEY, 10)
    fits("hash", {"length": 10}, TEXT, short, MAX)
    assert [t[:10] if t else t for t in tokens] == short.to_pylist()


def test_hash_integer_surrogate() -> None:
    out = r.hash_int(TEXT, KEY)
    fits("hash", {"format": "integer"}, TEXT, out, MAX)
    nulls_stay(TEXT, out)
    assert all(0 <= v < 2**63 for v in out.to_pylist() if v is not None)
    assert len({v for v in out.to_pylist() if v is not None}) == len(EDGE) - 1


def test_hash_is_the_same_for_a_number_and_its_text() -> None:
    # a key stored as INTEGER in one table and as TEXT in another still joins after hashing
    as_int = r.hash_int(pa.array([7, 12345, None], pa.int64()), KEY)
    as_text = r.hash_int(pa.array(["7", "12345", None]), KEY)
    assert as_int.to_pylist() == as_text.to_pylist()
    assert r.hash_int(pa.array([7], pa.int32()), KEY) == r.hash_int(pa.array([7]), KEY)


def test_mask() -> None:
    out = r.mask(TEXT, keep_last=4)
    fits("mask", {"keep_last": 4}, TEXT, out, MAX)
    nulls_stay(TEXT, out)
    disjoint(TEXT, out)
    values = dict(zip(EDGE, out.to_pylist(), strict=True))
    assert values["123-45-6789"] == "*******6789"
    assert values[""] == ""
    assert values["   "] == "***", "a value no longer than what is kept is masked whole"
    assert values["Zoë Ødegård-李王 🎨"] == "*" * 12 + "李王 🎨"
    assert lengths(out) == lengths(TEXT), "lengths count characters, so the output fits"
    both = r.mask(TEXT, keep_first=2, keep_last=2, char="#").to_pylist()
    assert both[EDGE.index("ABC-123")] == "AB###23"
    assert both[EDGE.index("abc-123")] == "ab###23"


def test_mask_integers() -> None:
    out = r.mask(pa.array([1234567, None, 5], pa.int64()), keep_last=2)
    assert out.to_pylist() == ["*****67", None, "*"]


def test_email() -> None:
    out = r.email(TEXT, KEY)
    fits("email", {}, TEXT, out, MAX)
    nulls_stay(TEXT, out)
    disjoint(TEXT, out)
    tokens = out.to_pylist()
    assert all(t.endswith("@example.invalid") for t in tokens if t is not None)
    assert tokens[10] == tokens[11], "addresses are compared trimmed and in lower case"
    kept = r.email(TEXT, KEY, keep_domain=True).to_pylist()
    assert kept[10].endswith("@example.org") and kept[10].split("@")[0] == tokens[10].split("@")[0]
    assert kept[3].endswith("@example.invalid"), "not an address: no domain to keep"


def test_redact() -> None:
    source = pa.array([None, "", "   ", "ssn 123-45-6789, again 987-65-4321", "李 123-45-6789"])
    out = r.redact(source, r"\d{3}-\d{2}-\d{4}", "[SSN]")
    assert out.to_pylist() == [None, "", "   ", "ssn [SSN], again [SSN]", "李 [SSN]"]
    fits("redact", {}, source, out, MAX)
    with pytest.raises(ValueError, match="missing"):
        r.check_pattern("(")


def test_null_and_constant() -> None:
    assert r.null(TEXT).to_pylist() == [None] * len(EDGE)
    out = r.constant(TEXT, "REDACTED")
    fits("constant", "REDACTED", TEXT, out, MAX)
    assert out.to_pylist() == ["REDACTED"] * len(EDGE), "NULL rows too"
    assert r.constant(pa.array([1, None], pa.int32()), 0).to_pylist() == [0, 0]
    assert r.constant(pa.array([1, None], pa.int32()), 0).type == pa.int32()


def test_fake_is_deterministic_per_value_and_key() -> None:
    pytest.importorskip("faker")
    pool = r.fake_pool(r.subkey(KEY, "fake-pool"), "name", None, 200)
    assert len(set(pool.to_pylist())) > 50
    out = r.fake(TEXT, r.subkey(KEY, "fake"), pool)
    fits("fake", {}, TEXT, out, MAX)
    nulls_stay(TEXT, out)
    disjoint(TEXT, out)
    # the same person in another batch (another table) gets the same fake name
    again = r.fake(pa.array(["abc-123", "ABC-123", "new"]), r.subkey(KEY, "fake"), pool)
    assert again.to_pylist()[:2] == [out.to_pylist()[7], out.to_pylist()[6]]
    rebuilt = r.fake_pool.__wrapped__(r.subkey(KEY, "fake-pool"), "name", None, 200)
    assert rebuilt.equals(pool), "the pool is a function of the key"


def test_fake_with_a_locale() -> None:
    pytest.importorskip("faker")
    pool = r.fake_pool(KEY, "last_name", "ja_JP", 20)
    assert any(ord(c) > 0x3000 for name in pool.to_pylist() for c in name)


# --- dates ---------------------------------------------------------------------------------------
RUN_DATE = dt.date(2025, 1, 1)
DATES = pa.array(
    [None, dt.date(1931, 6, 15), dt.date(1992, 2, 29), dt.date(1935, 12, 31), dt.date(1936, 1, 1),
     dt.date(2024, 12, 31), dt.date(1, 1, 1), dt.date(9999, 12, 31)],
    pa.date32(),
)  # fmt: skip


def test_safe_harbor_birth_years() -> None:
    """DOB 1931-06-15 at run date 2025-01-01 -> suppressed (age >= 90); 1992-02-29 -> 1992."""
    out = r.truncate_date(DATES, "year", max_age=89, run_date=RUN_DATE)
    assert out.type == pa.int16()
    years = out.to_pylist()
    assert years[1] is None
    assert years[2] == 1992
    # 1935 could be 89 or 90 on 2025-01-01: the year alone implies an age over 89 is possible
    assert years[3] is None
    assert years[4] == 1936
    assert years[5] == 2024
    assert years[6] is None and years[7] == 9999
    fits("truncate_date", {"to": "year"}, DATES, out, None)


def test_truncate_date_without_max_age_and_to_month() -> None:
    assert r.truncate_date(DATES, "year").to_pylist()[1] == 1931
    month = r.truncate_date(DATES, "month")
    assert month.type == pa.date32()
    assert month.to_pylist()[:3] == [None, dt.date(1931, 6, 1), dt.date(1992, 2, 1)]
    stamps = pa.array([dt.datetime(2020, 5, 17, 13, 14, 15)], pa.timestamp("us", tz="UTC"))
    assert r.truncate_date(stamps, "month").to_pylist()[0] == dt.datetime(2020, 5, 1, tzinfo=dt.UTC)
    assert r.truncate_date(stamps, "year").to_pylist() == [2020]


def test_safe_harbor_ages() -> None:
    """Ages 89 -> 89, 90 and 120 -> 90+."""
    ages = pa.array([89, 90, 120, None, 0, -1], pa.int64())
    out = r.age(ages, cap=90)
    assert out.to_pylist() == ["89", "90+", "90+", None, "0", None]
    fits("age", {"cap": 90}, ages, out, None)
    assert r.age(pa.array([89.99, 90.0]), cap=90).to_pylist() == ["89", "90+"]
    assert r.age(pa.array([Decimal("89.5")], pa.decimal128(5, 1))).to_pylist() == ["89"]


def test_age_from_birth_dates() -> None:
    out = r.age(DATES, RUN_DATE, cap=90).to_pylist()
    assert out[:6] == [None, "90+", "32", "89", "89", "0"], "1936-01-01: 89 on the day"
    assert out[7] is None, "born after the run date"
    # 29 February: the birthday has not come on 28 February of a common year
    leap = pa.array([dt.date(1992, 2, 29)])
    assert r.age(leap, dt.date(2025, 2, 28)).to_pylist() == ["32"]
    assert r.age(leap, dt.date(2025, 3, 1)).to_pylist() == ["33"]
    # at another column of the same row
    visits = pa.array([None, dt.date(2021, 6, 14), dt.date(2022, 2, 28)] + [RUN_DATE] * 5)
    assert r.age(DATES, visits).to_pylist()[:3] == [None, "89", "29"]


def test_shift_date_keeps_intervals_of_an_entity() -> None:
    people = pa.array(["p1", "p1", "p2", "p2", None, "p1"])
    dates = pa.array([dt.date(2020, 1, 1), dt.date(2020, 3, 1), dt.date(2020, 1, 1),
                      dt.date(2021, 1, 1), dt.date(2020, 1, 1), None])  # fmt: skip
    out = r.shift_date(dates, people, KEY, 30).to_pylist()
    assert out[1] - out[0] == dt.timedelta(days=60), "one offset per entity"
    assert out[3] - out[2] == dt.timedelta(days=366)
    assert out[4] is None and out[5] is None
    offsets = r.day_offsets(pa.array([f"person-{i}" for i in range(2000)]), KEY, 30).to_pylist()
    assert min(offsets) == -30 and max(offsets) == 30 and 0 not in offsets
    stamps = pa.array([dt.datetime(2020, 1, 1, 12)], pa.timestamp("us"))
    moved = r.shift_date(stamps, pa.array(["p1"]), KEY, 30).to_pylist()[0]
    assert moved - dt.datetime(2020, 1, 1, 12) == out[0] - dt.date(2020, 1, 1)


# --- places and numbers --------------------------------------------------------------------------
def test_safe_harbor_zip3() -> None:
    """ZIP 03601 -> 000; 10001 and 10001-1234 -> 100; the restricted areas -> 000."""
    source = pa.array(["03601", "10001", "10001-1234", " 10001 ", "100011234", None, "",
                       "   ", "1234", "ABCDE", "05901", "99999"])  # fmt: skip
    out = r.zip3(source)
    assert out.to_pylist() == ["000", "100", "100", "100", "100", None, None, None, None, None,
                               "000", "999"]  # fmt: skip
    fits("zip3", True, source, out, 10)
    integers = pa.array([3601, 10001, 100011234, None])
    assert r.zip3(integers).to_pylist() == ["000", "100", "100", None]
    assert len(RESTRICTED) == 17
    every = pa.array([f"{p}01" for p in sorted(RESTRICTED)])
    assert set(r.zip3(every).to_pylist()) == {"000"}


def test_round() -> None:
    assert r.round_(pa.array([1.25, -1.25, None]), 1).to_pylist() == [1.3, -1.3, None]
    assert r.round_(pa.array([1234, 1250, -15]), -1).to_pylist() == [1230, 1250, -20]
    assert r.round_(pa.array([1234], pa.int32()), 2).type == pa.int32()
    money = pa.array([Decimal("12.345"), Decimal("-0.005")], pa.decimal128(10, 3))
    out = r.round_(money, 2)
    assert out.type == money.type and out.to_pylist() == [Decimal("12.350"), Decimal("-0.010")]


def test_bucket() -> None:
    out = r.bucket(pa.array([5, 18, 64.9, 65, None, -1]), [18, 65])
    assert out.to_pylist() == ["<18", "[18, 65)", "[18, 65)", ">=65", None, "<18"]
    assert r.bucket_labels([0.5, 1]) == ["<0.5", "[0.5, 1)", ">=1"]


def test_noise_stays_within_pct() -> None:
    values = pa.array([100.0] * 1000 + [None])
    out = r.noise(values, 10).to_pylist()
    assert out[-1] is None
    assert all(90.0 <= v <= 110.0 for v in out[:-1]) and len(set(out[:-1])) > 100
    ints = r.noise(pa.array([1000] * 100, pa.int32()), 5)
    assert ints.type == pa.int32() and all(950 <= v <= 1050 for v in ints.to_pylist())
    money = r.noise(pa.array([Decimal("100.00")] * 10, pa.decimal128(8, 2)), 1)
    assert money.type == pa.decimal128(8, 2)


# --- determinism across runs and tables ----------------------------------------------------------
def test_same_key_same_tokens_other_key_disjoint() -> None:
    ssns = [f"{i:03d}-{i % 100:02d}-{i:04d}" for i in range(1, 500)]
    run1 = r.hash_hex(pa.array(ssns), KEY).to_pylist()
    # another run, another table: other rows around the same values, in another order
    table2 = pa.array(["extra"] + list(reversed(ssns)) + [None])
    run2 = dict(zip(table2.to_pylist(), r.hash_hex(table2, KEY).to_pylist(), strict=True))
    assert [run2[s] for s in ssns] == run1
    other = set(r.hash_hex(pa.array(ssns), OTHER_KEY).to_pylist())
    assert not other & set(run1)
    assert not set(r.hash_int(pa.array(ssns), OTHER_KEY).to_pylist()) & set(
        r.hash_int(pa.array(ssns), KEY).to_pylist()
    )


def test_rules_use_sub_keys() -> None:
    # one value's hash token says nothing about its e-mail token or its date offset
    assert len({r.subkey(KEY, p) for p in ("hash", "email", "fake", "shift_date")}) == 4


# --- a whole batch -------------------------------------------------------------------------------
def test_sanitizer_rebuilds_a_batch() -> None:
    register_key(KEY.decode())
    from runner.sanitize import key_id

    batch = pa.RecordBatch.from_pydict(
        {
            "id": pa.array([1, 2], pa.int64()),
            "ssn": pa.array(["123-45-6789", None]),
            "dob": pa.array([dt.date(1931, 6, 15), dt.date(1992, 2, 29)]),
            "secret": pa.array(["a", "b"]),
        }
    )
    plan = {
        "key_id": key_id(KEY),
        "read": [["id", "int64"], ["ssn", "string"], ["dob", "date32[day]"], ["secret", "string"]],
        "output": [["id", "int64"], ["ssn", "string"], ["age", "string"]],
        "steps": [
            {"column": "ssn", "into": "ssn", "rule": "hash", "options": {"format": "hex",
             "length": 12}, "type": "string"},
            {"column": "dob", "into": "age", "rule": "age", "options": {"into": "age",
             "at": "run_date", "cap": 90}, "type": "string"},
        ],
    }  # fmt: skip
    out = Sanitizer(plan, run_date=RUN_DATE)(batch)
    assert out.schema.names == ["id", "ssn", "age"], "dropped columns are gone"
    assert out.column("id").to_pylist() == [1, 2]
    assert out.column("age").to_pylist() == ["90+", "32"]
    assert len(out.column("ssn").to_pylist()[0]) == 12


def test_a_failing_rule_does_not_quote_the_value() -> None:
    plan = {
        "key_id": None,
        "read": [["n", "string"]],
        "output": [["n", "int64"]],
        "steps": [{"column": "n", "into": "n", "rule": "constant", "options": "555-12-3456",
                   "type": "int64"}],
    }  # fmt: skip
    from runner.errors import TaskError

    with pytest.raises(TaskError) as caught:
        Sanitizer(plan)(pa.RecordBatch.from_pydict({"n": pa.array(["x"])}))
    assert "555-12-3456" not in str(caught.value) and caught.value.__cause__ is None
    assert "constant" in str(caught.value) and "'n'" in str(caught.value)


# --- the fast paths give the same tokens as the plain definition ---------------------------------
def test_vectorised_tokens_equal_the_definition() -> None:
    values = [v for v in EDGE if v is not None]
    digests = [hmac.digest(KEY, v.encode(), "sha256") for v in values]
    source = pa.array(values)
    assert r.hash_hex(source, KEY).to_pylist() == [d.hex() for d in digests]
    assert r.hash_hex(source, KEY, 7).to_pylist() == [d.hex()[:7] for d in digests]
    assert r.hash_int(source, KEY).to_pylist() == [
        int.from_bytes(d[:8], "little") & (2**63 - 1) for d in digests
    ]
    pool = pa.array([f"fake-{i}" for i in range(7)])
    assert r.fake(source, KEY, pool).to_pylist() == [
        f"fake-{int.from_bytes(d[:8], 'little') % 7}" for d in digests
    ]


@pytest.mark.parametrize("probe", [4, 10_000], ids=["gives-up-on-distinct-values", "caches"])
def test_the_digest_cache_changes_no_token(probe: int) -> None:
    cache = r.DigestCache(limit=50, probe=probe)
    repeated = pa.array([f"name {i % 30}" for i in range(200)] + [None])
    distinct = pa.array([f"person {i}" for i in range(120)])
    for column in (repeated, distinct, repeated.slice(5), distinct):
        assert r.hash_hex(column, KEY, cache=cache).equals(r.hash_hex(column, KEY))
        assert r.hash_int(column, KEY, cache=cache).equals(r.hash_int(column, KEY))
    pool = pa.array([f"fake-{i}" for i in range(11)])
    assert r.fake(repeated, OTHER_KEY, pool, cache).equals(r.fake(repeated, OTHER_KEY, pool))
    assert len(cache._maps.get(KEY, {})) <= 50, "bounded"
    if probe == 4:
        assert KEY not in cache._maps, "values seen once: the cache stopped itself"


# --- every rule on the edge values of the types it takes ------------------------------------
NUMBERS = pa.array([None, 0, -1, 2**31 - 1, -(2**31), 12345, 10001], pa.int32())
EDGE_DATES = pa.array(
    [None, dt.date(1, 1, 1), dt.date(1900, 1, 1), dt.date(2000, 2, 29), dt.date(9999, 12, 31)]
)
IDS = pa.array(["p1", "p2", None, "p1", "p3"])
REPLACING = {"constant", "hash", "email", "fake", "mask", "zip3", "null"}
"""Rules after which no target value may equal a source value."""
CASES = [
    ("null", True, TEXT), ("constant", "REDACTED", TEXT),
    ("hash", {"format": "hex", "length": None}, TEXT),
    ("hash", {"format": "hex", "length": 12}, TEXT),
    ("hash", {"format": "integer", "length": None}, TEXT),
    ("mask", {"keep_first": 1, "keep_last": 2, "char": "#"}, TEXT),
    ("mask", {"keep_first": 0, "keep_last": 0, "char": "*"}, TEXT),
    ("email", {"keep_domain": False}, TEXT), ("email", {"keep_domain": True}, TEXT),
    ("redact", {"pattern": "[0-9]", "replace": "#"}, TEXT),
    ("fake", {"provider": "name", "locale": None, "pool": 50}, TEXT),
    ("fake", {"provider": "city", "locale": "de_DE", "pool": 50}, TEXT),
    ("zip3", True, TEXT),
    ("null", True, NUMBERS), ("constant", 777, NUMBERS),
    ("hash", {"format": "integer", "length": None}, NUMBERS),
    ("mask", {"keep_first": 0, "keep_last": 1, "char": "*"}, NUMBERS),
    ("zip3", True, NUMBERS), ("round", -2, NUMBERS), ("bucket", [0, 100.5], NUMBERS),
    ("noise", {"pct": 10}, NUMBERS), ("age", {"into": None, "at": "run_date", "cap": 90}, NUMBERS),
    ("truncate_date", {"to": "year", "max_age": None}, EDGE_DATES),
    ("truncate_date", {"to": "month", "max_age": None}, EDGE_DATES),
    ("truncate_date", {"to": "year", "max_age": 89}, EDGE_DATES),
    ("shift_date", {"max_days": 30, "by": "id"}, EDGE_DATES),
    ("age", {"into": None, "at": "run_date", "cap": 90}, EDGE_DATES),
    ("hash", {"format": "hex", "length": None}, EDGE_DATES),
]  # fmt: skip


@pytest.mark.parametrize(("rule", "options", "source"), CASES)
def test_every_rule_on_edge_values(rule: str, options: Any, source: pa.Array) -> None:
    """NULL, '', '   ', unicode, the longest values, case variants, extreme numbers and dates:
    the output has the planned type, fits the planned length, keeps NULL NULL (but constant)
    and, for the rules that replace values, shares no value with the source."""
    if rule == "fake":
        pytest.importorskip("faker")
    register_key(KEY.decode())
    from runner.sanitize import key_id

    ids = IDS if len(source) == len(IDS) else pa.array([f"p{i}" for i in range(len(source))])
    batch = pa.RecordBatch.from_arrays([source, ids], names=["c", "id"])
    length = MAX if pa.types.is_string(source.type) else None
    typ, fits_in = RULES[rule].output(source.type, length, options)
    plan = {
        "key_id": key_id(KEY),
        "read": [["c", str(source.type)], ["id", "string"]],
        "output": [["c", str(typ)]],
        "steps": [{"column": "c", "into": "c", "rule": rule, "options": options,
                   "type": str(typ)}],
    }  # fmt: skip
    out = Sanitizer(plan, run_date=RUN_DATE)(batch).column("c")
    assert out.type.equals(typ)
    if fits_in is not None:
        assert max(lengths(out), default=0) <= fits_in
    if pa.types.is_date(typ):  # every date still a date a database can store
        values = [v for v in out.to_pylist() if v is not None]
        assert all(dt.date(1, 1, 1) <= v <= dt.date(9999, 12, 31) for v in values)
    if rule in ("age", "truncate_date", "shift_date"):
        # NULL stays NULL; these also write NULL for a negative age, a birth year past max_age
        # and a row without an entity
        assert all(out[i].as_py() is None for i, v in enumerate(source) if not v.is_valid)
    elif rule not in ("constant", "zip3", "null"):
        nulls_stay(source, out)
    if rule in REPLACING:
        before = {str(v) for v in source.to_pylist() if v is not None}
        after = {str(v) for v in out.to_pylist() if v not in (None, "")}
        if rule == "mask":  # a masked value may only equal a source value made of mask chars
            before = {v for v in before if v.strip("*#")}
        assert not before & after, sorted(before & after)


def test_shifted_dates_stay_within_what_databases_store() -> None:
    people = pa.array([f"p{i}" for i in range(40)])
    ends = pa.array([dt.date(1, 1, 1)] * 20 + [dt.date(9999, 12, 31)] * 20)
    out = r.shift_date(ends, people, KEY, 30).to_pylist()  # to_pylist fails outside 1..9999
    assert min(out) == dt.date(1, 1, 1) and max(out) == dt.date(9999, 12, 31)
    assert dt.date(1, 1, 1) < max(out[:20]) and min(out[20:]) < dt.date(9999, 12, 31)
    stamps = pa.array([dt.datetime(9999, 12, 31, 12)] * 40, pa.timestamp("us"))
    assert max(r.shift_date(stamps, people, KEY, 30).to_pylist()) == dt.datetime(
        9999, 12, 31, 23, 59, 59, 999999
    )


def test_noise_never_overflows_the_type() -> None:
    extremes = pa.array([2**63 - 1, -(2**63), None], pa.int64())
    out = r.noise(extremes, 50).to_pylist()
    assert out[0] > 2**62 and out[1] < -(2**62) and out[2] is None
    assert r.noise(pa.array([255], pa.uint8()), 50).to_pylist()[0] <= 255
    money = r.noise(pa.array([Decimal("999.99")] * 50, pa.decimal128(5, 2)), 50)
    assert max(money.to_pylist()) <= Decimal("999.99")


@pytest.mark.parametrize("column", [pa.array([None, None], pa.string()), pa.array([], pa.string())])
def test_keyed_rules_on_empty_and_all_null_batches(column: pa.Array) -> None:
    pool = pa.array(["a", "b"])
    for out in (r.hash_hex(column, KEY, 10), r.hash_int(column, KEY), r.fake(column, KEY, pool),
                r.email(column, KEY), r.mask(column, keep_last=2)):  # fmt: skip
        assert len(out) == len(column) and out.null_count == len(column)
