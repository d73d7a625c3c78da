"""What every connector offers, and the one place driver exceptions become etlrun errors.

A connector reads a table's metadata (the catalog), streams ``pyarrow.RecordBatch`` out of a
SELECT, and writes batches into a table inside one transaction. Statements are built by the
compiler with sqlglot in the connector's ``dialect``; connectors only run them.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import ClassVar

import pyarrow as pa
from sqlglot import exp

from runner.errors import ConnectError, EtlrunError, TaskError, TransientError
from runner.sanitize import is_active as sanitize_active
from runner.sanitize import redact_error
from runner.secrets import mask_url, scrub

Statement = str | tuple[str, list[object]]
"""SQL text, or SQL text with its bound parameters."""


@dataclass(frozen=True)
class Column:
    name: str
    type_sql: str
    """The declared type, as the source's own dialect writes it."""
    nullable: bool = True
    generated: str | None = None
    """A generated column's expression, as the source writes it (sanitize checks what it reads)."""


@dataclass(frozen=True)
class TableInfo:
    schema: str | None
    name: str
    columns: tuple[Column, ...]
    primary_key: tuple[str, ...] = ()
    references: tuple[str, ...] = ()
    """Tables this one has foreign keys to, as ``schema.name`` or ``name``."""

    @property
    def qualified(self) -> str:
        return f"{self.schema}.{self.name}" if self.schema else self.name


@dataclass(frozen=True)
class Capabilities:
    modes: tuple[str, ...] = ("copy",)
    max_identifier_length: int = 63
    transactional_ddl: bool = True
    """False where DDL commits implicitly (MariaDB), so swaps use one atomic RENAME instead."""
    parallel_writes: bool = True
    """False where the target takes one writer at a time (SQLite): chunk tasks then run one
    after another, each reading while it writes. Run in parallel, all but one would wait for
    the write lock while their readers buffer the whole chunk (connectorx reads ahead)."""


@dataclass
class WriteResult:
    rows: int = 0
    bytes: int = 0
    extra: dict[str, object] = field(default_factory=dict)


class Connector:
    """Base class of every backend. Subclasses set the class attributes and the methods below."""

    schemes: ClassVar[tuple[str, ...]] = ()
    dialect: ClassVar[str] = ""
    extra: ClassVar[str] = ""
    """The pip extra that installs the driver: ``pip install "etlrun[<extra>]"``."""
    capabilities: ClassVar[Capabilities] = Capabilities()

    def __init_subclass__(cls, schemes: tuple[str, ...] = (), **kwargs: object) -> None:
        super().__init_subclass__(**kwargs)
        if schemes:
            from runner.connectors import REGISTRY

            cls.schemes = schemes
            for scheme in schemes:
                REGISTRY[scheme] = cls

    def __init__(self, url: str) -> None:
        self.url = url

    def __repr__(self) -> str:
        return f"{type(self).__name__}({mask_url(self.url)!r})"

    @property
    def display_url(self) -> str:
        return mask_url(self.url)

    # catalog
    def list_tables(self) -> list[str]:
        raise NotImplementedError

    def describe(self, name: str) -> TableInfo:
        raise NotImplementedError

    def scalar(self, sql: str) -> object:
        """The first value of the first row of ``sql``."""
        raise NotImplementedError

    def rows(self, sql: str) -> list[tuple[object, ...]]:
        raise NotImplementedError

    def table_exists(self, name: str) -> bool:
        raise NotImplementedError

    def estimated_rows(self, name: str, where: str | None = None) -> int | None:
        """The database's own estimate of the rows of table ``name`` (matching the SQL condition
        ``where``), from its statistics, without reading the table; None where it keeps none."""
        return None

    # reading
    def read_expression(self, name: str, arrow: pa.DataType, as_text: bool) -> exp.Expression:
        """How a column is selected so that it arrives as ``arrow`` (override per backend)."""
        column = exp.column(name, quoted=True)
        if as_text:
            return exp.cast(column, exp.DataType.build("TEXT")).as_(name, quoted=True)
        return column

    def read(self, sql: str, schema: pa.Schema, batch_rows: int) -> Iterator[pa.RecordBatch]:
        raise NotImplementedError

    def sample(self, sql: str, schema: pa.Schema, batch_rows: int) -> Iterator[pa.RecordBatch]:
        """A few rows, read as :meth:`read` would (overridden where a bulk reader's own connection
        costs more than the rows: the plan samples 1,000 rows per table)."""
        return self.read(sql, schema, batch_rows)

    # writing
    def execute(self, statements: Iterable[str]) -> None:
        """Run ``statements`` in one transaction (where the backend's DDL allows it)."""
        raise NotImplementedError

    def analyze(self, name: str) -> None:
        """Refresh the planner's statistics of table ``name``, where the database keeps them
        and a freshly loaded table has none until its autovacuum comes by (PostgreSQL)."""

    placeholder: str = "?"
    """How a bound parameter is written in this backend's SQL."""

    def encode(self, column: pa.Array) -> list[object]:
        """Arrow values -> the Python values this backend's driver stores for them."""
        return column.to_pylist()

    def write(
        self,
        table: str,
        schema: pa.Schema,
        batches: Iterable[pa.RecordBatch],
        before: Iterable[Statement] = (),
    ) -> WriteResult:
        """In one transaction: run ``before`` (e.g. delete a key range), then insert ``batches``."""
        raise NotImplementedError

    def close(self) -> None:
        pass


