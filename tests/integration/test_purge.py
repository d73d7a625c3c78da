"""purge: guarded, chunked, backed up before every delete, audited; a kill never loses a row."""

from __future__ import annotations

import io
import json
import sqlite3
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from runner.cli import main
from runner.connectors.fs import sha256_of
from runner.state.purge_audit import read_database
from runner.state.store import StateStore
from tests.connectors.test_fs import full_disk_filesystem
from tests.s3_server import S3Server, s3_endpoint, s3_server  # noqa: F401 - the fixtures

REPO = Path(__file__).resolve().parents[2]


def make_db(path: Path, rows: int = 3000) -> None:
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE events (id INTEGER PRIMARY KEY, kind TEXT, at TEXT)")
        conn.executemany(
            "INSERT INTO events VALUES (?, ?, ?)",
            [
                (i, "old" if i % 3 else "new", f"2020-01-{i % 28 + 1:02d}")
                for i in range(1, rows + 1)
            ],
        )


def write_spec(tmp_path: Path, extra: str = "", where: str = "kind = 'old'") -> Path:
    db = tmp_path / "app.db"
    spec = tmp_path / "tidy.yaml"
    spec.write_text(
        f"job: tidy\nsource: sqlite:///{db}\ntarget: sqlite:///{db}\ntables:\n"
        f'  - name: events\n    mode: purge\n    where: "{where}"\n    batch_rows: 500\n'
        f"    backup: file://{tmp_path}/purged/\n{extra}"
    )
    return spec


def ids(db: Path) -> set[int]:
    with sqlite3.connect(db) as conn:
        return {row[0] for row in conn.execute("SELECT id FROM events")}


KILLER = """
import os, sys
sys.path.insert(0, {repo!r})
import runner.modes.purge as purge
real, calls = purge._delete, []
def deadly(*args):
    calls.append(args)
    if len(calls) == 2:
        os._exit(9)  # killed between the 2nd chunk's verified backup and its delete
    return real(*args)
purge._delete = deadly
from runner.cli import main
sys.exit(main(sys.argv[1:]))
"""


