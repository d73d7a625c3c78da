"""`etlrun check`: equal tables exit 0, differences exit 4 with their key ranges; the segment
checksum is the same in PostgreSQL, MariaDB, SQLite and DuckDB for the same rows; and the seed
scenario (MariaDB -> SQLite: nightly incremental, monthly bulk, then check) end to end."""

from __future__ import annotations

import json
import sqlite3
from contextlib import closing
from pathlib import Path

import servers
from conftest import run_cli

from runner.connectors import connect
from runner.plan.checksum import checksum_sql

COLUMNS = [
    ("id", "int64"),
    ("amount", "decimal128(10, 2)"),
    ("flag", "bool"),
    ("day", "date32[day]"),
    ("at", "timestamp[us]"),
    ("name", "string"),
]
VALUES = (
    "(1, 12.50, TRUE, '2024-01-02', '2024-01-02 03:04:05.123456', 'a|b'), "
    "(2, -3.00, FALSE, '1999-12-31', '1999-12-31 23:59:59', 'é'), "
    "(3, NULL, NULL, NULL, NULL, NULL)"
)


def checksum_of(url: str, ddl: str) -> tuple[int, ...]:
    conn = connect(url)
    try:
        conn.execute([ddl, f"INSERT INTO t VALUES {VALUES}"])
        row = conn.rows(checksum_sql("t", COLUMNS, conn.dialect))[0]
        return tuple(int(v) for v in row)
    finally:
        conn.close()


def test_same_rows_same_checksum_in_four_databases(
    pg_url: str, mariadb_url: str, tmp_path: Path
) -> None:
    sums = {
        "postgres": checksum_of(
            pg_url,
            "CREATE TABLE t (id bigint PRIMARY KEY, amount numeric(10,2), flag boolean, day date, "
            "at timestamp, name text)",
        ),
        "mariadb": checksum_of(
            mariadb_url,
            "CREATE TABLE t (id bigint PRIMARY KEY, amount decimal(10,2), flag boolean, day date,"
            " at datetime(6), name varchar(10))",
        ),
        "sqlite": checksum_of(
            f"sqlite:///{tmp_path / 'c.db'}",
            "CREATE TABLE t (id INTEGER PRIMARY KEY, amount DECIMAL(10,2), flag BOOLEAN, "
            "day DATE, at TIMESTAMP, name TEXT)",
        ),
        "duckdb": checksum_of(
            f"duckdb:///{tmp_path / 'c.duckdb'}",
            "CREATE TABLE t (id BIGINT PRIMARY KEY, amount DECIMAL(10,2), flag BOOLEAN, day DATE, "
            '"at" TIMESTAMP, name VARCHAR)',
        ),
    }
    assert len(set(sums.values())) == 1, sums
    assert sums["postgres"][0] == 3


def _source(path: Path, rows: int) -> Path:
    with closing(sqlite3.connect(path)) as conn:
        conn.execute(
            "CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT, price DECIMAL(10,2), "
            "seen TIMESTAMP)"
        )
        conn.execute(
            "WITH RECURSIVE g(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM g WHERE i < ?) "
            "INSERT INTO items SELECT i * 2, 'n' || i, i % 100 + 0.25, "
            "'2024-03-01 10:00:00.000000' FROM g",
            (rows,),
        )
        conn.commit()
    return path


def test_check_equal_then_three_changes(pg_url: str, tmp_path: Path) -> None:
    source = _source(tmp_path / "s.db", 20_000)
    job = tmp_path / "job.yaml"
    job.write_text(
        f"source: sqlite:///{source}\ntarget: {pg_url}\ndefaults: {{chunk_rows: 5000}}\n"
        "tables: [items]\n"
    )
    assert run_cli("run", job, cwd=tmp_path).returncode == 0
    same = run_cli("check", job, cwd=tmp_path)
    assert same.returncode == 0, same.stdout + same.stderr
    assert "equal (source 20,000 rows, target 20,000 rows" in same.stdout
    with servers.postgres_connect(pg_url) as conn:
        conn.execute("UPDATE items SET name = 'changed' WHERE id = 5000")  # no timestamp touched
        conn.execute("DELETE FROM items WHERE id = 30000")
        conn.execute("INSERT INTO items VALUES (777, 'new', 1.00, '2024-03-01 10:00:00')")
    differ = run_cli("check", job, "--format", "json", cwd=tmp_path)
    assert differ.returncode == 4, differ.stderr
    (table,) = json.loads(differ.stdout)["tables"]
    assert not table["equal"]
    ranges = [(d["lo"], d["hi"]) for d in table["differences"]]

    def covered(key: int) -> bool:
        return any((lo is None or lo < key) and (hi is None or key <= hi) for lo, hi in ranges)

    assert covered(5000) and covered(30000) and covered(777)
    assert all(d["source_rows"] + d["target_rows"] <= 2002 for d in table["differences"])
    text = run_cli("check", job, cwd=tmp_path)
    assert text.returncode == 4 and "DIFFERENT" in text.stdout and "id in (" in text.stdout


