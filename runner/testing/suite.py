"""The connector conformance suite: every test a backend must pass, in one importable class.

A connector gets the whole suite by subclassing what :func:`connector_suite` returns, naming
where a fresh, empty database comes from (a pytest fixture, or a function of ``tmp_path``)::

    # tests/connectors/test_postgres.py
    import pytest
    from runner.testing import connector_suite

    @pytest.mark.postgres
    class TestPostgres(connector_suite("pg_url")):
        pass

    # a file-based backend
    class TestSqlite(connector_suite(lambda tmp_path: f"sqlite:///{tmp_path}/suite.db")):
        pass

Everything goes through the public :class:`~runner.connectors.base.Connector` API only
(``connect(url)``, ``list_tables``, ``table_exists``, ``describe``, ``execute``, ``write`` with
``before=``, ``read`` with an Arrow schema, ``scalar`` / ``rows``), and tables are created with the
DDL etlrun itself would write for the backend (:func:`runner.plan.types.target_type`). Values are
compared row by row, by primary key and by value; the only normalisation is the one the type
mapping declares lossy (e.g. MariaDB has no time zone type: an instant lands as its UTC wall clock).

The suite needs pytest, so it is meant for test code only.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from runner.testing._suite_data import DataTests
from runner.testing._suite_failures import FailureTests


class ConnectorSuite(FailureTests, DataTests):
    """Conformance tests for one backend. Subclass it and override :meth:`url`, or use
    :func:`connector_suite`. Each test gets a fresh, empty database from ``url``.

    The tests live in :mod:`runner.testing._suite_data` (round trips) and
    :mod:`runner.testing._suite_failures` (transactions, errors); pytest runs a base class's
    tests first, so in that order.
    """


def connector_suite(
    url: str | Callable[[Path], str], name: str | None = None
) -> type[ConnectorSuite]:
    """The conformance suite as a base class, its databases coming from ``url``.

    Args:
        url: the name of a pytest fixture that yields the URL of a fresh, empty database
            (e.g. ``"pg_url"``), or a function of pytest's ``tmp_path`` returning one
            (e.g. ``lambda tmp_path: f"sqlite:///{tmp_path}/t.db"``).
        name: the class name (shown in test ids); defaults from ``url``.

    Example:
        >>> class TestSqlite(connector_suite(lambda p: f"sqlite:///{p}/t.db")):  # doctest: +SKIP
        ...     pass
    """
    if isinstance(url, str):
        fixture_name = url

        @pytest.fixture
        def url_fixture(self: Any, request: pytest.FixtureRequest) -> str:
            return str(request.getfixturevalue(fixture_name))

    else:
        make = url

        @pytest.fixture
        def url_fixture(self: Any, tmp_path: Path) -> str:
            return make(tmp_path)

    label = name or (f"ConnectorSuite_{url}" if isinstance(url, str) else "ConnectorSuite_tmp")
    return type(label, (ConnectorSuite,), {"url": url_fixture, "__module__": __name__})
