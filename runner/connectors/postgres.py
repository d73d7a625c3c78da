"""PostgreSQL: binary COPY both ways through the ADBC driver, straight between the wire and Arrow.

Measured on the 1M-row ``events`` table (13 columns) on the 2-core machine, one stream each way:
ADBC ``COPY ... TO STDOUT (FORMAT binary)`` -> Arrow -> ADBC ingest (binary ``COPY FROM STDIN``)
took 2.8 s against 3.6 s for ``psql COPY binary | psql COPY binary``; the SQLAlchemy/psycopg row
path took 29 s. psycopg 3's binary COPY still builds a Python tuple per row, so ADBC it is.
The catalog and DDL stay on SQLAlchemy + psycopg.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import threading
from collections.abc import Callable, Iterable, Iterator
from typing import Any
from urllib.parse import quote

import pyarrow as pa
from sqlglot import exp

from runner._lazy import defer
from runner.connectors.base import (
    Capabilities,
    Statement,
    WriteResult,
    map_driver_errors,
    require_driver,
)
from runner.connectors.sql import SqlConnector
from runner.errors import EtlrunError

# PostgreSQL has no unsigned or 1-byte integers: write them into the wider column they map to
_WIDER = {
    pa.int8(): pa.int16(),
    pa.uint8(): pa.int16(),
    pa.uint16(): pa.int32(),
    pa.uint32(): pa.int64(),
    pa.uint64(): pa.decimal128(20, 0),
}


_BATCH_HINT = "adbc.postgresql.batch_size_hint_bytes"
READ_BATCH_BYTES = int(os.environ.get("ETLRUN_PG_BATCH_BYTES", 4 << 20))


def _numbered(sql: str) -> str:
    """``%s`` placeholders -> PostgreSQL's ``$1, $2, ...`` (``%%`` is a literal percent)."""
    counter = iter(range(1, 1 << 16))
    return re.sub(r"%%|%s", lambda m: "%" if m.group() == "%%" else f"${next(counter)}", sql)


def conform(batch: pa.RecordBatch, schema: pa.Schema) -> pa.RecordBatch:
    """ADBC's Arrow types -> the plan's: numeric arrives as text (:meth:`read_expression`;
    selected bare, in an opaque extension type), json as Arrow's JSON extension; both are cast
    from their storage."""
    arrays = []
    for column, field in zip(batch.columns, schema, strict=True):
        if isinstance(column.type, pa.BaseExtensionType):
            column = column.storage
        if not column.type.equals(field.type):
            column = column.cast(field.type)
        arrays.append(column)
    return pa.RecordBatch.from_arrays(arrays, schema=schema)