def test_a_big_table_is_cut_by_its_estimate_and_counted_exactly(
    pg_url: str, tmp_path: Path
) -> None:
    """A table of 250,000 rows or more is cut into segments by the planner's estimate, not a
    COUNT(*): an estimate far off (half the rows deleted after ANALYZE) still covers every row,
    and the report's counts are exact."""
    servers.postgres_rows(
        pg_url,
        "CREATE TABLE big (id bigint PRIMARY KEY, v text)",
        "INSERT INTO big SELECT g, md5(g::text) FROM generate_series(1, 300000) g",
        "ANALYZE big",
        "DELETE FROM big WHERE id % 2 = 0",
        "CREATE TABLE big_copy AS SELECT * FROM big",
        "ALTER TABLE big_copy ADD PRIMARY KEY (id)",
    )
    job = tmp_path / "job.yaml"
    job.write_text(f"source: {pg_url}\ntarget: {pg_url}\ntables: [{{name: big, to: big_copy}}]\n")
    same = run_cli("check", job, cwd=tmp_path)
    assert same.returncode == 0, same.stdout + same.stderr
    assert "equal (source 150,000 rows, target 150,000 rows" in same.stdout, same.stdout
    servers.postgres_rows(pg_url, "UPDATE big_copy SET v = 'x' WHERE id = 299999")
    differ = run_cli("check", job, "--format", "json", cwd=tmp_path)
    assert differ.returncode == 4, differ.stdout + differ.stderr
    (table,) = json.loads(differ.stdout)["tables"]
    assert [(d["inserted"], d["updated"], d["deleted"]) for d in table["differences"]] == [
        (0, 1, 0)
    ], table


def test_missing_target_is_different(tmp_path: Path) -> None:
    source = _source(tmp_path / "s.db", 10)
    job = tmp_path / "job.yaml"
    job.write_text(f"source: sqlite:///{source}\ntarget: sqlite:///{tmp_path / 't.db'}\n"
                   "tables: [items]\n")  # fmt: skip
    sqlite3.connect(tmp_path / "t.db").close()
    result = run_cli("check", job, cwd=tmp_path)
    assert result.returncode == 4 and "target table is missing" in result.stdout


def test_seed_scenario_mariadb_to_sqlite(mariadb_url: str, tmp_path: Path) -> None:
    """Nightly incremental, monthly bulk with the old table kept, then `etlrun check` equal."""
    with closing(servers.mariadb_connect(mariadb_url)) as conn, conn.cursor() as cursor:
        cursor.execute(
            "CREATE TABLE visits (id bigint PRIMARY KEY, family varchar(20), score decimal(6,2), "
            "updated_at datetime(6) NOT NULL)"
        )
        cursor.execute(
            "INSERT INTO visits SELECT seq, concat('f', seq % 50), seq / 7, "
            "'2024-01-01 00:00:00' FROM seq_1_to_3000"
        )
    target = tmp_path / "collab.db"
    nightly, monthly = tmp_path / "nightly.yaml", tmp_path / "monthly.yaml"
    head = f"source: {mariadb_url}\ntarget: sqlite:///{target}\n"
    nightly.write_text(
        "job: nightly\n" + head + "defaults: {mode: incremental, cursor: updated_at, "
        "lookback: 1h, chunk_rows: 1000}\ntables: [visits]\n"
    )
    monthly.write_text("job: monthly\n" + head + "defaults: {mode: bulk}\ntables: [visits]\n")
    assert run_cli("run", nightly, cwd=tmp_path).returncode == 0
    with closing(servers.mariadb_connect(mariadb_url)) as conn, conn.cursor() as cursor:
        cursor.execute("UPDATE visits SET score = 1, updated_at = '2024-01-02' WHERE id <= 10")
        cursor.execute(
            "INSERT INTO visits SELECT seq, 'late', 0, '2024-01-02' FROM seq_3001_to_3100"
        )
    assert run_cli("run", nightly, cwd=tmp_path).returncode == 0
    assert run_cli("check", nightly, cwd=tmp_path).returncode == 0
    monthly_run = run_cli("run", monthly, cwd=tmp_path)
    assert monthly_run.returncode == 0, monthly_run.stderr
    with closing(sqlite3.connect(target)) as conn:
        names = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        assert sorted(names) == ["visits", "visits__prev_1"]
    # the old database file is kept whole beside the new one, as the seed's monthly import does
    (copy,) = tmp_path.glob("collab.prev-*.db")
    with closing(sqlite3.connect(copy)) as conn:
        assert conn.execute("SELECT COUNT(*), MAX(score) FROM visits").fetchone()[0] == 3100
        names = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        assert names == ["visits"]  # taken before the swap
    final = run_cli("check", monthly, cwd=tmp_path)
    assert final.returncode == 0, final.stdout


