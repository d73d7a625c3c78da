"""``sanitize:`` in the spec: every rule's forms, errors at their line, the key kept secret."""

from __future__ import annotations

import sys

import pytest

from runner import sanitize
from runner.errors import SpecError
from runner.sanitize._plan import rule_text
from runner.spec.load import load_text

KEY = "spec-test-key-0123456789"
HEAD = f"""\
source: sqlite:///a.db
target: sqlite:///b.db
sanitize:
  key: {KEY}
"""


def job(body: str, head: str = HEAD, env: dict[str, str] | None = None):
    return load_text(head + body, file="job.yaml", env=env or {})


def errors(body: str, head: str = HEAD) -> list[str]:
    with pytest.raises(SpecError) as caught:
        job(body, head)
    return [issue.headline() for issue in caught.value.errors]


@pytest.mark.parametrize(
    ("written", "name", "shown"),
    [
        ("drop", "drop", "drop"),
        ("null", "null", "null"),
        ("~", "null", "null"),
        ("{null: true}", "null", "null"),
        ("hash", "hash", "hash"),
        ("{hash: }", "hash", "hash"),
        ("{hash: {length: 12}}", "hash", "{hash: {length: 12}}"),
        ("{hash: {format: integer}}", "hash", "{hash: {format: integer}}"),
        ("{constant: 0}", "constant", "{constant: 0}"),
        ("{constant: 'n/a'}", "constant", '{constant: "n/a"}'),
        ("{constant: null}", "constant", "{constant: null}"),
        ("mask", "mask", "mask"),
        ("{mask: {keep_last: 4, char: '#'}}", "mask", '{mask: {keep_last: 4, char: "#"}}'),
        ("email", "email", "email"),
        ("{email: {keep_domain: true}}", "email", "{email: {keep_domain: true}}"),
        ("{redact: {pattern: '\\d+'}}", "redact", '{redact: {pattern: "\\\\d+"}}'),
        ("{fake: name}", "fake", "{fake: name}"),
        ("{fake: {provider: name, locale: de_DE}}", "fake",
         "{fake: {provider: name, locale: de_DE}}"),
        ("{truncate_date: year}", "truncate_date", "{truncate_date: year}"),
        ("{truncate_date: {to: year, max_age: 89}}", "truncate_date",
         "{truncate_date: {to: year, max_age: 89}}"),
        ("{shift_date: 30}", "shift_date", "{shift_date: 30}"),
        ("{shift_date: {max_days: 30, by: patient_id}}", "shift_date",
         "{shift_date: {max_days: 30, by: patient_id}}"),
        ("age", "age", "age"),
        ("{age: {into: age_years, cap: 90}}", "age", "{age: {into: age_years}}"),
        ("zip3", "zip3", "zip3"),
        ("{round: -2}", "round", "{round: -2}"),
        ("{bucket: [18, 65]}", "bucket", "{bucket: [18, 65]}"),
        ("{noise: 5}", "noise", "{noise: 5}"),
        ("{noise: {pct: 2.5}}", "noise", "{noise: 2.5}"),
    ],
)  # fmt: skip
def test_every_rule_and_its_shorthands(written: str, name: str, shown: str) -> None:
    if name == "fake":
        pytest.importorskip("faker")
    spec = job(f"tables:\n  - name: t\n    sanitize:\n      c: {written}\n")
    rule = spec.tables[0].sanitize["c"]
    assert rule.name == name
    assert rule_text(rule) == shown


def test_job_wide_rules_and_defaults() -> None:
    spec = job(
        '  profile: hipaa\n  allow: [visits.notes]\n  rules:\n    "*email*": hash\n'
        "defaults:\n  sanitize:\n    ssn: drop\n"
        "tables:\n  - name: t\n    sanitize:\n      phone: null\n  - u\n"
    )
    assert spec.sanitize.profile == "hipaa" and spec.sanitize.allow == ["visits.notes"]
    assert spec.sanitize.rules["*email*"].name == "hash"
    # a table's own rules add to the defaults', column by column
    assert sorted(spec.resolve(spec.tables[0]).sanitize) == ["phone", "ssn"]
    assert sorted(spec.resolve(spec.tables[1]).sanitize) == ["ssn"]


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ("      c: maks\n", "tables[0].sanitize.c: unknown rule 'maks' (did you mean 'mask'?)"),
        ("      c: {maks: {}}\n", "tables[0].sanitize.c.maks: unknown key (did you mean 'mask'?)"),
        ("      c: {mask: {keep_lst: 4}}\n",
         "tables[0].sanitize.c.mask.keep_lst: unknown key (did you mean 'keep_last'?)"),
        ("      c: {drop: true, hash: {}}\n",
         "tables[0].sanitize.c: one rule per column, not 2 (drop, hash)"),
        ("      c: {}\n", "tables[0].sanitize.c: no rule given"),
        ("      c: redact\n", "tables[0].sanitize.c: 'redact' needs options"),
        ("      c: {hash: {format: integer, length: 8}}\n",
         "tables[0].sanitize.c.hash: 'length' applies to format: hex only"),
        ("      c: {hash: {length: 65}}\n", "tables[0].sanitize.c.hash.length: must be at most 64"),
        ("      c: {mask: {char: '**'}}\n", "tables[0].sanitize.c.mask.char"),
        ("      c: {truncate_date: week}\n",
         "tables[0].sanitize.c.truncate_date: 'week' is not one of: year, month"),
        ("      c: {bucket: [65, 18]}\n",
         "tables[0].sanitize.c: bucket edges must be in ascending"),
        ("      c: {redact: {pattern: '(('}}\n",
         "tables[0].sanitize.c.redact.pattern: not a regular expression"),
        ("      c: {noise: 0}\n", "tables[0].sanitize.c.noise: must be greater than 0"),
        ("      c: {shift_date: {by: x}}\n", "missing required key 'max_days'"),
    ],
)  # fmt: skip
def test_rule_errors_are_positioned_in_the_users_words(body: str, expected: str) -> None:
    found = errors("tables:\n  - name: t\n    sanitize:\n" + body)
    assert len(found) == 1, found
    assert found[0].startswith("job.yaml:"), found
    assert expected in found[0], found