class PostgresConnector(SqlConnector, schemes=("postgresql", "postgres")):
    dialect = "postgres"
    extra = "postgres"
    driver = "postgresql+psycopg"
    driver_module = "psycopg"
    capabilities = Capabilities(max_identifier_length=63, transactional_ddl=True)
    engine_options: dict[str, Any] = {
        "pool_pre_ping": True,
        "connect_args": {"connect_timeout": 10},
    }

    def __init__(self, url: str) -> None:
        super().__init__(url)
        self._idle: dict[str, list[Any]] = {"adbc": [], "psycopg": []}
        self._idle_lock = threading.Lock()

    def _adbc(self) -> Any:
        require_driver("adbc_driver_postgresql", self.extra)
        defer("pyarrow.dataset")  # ADBC's dbapi imports it for ingesting datasets: 60 ms
        import adbc_driver_postgresql.dbapi as adbc

        return adbc.connect(_libpq_uri(self.sqlalchemy_url()))

    def _adbc_lease(self) -> contextlib.AbstractContextManager[Any]:
        """An ADBC connection for one chunk's read or write (:meth:`_lease`). Opening one loads
        the server's type catalog: 36 ms on the 2-core machine, paid by every chunk before."""
        return self._lease("adbc", self._adbc)

    def _psycopg_lease(self) -> contextlib.AbstractContextManager[Any]:
        """A psycopg connection for one end of a chunk's pipe (:meth:`_lease`): 3 ms to open,
        and a server process to start, twice a chunk before."""
        return self._lease("psycopg", self._psycopg)

    @contextlib.contextmanager
    def _lease(self, kind: str, open_new: Callable[[], Any]) -> Iterator[Any]:
        """A connection of ``kind`` kept from an earlier chunk, or a new one; kept again for the
        next chunk when the caller is done with it. One that raised, or whose caller stopped
        early, is closed instead; a kept one that no longer answers is replaced."""
        conn = None
        with self._idle_lock:
            if self._idle[kind]:
                conn = self._idle[kind].pop()
        if conn is not None and not _answers(conn):
            conn = None
        if conn is None:
            conn = open_new()
        try:
            yield conn
            conn.rollback()  # whatever the caller left open ends here, not in the next chunk
        except BaseException:
            with contextlib.suppress(Exception):
                conn.close()
            raise
        with self._idle_lock:
            self._idle[kind].append(conn)

    def close(self) -> None:
        with self._idle_lock:
            idle = [c for kept in self._idle.values() for c in kept]
            self._idle = {kind: [] for kind in self._idle}
        for conn in idle:
            with contextlib.suppress(Exception):
                conn.close()
        super().close()

    sample = SqlConnector.read  # through the pool's open connection: no driver to load

    def read_expression(self, name: str, arrow: pa.DataType, as_text: bool) -> exp.Expression:
        if pa.types.is_decimal(arrow):
            # numeric is read as the server's text of it, which Arrow casts (0.09 s per 1M
            # values): ADBC's own text of numeric's binary digits cost 0.53 client CPU seconds
            # more per 1M values than reading the text, the server's numeric_out 0.04 s more
            column = exp.column(name, quoted=True)
            return exp.cast(column, exp.DataType.build("TEXT")).as_(name, quoted=True)
        return super().read_expression(name, arrow, as_text)

    def estimated_rows(self, name: str, where: str | None = None) -> int | None:
        """The planner's row estimate: the table's statistics scaled to its current size."""
        from runner.plan.catalog import quote_table

        try:
            table = quote_table(name, "postgres")
            condition = "" if where is None else f" WHERE {where}"
            plan = self.scalar(f"EXPLAIN (FORMAT JSON) SELECT 1 FROM {table}{condition}")
        except EtlrunError:
            return None
        plan = json.loads(plan) if isinstance(plan, str) else plan
        return int(plan[0]["Plan"]["Plan Rows"])

    def _psycopg(self) -> Any:
        import psycopg

        with map_driver_errors(f"cannot connect to {self.display_url}"):
            # text travels in the client encoding: the same on both ends of a pipe, whatever
            # each database's own encoding
            return psycopg.connect(
                _libpq_uri(self.sqlalchemy_url()), connect_timeout=10, client_encoding="UTF8"
            )

    def analyze(self, name: str) -> None:
        from runner.plan.catalog import quote_table

        self.execute([f"ANALYZE {quote_table(name, 'postgres')}"])

    def rows_in_one_snapshot(
        self,
        statements: list[str],
        then: Callable[[list[list[tuple[Any, ...]]]], list[str]] | None = None,
    ) -> list[list[tuple[Any, ...]]]:
        """The rows of each statement, run at once on a connection each, all reading one
        snapshot: the first exports it and the others import it, as ``pg_dump --jobs`` does.
        So one scan split in parts keeps as many server processes busy and still reads one
        state of the table. Each transaction is read-only, so none is given a transaction id
        (``age()`` then measures from a transaction id beyond every row it can see).

        ``then``: given those rows, more statements to run in the same snapshot, at once on
        the same connections (in turn where there are more statements than connections);
        their rows come last, in order."""
        from concurrent.futures import ThreadPoolExecutor

        begin = "SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY"
        with contextlib.ExitStack() as stack, map_driver_errors("reading from the source"):
            conns = [stack.enter_context(self._psycopg_lease()) for _ in statements]
            for conn in conns:
                conn.execute(begin)
                # the statements are the parallelism: a follow-up over a few key ranges was
                # planned as a parallel scan of the whole table (0.4 s against 0.15 s by index)
                conn.execute("SET LOCAL max_parallel_workers_per_gather = 0")
            if len(conns) > 1:
                snapshot = conns[0].execute("SELECT pg_export_snapshot()").fetchone()[0]
                for conn in conns[1:]:
                    conn.execute(f"SET TRANSACTION SNAPSHOT '{snapshot}'")
            with ThreadPoolExecutor(len(conns)) as pool:
                results = _on_each(pool, conns, statements)
                follow = then(results) if then is not None else []
                if follow:
                    results += _on_each(pool, conns, follow)
            return results

    def pipe_from(
        self,
        source: Any,
        select: str,
        table: str,
        columns: list[str],
        before: list[Statement],
        check_cancel: Callable[[], None],
        progress: Callable[[int, int], None],
    ) -> WriteResult | None:
        """Rows of ``select`` on the PostgreSQL ``source`` into ``table`` as binary COPY bytes,
        undecoded (:mod:`runner.connectors.pg_pipe`); None when the column types differ."""
        if not isinstance(source, PostgresConnector):
            return None
        from runner.connectors import pg_pipe

        with source._psycopg_lease() as reader, self._psycopg_lease() as writer:
            return pg_pipe.pipe(reader, writer, select, table, columns, before, check_cancel,
                                progress)  # fmt: skip

    def read(self, sql: str, schema: pa.Schema, batch_rows: int) -> Iterator[pa.RecordBatch]:
        with map_driver_errors("reading from the source"), self._adbc_lease() as conn:
            cursor = conn.cursor()
            try:
                # ADBC's batches default to 16 MB, each held until its last slice is
                # written: a reader then holds ~3 of them. 4 MB measured as fast.
                cursor.adbc_statement.set_options(**{_BATCH_HINT: str(READ_BATCH_BYTES)})
                cursor.execute(sql)
                for batch in cursor.fetch_record_batch():
                    # ADBC sizes its batches in bytes; re-slice to the plan's row count
                    for offset in range(0, batch.num_rows, batch_rows):
                        yield conform(batch.slice(offset, batch_rows), schema)
            finally:
                cursor.close()

    def write(
        self,
        table: str,
        schema: pa.Schema,
        batches: Iterable[pa.RecordBatch],
        before: Iterable[Statement] = (),
    ) -> WriteResult:
        result = WriteResult()
        wide = pa.schema([pa.field(f.name, _WIDER.get(f.type, f.type)) for f in schema])
        failure: list[BaseException] = []

        def counted() -> Iterator[pa.RecordBatch]:
            try:
                for batch in batches:
                    result.rows += batch.num_rows
                    result.bytes += batch.nbytes
                    yield batch if wide.equals(schema) else conform(batch, wide)
            except BaseException as exc:
                failure.append(exc)  # re-raised as itself, not as ADBC's wrapper of it
                raise

        schema_name, _, name = table.rpartition(".")
        with map_driver_errors(f"writing {table}"), self._adbc_lease() as conn:
            cursor = conn.cursor()
            try:
                for statement in before:
                    sql, params = (statement, None) if isinstance(statement, str) else statement
                    cursor.execute(_numbered(sql) if params else sql, parameters=params)
                reader = pa.RecordBatchReader.from_batches(wide, counted())
                try:
                    cursor.adbc_ingest(
                        _unquote(name), reader, mode="append",
                        db_schema_name=_unquote(schema_name) or None,
                    )  # fmt: skip
                except BaseException:
                    if failure:
                        raise failure[0] from None
                    raise
                conn.commit()
            finally:
                cursor.close()
        return result


