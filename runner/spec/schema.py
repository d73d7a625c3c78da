"""The JSON Schema of a job spec, for editors (yaml-language-server) and ``etlrun schema``.

It is generated from the models, so the descriptions are their attribute docstrings; the
committed ``schemas/job.schema.json`` is checked against it by the test suite.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from runner.spec.models import Job

SCHEMA_PATH = "schemas/job.schema.json"
DIALECT = "https://json-schema.org/draft/2020-12/schema"
SCHEMA_ID = "urn:etlrun:schema:job:1"


def json_schema() -> dict[str, Any]:
    """The JSON Schema of :class:`~runner.spec.models.Job`, shorthands included.

    Example:
        >>> schema = json_schema()
        >>> schema["title"], sorted(schema["required"])
        ('etlrun job spec', ['source', 'tables', 'target'])
    """
    from runner.modes import MODES

    schema = Job.model_json_schema()
    defs = schema["$defs"]
    # The loader accepts a bare string for these (see the models' `_shorthand`); say so here,
    # or editors would flag `- patients` and `schedule: "0 2 * * *"` as errors.
    tables = schema["properties"]["tables"]
    tables["items"] = {
        "anyOf": [
            {"type": "string", "description": "Shorthand for {name: ...}."},
            tables["items"],
        ]
    }
    schedule = schema["properties"]["schedule"]
    schedule["anyOf"].insert(
        0, {"type": "string", "description": "A cron expression; shorthand for {cron: ...}."}
    )
    for name in ("TableOptions", "TableSpec"):
        mode = defs[name]["properties"]["mode"]
        mode["anyOf"] = [{"enum": sorted(MODES), "type": "string"}, {"type": "null"}]
    _tidy(schema)
    return {
        "$schema": DIALECT,
        "$id": SCHEMA_ID,
        **schema,
        "title": "etlrun job spec",
    }


def write_schema(path: str | Path = SCHEMA_PATH) -> Path:
    """Write :func:`json_schema` to ``path`` (stable: sorted keys, two-space indent)."""
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(render(), encoding="utf-8")
    return out


def render() -> str:
    return json.dumps(json_schema(), indent=2, sort_keys=True) + "\n"


def _tidy(node: Any) -> None:
    """Fold docstrings' line breaks, which mean nothing in an editor's hover text."""
    if isinstance(node, dict):
        if isinstance(node.get("description"), str):
            node["description"] = " ".join(node["description"].split())
        for value in node.values():
            _tidy(value)
    elif isinstance(node, list):
        for value in node:
            _tidy(value)
