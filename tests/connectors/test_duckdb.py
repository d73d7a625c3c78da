"""DuckDB passes the connector conformance suite."""

from runner.testing import connector_suite


class TestDuckDB(connector_suite(lambda tmp_path: f"duckdb:///{tmp_path}/suite.duckdb")):
    pass
