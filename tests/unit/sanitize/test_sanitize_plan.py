"""Plan time: rules resolved per table and checked against the columns; the hipaa refusal.

Compiles jobs against a small SQLite database (no server); a few checks call the planner
directly with a PostgreSQL target dialect, where text lengths show in the DDL.
"""

from __future__ import annotations

import json
import re
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from runner import sanitize
from runner.connectors import connect
from runner.connectors.base import Column, TableInfo
from runner.errors import SafetyError, SpecError
from runner.plan.compiler import compile
from runner.plan.plan import ColumnPlan, Plan
from runner.plan.render import to_text
from runner.sanitize import _plan
from runner.spec.load import load_text


@pytest.fixture(autouse=True)
def _redaction_off_afterwards() -> Iterator[None]:
    """Sanitizing switches driver-error redaction on for the process: off again after each
    test, so tests elsewhere see driver messages as the drivers wrote them."""
    yield
    sanitize.deactivate()


KEY = "plan-test-key-0123456789abcdef"
SCHEMA = """
CREATE TABLE patients (
    id INTEGER PRIMARY KEY,
    mrn TEXT NOT NULL,
    first_name TEXT,
    last_name TEXT,
    birth_date DATE,
    ssn VARCHAR(11) NOT NULL,
    contact TEXT,
    zip TEXT,
    notes TEXT,
    sex TEXT,
    score REAL,
    created_at TIMESTAMP
);
CREATE TABLE visits (
    id INTEGER PRIMARY KEY,
    patient_id INTEGER NOT NULL REFERENCES patients(id),
    visit_date DATE NOT NULL,
    dept TEXT
);
CREATE TABLE codes (code TEXT PRIMARY KEY, label TEXT);
"""


@pytest.fixture
def db(tmp_path: Path) -> Path:
    path = tmp_path / "src.db"
    with sqlite3.connect(path) as conn:
        conn.executescript(SCHEMA)
        conn.executemany(
            "INSERT INTO patients VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
            [
                (i, f"MRN{i:05d}", f"First{i}", f"Last{i}", f"19{30 + i % 60:02d}-02-0{1 + i % 9}",
                 f"{i:03d}-12-{i:04d}", f"person{i}@example.org", f"{10000 + i}",
                 f"Patient {i} reports a headache since Monday, no fever.", "F", i / 3,
                 "2020-01-01 10:00:00")
                for i in range(1, 101)
            ],
        )  # fmt: skip
        conn.executemany(
            "INSERT INTO visits VALUES (?,?,?,?)",
            [(i, 1 + i % 100, f"2024-0{1 + i % 9}-1{i % 9}", "general") for i in range(1, 301)],
        )
        conn.executemany("INSERT INTO codes VALUES (?,?)", [("A1", "alpha"), ("B2", "beta")])
    return path


def plan_of(db: Path, body: str, sanitize: str = "", tables: list[str] | None = None) -> Plan:
    text = (
        f"source: sqlite:///{db}\ntarget: sqlite:///{db.parent / 'out.db'}\n"
        + (f"sanitize:\n  key: {KEY}\n{sanitize}" if sanitize is not None else "")
        + body
    )
    job = load_text(text, file=str(db.parent / "job.yaml"), env={})
    source, target = connect(job.source), connect(job.target)
    try:
        return compile(job, source, target, tables)
    finally:
        source.close()
        target.close()


def table(plan: Plan, name: str) -> Any:
    return plan.table(name)


def chunk(plan: Plan, name: str) -> Any:
    return next(t for t in plan.tasks if t.table == name and t.kind == "chunk")


