"""The base class every spec model shares: unknown keys refused.

Attribute docstrings are the schema's descriptions, but pydantic reading them (the source of
every model class, parsed at import) cost ~30 ms of every command's start: ``etlrun schema``
reads them itself instead (runner/spec/schema.py)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class SpecModel(BaseModel):
    """Frozen, ``extra="forbid"``."""

    model_config = ConfigDict(extra="forbid", frozen=True)