def require_driver(module: str, extra: str) -> None:
    """Import a driver module or say which extra installs it."""
    try:
        __import__(module)
    except ImportError as exc:
        raise ConnectError(
            f"the '{module}' driver is not installed: pip install \"etlrun[{extra}]\""
        ) from exc


# SQLSTATEs and MySQL error numbers where a retry can succeed
_TRANSIENT_SQLSTATES = {"40001", "40P01", "57P01", "08000", "08003", "08006", "53300"}
_TRANSIENT_MYSQL = {1205, 1213, 2006, 2013, 1040}
_CONNECT_MYSQL = {1044, 1045, 1049, 2003, 2005}
_CONNECT_TEXT = re.compile(
    r"connection refused|could not connect|authentication failed|password authentication|"
    r"does not exist.*database|database .* does not exist|could not translate host|"
    r"unable to open database|access denied|no such host|name or service not known",
    re.IGNORECASE,
)
_TRANSIENT_TEXT = re.compile(
    r"database is locked|deadlock|server closed the connection|connection.*(lost|reset)|"
    r"could not serialize|Lost connection",
    re.IGNORECASE,
)


def classify(exc: BaseException) -> type[EtlrunError]:
    """Which etlrun error a driver exception means: connect, transient or terminal."""
    orig = getattr(exc, "orig", None) or exc
    sqlstate = getattr(orig, "sqlstate", None) or getattr(orig, "pgcode", None)
    args = getattr(orig, "args", ())
    mysql_code = args[0] if args and isinstance(args[0], int) else None
    text = str(orig)
    if mysql_code in _CONNECT_MYSQL or (sqlstate and sqlstate.startswith("28")):
        return ConnectError
    if sqlstate in _TRANSIENT_SQLSTATES or mysql_code in _TRANSIENT_MYSQL:
        return TransientError
    if _TRANSIENT_TEXT.search(text):
        return TransientError
    if _CONNECT_TEXT.search(text) or isinstance(orig, ConnectionError):
        return ConnectError
    return TaskError


def describe_driver_error(exc: BaseException) -> str:
    orig = getattr(exc, "orig", None) or exc
    first = str(orig).strip().splitlines()[0] if str(orig).strip() else type(orig).__name__
    # with sanitize rules loaded, values quoted by the driver (DETAIL: Key (ssn)=(...)) go too
    return scrub(redact_error(f"{type(orig).__name__}: {first}"))


@contextlib.contextmanager
def map_driver_errors(what: str) -> Iterator[None]:
    """Turn any driver exception raised inside into the etlrun error that says what to do."""
    try:
        yield
    except EtlrunError:
        raise
    except (KeyboardInterrupt, SystemExit, GeneratorExit):
        raise
    except BaseException as exc:  # noqa: BLE001 - the translation boundary; Rust drivers
        cls = classify(exc)  # (connectorx) raise pyo3's PanicException, not an Exception
        error = cls(f"{what}: {describe_driver_error(exc)}")
        # the driver's own exception keeps its whole text (a DETAIL with values): once sanitize
        # is on, it is not chained, so no --debug traceback can print it
        raise error from (None if sanitize_active() else exc)
