"""The sample of a table's text columns that the ``hipaa`` profile's content detection looks at:
read, looked at and dropped, never stored or shown."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import pyarrow as pa

from runner.connectors.base import Connector
from runner.plan.plan import ColumnPlan
from runner.plan.types import arrow_from_str
from runner.sanitize.hipaa import SAMPLE_ROWS

Sampler = Callable[[list[ColumnPlan]], Mapping[str, Sequence[str]]]
"""Reads up to a few hundred values of the given text columns (for content detection)."""


def sampler_for(source: Connector, table: str, as_text: set[str]) -> Sampler:
    """Reads up to :data:`~runner.sanitize.hipaa.SAMPLE_ROWS` rows of text columns of ``table``
    for content detection; what it returns is looked at and dropped, never stored or shown."""

    def sample(columns: list[ColumnPlan]) -> dict[str, list[Any]]:
        from sqlglot import exp

        from runner.plan.catalog import table_expr

        arrows = [arrow_from_str(c.arrow_type) for c in columns]
        projections = [
            source.read_expression(c.name, a, c.name in as_text)
            for c, a in zip(columns, arrows, strict=True)
        ]
        query = exp.select(*projections).from_(table_expr(table)).limit(SAMPLE_ROWS)
        schema = pa.schema([(c.name, a) for c, a in zip(columns, arrows, strict=True)])
        found: dict[str, list[Any]] = {c.name: [] for c in columns}
        sql = query.sql(dialect=source.dialect, identify=True)
        for batch in source.read(sql, schema, SAMPLE_ROWS):
            for c in columns:
                found[c.name].extend(batch.column(c.name).to_pylist())
        return found

    return sample
