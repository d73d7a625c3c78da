"""Test helpers for connectors, etlrun's own and third-party ones (needs pytest).

``connector_suite(...)`` gives a backend the whole conformance suite in one line; see
:mod:`runner.testing.suite`.
"""

from runner.testing.helpers import (
    assert_rows_equal,
    create_table_sql,
    described_schema,
    read_table,
)
from runner.testing.suite import ConnectorSuite, connector_suite
from runner.testing.values import COMMON_SCHEMA, common_types_table

__all__ = [
    "COMMON_SCHEMA",
    "ConnectorSuite",
    "assert_rows_equal",
    "common_types_table",
    "connector_suite",
    "create_table_sql",
    "described_schema",
    "read_table",
]
