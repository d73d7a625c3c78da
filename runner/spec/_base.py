"""The base class every spec model shares: unknown keys refused, attribute docstrings kept."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class SpecModel(BaseModel):
    """Frozen, ``extra="forbid"``, and attribute docstrings as schema descriptions."""

    model_config = ConfigDict(extra="forbid", use_attribute_docstrings=True, frozen=True)
