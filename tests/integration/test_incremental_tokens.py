"""incremental, strategy: checksum on a PostgreSQL source: row-version tokens (runner/tokens.py).

A chunk whose rows were not written since the last run is skipped without hashing its rows;
the run's log line says how many chunks were checksummed and how many skipped. Every kind of
change is still found and applied exactly: an update touching no timestamp, a delete, an
insert below the largest key, a row leaving a ``where:`` filter without being written, a row
moved between partitions, a refreshed materialized view. Stored tokens from another cluster
or too many transactions ago, a state store from before tokens, a view as source and a
partitioned table with a foreign partition all fall back to hashing every chunk.
"""

from __future__ import annotations

import json
import re
import sqlite3
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest
import servers
from conftest import run_cli
from sqlalchemy.engine import make_url

N = 20_000  # ids 2, 4, ... 40000; chunks of 2,000 rows: 10 chunks
FILL = (
    "INSERT INTO ev SELECT i * 2, 'n' || i, (i % 1000) / 4.0, "
    "TIMESTAMP '2024-01-01 00:00:00' FROM generate_series(1, {n}) i"
)
LINE = re.compile(
    r"(\d+) of (\d+) chunk\(s\) changed: (\d+) inserted, (\d+) updated, (\d+) deleted "
    r"\((\d+) chunk\(s\) checksummed, (\d+) skipped by row versions"
)
SCAN = re.compile(r"row-version tokens of \d+ chunk\(s\) read in [\d.]+s \((\w+)\)")


def sql(url: str, *statements: str) -> list[tuple[Any, ...]]:
    return servers.postgres_rows(url, *statements)


class Job:
    def __init__(
        self, url: str, folder: Path, source: str = "ev", where: str = "", chunk_rows: int = 2000
    ) -> None:
        self.url, self.folder = url, folder
        self.path = folder / "job.yaml"
        extra = f", where: '{where}'" if where else ""
        self.path.write_text(
            f"job: tok\nsource: {url}\ntarget: {url}\nworkers: 2\n"
            f"defaults: {{mode: incremental, strategy: checksum, chunk_rows: {chunk_rows}}}\n"
            f"tables: [{{name: {source}, to: ev_out{extra}}}]\n"
        )

    def run(self, env: dict[str, str] | None = None, debug: bool = False) -> Any:
        flags = ["--debug"] if debug else []
        return run_cli(*flags, "run", self.path, cwd=self.folder, env=env)

    def report(self, debug: bool = False) -> dict[str, Any]:
        """Run once; the numbers of its log line (and with ``debug``, how tokens were read)."""
        result = self.run(debug=debug)
        assert result.returncode == 0, result.stdout + result.stderr
        found = LINE.search(result.stderr)
        assert found, result.stderr
        names = ("changed", "chunks", "inserted", "updated", "deleted", "hashed", "skipped")
        report: dict[str, Any] = dict(zip(names, map(int, found.groups()), strict=True))
        if debug:
            scan = SCAN.search(result.stderr)
            report["scan"] = scan.group(1) if scan else None
        return report

    def equal(self, where: str = "TRUE") -> None:
        source = sql(self.url, f"SELECT id, name, amount, at FROM ev WHERE {where} ORDER BY id")
        assert sql(self.url, "SELECT id, name, amount, at FROM ev_out ORDER BY id") == source


def changes(report: dict[str, int]) -> tuple[int, int, int]:
    return report["inserted"], report["updated"], report["deleted"]


@pytest.fixture
def job(pg_url: str, tmp_path: Path, clean_env: Path) -> Job:
    sql(pg_url, "CREATE TABLE ev (id BIGINT PRIMARY KEY, name TEXT, amount NUMERIC(10,2), "
                "at TIMESTAMP NOT NULL)", FILL.format(n=N))  # fmt: skip
    first = Job(pg_url, tmp_path)
    result = first.run()  # the first run: a copy, then chunk checksums and tokens
    assert result.returncode == 0, result.stderr
    return first


