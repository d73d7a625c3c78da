"""profile hipaa's detector: each of the 18 Safe Harbor classes found by name, by type or by
sampling content, the rule suggested for it, and columns that must not be found."""

from __future__ import annotations

import pyarrow as pa
import pytest

from runner.sanitize.hipaa import CLASSES, by_content, by_name, detect, suggest, weakness

NAMES = {
    "names": ["first_name", "patientName", "surname", "full_name", "name"],
    "geographic": ["street_address", "city", "zip_code", "PostalCode", "latitude"],
    "dates": ["dob", "DateOfBirth", "admission_date", "discharge_dt", "age", "date_of_death"],
    "phone": ["home_phone", "phoneNumber", "mobile"],
    "fax": ["fax_number", "fax"],
    "email": ["EmailAddress", "e_mail"],
    "ssn": ["SSN", "social_security_number"],
    "medical_record": ["mrn", "medical_record_number", "chart_no"],
    "health_plan": ["health_plan_id", "insurance_id", "medicaid_no", "beneficiary_number"],
    "account": ["account_number", "iban", "credit_card"],
    "license": ["license_no", "drivers_license", "certificate_number"],
    "vehicle": ["vin", "license_plate"],
    "device": ["device_serial", "imei", "serial_number"],
    "url": ["website", "homepage_url"],
    "ip": ["ip_address", "client_ip"],
    "biometric": ["fingerprint", "retina_scan", "voice_print"],
    "photo": ["photo", "profile_picture"],
    "other_id": ["passport_number", "patient_id", "notes"],
}


def test_every_class_is_covered() -> None:
    assert set(NAMES) == set(CLASSES) and len(CLASSES) == 18
    assert [c.item for c in CLASSES.values()] == list("ABCDEFGHIJKLMNOPQR")


@pytest.mark.parametrize(
    ("cls", "column"), [(cls, column) for cls, columns in NAMES.items() for column in columns]
)
def test_found_by_name(cls: str, column: str) -> None:
    found = by_name(column, "visits")
    assert found is not None and found.cls == cls and found.via == "name"


@pytest.mark.parametrize(
    "column", ["id", "sex", "department", "cost", "test_code", "zipper_count", "ipsum",
               "mileage", "unit", "abnormal", "stage", "birthplace_country_count"],
)  # fmt: skip
def test_not_found_by_name(column: str) -> None:
    assert by_name(column, "visits") is None


def test_a_person_tables_key_is_an_identifier() -> None:
    assert by_name("id", "patients", is_key=True).hint == "entity_id"  # type: ignore[union-attr]
    assert by_name("id", "visits", is_key=True) is None


def test_found_by_type() -> None:
    columns = [("visit_day", pa.date32()), ("seen", pa.timestamp("us")), ("blob", pa.binary()),
               ("amount", pa.float64()), ("code", pa.string())]  # fmt: skip
    found = detect("t", columns)
    assert {c: (f.cls, f.via) for c, f in found.items()} == {
        "visit_day": ("dates", "type"), "seen": ("dates", "type"), "blob": ("photo", "type"),
    }  # fmt: skip


CONTENT = {
    "email": ["ann@example.org", "bo@x.io", None, "  ", "c.d@mail.example.com"],
    "ssn": ["123-45-6789", "987-65-4321", ""],
    "url": ["https://example.org/p/1", "www.example.com", "ftp://files.example"],
    "ip": ["10.0.0.1", "192.168.1.20", "fe80::1"],
    "geographic": ["10001", "03601-1234", "94110"],
    "dates": ["2020-01-05", "1931-06-15 10:00:00", "2024-02-29"],
    "phone": ["+1 (555) 123-4567", "555.987.6543", "0044 20 7946 0958"],
}


@pytest.mark.parametrize("cls", list(CONTENT))
def test_found_by_content(cls: str) -> None:
    found = by_content("c", CONTENT[cls])
    assert found is not None and found.cls == cls and found.via == "content"


def test_free_text_and_unique_codes_are_found_by_content() -> None:
    prose = [f"Patient {i} came in with a cough and was sent home with rest." for i in range(5)]
    assert by_content("c", prose).hint == "free_text"  # type: ignore[union-attr]
    codes = [f"PL-{i * 7919:07d}" for i in range(40)]
    found = by_content("ref", codes)
    assert found is not None and (found.cls, found.hint) == ("other_id", "unique_code")
    assert suggest(found, pa.string()) == "hash"
    assert by_content("ref", codes[:10]) is None, "too few values to call them unique"
    repeated = [f"LOT-{i % 5:06d}" for i in range(40)]
    assert by_content("lot", repeated) is None, "codes that repeat are categories"


@pytest.mark.parametrize(
    "values",
    [["F", "M", "F", None], ["general", "cardiology", "oncology"], ["mg/dL", "mmol/L"],
     ["12", "7", "3"], [None, "", "   "], []],
)  # fmt: skip
def test_not_found_by_content(values: list[str | None]) -> None:
    assert by_content("c", values) is None


def test_sampling_only_runs_on_columns_the_name_and_type_did_not_settle() -> None:
    sample = {"contact": ["a@b.example", "c@d.example"], "first_name": ["x@y.example"]}
    found = detect("t", [("contact", pa.string()), ("first_name", pa.string())], sample=sample)
    assert found["contact"].cls == "email" and found["contact"].via == "content"
    assert found["first_name"].cls == "names" and found["first_name"].via == "name"


@pytest.mark.parametrize(
    ("column", "arrow", "rule"),
    [
        ("dob", pa.date32(), {"truncate_date": {"to": "year", "max_age": 89}}),
        ("admission_date", pa.date32(), {"truncate_date": "year"}),
        ("age", pa.int32(), {"age": {"cap": 90}}),
        ("zip", pa.string(), "zip3"),
        ("first_name", pa.string(), {"fake": "first_name"}),
        ("ssn", pa.string(), "hash"),
        ("patient_id", pa.int64(), {"hash": {"format": "integer"}}),
        ("notes", pa.string(), "drop"),
        ("ip_address", pa.string(), "drop"),
    ],
)
def test_suggested_rules(column: str, arrow: pa.DataType, rule: object) -> None:
    found = by_name(column, "patients")
    assert found is not None and suggest(found, arrow) == rule


@pytest.mark.parametrize(
    ("column", "rule", "options"),
    [
        ("dob", "truncate_date", {"to": "month"}),
        ("dob", "truncate_date", {"to": "year", "max_age": 95}),
        ("dob", "shift_date", {"max_days": 30}),
        ("ssn", "mask", {"keep_last": 4}),
        ("ssn", "redact", {"pattern": "[0-9]"}),
        ("age", "round", -1),
        ("age", "age", {"cap": 100}),
        ("zip", "mask", {}),
        ("email", "email", {"keep_domain": True}),
    ],
)
def test_too_weak_for_its_class(column: str, rule: str, options: object) -> None:
    found = by_name(column, "patients")
    assert found is not None
    assert weakness(found, rule, options if isinstance(options, dict) else {}) is not None


@pytest.mark.parametrize(
    ("column", "rule", "options"),
    [("dob", "truncate_date", {"to": "year"}), ("dob", "age", {}), ("ssn", "hash", {}),
     ("ssn", "drop", {}), ("zip", "zip3", {}), ("first_name", "fake", {}),
     ("email", "email", {"keep_domain": False}), ("age", "age", {"cap": 90})],
)  # fmt: skip
def test_strong_enough(column: str, rule: str, options: dict[str, object]) -> None:
    found = by_name(column, "patients")
    assert found is not None and weakness(found, rule, options) is None
