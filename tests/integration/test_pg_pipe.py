"""PostgreSQL -> PostgreSQL chunks move as undecoded binary COPY bytes (connectors/pg_pipe.py)
when every column keeps its built-in type, and through Arrow otherwise; both ways the target holds
exactly the source's values, and a chunk the target refuses leaves nothing behind."""

from __future__ import annotations

from pathlib import Path

import pytest
import servers

from runner.cli import main
from runner.connectors import pg_pipe

pytestmark = pytest.mark.postgres

COLUMNS = (
    "id bigint PRIMARY KEY, j json, jb jsonb, n numeric(40,20), f float8, "
    "ts timestamp, tstz timestamptz, d date, t text, b bytea"
)
ROWS = """
INSERT INTO {table} SELECT i,
    ('{{"b": 1,   "a": ' || i || ', "a": "dup"}}')::json,
    ('{{"k": [1, 2.50, null], "i": ' || i || '}}')::jsonb,
    (i::numeric / 7)::numeric(40,20),
    CASE i % 4 WHEN 0 THEN 'NaN'::float8 WHEN 1 THEN '-Infinity' WHEN 2 THEN -0.0 ELSE 5e-324 END,
    '0001-01-01 00:00:00'::timestamp + i * interval '1 day 0.000001 second',
    '2026-03-08 02:30:00-05'::timestamptz + i * interval '1 minute',
    '9999-12-31'::date - i,
    CASE WHEN i % 5 = 0 THEN NULL WHEN i % 5 = 1 THEN '' ELSE 'é😀 ' || repeat('x', i % 300) END,
    decode(md5(i::text), 'hex')
FROM generate_series(1, 2500) AS g(i)
"""
TEXT_OF_ROWS = "SELECT string_agg(r::text, E'\\n' ORDER BY id) FROM {table} AS r"


@pytest.fixture
def spied(monkeypatch: pytest.MonkeyPatch) -> list[object]:
    """What each call of the pipe returned (None: the chunk went through Arrow)."""
    results: list[object] = []
    real = pg_pipe.pipe

    def spy(*args: object, **kwargs: object) -> object:
        result = real(*args, **kwargs)
        results.append(result)
        return result

    monkeypatch.setattr(pg_pipe, "pipe", spy)
    return results


def spec(folder: Path, url: str, table: str, to: str, **keys: str) -> Path:
    path = folder / f"{to}.yaml"
    extra = "".join(f"\n    {k}: {v}" for k, v in keys.items())
    path.write_text(
        f"version: 1\njob: pipe-{to}\nsource: {url}\ntarget: {url}\nworkers: 2\n"
        f"defaults:\n  chunk_rows: 600\ntables:\n  - name: {table}\n    to: {to}{extra}\n"
    )
    return path


def text_of(url: str, table: str) -> str:
    with servers.postgres_connect(url) as conn:
        return conn.execute(TEXT_OF_ROWS.format(table=table)).fetchone()[0]


def test_same_types_are_piped_exactly(
    pg_url: str, tmp_path: Path, clean_env: Path, spied: list[object]
) -> None:
    with servers.postgres_connect(pg_url) as conn:
        conn.execute(f"CREATE TABLE src ({COLUMNS})")
        conn.execute(ROWS.format(table="src"))
    assert main(["run", str(spec(tmp_path, pg_url, "src", "dst"))]) == 0
    assert len(spied) == 5 and all(r is not None for r in spied), spied
    assert sum(r.rows for r in spied) == 2500  # type: ignore[attr-defined]
    # the text of every row, json's duplicate keys and spacing included
    assert text_of(pg_url, "dst") == text_of(pg_url, "src")
    with servers.postgres_connect(pg_url) as conn:
        types = conn.execute(
            "SELECT attname, format_type(atttypid, atttypmod) FROM pg_attribute "
            "WHERE attrelid = 'dst'::regclass AND attname IN ('j', 'jb')"
        ).fetchall()
    assert dict(types) == {"j": "json", "jb": "jsonb"}


