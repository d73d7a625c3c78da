"""incremental, strategy: checksum, end to end through the CLI.

In a table (1M rows for PostgreSQL -> PostgreSQL and MariaDB -> SQLite, 20k elsewhere) one row's
column is changed without touching its timestamp, one row is deleted and one inserted below the
largest key: the next run applies exactly those three changes, reports them, and `etlrun check`
finds source and target equal. Also: a run with nothing changed copies nothing, a float-only
change is found between two databases of one kind, and a SIGKILL between the target commit and
the state write loses and duplicates nothing.
"""

from __future__ import annotations

import json
import sqlite3
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import servers
from conftest import run_cli

from runner.connectors import connect

BIG = 1_000_000
SMALL = 20_000
DDL = {
    "postgres": "CREATE TABLE ev (id BIGINT PRIMARY KEY, name TEXT, amount NUMERIC(10,2), "
    "score DOUBLE PRECISION, at TIMESTAMP NOT NULL)",
    "mysql": "CREATE TABLE ev (id BIGINT PRIMARY KEY, name VARCHAR(40), amount DECIMAL(10,2), "
    "score DOUBLE, at DATETIME(6) NOT NULL)",
    "sqlite": "CREATE TABLE ev (id INTEGER PRIMARY KEY, name TEXT, amount DECIMAL(10,2), "
    "score REAL, at TIMESTAMP NOT NULL)",
    "duckdb": "CREATE TABLE ev (id BIGINT PRIMARY KEY, name VARCHAR, amount DECIMAL(10,2), "
    'score DOUBLE, "at" TIMESTAMP NOT NULL)',
}
FILL = {  # ids 2, 4, ... 2N: odd ids are free below the largest key
    "postgres": "INSERT INTO ev SELECT i * 2, 'n' || i, (i % 1000) / 4.0, i / 3.0, "
    "TIMESTAMP '2024-01-01 00:00:00' FROM generate_series(1, {n}) i",
    "mysql": "INSERT INTO ev SELECT seq * 2, concat('n', seq), (seq % 1000) / 4, seq / 3, "
    "'2024-01-01 00:00:00' FROM seq_1_to_{n}",
    "sqlite": "WITH RECURSIVE g(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM g WHERE i < {n}) "
    "INSERT INTO ev SELECT i * 2, 'n' || i, (i % 1000) / 4.0, i / 3.0, "
    "'2024-01-01 00:00:00' FROM g",
    "duckdb": "INSERT INTO ev SELECT i * 2, 'n' || i, (i % 1000) / 4.0, i / 3.0, "
    "TIMESTAMP '2024-01-01 00:00:00' FROM range(1, {n} + 1) t(i)",
}


