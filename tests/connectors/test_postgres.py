"""PostgreSQL passes the connector conformance suite (a fresh database per test: `pg_url`)."""

import time
from typing import Any

import pytest

from runner.testing import connector_suite


@pytest.mark.postgres
class TestPostgres(connector_suite("pg_url")):
    pass


def _backends(url: str) -> list[int]:
    import servers

    database = url.rsplit("/", 1)[1]
    with servers.postgres_connect(url) as conn:
        rows = conn.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()",
            [database],
        ).fetchall()
    return sorted(r[0] for r in rows)


@pytest.mark.postgres
def test_chunks_reuse_one_adbc_connection_and_replace_a_dead_one(pg_url: str) -> None:
    """Each chunk's read and write borrow an ADBC connection and give it back: consecutive
    chunks open one, not one each. A kept connection whose backend was terminated meanwhile is
    replaced, and the chunk after it still reads."""
    import pyarrow as pa
    import servers

    from runner.connectors import connect

    with servers.postgres_connect(pg_url) as conn:
        conn.execute("CREATE TABLE reuse (id bigint PRIMARY KEY, v text)")
        conn.execute("INSERT INTO reuse SELECT i, 'v' || i FROM generate_series(1, 100) g(i)")
    schema = pa.schema([("id", pa.int64()), ("v", pa.string())])
    connector = connect(pg_url)
    try:
        connector.check()  # the catalog's own (SQLAlchemy) connection, kept by its pool
        before = _backends(pg_url)
        for _ in range(3):
            rows = sum(b.num_rows for b in connector.read("SELECT id, v FROM reuse", schema, 50))
            assert rows == 100
        batch = pa.record_batch([pa.array([101, 102]), pa.array(["a", "b"])], schema=schema)
        assert connector.write("reuse", schema, [batch]).rows == 2
        kept = [pid for pid in _backends(pg_url) if pid not in before]
        assert len(kept) == 1, kept  # one ADBC connection served three reads and a write
        with servers.postgres_connect(pg_url) as conn:
            conn.execute("SELECT pg_terminate_backend(%s)", [kept[0]])
        rows = sum(b.num_rows for b in connector.read("SELECT id, v FROM reuse", schema, 50))
        assert rows == 102
        # a reader that stops early gives its connection up instead of keeping it mid-read
        first = next(iter(connector.read("SELECT id, v FROM reuse", schema, 10)))
        assert first.num_rows == 10
    finally:
        connector.close()
    for _ in range(50):  # a terminated backend leaves pg_stat_activity a moment later
        if not _backends(pg_url):
            break
        time.sleep(0.05)
    assert _backends(pg_url) == []


@pytest.mark.postgres
def test_piped_chunks_reuse_their_two_connections(pg_url: str) -> None:
    """A piped chunk leases a reader and a writer and gives them back: three chunks open two
    connections, not six, and a chunk the target refuses closes its own instead of keeping
    them."""
    import servers

    from runner.connectors import connect

    with servers.postgres_connect(pg_url) as conn:
        conn.execute("CREATE TABLE pipe_src (id bigint PRIMARY KEY, v text)")
        conn.execute("INSERT INTO pipe_src SELECT i, 'v' || i FROM generate_series(1, 300) g(i)")
        conn.execute("CREATE TABLE pipe_dst (id bigint PRIMARY KEY, v text)")
    connector = connect(pg_url)
    try:
        connector.check()
        before = _backends(pg_url)
        for lo in (0, 100, 200):
            select = f"SELECT id, v FROM pipe_src WHERE id > {lo} AND id <= {lo + 100}"
            result = connector.pipe_from(connector, select, "pipe_dst", ["id", "v"], [],
                                         lambda: None, lambda rows, size: None)  # fmt: skip
            assert result is not None and result.rows == 100
        assert len([pid for pid in _backends(pg_url) if pid not in before]) == 2
        with pytest.raises(Exception, match="duplicate key"):
            connector.pipe_from(connector, "SELECT id, v FROM pipe_src WHERE id <= 5", "pipe_dst",
                                ["id", "v"], [], lambda: None, lambda rows, size: None)  # fmt: skip
        with servers.postgres_connect(pg_url) as conn:
            assert conn.execute("SELECT count(*) FROM pipe_dst").fetchone() == (300,)
    finally:
        connector.close()


@pytest.mark.postgres
def test_statements_in_one_snapshot_see_the_same_rows_while_others_commit(pg_url: str) -> None:
    """``rows_in_one_snapshot`` runs each statement on its own connection, all in the first
    one's exported snapshot: while another connection commits inserts as fast as it can, the
    parts still count the same rows and report the same snapshot, every time. The connections
    are kept for the next call, and a failing statement is reported as the source's error."""
    import threading

    import servers

    from runner.connectors import connect
    from runner.errors import EtlrunError

    with servers.postgres_connect(pg_url) as conn:
        conn.execute("CREATE TABLE snap (id bigserial PRIMARY KEY)")
    stop = threading.Event()

    def write() -> None:
        with servers.postgres_connect(pg_url) as conn:
            while not stop.is_set():
                conn.execute("INSERT INTO snap DEFAULT VALUES")

    connector = connect(pg_url)
    writer = threading.Thread(target=write)
    writer.start()
    try:
        statement = "SELECT pg_current_snapshot()::text, pg_sleep(0.01), COUNT(*) FROM snap"
        seen = []
        for _ in range(10):
            (a,), (b,) = connector.rows_in_one_snapshot([statement, statement])
            assert (a[0], a[2]) == (b[0], b[2])
            seen.append(a[2])
        assert seen[-1] > seen[0]  # the writer did commit meanwhile
        # follow-ups, more than the connections: dealt out over them, rows in their order,
        # still in the first statements' snapshot
        given: list[int] = []

        def then(found: list[Any]) -> list[str]:
            given.append(len(found))
            return [statement.replace("FROM", f", {n} FROM") for n in range(3)]

        rows = connector.rows_in_one_snapshot([statement, statement], then=then)
        assert given == [2] and len(rows) == 5
        assert [r[0][3] for r in rows[2:]] == [0, 1, 2]
        assert len({(r[0][0], r[0][2]) for r in rows}) == 1
        before = _backends(pg_url)
        connector.rows_in_one_snapshot([statement, statement])
        assert _backends(pg_url) == before
        with pytest.raises(EtlrunError, match="division by zero"):
            connector.rows_in_one_snapshot([statement, "SELECT 1 / 0"])
    finally:
        stop.set()
        writer.join()
        connector.close()