def test_verify_checksum(tmp_path: Path) -> None:
    source = _source(tmp_path / "s.db", 3000)
    target = tmp_path / "t.db"
    for mode in ("copy", "bulk", "incremental"):
        extra = ", cursor: seen" if mode == "incremental" else ""
        job = tmp_path / f"{mode}.yaml"
        job.write_text(
            f"job: {mode}\nsource: sqlite:///{source}\ntarget: sqlite:///{target}\n"
            f"defaults: {{mode: {mode}, verify: checksum, chunk_rows: 1000{extra}}}\n"
            f"tables: [{{name: items, to: items_{mode}}}]\n"
        )
        result = run_cli("run", job, cwd=tmp_path)
        assert result.returncode == 0, result.stderr
    # a type override that rounds the prices: staging differs from the source
    lossy = tmp_path / "lossy.yaml"
    lossy.write_text(
        f"source: sqlite:///{source}\ntarget: sqlite:///{target}\n"
        "defaults: {verify: checksum}\n"
        "tables: [{name: items, to: items_copy, types: {price: INTEGER}}]\n"
    )
    result = run_cli("run", lossy, cwd=tmp_path)
    assert result.returncode == 4, result.stdout + result.stderr
    assert "verify checksum failed" in result.stderr
    with closing(sqlite3.connect(target)) as conn:  # the earlier copy is still there, unchanged
        assert conn.execute("SELECT typeof(price) FROM items_copy LIMIT 1").fetchone() == ("real",)


def test_format_github_annotates_the_table_entry_that_differs(tmp_path: Path) -> None:
    source = _source(tmp_path / "s.db", 3_000)
    with closing(sqlite3.connect(source)) as conn:
        conn.execute("CREATE TABLE other AS SELECT * FROM items")
        conn.commit()
    job = tmp_path / "job.yaml"
    job.write_text(
        f"source: sqlite:///{source}\ntarget: sqlite:///{tmp_path / 't.db'}\n"
        "tables:\n  - other\n  - name: items\n    chunk_rows: 500\n"
    )
    assert run_cli("run", job, cwd=tmp_path).returncode == 0
    same = run_cli("check", job, "--format", "github", cwd=tmp_path)
    assert same.returncode == 0 and "::" not in same.stdout and "all equal" in same.stdout
    with closing(sqlite3.connect(tmp_path / "t.db")) as conn:
        conn.execute("DELETE FROM items WHERE id = 1500")
        conn.commit()
    differ = run_cli("check", job, "--format", "github", cwd=tmp_path)
    assert differ.returncode == 4
    (annotation,) = [line for line in differ.stdout.splitlines() if line.startswith("::")]
    assert annotation.startswith(f"::error file={job},line=5::etlrun check: table items -> items")
    assert "source 3%2C000 rows" not in annotation  # commas are escaped in properties only
    assert "source 3,000 rows, target 2,999 rows; differing key ranges: id in (" in annotation
    assert "1 different." in differ.stdout  # the text report follows