def test_rules_shape_what_is_read_and_written(db: Path) -> None:
    plan = plan_of(
        db,
        "tables:\n  - name: patients\n    sanitize:\n      ssn: {hash: {length: 12}}\n"
        "      notes: drop\n      birth_date: {age: {into: age_years}}\n"
        "      contact: email\n  - codes\n",
    )
    patients = table(plan, "patients")
    names = [c.name for c in patients.columns]
    assert "notes" not in names and "birth_date" not in names
    assert names.index("age_years") == 4, "a derived column takes its source's place"
    read, prepare = patients.sql["read"][0], patients.sql["prepare"][0]
    assert '"notes"' not in read, "a dropped column is not even read"
    assert '"birth_date"' in read and '"age_years"' not in read
    assert re.search(r'"ssn" TEXT,', prepare), "NOT NULL of the source is not carried over"
    assert '"age_years" TEXT' in prepare
    task = chunk(plan, "patients")
    steps = {s["column"]: s["rule"] for s in task.params["sanitize"]["steps"]}
    assert steps == {"ssn": "hash", "birth_date": "age", "contact": "email"}
    assert [n for n, _ in task.params["schema"]] == names
    assert "sanitize" not in chunk(plan, "codes").params, "nothing to do, nothing carried"


def test_the_key_never_reaches_the_plan(db: Path) -> None:
    plan = plan_of(db, "tables:\n  - name: patients\n    sanitize:\n      ssn: hash\n")
    for shown in (plan.to_json(), to_text(plan), repr(plan.tasks)):
        assert KEY not in shown
    from runner.sanitize import key_id

    assert chunk(plan, "patients").params["sanitize"]["key_id"] == key_id(KEY)


def test_plan_text_shows_column_class_rule(db: Path) -> None:
    plan = plan_of(
        db, "tables:\n  - name: patients\n    sanitize:\n      ssn: hash\n      notes: drop\n"
    )
    text = to_text(plan)
    assert "  sanitize:\n" in text
    assert re.search(r"\n    ssn +- +hash\n", text)
    assert re.search(r"\n    notes +- +drop\n", text)
    assert re.search(r"\n    sex +- +-\n", text)
    report = table(plan, "patients").options["sanitize"]
    assert report["profile"] is None and len(report["columns"]) == 12


def test_a_sanitized_key_is_one_chunk_without_bounds(db: Path) -> None:
    body = "defaults:\n  chunk_rows: 10\ntables:\n  - name: patients\n"
    body += "    sanitize:\n      id: hash\n"
    plan = plan_of(db, body)
    patients = table(plan, "patients")
    assert patients.chunks == ((None, None),), "key ranges would hold raw key values"
    assert "WHERE" not in patients.sql["read"][0]
    unsanitized = plan_of(db, "defaults:\n  chunk_rows: 10\ntables: [patients]\n", sanitize=None)
    assert len(table(unsanitized, "patients").chunks) == 10


def test_precedence_table_then_defaults_then_globs(db: Path) -> None:
    plan = plan_of(
        db,
        "defaults:\n  sanitize:\n    mrn: drop\n    zip: zip3\n"
        "tables:\n  - name: patients\n    sanitize:\n      zip: drop\n  - visits\n",
        sanitize='  rules:\n    "*NAME*": null\n    "first_*": drop\n    "MRN": hash\n',
    )
    names = [c.name for c in table(plan, "patients").columns]
    assert "zip" not in names, "the table's rule wins over defaults'"
    assert "mrn" not in names, "defaults' rule wins over a glob"
    steps = {s["column"]: s["rule"] for s in chunk(plan, "patients").params["sanitize"]["steps"]}
    assert steps["first_name"] == "null", "the first glob that matches wins; case-insensitive"
    assert steps["last_name"] == "null"
    assert "sanitize" not in chunk(plan, "visits").params, "defaults apply where the column is"


