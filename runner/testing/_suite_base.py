"""What every group of the connector suite's tests stands on: the ``url`` and ``connector``
fixtures, and helpers that create, write and read back tables through the public API only."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any

import pyarrow as pa
import pytest

from runner.connectors import connect
from runner.connectors.base import Connector
from runner.plan.catalog import quote_table
from runner.plan.types import target_type
from runner.testing.helpers import create_table_sql, select_sql, utc_wall_clock


class SuiteBase:
    """Fixtures and helpers of :class:`~runner.testing.suite.ConnectorSuite`; no tests."""

    table = "common_types"

    @pytest.fixture
    def url(self) -> str:
        raise NotImplementedError("override the `url` fixture, or use connector_suite(...)")

    @pytest.fixture
    def connector(self, url: str) -> Iterator[Connector]:
        conn = connect(url)
        try:
            yield conn
        finally:
            conn.close()

    # --- helpers ----------------------------------------------------------------------------
    def create(
        self, connector: Connector, name: str, schema: pa.Schema, key: Iterable[str] = ("id",)
    ) -> None:
        connector.execute([create_table_sql(connector, name, schema, key)])

    def write(
        self,
        connector: Connector,
        name: str,
        batches: Iterable[pa.RecordBatch],
        schema: pa.Schema,
        before: Iterable[Any] = (),
    ) -> int:
        result = connector.write(
            quote_table(name, connector.dialect), schema, batches, before=before
        )
        return result.rows

    def lossy(self, connector: Connector, schema: pa.Schema) -> dict[str, str]:
        found = {}
        for f in schema:
            note = target_type(f.type, connector.dialect).lossy
            if note:
                found[f.name] = note
        return found

    def normalizers(
        self, connector: Connector, schema: pa.Schema
    ) -> dict[str, Callable[[Any], Any]]:
        """Only where the type mapping declares a loss: a dropped time zone -> UTC wall clock."""
        return {
            name: utc_wall_clock
            for name, note in self.lossy(connector, schema).items()
            if "time zone" in note
        }

    def ids(self, connector: Connector, name: str, key: str = "id") -> list[Any]:
        return [r[0] for r in connector.rows(select_sql(connector, name, [key], key))]
