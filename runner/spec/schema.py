"""The JSON Schema of a job spec, for editors (yaml-language-server) and ``etlrun schema``.

It is generated from the models, so the descriptions are their attribute docstrings (read
here from the models' source, not by pydantic at every import); the committed
``schemas/job.schema.json`` is checked against it by the test suite.
"""

from __future__ import annotations

import ast
import inspect
import json
import textwrap
from pathlib import Path
from typing import Any

from pydantic import BaseModel

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

    _describe_fields()
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


def _models(base: type[BaseModel]) -> list[type[BaseModel]]:
    found = []
    for cls in base.__subclasses__():
        found += [cls, *_models(cls)]
    return found


def _describe_fields() -> None:
    """Give every spec model's fields their attribute docstrings as descriptions (once), and
    rebuild the models' schemas with them (leaves before the models that nest them)."""
    models = [cls for cls in _models(BaseModel) if cls.__module__.startswith("runner.")]
    changed = False
    for model in models:
        for name, field in model.model_fields.items():
            if field.description is None:
                docs = (_attribute_docs(c).get(name) for c in model.__mro__)
                doc = next(filter(None, docs), None)
                if doc:
                    field.description, changed = doc, True
    previous: dict[str, Any] | None = None
    for _ in range(len(models) if changed else 0):  # until the nested schemas have them too
        for model in models:
            model.model_rebuild(force=True)
        current = Job.model_json_schema()
        if current == previous:
            break
        previous = current


def _attribute_docs(cls: type) -> dict[str, str]:
    """The string literals that follow annotated attributes in the body of ``cls``."""
    try:
        tree = ast.parse(textwrap.dedent(inspect.getsource(cls)))
    except (OSError, TypeError, SyntaxError):
        return {}
    if not tree.body or not isinstance(tree.body[0], ast.ClassDef):
        return {}
    body = tree.body[0].body
    docs = {}
    for node, after in zip(body, body[1:], strict=False):
        if (
            isinstance(node, ast.AnnAssign)
            and isinstance(node.target, ast.Name)
            and isinstance(after, ast.Expr)
            and isinstance(after.value, ast.Constant)
            and isinstance(after.value.value, str)
        ):
            docs[node.target.id] = inspect.cleandoc(after.value.value)
    return docs


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