@pytest.mark.parametrize(
    ("rules", "expected"),
    [
        ("      ssnn: drop\n",
         "tables[0].sanitize.ssnn: column 'ssnn' does not exist in patients (did you mean 'ssn'?)"),
        ("      sex: {truncate_date: year}\n",
         "tables[0].sanitize.sex: 'truncate_date' does not fit column 'sex' of type string (TEXT); "
         "it takes dates and timestamps"),
        ("      score: zip3\n", "'zip3' does not fit column 'score' of type double"),
        ("      first_name: {round: 1}\n", "it takes numbers"),
        ("      score: {constant: abc}\n", "constant abc is not a double value"),
        ("      id: null\n", "'null' on key column 'id' would make every key NULL"),
        ("      created_at: {shift_date: {max_days: 3, by: nobody}}\n",
         "shift_date by: no column 'nobody'"),
        ("      birth_date: {age: {at: sex}}\n", "age at: column 'sex' is string, not a date"),
        ("      birth_date: {age: {at: visit_date}}\n", "age at: 'visit_date' is neither run_date"),
        ("      birth_date: {age: {into: sex}}\n", "column 'sex' would be written twice"),
    ],
)  # fmt: skip
def test_plan_time_errors_name_the_rule(db: Path, rules: str, expected: str) -> None:
    with pytest.raises(SpecError) as caught:
        plan_of(db, "tables:\n  - name: patients\n    sanitize:\n" + rules)
    assert expected in str(caught.value)
    assert caught.value.exit_code == 2


def test_a_glob_rule_that_does_not_fit_names_the_glob(db: Path) -> None:
    with pytest.raises(SpecError, match=r'sanitize.rules\["\*_date"\] \(visit_date\): \'zip3\''):
        plan_of(db, "tables: [visits]\n", sanitize='  rules:\n    "*_date": zip3\n')


def test_types_override_cannot_fight_a_rule(db: Path) -> None:
    with pytest.raises(SpecError, match="types: override of 'ssn' cannot apply"):
        plan_of(
            db,
            "tables:\n  - name: patients\n    types: {ssn: 'varchar(11)'}\n"
            "    sanitize:\n      ssn: hash\n",
        )


# --- profile hipaa -------------------------------------------------------------------------------
def refusal(db: Path, body: str, sanitize: str = "  profile: hipaa\n") -> str:
    with pytest.raises(SafetyError) as caught:
        plan_of(db, body, sanitize=sanitize)
    assert caught.value.exit_code == 6
    return str(caught.value)


def test_hipaa_refuses_unruled_identifiers_and_says_what_to_paste(db: Path) -> None:
    message = refusal(db, "tables: [patients, visits, codes]\n")
    found = dict(re.findall(r"^  (\w+\.\w+) +(\(\w\) [^\n]*?)  \(found by", message, re.M))
    assert set(found) == {
        "patients.id", "patients.mrn", "patients.first_name", "patients.last_name",
        "patients.birth_date", "patients.ssn", "patients.contact", "patients.zip",
        "patients.notes", "patients.created_at", "visits.patient_id", "visits.visit_date",
    }  # fmt: skip
    assert found["patients.ssn"] == "(G) social security numbers"
    assert found["patients.contact"] == "(F) e-mail addresses", "found by content"
    assert found["patients.zip"].startswith("(B)")
    assert "birth date" in found["patients.birth_date"]
    assert "nothing was read or written" in message
    assert "      birth_date: {truncate_date: {to: year, max_age: 89}}" in message
    assert "      zip: zip3" in message
    assert "      notes: drop" in message
    assert "      id: {hash: {format: integer}}" in message
    assert "      patient_id: {hash: {format: integer}}" in message
    assert "      ssn: hash" in message


def test_the_pasted_rules_make_the_job_pass(db: Path) -> None:
    message = refusal(db, "tables: [patients, visits]\n")
    rules: dict[int, list[str]] = {}
    pasted = r"# tables\[(\d)\]: \w+\n    sanitize:\n((?:      .*\n?)+)"
    for index, block in re.findall(pasted, message):
        rules[int(index)] = block.rstrip("\n").splitlines()
    body = "tables:\n"
    for index, name in enumerate(("patients", "visits")):
        body += f"  - name: {name}\n    sanitize:\n" + "".join(f"{r}\n" for r in rules[index])
    plan = plan_of(db, body, sanitize="  profile: hipaa\n")
    report = {e["column"]: e for e in table(plan, "patients").options["sanitize"]["columns"]}
    assert report["birth_date"]["rule"] == "{truncate_date: {to: year, max_age: 89}}"
    assert report["sex"]["class"] is None and report["sex"]["rule"] is None
    assert report["ssn"]["class"] == "(G) social security numbers"
    assert "profile hipaa" in to_text(plan)


