"""incremental, strategy: cursor, end to end through the CLI on every live backend.

Each test writes rows into a source table, runs ``etlrun run`` and reads the target back: ties
at the watermark, a bulk update, a late commit inside ``lookback``, an empty table, NULL cursors
and a crash between the target commit and the state write.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Iterator
from contextlib import closing
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from conftest import run_cli

from runner.connectors import connect

T0 = datetime(2024, 1, 1, 12, 0, 0)
SCHEMA = pa.schema([("id", pa.int64()), ("v", pa.string()), ("updated_at", pa.timestamp("us"))])
DDL = {
    "sqlite": "CREATE TABLE ev (id INTEGER PRIMARY KEY, v TEXT, updated_at TIMESTAMP)",
    "postgres": "CREATE TABLE ev (id BIGINT PRIMARY KEY, v TEXT, updated_at TIMESTAMP)",
    "mysql": "CREATE TABLE ev (id BIGINT PRIMARY KEY, v VARCHAR(40), updated_at DATETIME(6))",
}


@dataclass
class Pair:
    """A source URL with an ``ev`` table and a target URL the job writes ``ev_out`` to."""

    source: str
    target: str
    folder: Path

    def insert(self, ids: range, stamp: datetime | None, v: str = "v") -> None:
        batch = pa.record_batch(
            [
                pa.array(list(ids), pa.int64()),
                pa.array([f"{v}{i}" for i in ids]),
                pa.array([stamp] * len(ids), pa.timestamp("us")),
            ],
            schema=SCHEMA,
        )
        conn = connect(self.source)
        try:
            conn.write("ev", SCHEMA, [batch])
        finally:
            conn.close()

    def source_sql(self, sql: str) -> None:
        conn = connect(self.source)
        try:
            conn.execute([sql])
        finally:
            conn.close()

    def target_rows(self) -> list[tuple[Any, ...]]:
        conn = connect(self.target)
        try:
            return conn.rows('SELECT "id", "v" FROM ev_out ORDER BY "id"'.replace('"', quote(conn)))
        finally:
            conn.close()

    def job(self, lookback: str | None = None, chunk_rows: int = 1000) -> Path:
        path = self.folder / "job.yaml"
        extra = f", lookback: {lookback}" if lookback else ""
        path.write_text(
            f"job: inc\nsource: {self.source}\ntarget: {self.target}\nworkers: 3\n"
            f"defaults: {{mode: incremental, cursor: updated_at, chunk_rows: {chunk_rows}"
            f"{extra}}}\ntables: [{{name: ev, to: ev_out}}]\n"
        )
        return path

    def run(self, *args: str, env: dict[str, str] | None = None, **kw: Any) -> Any:
        result = run_cli("run", self.job(**kw), *args, cwd=self.folder, env=env)
        return result


def quote(conn: Any) -> str:
    return "`" if conn.dialect == "mysql" else '"'


def watermark(state_dir: Path) -> Any:
    with closing(sqlite3.connect(state_dir / "state.db")) as db:
        row = db.execute(
            "SELECT value, value_type FROM etlrun_watermarks WHERE job = 'inc'"
        ).fetchone()
    return None if row is None else (json.loads(row[0]), row[1])


def _make(kind: str, tmp_path: Path, request: pytest.FixtureRequest) -> Pair:
    if kind == "sqlite":
        source, target = f"sqlite:///{tmp_path / 'src.db'}", f"sqlite:///{tmp_path / 'tgt.db'}"
        dialect = "sqlite"
    elif kind == "duckdb":  # SQLite source, DuckDB target
        source, target = f"sqlite:///{tmp_path / 'src.db'}", f"duckdb:///{tmp_path / 't.duckdb'}"
        dialect = "sqlite"
    elif kind == "postgres":
        source = target = request.getfixturevalue("pg_url")
        dialect = "postgres"
    else:
        source = target = request.getfixturevalue("mariadb_url")
        dialect = "mysql"
    pair = Pair(source, target, tmp_path)
    pair.source_sql(DDL[dialect])
    return pair


@pytest.fixture(params=["sqlite", "duckdb", "postgres", "mariadb"])
def pair(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Pair]:
    yield _make(request.param, tmp_path, request)


@pytest.fixture
def sqlite_pair(request: pytest.FixtureRequest, tmp_path: Path) -> Pair:
    return _make("sqlite", tmp_path, request)


def ok(result: Any) -> None:
    assert result.returncode == 0, result.stdout + result.stderr


def test_ties_across_chunks_are_never_lost_or_duplicated(pair: Pair, clean_env: Path) -> None:
    pair.insert(range(1, 5001), T0)
    ok(pair.run())
    assert len(pair.target_rows()) == 5000
    assert watermark(clean_env)[0].startswith("2024-01-01")
    pair.insert(range(5001, 10001), T0)  # the same cursor value as the watermark
    ok(pair.run())
    rows = pair.target_rows()
    assert len(rows) == 10000
    assert [r[0] for r in rows] == list(range(1, 10001))  # ordered by id: no duplicate


def test_bulk_update_to_one_stamp(pair: Pair, clean_env: Path) -> None:
    pair.insert(range(1, 3001), T0)
    ok(pair.run())
    stamp = "2024-02-01 00:00:00"
    pair.source_sql(f"UPDATE ev SET v = 'new', updated_at = '{stamp}'")
    ok(pair.run())
    assert {r[1] for r in pair.target_rows()} == {"new"}
    # the next run re-reads only the rows tied at the watermark, and changes nothing
    third = pair.run()
    ok(third)
    rows = pair.target_rows()
    assert len(rows) == 3000 and {r[1] for r in rows} == {"new"}


def test_late_commit_inside_lookback_arrives(pair: Pair, clean_env: Path) -> None:
    pair.insert(range(1, 101), T0)
    ok(pair.run(lookback="15m"))
    # committed after the watermark passed T0, stamped 10 minutes before it
    pair.insert(range(101, 102), T0 - timedelta(minutes=10), v="late")
    pair.insert(range(102, 103), T0 - timedelta(minutes=30), v="too-late")
    ok(pair.run(lookback="15m"))
    ids = {r[0] for r in pair.target_rows()}
    assert 101 in ids  # inside the lookback window
    assert 102 not in ids  # outside it: lookback is the stated limit


def test_empty_table_leaves_the_watermark_unset(sqlite_pair: Pair, clean_env: Path) -> None:
    ok(sqlite_pair.run())
    assert sqlite_pair.target_rows() == []
    assert watermark(clean_env) is None
    sqlite_pair.insert(range(1, 11), T0)
    ok(sqlite_pair.run())
    assert len(sqlite_pair.target_rows()) == 10


def test_null_cursors_are_reread_every_run(pair: Pair, clean_env: Path) -> None:
    pair.insert(range(1, 51), None)
    ok(pair.run())
    assert len(pair.target_rows()) == 50
    assert watermark(clean_env) is None  # all-NULL cursor: nothing to hold on to
    pair.insert(range(51, 61), T0)
    pair.source_sql("UPDATE ev SET v = 'changed' WHERE id = 7")  # a NULL-cursor row changes
    ok(pair.run())
    rows = dict(pair.target_rows())
    assert len(rows) == 60 and rows[7] == "changed"
    assert watermark(clean_env) is not None


@pytest.mark.parametrize("how", ["exit", "KILL"])
def test_crash_after_merge_before_state_write(pair: Pair, clean_env: Path, how: str) -> None:
    pair.insert(range(1, 2001), T0)
    ok(pair.run())
    later = T0 + timedelta(hours=1)
    pair.insert(range(2001, 3001), later)
    env = {"ETLRUN_TEST_CRASH_AFTER": "ev_out:finalize", "ETLRUN_TEST_CRASH_SIGNAL": how}
    crashed = pair.run(env=env)
    assert crashed.returncode in (137, -9), crashed.stderr
    assert len(pair.target_rows()) == 3000  # merged and committed ...
    assert watermark(clean_env)[0].startswith("2024-01-01 12")  # ... but not recorded
    ok(pair.run())  # resumes the unfinished run
    pair.insert(range(3001, 3101), later)
    ok(pair.run())
    rows = pair.target_rows()
    assert [r[0] for r in rows] == list(range(1, 3101))


def test_crash_after_a_chunk_resumes(sqlite_pair: Pair, clean_env: Path) -> None:
    sqlite_pair.insert(range(1, 3001), T0)
    env = {"ETLRUN_TEST_CRASH_AFTER": "ev_out:chunk:0002", "ETLRUN_TEST_CRASH_SIGNAL": "KILL"}
    crashed = sqlite_pair.run(env=env)
    assert crashed.returncode in (137, -9)
    ok(sqlite_pair.run())
    assert [r[0] for r in sqlite_pair.target_rows()] == list(range(1, 3001))


def test_spec_errors(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(
        "source: sqlite:///a.db\ntarget: sqlite:///b.db\n"
        "tables:\n  - {name: t, mode: incremental}\n  - {name: u, cursor: x}\n"
        "  - {name: w, mode: incremental, strategy: checksum, cursor: x}\n"
    )
    result = run_cli("validate", path)
    assert result.returncode == 2
    out = result.stdout
    assert "mode incremental needs 'cursor'" in out
    assert "'cursor' is an option of mode incremental, but this table's mode is copy" in out
    assert "tables[2].cursor: strategy checksum needs no cursor" in out
    path.write_text(
        "source: sqlite:///a.db\ntarget: sqlite:///b.db\n"
        "tables:\n  - {name: z, mode: incremental, cursor: x, lookback: 5 minutes}\n"
    )
    result = run_cli("validate", path)
    assert result.returncode == 2 and "'5 minutes' is not a duration" in result.stdout


def test_plan_shows_the_watermark(sqlite_pair: Pair, clean_env: Path) -> None:
    sqlite_pair.insert(range(1, 11), T0)
    first = run_cli("plan", sqlite_pair.job(lookback="1h"), cwd=sqlite_pair.folder)
    assert "watermark updated_at: (unset: every row) -> 2024-01-01 12:00:00" in first.stdout
    ok(sqlite_pair.run(lookback="1h"))
    second = run_cli("plan", sqlite_pair.job(lookback="1h"), cwd=sqlite_pair.folder)
    assert "reading from 2024-01-01 11:00:00" in second.stdout
    assert "[incremental, merge]" in second.stdout


def test_target_without_primary_key_is_refused(sqlite_pair: Pair, tmp_path: Path) -> None:
    sqlite_pair.insert(range(1, 11), T0)
    with closing(sqlite3.connect(tmp_path / "tgt.db")) as db:
        db.execute("CREATE TABLE ev_out (id INTEGER, v TEXT, updated_at TIMESTAMP)")
    result = sqlite_pair.run()
    assert result.returncode == 2
    assert "has no primary key to merge by" in result.stderr


_: Callable[..., Any] = run_cli


def test_composite_and_integer_cursors(tmp_path: Path, clean_env: Path) -> None:
    source, target = tmp_path / "s.db", tmp_path / "t.db"
    with closing(sqlite3.connect(source)) as db:
        db.execute("CREATE TABLE ev (id INTEGER PRIMARY KEY, v TEXT, batch INTEGER, seq INTEGER)")
        db.executemany(
            "INSERT INTO ev VALUES (?, 'a', ?, ?)", [(i, i // 100, i % 100) for i in range(1000)]
        )
        db.commit()
    job = tmp_path / "job.yaml"
    for cursor, lookback in (("[batch, seq]", ""), ("batch", ", lookback: 1")):
        job.write_text(
            f"job: c{cursor[:2]}\nsource: sqlite:///{source}\ntarget: sqlite:///{target}\n"
            f"defaults: {{mode: incremental, cursor: {cursor}, chunk_rows: 300{lookback}}}\n"
            f"tables: [{{name: ev, to: ev_{len(cursor)}}}]\n"
        )
        ok(run_cli("run", job, cwd=tmp_path))
        with closing(sqlite3.connect(source)) as db:
            db.execute("UPDATE ev SET v = 'b', seq = 100 WHERE id = 950")  # (9, 100) > (9, 99)
            # composite: (9, 99) was the watermark, so (9, 99) ties; one column: 9 ties
            db.execute("UPDATE ev SET v = 'c', batch = 9, seq = 99 WHERE id = 5")
            db.commit()
        plan = run_cli("plan", job, cwd=tmp_path).stdout
        assert "-> [9, 100]" in plan if cursor.startswith("[") else "reading from 8" in plan
        ok(run_cli("run", job, cwd=tmp_path))
        with closing(sqlite3.connect(target)) as db:
            rows = dict(db.execute(f"SELECT id, v FROM ev_{len(cursor)}").fetchall())
        assert len(rows) == 1000 and rows[950] == "b" and rows[5] == "c"
        with closing(sqlite3.connect(source)) as db:  # back, for the next cursor
            db.execute("UPDATE ev SET v = 'a', seq = 50 WHERE id = 950")
            db.execute("UPDATE ev SET v = 'a', batch = 0, seq = 5 WHERE id = 5")
            db.commit()


def _pg_spread(pair: Pair, ids: range, stamp: datetime) -> None:
    """Rows ``ids`` whose cursors are distinct seconds after ``stamp`` (no ties)."""
    pair.source_sql(
        f"INSERT INTO ev SELECT i, 'v' || i, TIMESTAMP '{stamp}' + i * INTERVAL '1 second' "
        f"FROM generate_series({ids.start}, {ids.stop - 1}) AS g(i)"
    )


@pytest.mark.postgres
@pytest.mark.parametrize("crash", [False, True])
def test_a_small_window_is_read_once(
    request: pytest.FixtureRequest, tmp_path: Path, clean_env: Path, crash: bool
) -> None:
    """PostgreSQL -> PostgreSQL, a delta the planner estimates within one chunk: the run reads
    every row from the watermark on in one read (no count, no max scan first), and the new
    watermark is the largest cursor value staged. Updates, inserts, the tie at the watermark
    and NULL cursors arrive; a crash after the merge and before the state write loses nothing."""
    pair = _make("postgres", tmp_path, request)
    _pg_spread(pair, range(1, 3001), T0)
    ok(pair.run())
    first = watermark(clean_env)[0]
    assert first.startswith("2024-01-01 12:50:00")  # T0 + 3000 s
    pair.source_sql("ANALYZE ev")  # the statistics a nightly job finds: from before the delta
    pair.source_sql(
        "UPDATE ev SET v = 'changed', updated_at = TIMESTAMP '2024-01-02' + id * INTERVAL '1 s' "
        "WHERE id % 300 = 0"
    )
    _pg_spread(pair, range(3001, 3003), T0 + timedelta(days=2))
    pair.source_sql("INSERT INTO ev VALUES (3003, 'no cursor', NULL)")
    planned = json.loads(run_cli("plan", pair.job(), "--format", "json", cwd=pair.folder).stdout)
    options = planned["tables"][0]["options"]
    assert options["watermark_read"] is True and options["watermark_to"] is None
    assert len(planned["tables"][0]["chunks"]) == 1
    shown = run_cli("plan", pair.job(), cwd=pair.folder).stdout
    assert "(the largest value the run reads" in shown
    assert "rows (the planner's estimate: not counted) to insert or update" in shown
    if crash:
        env = {"ETLRUN_TEST_CRASH_AFTER": "ev_out:finalize", "ETLRUN_TEST_CRASH_SIGNAL": "KILL"}
        crashed = pair.run(env=env)
        assert crashed.returncode in (137, -9), crashed.stderr
        assert watermark(clean_env)[0] == first  # merged, not recorded
        ok(pair.run())  # resumes: staging is gone (merged), so the watermark stays ...
        assert watermark(clean_env)[0] == first
    ok(pair.run())  # ... and this run reads the window again, harmlessly, and records it
    source = connect(pair.source)
    try:
        expected = source.rows('SELECT "id", "v" FROM ev ORDER BY "id"')
        largest = source.rows("SELECT max(updated_at) FROM ev")[0][0]
    finally:
        source.close()
    assert pair.target_rows() == expected
    assert len(expected) == 3003 and dict(expected)[300] == "changed"
    assert watermark(clean_env)[0] == largest.isoformat(sep=" ")  # 2024-01-03 12:50:02 ...
    assert watermark(clean_env)[0].startswith("2024-01-03 12:50:02")
    # the next run reads the tie at the watermark and the NULL cursor, and moves nothing back
    ok(pair.run())
    assert pair.target_rows() == expected
    assert watermark(clean_env)[0].startswith("2024-01-03 12:50:02")


@pytest.mark.postgres
def test_a_window_estimated_over_one_chunk_is_counted_first(
    request: pytest.FixtureRequest, tmp_path: Path, clean_env: Path
) -> None:
    """A delta the planner estimates above chunk_rows (statistics that saw the mass update)
    is counted and bounded first, and read in several chunks."""
    pair = _make("postgres", tmp_path, request)
    _pg_spread(pair, range(1, 3001), T0)
    ok(pair.run())
    pair.source_sql("UPDATE ev SET updated_at = updated_at + INTERVAL '1 day'")
    pair.source_sql("ANALYZE ev")
    planned = json.loads(run_cli("plan", pair.job(), "--format", "json", cwd=pair.folder).stdout)
    table = planned["tables"][0]
    assert table["options"]["watermark_read"] is False
    assert len(table["chunks"]) == 3 and table["rows"] == 3000
    assert table["options"]["watermark_to"].startswith("2024-01-02 12:50:00")
    ok(pair.run())
    assert watermark(clean_env)[0].startswith("2024-01-02 12:50:00")


@pytest.mark.postgres
def test_a_retyped_cursor_is_counted_first(
    request: pytest.FixtureRequest, tmp_path: Path, clean_env: Path
) -> None:
    """A cursor staged as another type would not have the same largest value in staging
    (``timestamp(0)`` rounds 12:01:41.6 up to 12:01:42, past rows still to come): such a window
    is counted and bounded on the source."""
    pair = _make("postgres", tmp_path, request)
    _pg_spread(pair, range(1, 101), T0)
    job = tmp_path / "retyped.yaml"
    job.write_text(
        f"job: inc\nsource: {pair.source}\ntarget: {pair.target}\n"
        "defaults: {mode: incremental, cursor: updated_at, chunk_rows: 1000}\n"
        "tables: [{name: ev, to: ev_out, types: {updated_at: timestamp(0)}}]\n"
    )
    ok(run_cli("run", job, cwd=tmp_path))
    pair.source_sql("ANALYZE ev")
    _pg_spread(pair, range(101, 103), T0 + timedelta(days=1))
    planned = json.loads(run_cli("plan", job, "--format", "json", cwd=tmp_path).stdout)
    options = planned["tables"][0]["options"]
    assert options["watermark_read"] is False
    assert options["watermark_to"].startswith("2024-01-02 12:01:42")
    ok(run_cli("run", job, cwd=tmp_path))
    assert watermark(clean_env)[0].startswith("2024-01-02 12:01:42")
