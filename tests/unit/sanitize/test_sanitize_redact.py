"""Driver errors carry no value once sanitizing is on: what ``describe_driver_error`` keeps."""

from __future__ import annotations

from collections.abc import Iterator

import pyarrow as pa
import pytest

from runner import sanitize
from runner.connectors.base import describe_driver_error, map_driver_errors
from runner.errors import TaskError


@pytest.fixture(autouse=True)
def _redaction_off_afterwards() -> Iterator[None]:
    """Sanitizing switches driver-error redaction on for the process: off again after each
    test, so tests elsewhere see driver messages as the drivers wrote them."""
    yield
    sanitize.deactivate()


RAW = "123-45-6789"
CASES = {
    # psycopg / libpq: the value is in DETAIL, on the next line (and quoted by some messages)
    "postgres_unique": f'duplicate key value violates unique constraint "people_pkey"\n'
    f"DETAIL:  Key (ssn)=({RAW}) already exists.",
    # ADBC's PostgreSQL driver: the same, after its own prefix, DETAIL and CONTEXT included
    "adbc_unique": "INTEGRITY: [libpq] Failed to execute COPY statement: PGRES_FATAL_ERROR "
    'ERROR:  duplicate key value violates unique constraint "t_pkey" '
    f"DETAIL:  Key (ssn)=({RAW}) already exists. CONTEXT:  COPY t, line 2. SQLSTATE: 23505",
    "postgres_not_null": 'null value in column "ssn" of relation "t" violates not-null '
    f"constraint DETAIL:  Failing row contains (1, {RAW}, null).",
    "postgres_syntax": f'invalid input syntax for type integer: "{RAW}"',
    # MariaDB / MySQL: the value is quoted in the first line
    "mariadb_duplicate": f"(1062, \"Duplicate entry '{RAW}' for key 'PRIMARY'\")",
    "mariadb_truncated": f"(1265, \"Data truncated for column 'ssn' at row 1: '{RAW}'\")",
    # Arrow casts, e.g. while conforming what a reader returned
    "arrow_parse": f"Failed to parse string: '{RAW}' as a scalar of type int64",
    "arrow_range": "Integer value 123456789 not in range: -128 to 127",
    "arrow_float": "Float value 1234.5678 was truncated converting to int64",
}


class DriverError(Exception):
    pass


@pytest.mark.parametrize("name", CASES)
def test_no_value_survives_once_active(name: str) -> None:
    sanitize.activate()
    text = describe_driver_error(DriverError(CASES[name]))
    for value in (RAW, "123456789", "1234.5678"):
        assert value not in text, text
    assert text.startswith("DriverError: ")


def test_names_and_the_cause_stay_readable() -> None:
    sanitize.activate()
    text = describe_driver_error(DriverError(CASES["adbc_unique"]))
    assert 'violates unique constraint "t_pkey"' in text and "DETAIL" not in text
    text = describe_driver_error(DriverError(CASES["postgres_not_null"]))
    assert 'null value in column "ssn" of relation "t"' in text
    text = describe_driver_error(DriverError('relation "no_such_table" does not exist'))
    assert "no_such_table" in text


def test_the_driver_exception_is_not_chained() -> None:
    # a --debug traceback prints the chain; the driver's own text holds the DETAIL
    sanitize.activate()
    with pytest.raises(TaskError) as caught:
        with map_driver_errors("writing people"):
            raise DriverError(CASES["postgres_unique"])
    assert RAW not in str(caught.value)
    assert caught.value.__cause__ is None and caught.value.__suppress_context__


def test_arrow_errors_in_a_reader_are_redacted_too() -> None:
    sanitize.activate()
    with pytest.raises(TaskError) as caught:
        with map_driver_errors("reading from the source"):
            pa.array([RAW]).cast(pa.int64())
    assert RAW not in str(caught.value) and "Failed to parse string: '…'" in str(caught.value)


def test_nothing_changes_without_sanitize() -> None:
    sanitize.deactivate()
    assert RAW in describe_driver_error(DriverError(CASES["mariadb_duplicate"]))
    with pytest.raises(TaskError) as caught:
        with map_driver_errors("writing people"):
            raise DriverError(CASES["postgres_unique"])
    assert isinstance(caught.value.__cause__, DriverError)