@pytest.mark.parametrize("split", [False, True], ids=["one-scan", "split-scan"])
def test_unchanged_chunks_are_not_hashed_and_changes_are_found(
    job: Job, split: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With ``split``, every token scan reads the table in two page ranges on two connections
    (the threshold lowered to one page), as a big table's does."""
    if split:
        monkeypatch.setenv("ETLRUN_TOKEN_SPLIT_PAGES", "1")
    plan = run_cli("plan", job.path, cwd=job.folder)
    assert "10 chunk checksum(s) stored (10 with row-version tokens" in plan.stdout, plan.stdout
    quiet = job.report()
    assert quiet["chunks"] == 10 and changes(quiet) == (0, 0, 0)
    assert (quiet["hashed"], quiet["skipped"]) == (0, 10)  # the first run stored every token

    sql(job.url, "UPDATE ev SET name = 'changed' WHERE id = 9000")  # no timestamp touched
    updated = job.report()
    assert changes(updated) == (0, 1, 0) and updated["hashed"] == 1, updated
    job.equal()
    # a chunk the run applied stores no token: the next run checksums it once, then skips it
    assert job.report()["hashed"] == 1
    assert job.report()["hashed"] == 0

    sql(job.url, "DELETE FROM ev WHERE id = 30000")
    deleted = job.report()
    assert changes(deleted) == (0, 0, 1) and deleted["hashed"] == 1, deleted
    sql(job.url, "INSERT INTO ev VALUES (12345, 'new', 1.50, '2024-01-01')")  # below the max key
    inserted = job.report()
    # hashed: its chunk, and the one the delete was applied to (no token yet)
    assert changes(inserted) == (1, 0, 0) and inserted["hashed"] == 2, inserted
    job.equal()

    # an UPDATE that sets the same values writes a row version: checksummed, nothing applied
    job.report()
    sql(job.url, "UPDATE ev SET name = name WHERE id BETWEEN 2 AND 10")
    same = job.report()
    assert changes(same) == (0, 0, 0) and same["hashed"] == 1, same
    assert job.report()["hashed"] == 0  # equal when checksummed: its token stored at once

    # all three in one run, in three chunks, by subtransactions that commit
    job.report()
    with servers.postgres_connect(job.url, autocommit=False) as conn:
        conn.execute("SAVEPOINT a")
        conn.execute("UPDATE ev SET amount = 7 WHERE id = 4000")
        conn.execute("RELEASE SAVEPOINT a")
        conn.execute("SAVEPOINT b")
        conn.execute("DELETE FROM ev WHERE id = 20000")
        conn.execute("SAVEPOINT c")
        conn.execute("INSERT INTO ev VALUES (35001, 'sub', 0, '2024-01-01')")
        conn.commit()
    three = job.report()
    assert changes(three) == (1, 1, 1) and three["hashed"] == 3, three
    job.equal()


def test_rows_leaving_a_filter_unwritten_are_found(pg_url: str, tmp_path: Path) -> None:
    """A ``where:`` whose answer changes without the row being written: the token's count and
    hash sum of (table, key) move, though no row in the chunk has a new xmin."""
    sql(pg_url, "CREATE TABLE ev (id BIGINT PRIMARY KEY, name TEXT, amount NUMERIC(10,2), "
                "at TIMESTAMP NOT NULL)", FILL.format(n=N),
        "CREATE TABLE hidden (id BIGINT PRIMARY KEY)",
        "CREATE FUNCTION shown(k BIGINT) RETURNS BOOLEAN STABLE LANGUAGE sql "
        "AS 'SELECT NOT EXISTS (SELECT 1 FROM hidden WHERE id = k)'",
        "INSERT INTO hidden VALUES (1002)")  # fmt: skip
    job = Job(pg_url, tmp_path, where="shown(id) = TRUE")
    assert job.run().returncode == 0
    assert job.report()["hashed"] == 0
    sql(pg_url, "INSERT INTO hidden VALUES (1000)")  # one row leaves: the count moves
    assert changes(job.report()) == (0, 0, 1)
    job.report()
    sql(pg_url, "DELETE FROM hidden WHERE id = 1002", "INSERT INTO hidden VALUES (1004)")
    swapped = job.report()  # one in, one out: same count, the hash sum moves
    assert changes(swapped) == (1, 0, 1) and swapped["hashed"] == 1, swapped
    job.equal("shown(id)")
    job.report()
    # one in (chunk 0), one out (chunk 7): the table's totals keep their count, not their sum
    sql(pg_url, "DELETE FROM hidden WHERE id = 1000", "INSERT INTO hidden VALUES (30000)")
    apart = job.report(debug=True)
    assert apart["scan"] == "grouped" and changes(apart) == (1, 0, 1), apart
    assert apart["hashed"] == 2
    job.equal("shown(id)")


def test_partitions_and_rows_moving_between_them(pg_url: str, tmp_path: Path) -> None:
    sql(pg_url, "CREATE TABLE ev (id BIGINT, name TEXT, amount NUMERIC(10,2), "
                "at TIMESTAMP NOT NULL, part INT NOT NULL, PRIMARY KEY (id, part)) "
                "PARTITION BY LIST (part)",
        "CREATE TABLE ev_0 PARTITION OF ev FOR VALUES IN (0)",
        "CREATE TABLE ev_1 PARTITION OF ev FOR VALUES IN (1)",
        "INSERT INTO ev SELECT i * 2, 'n' || i, (i % 1000) / 4.0, "
        "TIMESTAMP '2024-01-01 00:00:00', i % 2 FROM generate_series(1, 20000) i")  # fmt: skip
    job = Job(pg_url, tmp_path)
    job.path.write_text(job.path.read_text().replace("to: ev_out", "to: ev_out, primary_key: [id]"))
    first = job.run()
    assert first.returncode == 0, first.stderr
    assert job.report()["hashed"] == 0
    sql(pg_url, "UPDATE ev SET part = 1 - part WHERE id = 5000")  # a delete + an insert
    moved = job.report()
    assert changes(moved) == (0, 1, 0) and moved["hashed"] == 1, moved
    assert sql(pg_url, "SELECT part FROM ev_out WHERE id = 5000") == [(1,)]


def _tokens(state: Path) -> list[tuple[Any, Any]]:
    with closing(sqlite3.connect(state / "state.db")) as db:
        return db.execute(
            "SELECT token, token_xid FROM etlrun_chunk_checksums ORDER BY chunk"
        ).fetchall()


def _set_tokens(state: Path, statement: str) -> None:
    with closing(sqlite3.connect(state / "state.db")) as db:
        db.execute(statement)
        db.commit()


def test_the_totals_scan_and_when_it_falls_back_to_the_grouped_scan(job: Job) -> None:
    """Tokens are read as the table's totals, plus their own numbers for the chunks holding a
    recent row or no token; when the rest do not add up to their stored numbers (a delete in a
    chunk no row was written to), or most chunks need their own, every chunk's are read."""
    quiet = job.report(debug=True)
    assert quiet["scan"] == "totals" and quiet["skipped"] == 10, quiet
    sql(job.url, "UPDATE ev SET name = 'u' WHERE id = 9000")
    updated = job.report(debug=True)
    assert updated["scan"] == "totals" and changes(updated) == (0, 1, 0), updated
    assert updated["hashed"] == 1
    job.report()  # the applied chunk gets its token back
    # a delete leaves no recent row: the totals fall short, the grouped scan finds the chunk
    sql(job.url, "DELETE FROM ev WHERE id = 30000", "UPDATE ev SET name = 'v' WHERE id = 4000")
    both = job.report(debug=True)
    assert both["scan"] == "grouped" and changes(both) == (0, 1, 1), both
    assert both["hashed"] == 2
    job.equal()
    job.report()
    # five chunks of ten with a recent row: each needs its own numbers anyway
    sql(job.url, "UPDATE ev SET name = 'w' WHERE id IN (2, 8002, 16002, 24002, 32002)")
    many = job.report(debug=True)
    assert many["scan"] == "grouped" and changes(many) == (0, 5, 0), many
    job.equal()


def test_tokens_from_elsewhere_or_too_old_are_not_used(job: Job, clean_env: Path) -> None:
    tokens = _tokens(clean_env)
    assert len(tokens) == 10 and all(t is not None and x > 0 for t, x in tokens), tokens
    # another cluster (a promoted standby: new timeline; a restored copy): every chunk hashed
    _set_tokens(clean_env, "UPDATE etlrun_chunk_checksums SET token = '1/1' || "
                           "substr(token, instr(token, ':'))")  # fmt: skip
    sql(job.url, "UPDATE ev SET name = 'x' WHERE id = 100")
    elsewhere = job.report()
    assert changes(elsewhere) == (0, 1, 0) and elsewhere["hashed"] == 10, elsewhere
    assert job.report()["hashed"] == 1  # the applied chunk; the others have tokens again
    # read 2^30 transactions ago: ids may have wrapped since, so the tokens are not trusted
    _set_tokens(clean_env, "UPDATE etlrun_chunk_checksums SET token_xid = token_xid - 1073741824")
    assert job.report()["hashed"] == 10


def test_rows_written_since_the_stored_snapshot_are_never_skipped(
    job: Job, clean_env: Path
) -> None:
    """The recent-row count works on its own: with count and hash sum as stored but the
    stored snapshot older than a row's write, the chunk is checksummed."""
    before = _tokens(clean_env)
    sql(job.url, "UPDATE ev SET name = 'w' WHERE id = 2")  # chunk 0
    assert changes(job.report()) == (0, 1, 0)
    assert job.report()["hashed"] == 1  # stores chunk 0's new token, from after the write
    after = _tokens(clean_env)
    # an update keeps the rows' keys: the same count and hash sum, read from a later snapshot
    assert after[0][0] == before[0][0] and after[0][1] > before[0][1]
    _set_tokens(clean_env, f"UPDATE etlrun_chunk_checksums SET token_xid = {before[0][1]} "
                           "WHERE chunk = 0")  # fmt: skip
    again = job.report()
    assert changes(again) == (0, 0, 0) and again["hashed"] == 1, again
    assert job.report()["hashed"] == 0


def test_a_state_store_from_before_tokens(job: Job, clean_env: Path) -> None:
    """The columns dropped as an older etlrun never made them: compared as before, then the
    tokens are stored."""
    with closing(sqlite3.connect(clean_env / "state.db")) as db:
        db.execute("ALTER TABLE etlrun_chunk_checksums DROP COLUMN token")
        db.execute("ALTER TABLE etlrun_chunk_checksums DROP COLUMN token_xid")
        db.commit()
    sql(job.url, "DELETE FROM ev WHERE id = 16000")
    old = job.report()
    assert changes(old) == (0, 0, 1) and (old["hashed"], old["skipped"]) == (10, 0), old
    job.equal()
    assert job.report()["hashed"] == 1  # the applied chunk only


def test_a_view_as_source_hashes_every_chunk(pg_url: str, tmp_path: Path) -> None:
    sql(pg_url, "CREATE TABLE ev (id BIGINT PRIMARY KEY, name TEXT, amount NUMERIC(10,2), "
                "at TIMESTAMP NOT NULL)", FILL.format(n=N),
        "CREATE VIEW ev_view AS SELECT * FROM ev")  # fmt: skip
    job = Job(pg_url, tmp_path, source="ev_view")
    job.path.write_text(job.path.read_text().replace("to: ev_out", "to: ev_out, primary_key: [id]"))
    first = job.run()
    assert first.returncode == 0, first.stderr
    sql(pg_url, "UPDATE ev SET name = 'v' WHERE id = 200")
    viewed = job.report()
    assert changes(viewed) == (0, 1, 0) and (viewed["hashed"], viewed["skipped"]) == (10, 0)
    assert sql(pg_url, "SELECT name FROM ev_out WHERE id = 200") == [("v",)]


def test_a_materialized_view_refreshed(pg_url: str, tmp_path: Path) -> None:
    """REFRESH writes every row again (new versions): all chunks checksummed, the one real
    change found; unrefreshed, every chunk is skipped."""
    sql(pg_url, "CREATE TABLE base (id BIGINT PRIMARY KEY, name TEXT, amount NUMERIC(10,2), "
                "at TIMESTAMP NOT NULL)", FILL.format(n=N).replace("INTO ev", "INTO base"),
        "CREATE MATERIALIZED VIEW ev AS SELECT * FROM base")  # fmt: skip
    job = Job(pg_url, tmp_path)
    job.path.write_text(job.path.read_text().replace("to: ev_out", "to: ev_out, primary_key: [id]"))
    first = job.run()
    assert first.returncode == 0, first.stderr
    sql(pg_url, "UPDATE base SET name = 'm' WHERE id = 500")
    assert job.report()["skipped"] == 10  # not refreshed: the view's rows are as they were
    sql(pg_url, "REFRESH MATERIALIZED VIEW ev")
    refreshed = job.report()
    assert changes(refreshed) == (0, 1, 0) and refreshed["hashed"] == 10, refreshed
    job.equal()


def test_a_foreign_partition_turns_tokens_off(pg_url: str, tmp_path: Path) -> None:
    """A foreign table's rows have no versions of ours (PostgreSQL will not even show its
    xmin): a partitioned table with one foreign partition is hashed chunk by chunk, and a
    change behind the foreign table is found."""
    url = make_url(pg_url)
    sql(pg_url, "CREATE EXTENSION postgres_fdw",
        f"CREATE SERVER loop FOREIGN DATA WRAPPER postgres_fdw OPTIONS (host "
        f"'{url.host}', port '{url.port or 5432}', dbname '{url.database}')",
        f"CREATE USER MAPPING FOR CURRENT_USER SERVER loop OPTIONS (user '{url.username}')",
        "CREATE TABLE far (id BIGINT, name TEXT, amount NUMERIC(10,2), at TIMESTAMP NOT NULL)",
        "INSERT INTO far SELECT i, 'f' || i, 0, '2024-01-01' FROM generate_series(20001, 24000) i",
        "CREATE TABLE ev (id BIGINT, name TEXT, amount NUMERIC(10,2), at TIMESTAMP NOT NULL) "
        "PARTITION BY RANGE (id)",
        "CREATE TABLE ev_near PARTITION OF ev FOR VALUES FROM (0) TO (20001)",
        "CREATE FOREIGN TABLE ev_far PARTITION OF ev FOR VALUES FROM (20001) TO (30000) "
        "SERVER loop OPTIONS (table_name 'far')",
        "INSERT INTO ev_near SELECT i, 'n' || i, 0, '2024-01-01' FROM generate_series(1, 20000) i",
    )  # fmt: skip
    job = Job(pg_url, tmp_path)
    job.path.write_text(job.path.read_text().replace("to: ev_out", "to: ev_out, primary_key: [id]"))
    first = job.run()
    assert first.returncode == 0, first.stderr
    sql(pg_url, "UPDATE far SET name = 'remote' WHERE id = 23000")
    found = job.report()
    assert changes(found) == (0, 1, 0) and found["skipped"] == 0, found
    assert sql(pg_url, "SELECT name FROM ev_out WHERE id = 23000") == [("remote",)]


@pytest.mark.parametrize("how", ["exit", "KILL"])
def test_crash_between_target_commit_and_state_write(how: str, job: Job) -> None:
    """Tokens are written with the checksums, after the target commit: a kill in between leaves
    the old tokens, so the changed chunk is checksummed again, and bisected against the target
    finds it equal already: no duplicates, no loss."""
    sql(job.url, "UPDATE ev SET name = 'x' WHERE id = 10", "DELETE FROM ev WHERE id = 20",
        "INSERT INTO ev VALUES (21, 'new', 0, '2024-01-01')")  # fmt: skip
    env = {"ETLRUN_TEST_CRASH_AFTER": "ev_out:checksum:applied", "ETLRUN_TEST_CRASH_SIGNAL": how}
    crashed = job.run(env=env)
    assert crashed.returncode in (137, -9), crashed.stderr
    assert sql(job.url, "SELECT id, name FROM ev_out WHERE id IN (10, 20, 21) ORDER BY 1") == [
        (10, "x"), (21, "new")
    ]  # fmt: skip
    resumed = job.report()
    assert changes(resumed) == (0, 0, 0) and resumed["hashed"] == 1, resumed
    job.equal()
    # bisected against the target: no token from that run; the next run checksums it, equal
    assert job.report()["hashed"] == 1
    assert job.report()["hashed"] == 0


@pytest.mark.parametrize("key_type", ["int64", "string"])
def test_a_token_read_by_a_checksum_statement_is_the_scans_token(
    pg_url: str, key_type: str
) -> None:
    """Tokens are stored from the content checksum statements (``row_token`` on the table) and
    compared with the token scan's: both must give the same sum, for integer keys
    (hashint8extended) and any other (hash_record_extended), or no chunk would ever be
    skipped."""
    from runner.connectors import connect
    from runner.segdiff import HashSide
    from runner.tokens import SourceTokens

    kind = "BIGINT" if key_type == "int64" else "TEXT"
    sql(pg_url, f"CREATE TABLE tk (k {kind} PRIMARY KEY, v TEXT)",
        f"INSERT INTO tk SELECT CAST(i AS {kind}), 'v' FROM generate_series(1, 1000) i",
        "UPDATE tk SET v = 'w' WHERE CAST(k AS TEXT) LIKE '%7'")  # fmt: skip
    connector = connect(pg_url)
    try:
        side = HashSide(connector, "tk", [("k", kind), ("v", "TEXT")], "k", key_type, "native")
        tokens = SourceTokens.probe(side)
        assert tokens is not None
        stored = sql(pg_url, f"SELECT SUM({tokens.row_token}) FROM tk")[0][0]
        assert tokens.scan([], 0)[0][:2] == (1000, int(stored))
    finally:
        connector.close()


def test_the_first_run_leaves_the_target_with_planner_statistics(job: Job) -> None:
    """Later runs read the target by key ranges, which PostgreSQL plans as full scans while a
    new table has no statistics (autovacuum may take minutes, or be off): the first run
    analyzes it."""
    assert sql(job.url, "SELECT COUNT(*) FROM pg_stats WHERE tablename = 'ev_out'") == [(4,)]
    plan = sql(job.url, "EXPLAIN SELECT * FROM ev_out WHERE id <= 100")
    assert "Index" in str(plan), plan


def test_a_table_swapped_in_under_the_same_name_is_not_taken_for_the_one_read(job: Job) -> None:
    """A plain table read whole has its rows' tokens unhashed: the token names the table's oid.
    A copy made before the last run (no row of it written since), differing in one row, then
    renamed to the source's name, holds each chunk's stored count: only the oid tells."""
    sql(job.url, "CREATE TABLE ev_next AS SELECT * FROM ev",
        "ALTER TABLE ev_next ADD PRIMARY KEY (id)",
        "UPDATE ev_next SET name = 'next' WHERE id = 9000")  # fmt: skip
    job.report()  # tokens stored after the copy's rows were written
    sql(job.url, "ALTER TABLE ev RENAME TO ev_before", "ALTER TABLE ev_next RENAME TO ev")
    swapped = job.report()
    assert changes(swapped) == (0, 1, 0) and swapped["skipped"] == 0, swapped
    job.equal()


SCANS = re.compile(r"; (\d+) checksum scans\)")


def test_a_changed_chunk_is_compared_by_its_stored_parts(
    pg_url: str, tmp_path: Path, clean_env: Path
) -> None:
    """The first run stored each closed chunk's parts (runner/segparts.py): a chunk changed in
    a few rows goes straight to the row diff of its changed parts, no sub-range checksum read
    on either side. Parts that do not add up to the chunk's stored checksum, and a store from
    before parts, are not used: the chunk is bisected against the target as before. Chunks of
    5,000 rows: a chunk of at most segdiff.LEAF rows is row-diffed whole, parts or not."""
    sql(pg_url, "CREATE TABLE ev (id BIGINT PRIMARY KEY, name TEXT, amount NUMERIC(10,2), "
                "at TIMESTAMP NOT NULL)", FILL.format(n=N))  # fmt: skip
    job = Job(pg_url, tmp_path, chunk_rows=5000)
    assert job.run().returncode == 0

    def scans() -> int:
        result = job.run()
        assert result.returncode == 0, result.stderr
        found = SCANS.search(result.stderr)
        assert found and LINE.search(result.stderr), result.stderr
        job.equal()
        return int(found.group(1)) - 1  # the count includes the source's own scan

    def parts(chunk: int) -> Any:
        with closing(sqlite3.connect(clean_env / "state.db")) as db:
            return db.execute(
                "SELECT parts FROM etlrun_chunk_checksums WHERE chunk = ?", (chunk,)
            ).fetchone()[0]

    assert parts(0) is None and parts(3) is None  # open-ended: (None, hi] and (lo, None]
    assert len(json.loads(parts(1))) == 16
    sql(job.url, "UPDATE ev SET name = 'x' WHERE id IN (12000, 12100)")  # chunk 1: (10000, 20000]
    assert scans() == 0
    assert parts(1) is None  # applied: none until a run finds the chunk equal
    assert scans() == 0 and len(json.loads(parts(1))) == 16  # found equal, read again

    stale = json.loads(parts(1))
    stale[0][0] += 1
    with closing(sqlite3.connect(clean_env / "state.db")) as db:
        db.execute("UPDATE etlrun_chunk_checksums SET parts = ? WHERE chunk = 1",
                   (json.dumps(stale),))  # fmt: skip
        db.commit()
    sql(job.url, "UPDATE ev SET name = 'y' WHERE id = 12000")
    assert scans() == 2  # source and target sub-ranges, as without parts

    with closing(sqlite3.connect(clean_env / "state.db")) as db:
        db.execute("ALTER TABLE etlrun_chunk_checksums DROP COLUMN parts")
        db.commit()
    sql(job.url, "UPDATE ev SET name = 'z' WHERE id = 25000")  # chunk 2
    assert scans() == 2
    assert scans() == 0 and len(json.loads(parts(2))) == 16  # the column is back; found equal


def test_many_changed_keys_are_applied_in_two_transactions(job: Job) -> None:
    """From SPLIT_KEYS changed keys on, a PostgreSQL target takes them in two transactions at
    once, split at the median key: updates, deletes and inserts on both sides of it arrive."""
    sql(
        job.url,
        "UPDATE ev SET name = 'bulk' WHERE id <= 24000",  # 12,000 rows, 6 chunks
        "DELETE FROM ev WHERE id BETWEEN 30002 AND 30100",  # 50 rows
        "INSERT INTO ev VALUES (1, 'low', 1, '2024-01-01'), (39999, 'high', 2, '2024-01-01')",
    )
    result = job.run(debug=True)
    assert result.returncode == 0, result.stderr
    assert "ev_out: 12052 keys applied in two transactions at once" in result.stderr
    found = LINE.search(result.stderr)
    assert found and found.group(3, 4, 5) == ("2", "12000", "50"), result.stderr
    job.equal()
    assert changes(job.report()) == (0, 0, 0)
