"""The committed JSON Schema is the one the models generate, and it describes what loads."""

from __future__ import annotations

import json
from pathlib import Path

from runner.spec.schema import SCHEMA_PATH, json_schema, render, write_schema

ROOT = Path(__file__).resolve().parents[3]


def test_committed_schema_is_current() -> None:
    committed = ROOT / SCHEMA_PATH
    assert committed.is_file(), f"{SCHEMA_PATH} is missing: run `etlrun schema` (or `make schema`)"
    assert committed.read_text(encoding="utf-8") == render(), (
        f"{SCHEMA_PATH} is stale (the spec models changed): run `etlrun schema` "
        "(or `make schema`) and commit the result"
    )


def test_schema_header_and_shorthands() -> None:
    schema = json_schema()
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["$id"] and schema["title"] == "etlrun job spec"
    items = schema["properties"]["tables"]["items"]["anyOf"]
    assert {"type": "string", "description": "Shorthand for {name: ...}."} in items
    assert {"$ref": "#/$defs/TableSpec"} in items
    assert any(s.get("type") == "string" for s in schema["properties"]["schedule"]["anyOf"])


def test_descriptions_come_from_attribute_docstrings() -> None:
    table = json_schema()["$defs"]["TableSpec"]["properties"]
    assert table["where"]["description"].startswith("One boolean SQL expression")
    assert "\n" not in table["if_exists"]["description"]


def test_write_schema_is_stable(tmp_path: Path) -> None:
    out = write_schema(tmp_path / "s" / "job.schema.json")
    text = out.read_text(encoding="utf-8")
    assert text.endswith("}\n")
    assert text == json.dumps(json.loads(text), indent=2, sort_keys=True) + "\n"