def test_hipaa_applies_max_age_to_birth_dates_and_says_so(db: Path) -> None:
    plan = plan_of(
        db,
        "tables:\n  - name: patients\n    columns: [id, birth_date]\n    sanitize:\n"
        "      id: {hash: {format: integer}}\n      birth_date: {truncate_date: year}\n",
        sanitize="  profile: hipaa\n",
    )
    step = chunk(plan, "patients").params["sanitize"]["steps"][1]
    assert step["options"] == {"to": "year", "max_age": 89}
    assert "max_age 89 (profile hipaa, birth date)" in to_text(plan)


@pytest.mark.parametrize(
    ("rule", "why"),
    [
        ("ssn: {mask: {keep_last: 4}}", "'mask' is too weak for social security numbers"),
        ("ssn: {redact: {pattern: '\\d'}}", "'redact' is too weak"),
        ("birth_date: {truncate_date: month}", "keeps the month of birth date"),
        ("birth_date: {truncate_date: {to: year, max_age: 95}}", "max_age 95 lets birth years"),
        ("birth_date: {age: {cap: 100}}", "cap 100 keeps ages over 89"),
        ("created_at: {shift_date: 30}", "'shift_date' keeps date elements"),
        ("contact: {email: {keep_domain: true}}", "keep_domain keeps part of the address"),
        ("zip: {mask: {keep_first: 3}}", "use drop, null, constant, hash or fake, or zip3"),
    ],
)
def test_hipaa_refuses_weak_rules(db: Path, rule: str, why: str) -> None:
    with pytest.raises(SpecError) as caught:
        plan_of(
            db,
            f"tables:\n  - name: patients\n    sanitize:\n      {rule}\n",
            sanitize="  profile: hipaa\n",
        )
    column = rule.split(":")[0]
    assert f"tables[0].sanitize.{column}: under profile hipaa, " in str(caught.value)
    assert why in str(caught.value)


def test_allow_lets_a_column_through_and_must_match(db: Path) -> None:
    globbed = plan_of(
        db, "tables: [visits]\n",
        sanitize="  profile: hipaa\n  allow: [visits.visit_date, '*.PATIENT_*']\n",
    )  # fmt: skip
    assert "sanitize" not in chunk(globbed, "visits").params
    message = refusal(db, "tables: [visits]\n", "  profile: hipaa\n  allow: [visit_date]\n")
    assert "visits.patient_id" in message and "visits.visit_date" not in message
    with pytest.raises(SpecError, match=r"sanitize.allow\[1\]: 'visits.nothing' matches no"):
        plan_of(
            db, "tables: [visits]\n",
            sanitize="  profile: hipaa\n  allow: [visits.visit_date, visits.nothing, "
                     "visits.patient_id]\n",
        )  # fmt: skip
    plan = plan_of(
        db, "tables: [visits]\n",
        sanitize="  profile: hipaa\n  allow: [visits.visit_date, visits.patient_id]\n",
    )  # fmt: skip
    report = {e["column"]: e["rule"] for e in table(plan, "visits").options["sanitize"]["columns"]}
    assert report == {"id": None, "patient_id": "allowed", "visit_date": "allowed", "dept": None}
    assert "sanitize" not in chunk(plan, "visits").params, "allowed columns move as they are"


def test_hipaa_with_tables_option_checks_only_those(db: Path) -> None:
    with pytest.raises(SafetyError) as caught:
        plan_of(db, "tables: [patients, visits]\n", "  profile: hipaa\n", tables=["visits"])
    assert "patients." not in str(caught.value) and "visits.patient_id" in str(caught.value)


