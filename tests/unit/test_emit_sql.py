"""``etlrun plan --emit-sql DIR --sql-dialects all``: golden files, each of which parses back.

A purge job (one table backed up to S3, one with ``backup: false`` written out) and a copy job
are planned against a small deterministic SQLite database; the .sql files written are compared
with tests/golden/sql/ (regenerate with ``make golden``, i.e. ``ETLRUN_UPDATE_GOLDEN=1``, and
review the diff). Every golden file must parse with sqlglot in the dialect its name gives.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
from pathlib import Path

import pytest
import sqlglot
from sqlglot import exp
from sqlglot.errors import ErrorLevel

from runner.plan.emit_sql import DIALECTS

REPO = Path(__file__).resolve().parents[2]
GOLDEN = REPO / "tests" / "golden" / "sql"

PURGE = """job: tidy
source: sqlite:///app.db
target: sqlite:///app.db
tables:
  - name: events
    mode: purge
    where: "kind = 'old' AND at < '2020-01-20'"
    batch_rows: 400
    backup: s3://archive/purged/
    audit_table: true
    max_delete: 5000
  - name: sessions
    mode: purge
    where: "ended IS NOT NULL AND note LIKE '%test%'"
    batch_rows: 250
    backup: false
"""
COPY = """job: mirror
source: sqlite:///app.db
target: sqlite:///copy.db
tables:
  - {name: items, chunk_rows: 400, where: "price > 1"}
"""


def make_db(path: Path) -> None:
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE events (id INTEGER PRIMARY KEY, kind TEXT, at TEXT)")
        conn.executemany(
            "INSERT INTO events VALUES (?, ?, ?)",
            [(i, "old" if i % 3 else "new", f"2020-01-{i % 28 + 1:02d}") for i in range(1, 1201)],
        )
        conn.execute("CREATE TABLE sessions (id INTEGER PRIMARY KEY, ended TEXT, note TEXT)")
        conn.executemany(
            "INSERT INTO sessions VALUES (?, ?, ?)",
            [(i, None if i % 4 else "2020-01-01", f"test {i}") for i in range(1, 601)],
        )
        conn.execute(
            "CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT NOT NULL, "
            "price DECIMAL(10,2), seen TIMESTAMP, data BLOB)"
        )
        conn.executemany(
            "INSERT INTO items VALUES (?, ?, ?, ?, ?)",
            [(i, f"n{i}", f"{i / 4:.2f}", "2020-01-01 00:00:00", b"x") for i in range(1, 1001)],
        )


@pytest.fixture(scope="module")
def emitted(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from tests.conftest import run_cli

    root = tmp_path_factory.mktemp("emit")
    make_db(root / "app.db")
    (root / "tidy.yaml").write_text(PURGE)
    (root / "mirror.yaml").write_text(COPY)
    for spec in ("tidy.yaml", "mirror.yaml"):
        done = run_cli(
            "plan", spec, "--emit-sql", "out", "--sql-dialects", "all",
            "--state", f"sqlite:///{root / 'state.db'}", cwd=root,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        assert "wrote" in done.stderr
    assert not (root / "copy.db").exists()  # plan writes nothing but the .sql files
    return root / "out"


def files(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*.sql"))


def test_emitted_files_match_golden(emitted: Path) -> None:
    if os.environ.get("ETLRUN_UPDATE_GOLDEN", "").strip().lower() in ("1", "true", "yes"):
        shutil.rmtree(GOLDEN, ignore_errors=True)
        shutil.copytree(emitted, GOLDEN)
    assert files(emitted) == files(GOLDEN), "run `make golden` and review the diff"
    for name in files(GOLDEN):
        assert (emitted / name).read_text() == (GOLDEN / name).read_text(), name


def test_every_dialect_has_purge_and_copy_scripts() -> None:
    names = files(GOLDEN)
    for dialect in DIALECTS:
        for table in ("tidy/events", "tidy/sessions", "mirror/items"):
            assert f"{table}/script.{dialect}.sql" in names
    assert "tidy/events/source.sqlite.sql" in names
    assert "mirror/items/target.sqlite.sql" in names


def _golden_files() -> list[str]:
    return files(GOLDEN) if GOLDEN.exists() else []


@pytest.mark.parametrize("name", _golden_files())
def test_golden_file_parses_in_its_dialect(name: str) -> None:
    dialect = name.rsplit(".", 2)[-2]
    text = (GOLDEN / name).read_text()
    statements = [
        s for s in sqlglot.parse(text, read=dialect, error_level=ErrorLevel.RAISE) if s is not None
    ]
    assert statements
    for statement in statements:
        # sqlglot falls back to an opaque Command for what it does not understand; only
        # SQL Server's EXEC sp_rename (its way to rename a table) may be one
        if isinstance(statement, exp.Command):
            assert dialect == "tsql" and statement.this.upper() == "EXEC", statement.sql()
    deletes = [s for s in statements if isinstance(s, exp.Delete)]
    if "/script." in name or "tidy/" in name:
        assert deletes, "purge and copy scripts delete by key range"
        for delete in deletes:
            assert delete.args.get("where") is not None  # never a whole-table DELETE


def test_sql_dialects_are_checked(tmp_path: Path) -> None:
    from tests.conftest import run_cli

    make_db(tmp_path / "app.db")
    (tmp_path / "tidy.yaml").write_text(PURGE)
    alone = run_cli("plan", "tidy.yaml", "--sql-dialects", "all", cwd=tmp_path)
    assert alone.returncode == 2 and "goes with --emit-sql" in alone.stderr
    unknown = run_cli("plan", "tidy.yaml", "--emit-sql", "o", "--sql-dialects", "db2", cwd=tmp_path)
    assert unknown.returncode == 2 and "unknown dialect 'db2'" in unknown.stderr
    assert not (tmp_path / "o").exists()
