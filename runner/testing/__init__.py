"""Test helpers for connectors, etlrun's own and third-party ones (needs pytest).

``connector_suite(...)`` gives a backend the whole conformance suite in one line; see
:mod:`runner.testing.suite`.
"""

from runner.testing.suite import (
    COMMON_SCHEMA,
    ConnectorSuite,
    assert_rows_equal,
    common_types_table,
    connector_suite,
    create_table_sql,
    described_schema,
    read_table,
)

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
