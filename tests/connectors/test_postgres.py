"""PostgreSQL passes the connector conformance suite (a fresh database per test: `pg_url`)."""

import pytest

from runner.testing import connector_suite


@pytest.mark.postgres
class TestPostgres(connector_suite("pg_url")):
    pass