def test_the_pipe_can_be_switched_off(
    pg_url: str,
    tmp_path: Path,
    clean_env: Path,
    spied: list[object],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with servers.postgres_connect(pg_url) as conn:
        conn.execute(f"CREATE TABLE src ({COLUMNS})")
        conn.execute(ROWS.format(table="src"))
    monkeypatch.setenv("ETLRUN_PG_PIPE", "0")
    assert main(["run", str(spec(tmp_path, pg_url, "src", "dst"))]) == 0
    assert spied == []
    assert text_of(pg_url, "dst") == text_of(pg_url, "src")


def test_text_crosses_database_encodings(
    pg_url: str, tmp_path: Path, clean_env: Path, spied: list[object]
) -> None:
    """From a LATIN1 database into a UTF-8 one: both ends of the pipe speak UTF-8."""
    latin1 = servers.create_postgres_database(encoding="LATIN1")
    try:
        with servers.postgres_connect(latin1) as conn:
            conn.execute("SET client_encoding TO 'UTF8'")
            conn.execute("CREATE TABLE src (id bigint PRIMARY KEY, t text)")
            conn.execute("INSERT INTO src VALUES (1, 'café Ærø ½'), (2, ''), (3, NULL)")
        job = tmp_path / "latin1.yaml"
        job.write_text(
            f"version: 1\njob: latin1\nsource: {latin1}\ntarget: {pg_url}\n"
            "tables:\n  - name: src\n    to: dst\n"
        )
        assert main(["run", str(job)]) == 0
        assert spied and all(r is not None for r in spied), spied
        with servers.postgres_connect(pg_url) as conn:
            rows = conn.execute("SELECT id, t FROM dst ORDER BY id").fetchall()
        assert rows == [(1, "café Ærø ½"), (2, ""), (3, None)]
    finally:
        servers.drop_postgres_database(latin1)


def test_other_types_go_through_arrow(
    pg_url: str, tmp_path: Path, clean_env: Path, spied: list[object]
) -> None:
    """An enum has another OID on every database, uuid and arrays are carried as text: their
    chunks are not piped, and still copied."""
    with servers.postgres_connect(pg_url) as conn:
        conn.execute("CREATE TYPE mood AS ENUM ('sad', 'ok', 'happy')")
        conn.execute("CREATE TABLE src (id bigint PRIMARY KEY, m mood, u uuid, a int[])")
        conn.execute(
            "INSERT INTO src SELECT i, (ARRAY['sad','ok','happy'])[i % 3 + 1]::mood, "
            "md5(i::text)::uuid, ARRAY[i, NULL] FROM generate_series(1, 1000) AS g(i)"
        )
    assert main(["run", str(spec(tmp_path, pg_url, "src", "dst"))]) == 0
    assert spied and all(r is None for r in spied), spied
    assert text_of(pg_url, "dst") == text_of(pg_url, "src")


def test_a_refused_chunk_leaves_the_target_as_it_was(
    pg_url: str, tmp_path: Path, clean_env: Path, spied: list[object]
) -> None:
    """A declared key with a duplicate: the staging table's key refuses the piped chunk, the run
    stops (exit 1), and the target keeps its earlier rows."""
    with servers.postgres_connect(pg_url) as conn:
        conn.execute("CREATE TABLE src (id bigint, v text)")
        conn.execute("INSERT INTO src SELECT i, 'new' FROM generate_series(1, 1000) AS g(i)")
        conn.execute("CREATE TABLE dst (id bigint PRIMARY KEY, v text)")
        conn.execute("INSERT INTO dst VALUES (1, 'old')")
        conn.execute("INSERT INTO src VALUES (700, 'twin')")
    job = spec(tmp_path, pg_url, "src", "dst", primary_key="[id]")
    assert main(["run", str(job)]) == 1
    assert all(r is not None for r in spied), spied  # no chunk fell back to Arrow
    with servers.postgres_connect(pg_url) as conn:
        assert conn.execute("SELECT id, v FROM dst").fetchall() == [(1, "old")]


def test_an_existing_jsonb_target_of_a_json_source_stays_jsonb(
    pg_url: str, tmp_path: Path, clean_env: Path
) -> None:
    """A target an earlier etlrun made (json landed as jsonb then): check compares the two as
    jsonb and finds them equal, and a new copy keeps the column jsonb."""
    with servers.postgres_connect(pg_url) as conn:
        conn.execute("CREATE TABLE src (id bigint PRIMARY KEY, j json)")
        conn.execute(
            "INSERT INTO src SELECT i, ('{\"b\": ' || i || ',  \"a\": 1}')::json "
            "FROM generate_series(1, 500) AS g(i)"
        )
        conn.execute("CREATE TABLE dst (id bigint PRIMARY KEY, j jsonb)")
        conn.execute("INSERT INTO dst SELECT id, j::jsonb FROM src")
    job = spec(tmp_path, pg_url, "src", "dst")
    assert main(["check", str(job)]) == 0
    assert main(["run", str(job)]) == 0
    assert main(["check", str(job)]) == 0
    with servers.postgres_connect(pg_url) as conn:
        kind = conn.execute(
            "SELECT format_type(atttypid, atttypmod) FROM pg_attribute "
            "WHERE attrelid = 'dst'::regclass AND attname = 'j'"
        ).fetchone()
    assert kind == ("jsonb",)


@pytest.mark.parametrize(
    ("source", "target", "piped"),
    [
        ([(20, -1), (114, -1)], [(20, -1), (114, -1)], True),
        ([(1700, 786436)], [(1700, -1)], True),  # numeric(12,2) into numeric
        ([(1700, -1)], [(1700, 786436)], False),  # numeric into numeric(12,2) must coerce
        ([(1114, -1)], [(1114, 6)], True),  # timestamp is timestamp(6)
        ([(1184, 6)], [(1184, 3)], False),
        ([(114, -1)], [(3802, -1)], False),  # json into jsonb
        ([(16390, -1)], [(16390, -1)], False),  # a type of the database's own
        ([(20, -1)], [(20, -1), (25, -1)], False),
    ],
)
def test_same_types(source: list, target: list, piped: bool) -> None:
    assert pg_pipe.same_types(source, target) is piped


def _pipe_conns(url: str) -> tuple[object, object]:
    import psycopg

    return psycopg.connect(url), psycopg.connect(url)


def test_a_source_failing_midway_raises_and_writes_nothing(pg_url: str) -> None:
    """The source query fails after sending rows (division by zero at row 3000): the error is
    PostgreSQL's own, the target transaction is rolled back, and both connections go on."""
    with servers.postgres_connect(pg_url) as conn:
        conn.execute("CREATE TABLE mid_src (id bigint PRIMARY KEY, v int)")
        conn.execute("INSERT INTO mid_src SELECT i, 3000 - i FROM generate_series(1, 5000) g(i)")
        conn.execute("CREATE TABLE mid_dst (id bigint PRIMARY KEY, v int)")
    source, target = _pipe_conns(pg_url)
    with source, target:
        select = "SELECT id, (100 / v)::int AS v FROM mid_src ORDER BY id"
        with pytest.raises(Exception, match="division by zero"):
            pg_pipe.pipe(source, target, select, "mid_dst", ["id", "v"], [],
                         lambda: None, lambda rows, size: None)  # fmt: skip
        source.rollback()
        assert source.execute("SELECT count(*) FROM mid_src").fetchone() == (5000,)
        assert target.execute("SELECT count(*) FROM mid_dst").fetchone() == (0,)


def test_a_stop_midway_cancels_the_read_and_the_connections_go_on(pg_url: str) -> None:
    """A cancel (Ctrl-C, a failed sibling chunk) raised between two 1 MB writes: the source's
    COPY is cancelled, nothing reaches the target, and both connections are usable again."""
    with servers.postgres_connect(pg_url) as conn:
        conn.execute("CREATE TABLE stop_src (id bigint PRIMARY KEY, t text)")
        conn.execute(
            "INSERT INTO stop_src SELECT i, repeat('x', 200) FROM generate_series(1, 60000) g(i)"
        )
        conn.execute("CREATE TABLE stop_dst (id bigint PRIMARY KEY, t text)")
    calls = []

    def check_cancel() -> None:
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt

    source, target = _pipe_conns(pg_url)
    with source, target:
        with pytest.raises(KeyboardInterrupt):
            pg_pipe.pipe(source, target, "SELECT id, t FROM stop_src", "stop_dst", ["id", "t"],
                         [], check_cancel, lambda rows, size: None)  # fmt: skip
        source.rollback()
        assert source.execute("SELECT count(*) FROM stop_src").fetchone() == (60000,)
        assert target.execute("SELECT count(*) FROM stop_dst").fetchone() == (0,)
    assert len(calls) == 2
