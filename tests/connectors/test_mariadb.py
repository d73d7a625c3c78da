"""MariaDB passes the connector conformance suite (a fresh database per test: `mariadb_url`),
plus MariaDB's own types as MariaDB itself stores them."""

import datetime as dt

import pytest
from cases import execute_native

from runner.errors import TaskError
from runner.testing import connector_suite, described_schema, read_table


@pytest.mark.mariadb
class TestMariaDB(connector_suite("mariadb_url")):
    def test_native_types(self, url, connector):
        """BIT(1) and TINYINT(1) are booleans, TIME a time of day, TIMESTAMP an instant."""
        execute_native(
            url,
            "CREATE TABLE native (id INT PRIMARY KEY, bit1 BIT(1), flag TINYINT(1), "
            "t TIME(6), y YEAR, ts TIMESTAMP(6) NULL)",
        )
        execute_native(
            url,
            "INSERT INTO native VALUES (1, b'1', 1, '23:59:59.999999', 2155, "
            "'2038-01-19 03:14:07.999999'), (2, b'0', 0, '00:00:00', 1901, "
            "'1970-01-01 00:00:01'), (3, NULL, NULL, NULL, NULL, NULL)",
        )
        table = read_table(connector, "native", described_schema(connector, "native"), "id")
        assert table.to_pydict() == {
            "id": [1, 2, 3],
            "bit1": [True, False, None],
            "flag": [True, False, None],
            "t": [dt.time(23, 59, 59, 999999), dt.time(0), None],
            "y": [2155, 1901, None],
            "ts": [
                dt.datetime(2038, 1, 19, 3, 14, 7, 999999, tzinfo=dt.UTC),
                dt.datetime(1970, 1, 1, 0, 0, 1, tzinfo=dt.UTC),
                None,
            ],
        }

    def test_time_outside_a_day_is_an_error(self, url, connector):
        """MariaDB's TIME is a duration (-838:59:59..838:59:59): never wrapped into a day."""
        execute_native(url, "CREATE TABLE durations (id INT PRIMARY KEY, t TIME)")
        execute_native(url, "INSERT INTO durations VALUES (1, '25:00:00'), (2, '-01:00:00')")
        with pytest.raises(TaskError):
            read_table(connector, "durations", described_schema(connector, "durations"), "id")
