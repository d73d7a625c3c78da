"""Backup -> restore round trips on PostgreSQL and MariaDB, to a local folder, over SFTP (a real
sshd) and to S3 (moto's server), with every manifest checksum checked against the stored bytes."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from runner.cli import main
from tests import servers
from tests.s3_server import s3_endpoint, s3_server  # noqa: F401 - the fixtures
from tests.sftp_server import SftpServer, sftp_server  # noqa: F401 - the fixture

PG_TABLE = """
CREATE TABLE items (
  id bigint PRIMARY KEY, name text, price numeric(12,2), born date,
  seen timestamptz, flag boolean, score double precision, data bytea
)"""
PG_ROWS = """
INSERT INTO items
SELECT g, CASE WHEN g % 5 = 0 THEN NULL ELSE 'név ' || g END, g * 1.25, DATE '2000-01-01' + g,
       TIMESTAMPTZ '2020-01-01 00:00:00+00' + g * INTERVAL '1 minute', g % 2 = 0, g / 3.0,
       decode(md5(g::text), 'hex')
FROM generate_series(1, 2500) g"""
MY_TABLE = """
CREATE TABLE items (
  id bigint PRIMARY KEY, name varchar(50), price decimal(12,2), born date,
  seen datetime(6), flag boolean, score double, data varbinary(32)
)"""
MY_ROWS = [
    (i, None if i % 5 == 0 else f"név {i}", f"{i * 1.25:.2f}", "2001-02-03",
     "2020-01-01 00:00:00.123456", i % 2 == 0, i / 3, bytes([i % 256]) * 4)
    for i in range(1, 2501)
]  # fmt: skip
COLUMNS = "id, name, price, born, seen, flag, score, data"


def _pg_rows(url: str, table: str) -> list[Any]:
    with servers.postgres_connect(url) as conn:
        return conn.execute(f"SELECT {COLUMNS} FROM {table} ORDER BY id").fetchall()


def _my_rows(url: str, table: str) -> list[Any]:
    with closing(servers.mariadb_connect(url)) as conn, conn.cursor() as cursor:
        cursor.execute(f"SELECT {COLUMNS} FROM {table} ORDER BY id")
        return list(cursor.fetchall())


def _backup_and_restore(tmp_path: Path, db_url: str, target: str, fmt: str) -> str:
    spec = tmp_path / "job.yaml"
    spec.write_text(
        f"job: shop\nsource: {db_url}\ntarget: {target}\n"
        f"defaults: {{mode: backup, chunk_rows: 700, format: {fmt}}}\ntables: [items]\n"
    )
    state = f"sqlite:///{tmp_path}/state.db"
    assert main(["run", str(spec), "--state", state]) == 0
    return state


def _manifest(root: Path) -> Path:
    [manifest] = sorted((root / "shop").glob("manifest-*.json"))
    return manifest


@pytest.mark.parametrize("fmt", ["parquet", "csv", "jsonl"])
def test_postgres_round_trip(tmp_path: Path, pg_url: str, fmt: str) -> None:
    with servers.postgres_connect(pg_url) as conn:
        conn.execute(PG_TABLE)
        conn.execute(PG_ROWS)
    root = tmp_path / "backups"
    state = _backup_and_restore(tmp_path, pg_url, f"file://{root}/", fmt)
    before = _pg_rows(pg_url, "items")
    with servers.postgres_connect(pg_url) as conn:
        conn.execute("DROP TABLE items")
    assert main(["restore", str(_manifest(root)), "--target", pg_url, "--state", state]) == 0
    assert _pg_rows(pg_url, "items") == before


@dataclass
class Store:
    """Where a backup goes: the target URL, and how a test reads a stored file by itself."""

    url: Callable[[str], str]
    read: Callable[[str], bytes]
    """bytes of a file by its path relative to the backup root, read without etlrun."""
    names: Callable[[], list[str]]
    """every file under the backup root, relative to it."""


def _store(kind: str, request: pytest.FixtureRequest, tmp_path: Path) -> Store:
    if kind == "local":
        root = tmp_path / "backups"
        return Store(
            lambda p: f"file://{root}/{p}",
            lambda p: (root / p).read_bytes(),
            lambda: sorted(str(f.relative_to(root)) for f in root.rglob("*") if f.is_file()),
        )
    if kind == "sftp":
        sftp = request.getfixturevalue("sftp_server")
        root = sftp.root / "backups"
        return Store(
            lambda p: sftp.url(f"backups/{p}"),
            lambda p: (root / p).read_bytes(),
            lambda: sorted(str(f.relative_to(root)) for f in root.rglob("*") if f.is_file()),
        )
    s3 = request.getfixturevalue("s3_server")
    return Store(
        lambda p: s3.url(f"backups/{p}"),
        lambda p: s3.read(f"backups/{p}"),
        lambda: [n.removeprefix("backups/") for n in s3.find("backups/")],
    )


def _check_manifest(store: Store) -> str:
    """The one manifest's path; every file it lists has the recorded size and sha256."""
    [manifest_path] = [n for n in store.names() if n.startswith("shop/manifest-")]
    manifest = json.loads(store.read(manifest_path))
    listed = []
    for info in manifest["tables"].values():
        assert info["rows"] == 2500
        for f in info["files"]:
            data = store.read(f["path"])
            assert len(data) == f["bytes"]
            assert hashlib.sha256(data).hexdigest() == f["sha256"]
            listed.append(f["path"])
    # nothing else was left behind: no temporary or part file, no unlisted data file
    assert sorted(store.names()) == sorted([manifest_path, *listed])
    return manifest_path


@pytest.mark.parametrize("kind", ["local", "sftp", "s3"])
def test_postgres_round_trip_to_each_store(
    tmp_path: Path, pg_url: str, kind: str, request: pytest.FixtureRequest
) -> None:
    store = _store(kind, request, tmp_path)
    with servers.postgres_connect(pg_url) as conn:
        conn.execute(PG_TABLE)
        conn.execute(PG_ROWS)
    state = _backup_and_restore(tmp_path, pg_url, store.url(""), "parquet")
    manifest = _check_manifest(store)
    before = _pg_rows(pg_url, "items")
    with servers.postgres_connect(pg_url) as conn:
        conn.execute("DROP TABLE items")
    assert main(["restore", store.url(manifest), "--target", pg_url, "--state", state]) == 0
    assert _pg_rows(pg_url, "items") == before


@pytest.mark.parametrize("kind", ["local", "sftp", "s3"])
def test_mariadb_round_trip_to_each_store(
    tmp_path: Path, mariadb_url: str, kind: str, request: pytest.FixtureRequest
) -> None:
    store = _store(kind, request, tmp_path)
    with closing(servers.mariadb_connect(mariadb_url)) as conn, conn.cursor() as cursor:
        cursor.execute(MY_TABLE)
        cursor.executemany("INSERT INTO items VALUES (%s, %s, %s, %s, %s, %s, %s, %s)", MY_ROWS)
        conn.commit()
    state = _backup_and_restore(tmp_path, mariadb_url, store.url(""), "csv")
    manifest = _check_manifest(store)
    before = _my_rows(mariadb_url, "items")
    with closing(servers.mariadb_connect(mariadb_url)) as conn, conn.cursor() as cursor:
        cursor.execute("DROP TABLE items")
        conn.commit()
    assert main(["restore", store.url(manifest), "--target", mariadb_url, "--state", state]) == 0
    assert _my_rows(mariadb_url, "items") == before
