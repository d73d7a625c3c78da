"""SQLite passes the connector conformance suite."""

from runner.testing import connector_suite


class TestSqlite(connector_suite(lambda tmp_path: f"sqlite:///{tmp_path}/suite.db")):
    pass