def _answers(conn: Any) -> bool:
    """Whether a kept connection still reaches its server (one round trip)."""
    try:
        with conn.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchall()
        conn.rollback()
        return True
    except Exception:  # noqa: BLE001 -- any failure means: open a new one
        with contextlib.suppress(Exception):
            conn.close()
        return False


def _libpq_uri(url: Any) -> str:
    """``url`` as a libpq URI. SQLAlchemy leaves spaces unescaped in a rendered password, which
    libpq refuses ("unexpected spaces found") and then quotes back in its error message."""
    auth = ""
    if url.username is not None:
        auth = quote(url.username, safe="")
        if url.password is not None:
            auth += ":" + quote(str(url.password), safe="")
        auth += "@"
    bare = url._replace(drivername="postgresql", username=None, password=None)  # set() keeps None
    return bare.render_as_string(hide_password=False).replace("://", f"://{auth}", 1)


def _unquote(name: str) -> str:
    return name[1:-1].replace('""', '"') if name.startswith('"') and name.endswith('"') else name


def _on_each(pool: Any, conns: list[Any], statements: list[str]) -> list[list[tuple[Any, ...]]]:
    """The rows of each statement, the statements dealt out over ``conns`` (each connection
    runs its share in turn, the connections at once)."""

    def share(k: int) -> list[list[tuple[Any, ...]]]:
        return [conns[k].execute(sql).fetchall() for sql in statements[k :: len(conns)]]

    shares = [f.result() for f in [pool.submit(share, k) for k in range(len(conns))]]
    return [shares[i % len(conns)][i // len(conns)] for i in range(len(statements))]