# --- DDL lengths, with a PostgreSQL target ------------------------------------------------------
def test_output_types_fit_the_target_column() -> None:
    job = load_text(
        f"source: x:///a\ntarget: x:///b\nsanitize:\n  key: {KEY}\n"
        "tables:\n  - name: people\n    sanitize:\n      ssn: {hash: {length: 12}}\n"
        "      phone: {mask: {keep_last: 4}}\n      zip: zip3\n      name: {fake: name}\n"
        "      code: {constant: ABCDEFGHIJKLMNOPQRSTUVWXYZ}\n      dob: {truncate_date: year}\n"
        "      age: age\n      kind: {bucket: [1, 10, 100]}\n      id: {hash: {format: integer}}\n",
        env={},
    )
    columns = [
        ("id", "INTEGER", "int32", "INTEGER"),
        ("ssn", "VARCHAR(11)", "string", "VARCHAR(11)"),
        ("phone", "VARCHAR(20)", "string", "VARCHAR(20)"),
        ("zip", "VARCHAR(10)", "string", "VARCHAR(10)"),
        ("name", "VARCHAR(40)", "string", "VARCHAR(40)"),
        ("code", "VARCHAR(4)", "string", "VARCHAR(4)"),
        ("dob", "DATE", "date32[day]", "DATE"),
        ("age", "INTEGER", "int32", "INTEGER"),
        ("kind", "SMALLINT", "int16", "SMALLINT"),
    ]
    info = TableInfo(None, "people", tuple(Column(n, t, False) for n, t, _, _ in columns), ("id",))
    plans = [ColumnPlan(n, t, a, d) for n, t, a, d in columns]
    planned = _plan.plan_table(
        job, job.tables[0], 0, "people", info, plans, ["id"], "postgres", "postgres",
        lambda name: next(p for p in plans if p.name == name),
    )  # fmt: skip
    assert planned is not None
    ddl = {c.name: c.target_type for c in planned.columns}
    assert ddl == {
        "id": "BIGINT", "ssn": "VARCHAR(12)", "phone": "VARCHAR(20)", "zip": "VARCHAR(3)",
        "name": "TEXT", "code": "VARCHAR(26)", "dob": "SMALLINT", "age": "VARCHAR(3)",
        "kind": "VARCHAR(9)",
    }  # fmt: skip
    assert planned.key_sanitized and planned.nullable == set(ddl) - {"id"}
    assert json.dumps(planned.params)  # plain data, for task params
    assert KEY not in json.dumps(planned.params)


def test_a_generated_column_of_a_sanitized_one_needs_a_rule() -> None:
    info = TableInfo(
        None,
        "people",
        (
            Column("ssn", "TEXT"),
            Column("ssn_tail", "TEXT", generated="(right(`ssn`,4))"),
            Column("ssn_count", "INT", generated='length("ssn_count_base")'),
            Column("upper_name", "TEXT", generated="upper(name)"),
            Column("name", "TEXT"),
        ),
    )
    choices = {"ssn": object(), "name": object()}
    copied = ["ssn", "ssn_tail", "ssn_count", "upper_name", "name"]
    errors = _plan._generated_from_ruled(2, info, choices, copied)  # type: ignore[arg-type]
    assert [e.split("'")[1] for e in errors] == ["ssn_tail", "upper_name"]
    assert errors[0].startswith("tables[2].sanitize: column 'ssn_tail' is generated from 'ssn'")
    ruled = {**choices, "ssn_tail": object(), "upper_name": object()}
    assert not _plan._generated_from_ruled(2, info, ruled, copied)  # type: ignore[arg-type]
    assert not _plan._generated_from_ruled(2, info, choices, ["ssn", "name"])  # type: ignore[arg-type]


def test_a_defaults_rule_for_a_column_no_table_has_is_an_error(db: Path) -> None:
    body = "defaults:\n  sanitize:\n    mrnn: drop\n    zip: zip3\ntables: [patients, visits]\n"
    with pytest.raises(SpecError, match=r"defaults.sanitize.mrnn: column 'mrnn' is in none of"):
        plan_of(db, body)
    assert plan_of(db, body, tables=["visits"]), "a subset of tables cannot tell"