def test_sanitize_is_no_longer_a_later_key() -> None:
    found = errors("tables:\n  - name: t\n    sanitze: {a: drop}\n")
    assert "tables[0].sanitze: unknown key (did you mean 'sanitize'?)" in found[0]
    found = errors("  profil: hipaa\ntables: [t]\n")
    assert "sanitize.profil: unknown key (did you mean 'profile'?)" in found[0]


def test_keyed_rules_need_a_key() -> None:
    head = "source: sqlite:///a.db\ntarget: sqlite:///b.db\n"
    head += "sanitize:\n  rules:\n    '*ssn*': hash\n"
    found = errors("tables:\n  - name: t\n    sanitize:\n      d: {shift_date: 10}\n", head)
    assert 'sanitize.rules["*ssn*"], tables[0].sanitize.d: keyed rules' in found[0]
    assert "need sanitize.key, e.g. key: ${SANITIZE_KEY}" in found[0]
    # rules that need no key need none
    job("tables:\n  - name: t\n    sanitize:\n      d: drop\n", "source: x:///a\ntarget: x:///b\n")


def test_the_key_is_a_secret() -> None:
    spec = job("tables: [t]\n", head=HEAD.replace(KEY, "${SANITIZE_KEY}"),
               env={"SANITIZE_KEY": KEY})  # fmt: skip
    assert spec.sanitize.key.get_secret_value() == KEY
    for shown in (repr(spec), str(spec), spec.model_dump_json(), repr(spec.model_dump())):
        assert KEY not in shown
    from runner.secrets import scrub

    assert scrub(f"x {KEY} y") == "x *** y"
    assert sanitize.key_for(sanitize.key_id(KEY)) == KEY.encode()


def test_a_short_key_is_refused_without_showing_it() -> None:
    short = "tiny-key-123"
    with pytest.raises(SpecError) as caught:
        job("tables: [t]\n", head=HEAD.replace(KEY, short))
    text = caught.value.render()
    assert "sanitize.key: the key must be at least 16 characters long" in text
    assert short not in text


def test_fake_without_faker_says_how_to_install_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "faker", None)  # import faker -> ImportError
    sanitize._faker.cache_clear()
    try:
        found = errors("tables:\n  - name: t\n    sanitize:\n      n: {fake: name}\n")
    finally:
        sanitize._faker.cache_clear()
    expected = 'sanitize.n.fake: the fake rule needs Faker: pip install "etlrun[sanitize]"'
    assert expected in found[0]


def test_fake_checks_provider_and_locale() -> None:
    pytest.importorskip("faker")
    found = errors("tables:\n  - name: t\n    sanitize:\n      n: {fake: first_nam}\n")
    assert "unknown Faker provider 'first_nam' (did you mean 'first_name'?)" in found[0]
    found = errors(
        "tables:\n  - name: t\n    sanitize:\n      n: {fake: {provider: name, locale: xx_YY}}\n"
    )
    assert "unknown Faker locale 'xx_YY'" in found[0]
    found = errors("tables:\n  - name: t\n    sanitize:\n      n: {fake: seed_instance}\n")
    assert "unknown Faker provider 'seed_instance'" in found[0]


def test_every_rule_and_option_is_documented_in_the_json_schema() -> None:
    from runner.spec.models import RULE_NAMES
    from runner.spec.schema import json_schema

    defs = json_schema()["$defs"]
    rule = defs["SanitizeRule"]
    mapping = next(form for form in rule["anyOf"] if form.get("type") == "object")
    assert set(mapping["properties"]) == set(RULE_NAMES)
    assert all(p.get("description") for p in mapping["properties"].values())
    bare = next(form for form in rule["anyOf"] if form.get("enum"))
    assert {"drop", "null", "hash", "mask", "zip3"} <= set(bare["enum"])
    models = ("HashOptions", "MaskOptions", "EmailOptions", "RedactOptions", "FakeOptions",
              "TruncateDateOptions", "ShiftDateOptions", "AgeOptions", "NoiseOptions")  # fmt: skip
    for name in models:
        model = defs[name]
        fields = model.get("properties") or next(
            f["properties"] for f in model["anyOf"] if "properties" in f
        )
        assert all(f.get("description") for f in fields.values()), name
    spec = defs["SanitizeSpec"]["properties"]
    assert set(spec) == {"key", "profile", "allow", "rules"}
    assert all(p.get("description") for p in spec.values())
