"""``plan --emit-sql`` against live servers: PostgreSQL -> MariaDB copy and a PostgreSQL purge.

The files use each server's own dialect (the bound key values of a chunk's staging DELETE shown
as literals, PostgreSQL's COLLATE "C" text keys, MariaDB's RENAME TABLE swap), and each parses
back with sqlglot; running the target file's statements on MariaDB works too.
"""

from __future__ import annotations

from contextlib import closing
from pathlib import Path

import sqlglot
from sqlglot.errors import ErrorLevel

from tests import servers


def _parse(path: Path) -> list[sqlglot.exp.Expression]:
    dialect = path.name.rsplit(".", 2)[-2]
    parsed = sqlglot.parse(path.read_text(), read=dialect, error_level=ErrorLevel.RAISE)
    return [s for s in parsed if s is not None]


def test_emit_sql_on_postgres_and_mariadb(
    tmp_path: Path, pg_url: str, mariadb_url: str, run_cli
) -> None:
    with servers.postgres_connect(pg_url) as conn:
        conn.execute("CREATE TABLE items (code text PRIMARY KEY, qty int, note text)")
        conn.execute(
            "INSERT INTO items SELECT 'k' || lpad(g::text, 5, '0'), g, 'x%y' "
            "FROM generate_series(1, 900) g"
        )
    spec = tmp_path / "job.yaml"
    spec.write_text(
        f"job: ship\nsource: {pg_url}\ntarget: {mariadb_url}\n"
        "tables:\n  - {name: items, chunk_rows: 300}\n"
    )
    purge = tmp_path / "tidy.yaml"
    purge.write_text(
        f"job: tidy\nsource: {pg_url}\ntarget: {pg_url}\ntables:\n"
        "  - {name: items, mode: purge, where: \"qty < 500 AND note LIKE 'x%'\", batch_rows: 200,"
        f" backup: 'file://{tmp_path}/b/', audit_table: true}}\n"
    )
    for job in (spec, purge):
        done = run_cli("plan", str(job), "--emit-sql", str(tmp_path / "sql"),
                       "--sql-dialects", "postgres,oracle,tsql")  # fmt: skip
        assert done.returncode == 0, done.stderr
    target = tmp_path / "sql" / "ship" / "items" / "target.mysql.sql"
    source = tmp_path / "sql" / "ship" / "items" / "source.postgres.sql"
    text = target.read_text()
    assert "%s" not in text and "> 'k00300'" in text  # bounds bound as literals
    assert "RENAME TABLE" in text
    assert 'COLLATE "C"' in source.read_text()
    files = sorted((tmp_path / "sql").rglob("*.sql"))
    assert len(files) == 2 + 3 + 1 + 3  # copy: source, target, 3 scripts; purge: source, 3
    for path in files:
        assert _parse(path), path
    purge_sql = (tmp_path / "sql" / "tidy" / "items" / "source.postgres.sql").read_text()
    assert "CREATE TABLE IF NOT EXISTS etlrun_purge_details" in purge_sql
    # the target file is what a run executes: it runs as it is on MariaDB
    with closing(servers.mariadb_connect(mariadb_url)) as conn, conn.cursor() as cursor:
        for statement in sqlglot.parse(text, read="mysql"):
            if statement is not None:
                cursor.execute(statement.sql(dialect="mysql"))
        conn.commit()
        cursor.execute("SELECT COUNT(*) FROM items")
        assert cursor.fetchone()[0] == 0  # created empty and swapped in: the rows are a load