@dataclass
class Case:
    source: str
    target: str
    rows: int
    folder: Path

    def source_sql(self, *statements: str) -> None:
        conn = connect(self.source)
        try:
            conn.execute(list(statements))
        finally:
            conn.close()

    def target_rows(self, sql: str) -> list[tuple[Any, ...]]:
        conn = connect(self.target)
        try:
            return [tuple(r) for r in conn.rows(sql)]
        finally:
            conn.close()

    def job(self, chunk_rows: int) -> Path:
        path = self.folder / "job.yaml"
        path.write_text(
            f"job: ck\nsource: {self.source}\ntarget: {self.target}\nworkers: 2\n"
            f"defaults: {{mode: incremental, strategy: checksum, chunk_rows: {chunk_rows}}}\n"
            "tables: [{name: ev, to: ev_out}]\n"
        )
        return path

    def run(self, env: dict[str, str] | None = None) -> Any:
        return run_cli("run", self.job(max(self.rows // 10, 1000)), cwd=self.folder, env=env)


def _case(kind: str, tmp_path: Path, request: pytest.FixtureRequest) -> Case:
    source_kind, target_kind = kind.split("-")
    urls = {
        "sqlite": f"sqlite:///{tmp_path / 'src.db'}",
        "duckdb": f"duckdb:///{tmp_path / 'src.duckdb'}",
        "postgres": lambda: request.getfixturevalue("pg_url"),
        "mariadb": lambda: request.getfixturevalue("mariadb_url"),
    }
    source = urls[source_kind]() if callable(urls[source_kind]) else urls[source_kind]
    target = {
        "sqlite": f"sqlite:///{tmp_path / 'tgt.db'}",
        "duckdb": f"duckdb:///{tmp_path / 'tgt.duckdb'}",
    }.get(target_kind) or source  # a server target: the same database, table ev_out
    rows = BIG if kind in ("postgres-postgres", "mariadb-sqlite") else SMALL
    case = Case(source, target, rows, tmp_path)
    dialect = {"sqlite": "sqlite", "postgres": "postgres", "mariadb": "mysql", "duckdb": "duckdb"}[
        source_kind
    ]
    case.source_sql(DDL[dialect], FILL[dialect].format(n=rows))
    return case


def ok(result: Any) -> None:
    assert result.returncode == 0, result.stdout + result.stderr


def task_rows(state: Path) -> int:
    with closing(sqlite3.connect(state / "state.db")) as db:
        row = db.execute(
            "SELECT rows FROM etlrun_tasks WHERE task_id = 'ev_out:checksum' "
            "ORDER BY finished_at DESC LIMIT 1"
        ).fetchone()
    return int(row[0])


def _q(case: Case) -> str:
    return "`" if case.target.startswith("mariadb") else '"'


@pytest.mark.parametrize(
    "kind",
    [
        "postgres-postgres",
        "mariadb-sqlite",
        "sqlite-sqlite",
        "sqlite-duckdb",
        "duckdb-duckdb",
        "postgres-mariadb",
    ],  # fmt: skip
)
def test_three_changes_exactly(
    kind: str, tmp_path: Path, clean_env: Path, request: pytest.FixtureRequest
) -> None:
    if kind == "postgres-mariadb":  # both servers: PostgreSQL source, MariaDB target
        source = request.getfixturevalue("pg_url")
        case = Case(source, request.getfixturevalue("mariadb_url"), SMALL, tmp_path)
        case.source_sql(DDL["postgres"], FILL["postgres"].format(n=SMALL))
    else:
        case = _case(kind, tmp_path, request)
    n = case.rows
    ok(case.run())  # the first run: a copy, then the target's chunk checksums
    q = _q(case)
    count = f"SELECT COUNT(*) FROM {q}ev_out{q}"
    assert case.target_rows(count) == [(n,)]
    same = case.run()
    ok(same)
    assert "0 inserted, 0 updated, 0 deleted" in same.stderr
    assert task_rows(clean_env) == 0

    changed, deleted, inserted = 2 * (n // 2), 2 * (n // 3), 2 * (n // 4) + 1
    case.source_sql(
        f"UPDATE ev SET name = 'changed' WHERE id = {changed}",  # no timestamp touched
        f"DELETE FROM ev WHERE id = {deleted}",
        f"INSERT INTO ev VALUES ({inserted}, 'new', 1.50, 0.5, '2024-01-01 00:00:00')",
    )
    before = None
    if kind == "postgres-postgres":  # PostgreSQL shows which rows a transaction wrote: xmin
        before = case.target_rows("SELECT txid_current()")[0][0]
    result = case.run()
    ok(result)
    assert "1 inserted, 1 updated, 1 deleted" in result.stderr, result.stderr
    assert task_rows(clean_env) == 3  # the run's summary and history count the rows changed
    history = run_cli("history", "ck", "--format", "json", cwd=tmp_path)
    assert json.loads(history.stdout)[0]["rows"] == 3, history.stdout
    ids = f"{changed}, {deleted}, {inserted}"
    rows = case.target_rows(
        f"SELECT {q}id{q}, {q}name{q} FROM {q}ev_out{q} WHERE {q}id{q} IN ({ids}) ORDER BY 1"
    )
    assert rows == sorted([(inserted, "new"), (changed, "changed")]), rows
    assert case.target_rows(count) == [(n,)]
    if before is not None:
        written = case.target_rows(
            f"SELECT id FROM ev_out WHERE xmin::text::bigint > {before} ORDER BY 1"
        )
        assert written == [(inserted,), (changed,)]  # nothing else was rewritten
    check = run_cli("check", case.job(n // 10), cwd=tmp_path)
    assert check.returncode == 0, check.stdout + check.stderr


def test_float_only_change_and_new_chunks(tmp_path: Path, clean_env: Path) -> None:
    """One kind of database on both sides hashes floats too; inserts past the end are found
    and a chunk grown past twice chunk_rows is split in the stored state."""
    case = Case(f"sqlite:///{tmp_path / 's.db'}", f"sqlite:///{tmp_path / 't.db'}", 5000, tmp_path)
    case.source_sql(DDL["sqlite"], FILL["sqlite"].format(n=5000))
    ok(case.run())
    case.source_sql(
        "UPDATE ev SET score = 12345.5 WHERE id = 4000",
        "WITH RECURSIVE g(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM g WHERE i < 3000) "
        "INSERT INTO ev SELECT 20000 + i, 'late', 0, 0, '2024-01-01' FROM g",
    )
    result = case.run()
    ok(result)
    assert "3000 inserted, 1 updated, 0 deleted" in result.stderr, result.stderr
    assert case.target_rows("SELECT score FROM ev_out WHERE id = 4000") == [(12345.5,)]
    with closing(sqlite3.connect(clean_env / "state.db")) as db:
        sizes = [r[0] for r in db.execute("SELECT rows FROM etlrun_chunk_checksums ORDER BY chunk")]
    # the last chunk (4,000 rows) was cut again by key (here arithmetically: ids are sparse)
    assert sum(sizes) == 8000 and len(sizes) > 5 and max(sizes) < 4000, sizes
    again = case.run()
    assert "0 inserted, 0 updated, 0 deleted" in again.stderr, again.stderr


@pytest.mark.parametrize("how", ["exit", "KILL"])
def test_crash_between_target_commit_and_state_write(
    how: str, tmp_path: Path, clean_env: Path
) -> None:
    case = Case(f"sqlite:///{tmp_path / 's.db'}", f"sqlite:///{tmp_path / 't.db'}", 5000, tmp_path)
    case.source_sql(DDL["sqlite"], FILL["sqlite"].format(n=5000))
    ok(case.run())
    case.source_sql(
        "UPDATE ev SET name = 'x' WHERE id = 10", "DELETE FROM ev WHERE id = 20",
        "INSERT INTO ev VALUES (21, 'new', 0, 0, '2024-01-01')",
    )  # fmt: skip
    env = {"ETLRUN_TEST_CRASH_AFTER": "ev_out:checksum:applied", "ETLRUN_TEST_CRASH_SIGNAL": how}
    crashed = case.run(env=env)
    assert crashed.returncode in (137, -9), crashed.stderr
    # committed in the target, not recorded in the state store
    names = case.target_rows("SELECT id, name FROM ev_out WHERE id IN (10, 20, 21) ORDER BY 1")
    assert names == [(10, "x"), (21, "new")]
    resumed = case.run()
    ok(resumed)
    assert "0 inserted, 0 updated, 0 deleted" in resumed.stderr, resumed.stderr
    ids = [r[0] for r in case.target_rows("SELECT id FROM ev_out ORDER BY id")]
    assert len(ids) == len(set(ids)) == 5000
    with closing(sqlite3.connect(tmp_path / "s.db")) as db:
        assert ids == [r[0] for r in db.execute("SELECT id FROM ev ORDER BY id")]


def test_spec_needs_a_one_column_key(tmp_path: Path, clean_env: Path) -> None:
    source = tmp_path / "s.db"
    with closing(sqlite3.connect(source)) as db:
        db.execute("CREATE TABLE ev (a INT, b INT, v TEXT, PRIMARY KEY (a, b))")
    job = tmp_path / "job.yaml"
    job.write_text(
        f"source: sqlite:///{source}\ntarget: sqlite:///{tmp_path / 't.db'}\n"
        "tables: [{name: ev, mode: incremental, strategy: checksum}]\n"
    )
    result = run_cli("plan", job, cwd=tmp_path)
    assert result.returncode == 2
    assert "one-column primary key" in result.stdout + result.stderr


def test_plan_says_what_a_run_compares(pg_url: str, tmp_path: Path, clean_env: Path) -> None:
    case = Case(pg_url, pg_url, 3000, tmp_path)
    case.source_sql(DDL["postgres"], FILL["postgres"].format(n=3000))
    first = run_cli("plan", case.job(1000), cwd=tmp_path)
    assert "first run: a copy, then the target's chunk checksums" in first.stdout
    ok(case.run())
    later = run_cli("plan", case.job(1000), cwd=tmp_path)
    assert "native-postgres hash): 3 chunk checksum(s) stored" in later.stdout, later.stdout
    with servers.postgres_connect(pg_url) as conn:
        conn.execute("DELETE FROM ev WHERE id <= 200")
    result = case.run()
    assert "0 inserted, 0 updated, 100 deleted" in result.stderr, result.stderr


def test_seed_scenario_with_checksums(mariadb_url: str, tmp_path: Path, clean_env: Path) -> None:
    """The seed: MariaDB -> SQLite nightly by per-table checksum (no timestamps needed), a
    monthly bulk import that keeps the old database file, and `etlrun check` equal after each."""
    with closing(servers.mariadb_connect(mariadb_url)) as conn, conn.cursor() as cursor:
        cursor.execute(
            "CREATE TABLE family (id int PRIMARY KEY, name varchar(20), born date, "
            "weight decimal(5,1))"
        )
        cursor.execute(
            "INSERT INTO family SELECT seq, concat('p', seq), '2001-02-03' + INTERVAL seq DAY, "
            "seq % 90 + 0.5 FROM seq_1_to_5000"
        )
    target = tmp_path / "wtp_collab.db"
    nightly, monthly = tmp_path / "nightly.yaml", tmp_path / "monthly.yaml"
    head = f"source: {mariadb_url}\ntarget: sqlite:///{target}\n"
    nightly.write_text(
        "job: nightly\n" + head + "defaults: {mode: incremental, strategy: checksum, "
        "chunk_rows: 1000}\ntables: [family]\n"
    )
    monthly.write_text("job: monthly\n" + head + "defaults: {mode: bulk}\ntables: [family]\n")
    ok(run_cli("run", nightly, cwd=tmp_path))
    with closing(servers.mariadb_connect(mariadb_url)) as conn, conn.cursor() as cursor:
        cursor.execute("UPDATE family SET weight = 1.5 WHERE id IN (7, 4000)")
        cursor.execute("DELETE FROM family WHERE id = 2500")
    night = run_cli("run", nightly, cwd=tmp_path)
    ok(night)
    assert "0 inserted, 2 updated, 1 deleted" in night.stderr, night.stderr
    assert run_cli("check", nightly, cwd=tmp_path).returncode == 0
    ok(run_cli("run", monthly, cwd=tmp_path))
    assert len(list(tmp_path.glob("wtp_collab.prev-*.db"))) == 1
    final = run_cli("check", monthly, cwd=tmp_path)
    assert final.returncode == 0, final.stdout
    with closing(sqlite3.connect(target)) as db:
        assert db.execute("SELECT weight FROM family WHERE id = 7").fetchone()[0] == 1.5


@pytest.mark.parametrize("kind", ["postgres-postgres", "sqlite-sqlite", "postgres-text-key"])
def test_scattered_changes_go_straight_to_the_row_diff(
    kind: str, tmp_path: Path, clean_env: Path, request: pytest.FixtureRequest
) -> None:
    """Changes in every chunk: after two probe chunks both changed, the other chunks are not
    content-hashed but row-diffed at once, and their new checksums are summed from the row
    hashes in Arrow. Those sums must be the database's own: the next run, with nothing
    changed, finds every chunk equal (PostgreSQL with row-version tokens, SQLite without;
    text keys cut by code point, non-ASCII ones included)."""
    if kind == "postgres-text-key":
        source = request.getfixturevalue("pg_url")
        case = Case(source, source, SMALL, tmp_path)
        case.source_sql(
            "CREATE TABLE ev (id TEXT PRIMARY KEY, name TEXT, amount NUMERIC(10,2), "
            "score DOUBLE PRECISION, at TIMESTAMP NOT NULL)",
            "INSERT INTO ev SELECT CASE i % 3 WHEN 0 THEN 'k' WHEN 1 THEN 'é' ELSE 'Z' END "
            "|| lpad(CAST(i * 2 AS TEXT), 8, '0'), 'n' || i, (i % 1000) / 4.0, i / 3.0, "
            f"TIMESTAMP '2024-01-01 00:00:00' FROM generate_series(1, {SMALL}) i",
        )
        key = "substr(id, 2)::int"
    elif kind == "postgres-postgres":
        source = request.getfixturevalue("pg_url")
        case = Case(source, source, SMALL, tmp_path)
        case.source_sql(DDL["postgres"], FILL["postgres"].format(n=SMALL))
        key = "id"
    else:
        case = _case(kind, tmp_path, request)
        key = "id"
    ok(case.run())
    case.source_sql(
        f"UPDATE ev SET name = 'changed' WHERE {key} % 194 = 0",  # 206 rows, every chunk
        f"DELETE FROM ev WHERE {key} % 3002 = 0",  # 13 rows, none of them updated
    )
    if kind != "postgres-text-key":
        case.source_sql(
            "INSERT INTO ev VALUES (3, 'new', 1.50, 0.5, '2024-01-01 00:00:00'), "
            "(19001, 'new', 1.50, 0.5, '2024-01-01 00:00:00')"
        )
    result = run_cli("--debug", "run", case.job(SMALL // 10), cwd=tmp_path)
    ok(result)
    assert "the rest by row diff" in result.stderr, result.stderr
    if kind != "sqlite-sqlite":  # every token would say "written": the scan is not made
        assert "row-version tokens not read" in result.stderr, result.stderr
    inserted = 0 if kind == "postgres-text-key" else 2
    assert f"{inserted} inserted, 206 updated, 13 deleted" in result.stderr, result.stderr
    check = run_cli("check", case.job(SMALL // 10), cwd=tmp_path)
    assert check.returncode == 0, check.stdout + check.stderr
    again = run_cli("--debug", "run", case.job(SMALL // 10), cwd=tmp_path)
    ok(again)
    assert "0 of 10 chunk(s) changed" in again.stderr, again.stderr
    assert "scattered" not in again.stderr


def test_scattered_changes_are_row_diffed_in_bounded_spans(
    tmp_path: Path,
    clean_env: Path,
    request: pytest.FixtureRequest,
    monkeypatch: pytest.MonkeyPatch,
    capfd: pytest.CaptureFixture[str],
) -> None:
    """A row diff holds both sides' keys and row hashes in memory, so adjacent changed chunks
    are compared together only up to SPAN_ROWS rows: 10 chunks of 2,000 rows at a bound of
    4,500 make five row diffs of two chunks, and every change still arrives."""
    from runner.cli import main
    from runner.modes import incremental_checksum

    case = _case("sqlite-sqlite", tmp_path, request)
    monkeypatch.chdir(tmp_path)
    assert main(["run", str(case.job(SMALL // 10))]) == 0
    case.source_sql("UPDATE ev SET name = 'changed' WHERE id % 194 = 0")  # 206 rows, every chunk
    monkeypatch.setattr(incremental_checksum, "SPAN_ROWS", 4_500)
    capfd.readouterr()
    assert main(["--debug", "run", str(case.job(SMALL // 10))]) == 0
    err = capfd.readouterr().err
    assert "the rest by row diff" in err, err
    spans = [line for line in err.splitlines() if "compared in" in line]
    assert len(spans) == 5, spans
    assert "0 inserted, 206 updated, 0 deleted" in err, err
    assert main(["check", str(case.job(SMALL // 10))]) == 0