@pytest.mark.parametrize("audit_table", [False, True])
def test_kill_between_backup_and_delete_then_resume(tmp_path: Path, audit_table: bool) -> None:
    db = tmp_path / "app.db"
    make_db(db)
    before = ids(db)
    with sqlite3.connect(db) as conn:
        matching = {r[0] for r in conn.execute("SELECT id FROM events WHERE kind = 'old'")}
    spec = write_spec(tmp_path, "    audit_table: true\n" if audit_table else "")
    state = f"sqlite:///{tmp_path}/state.db"
    killer = tmp_path / "killer.py"
    killer.write_text(KILLER.format(repo=str(REPO)))
    killed = subprocess.run(
        [sys.executable, str(killer), "run", str(spec), "--state", state, "--workers", "1"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert killed.returncode == 9, killed.stderr
    after_kill = ids(db)
    assert 0 < len(before - after_kill) < len(matching)  # the first chunk only

    assert main(["run", str(spec), "--state", state, "--workers", "1"]) == 0
    gone = before - ids(db)
    assert gone == matching

    [request] = StateStore(state).purges("tidy")
    assert request["status"] == "succeeded"
    assert request["rows_deleted"] == len(gone)  # none counted (or deleted) twice
    deleted_details = [d for d in request["details"] if d["status"] == "deleted"]
    assert sum(d["rows_deleted"] for d in deleted_details) == len(gone)
    # the killed attempt's backup is recorded, but nothing was deleted on its account
    assert any(d["status"] == "backed_up" for d in request["details"])
    backed_up: list[int] = []
    for d in deleted_details:
        path = Path(d["backup_file"].removeprefix("file://"))
        assert sha256_of(path.read_bytes()) == d["sha256"]  # still verifies
        backed_up += pq.read_table(path).column("id").to_pylist()
    assert len(backed_up) == len(set(backed_up))
    assert set(backed_up) == gone  # every deleted row is in a verified backup
    steps = [s["step"] for s in request["log"]]
    assert "guard" in steps and steps[-1] == "finished"

    history = subprocess.run(
        [sys.executable, "-m", "runner", "history", "--purges", "--format", "json", "--state",
         state], capture_output=True, text=True, cwd=REPO, check=True,
    )  # fmt: skip
    assert json.loads(history.stdout)[0]["rows_deleted"] == len(gone)
    if audit_table:  # the source database's own audit says the same, chunk by chunk
        [mirrored] = audit_in(db)
        assert mirrored["rows_deleted"] == len(gone) and mirrored["status"] == "succeeded"
        assert _details(mirrored) == _details(request)
        assert [s["step"] for s in mirrored["log"]] == steps
    else:
        assert "etlrun_purge_requests" not in tables_of(db)


def _details(request: dict) -> list[tuple]:
    keys = ("chunk", "key_lo", "key_hi", "rows_backed_up", "rows_deleted", "sha256", "status")
    return sorted((tuple(d[k] for k in keys) for d in request["details"]), key=repr)


def tables_of(db: Path) -> set[str]:
    with sqlite3.connect(db) as conn:
        return {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}


def audit_in(db: Path) -> list[dict]:
    """The purge audit kept in the source database, as `etlrun history --purges` reads it."""
    done = subprocess.run(
        [sys.executable, "-m", "runner", "history", "--purges", "--format", "json",
         "--audit-db", f"sqlite:///{db}"], capture_output=True, text=True, cwd=REPO, check=True,
    )  # fmt: skip
    return json.loads(done.stdout)


def test_backup_false_written_out_deletes_by_key_range(tmp_path: Path, run_cli) -> None:
    db = tmp_path / "app.db"
    make_db(db)
    spec = tmp_path / "tidy.yaml"
    spec.write_text(
        f"job: tidy\nsource: sqlite:///{db}\ntarget: sqlite:///{db}\ntables:\n"
        "  - {name: events, mode: purge, where: \"kind = 'old'\", batch_rows: 700,"
        " backup: false, audit_table: true}\n"
    )
    state = f"sqlite:///{tmp_path}/state.db"
    plan = run_cli("plan", str(spec), "--state", state)
    assert plan.returncode == 0, plan.stderr
    assert "IN (the keys" not in plan.stdout  # no backup: the range DELETE is the statement
    assert 'DELETE FROM "events" WHERE' in plan.stdout
    assert main(["run", str(spec), "--state", state]) == 0
    assert ids(db) == {i for i in range(1, 3001) if i % 3 == 0}
    [request] = StateStore(state).purges("tidy")
    assert request["status"] == "succeeded" and request["rows_deleted"] == 2000
    assert all(d["rows_backed_up"] == 0 and d["sha256"] == "" for d in request["details"])
    assert sum(d["rows_deleted"] for d in request["details"]) == 2000
    assert not (tmp_path / "purged").exists()
    [mirrored] = audit_in(db)
    assert _details(mirrored) == _details(request)


def test_max_delete_pct_refuses(tmp_path: Path) -> None:
    db = tmp_path / "app.db"
    make_db(db)
    spec = write_spec(tmp_path, "    max_delete_pct: 50\n")  # 2/3 of the rows match
    assert main(["run", str(spec), "--state", f"sqlite:///{tmp_path}/state.db"]) == 6
    assert len(ids(db)) == 3000


STATE_KILLER = """
import os, sys
sys.path.insert(0, {repo!r})
import runner.state.purge_audit as audit
real, calls = audit.deleted, []
def deadly(conn, *args):
    if "state.db" in str(conn.engine.url):
        calls.append(args)
        if len(calls) == 2:
            os._exit(9)  # the 2nd chunk's DELETE (and its audit row) committed in the source
    return real(conn, *args)
audit.deleted = deadly
from runner.cli import main
sys.exit(main(sys.argv[1:]))
"""


def test_kill_after_delete_before_the_state_store_knows(tmp_path: Path) -> None:
    """The source's own audit row commits with the DELETE; a resumed run takes it from there."""
    db = tmp_path / "app.db"
    make_db(db)
    before = ids(db)
    spec = write_spec(tmp_path, "    audit_table: true\n")
    state = f"sqlite:///{tmp_path}/state.db"
    killer = tmp_path / "killer.py"
    killer.write_text(STATE_KILLER.format(repo=str(REPO)))
    args = ["run", str(spec), "--state", state, "--workers", "1"]
    killed = subprocess.run(
        [sys.executable, str(killer), *args], capture_output=True, text=True, timeout=120
    )
    assert killed.returncode == 9, killed.stderr
    assert main(args) == 0
    gone = before - ids(db)
    assert len(gone) == 2000
    [request] = StateStore(state).purges("tidy")
    assert request["rows_deleted"] == len(gone)
    assert sum(d["rows_deleted"] or 0 for d in request["details"]) == len(gone)
    assert "reconciled" in [s["step"] for s in request["log"]]
    [mirrored] = audit_in(db)
    assert _details(mirrored) == _details(request)


def test_max_delete_refuses_with_exit_6(tmp_path: Path) -> None:
    db = tmp_path / "app.db"
    make_db(db)
    spec = write_spec(tmp_path, "    max_delete: 10\n")
    state = f"sqlite:///{tmp_path}/state.db"
    assert main(["run", str(spec), "--state", state]) == 6
    assert len(ids(db)) == 3000
    [request] = StateStore(state).purges("tidy")
    assert request["status"] == "refused" and request["details"] == []


def test_a_failing_backup_deletes_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import runner.connectors.fs as fs_module

    db = tmp_path / "app.db"
    make_db(db)
    spec = write_spec(tmp_path)
    root = str(tmp_path / "purged")
    monkeypatch.setattr(fs_module, "filesystem", lambda url: (full_disk_filesystem(100), root))
    assert main(["run", str(spec), "--state", f"sqlite:///{tmp_path}/state.db"]) == 6
    assert len(ids(db)) == 3000


@pytest.mark.parametrize(
    "where",
    [
        "kind = 'old'; DROP TABLE events",
        "kind = 'old' -- and more",
        "kind = 'old' /* x */",
        "1=1) OR (1=1",
        "kind",
    ],
)
def test_injection_in_where_is_a_spec_error(tmp_path: Path, run_cli, where: str) -> None:
    make_db(tmp_path / "app.db", rows=10)
    spec = write_spec(tmp_path, where=where.replace('"', '\\"'))
    done = run_cli("validate", str(spec))
    assert done.returncode == 2, done.stdout
    assert "where" in done.stdout
    assert len(ids(tmp_path / "app.db")) == 10


def test_purge_needs_where_and_backup(tmp_path: Path, run_cli) -> None:
    make_db(tmp_path / "app.db", rows=10)
    spec = tmp_path / "bad.yaml"
    spec.write_text(
        f"source: sqlite:///{tmp_path}/app.db\ntarget: sqlite:///{tmp_path}/app.db\n"
        "tables:\n  - {name: events, mode: purge}\n"
    )
    done = run_cli("validate", str(spec))
    assert done.returncode == 2
    assert "purge needs 'where'" in done.stdout
    assert "purge needs 'backup'" in done.stdout


def test_purge_on_postgres(tmp_path: Path, pg_url: str) -> None:
    from tests import servers

    with servers.postgres_connect(pg_url) as conn:
        conn.execute("CREATE TABLE events (id bigint PRIMARY KEY, kind text, at timestamptz)")
        conn.execute(
            "INSERT INTO events SELECT g, CASE WHEN g % 3 = 0 THEN 'new' ELSE 'old' END, "
            "TIMESTAMPTZ '2020-01-01 00:00:00+00' + g * INTERVAL '1 hour' "
            "FROM generate_series(1, 2000) g"
        )
    spec = tmp_path / "tidy.yaml"
    spec.write_text(
        f"job: tidy\nsource: {pg_url}\ntarget: {pg_url}\ntables:\n"
        "  - name: events\n    mode: purge\n"
        "    where: \"kind = 'old' AND at < TIMESTAMP '2020-02-01 00:00:00'\"\n"
        f"    batch_rows: 300\n    backup: file://{tmp_path}/purged/\n    audit_table: true\n"
    )
    state = f"sqlite:///{tmp_path}/state.db"
    with servers.postgres_connect(pg_url) as conn:
        expected = conn.execute(
            "SELECT count(*) FROM events WHERE kind = 'old' AND at < TIMESTAMP '2020-02-01'"
        ).fetchone()[0]
    assert main(["run", str(spec), "--state", state]) == 0
    with servers.postgres_connect(pg_url) as conn:
        left = conn.execute("SELECT count(*) FROM events").fetchone()[0]
    assert left == 2000 - expected
    [request] = StateStore(state).purges("tidy")
    assert request["rows_deleted"] == expected
    files = [Path(d["backup_file"].removeprefix("file://")) for d in request["details"]]
    assert sum(pq.read_table(f).num_rows for f in files) == expected
    [mirrored] = read_database(pg_url)  # the audit kept in PostgreSQL itself
    assert _details(mirrored) == _details(request)


def test_purge_backs_up_to_s3(tmp_path: Path, s3_server: S3Server) -> None:  # noqa: F811
    db = tmp_path / "app.db"
    make_db(db, rows=1200)
    spec = tmp_path / "tidy.yaml"
    spec.write_text(
        f"job: tidy\nsource: sqlite:///{db}\ntarget: sqlite:///{db}\ntables:\n"
        "  - {name: events, mode: purge, where: \"kind = 'old'\", batch_rows: 300,"
        f" backup: '{s3_server.url('purged/')}'}}\n"
    )
    state = f"sqlite:///{tmp_path}/state.db"
    assert main(["run", str(spec), "--state", state]) == 0
    assert len(ids(db)) == 400
    [request] = StateStore(state).purges("tidy")
    backed_up: list[int] = []
    for d in request["details"]:
        assert d["status"] == "deleted" and d["backup_file"].startswith("s3://")
        assert d["backup_file"].endswith(f"?endpoint_url={s3_server.endpoint}")
        key = d["backup_file"].split("?")[0].removeprefix(f"s3://{s3_server.bucket}/")
        data = s3_server.read(key)
        assert sha256_of(data) == d["sha256"]
        backed_up += pq.read_table(io.BytesIO(data)).column("id").to_pylist()
    assert sorted(backed_up) == [i for i in range(1, 1201) if i % 3]
