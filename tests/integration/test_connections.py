"""Named connections: ``connections.yaml`` beside the specs, its URLs expanded like a spec's
(``${VAR}``, ``.env``, ``${secret:}``, ``${file:}``), secrets never shown, and its problems
reported at their own file:line:col with the connection's name."""

from __future__ import annotations

import json
import sqlite3
from contextlib import closing
from pathlib import Path

import pytest
import sqlalchemy as sa
from conftest import run_cli
from test_secretfile import cli_with_stdin, master_key  # noqa: F401 - the fixture

FILE_VALUE = "Kanarie-db-name-from-a-file"
PASSWORD = "Kanarie-pg-password-in-the-secrets-file"


def make_source(path: Path, rows: int = 15) -> None:
    with closing(sqlite3.connect(path)) as conn:
        conn.execute("CREATE TABLE items (id INTEGER PRIMARY KEY, v TEXT NOT NULL)")
        conn.executemany("INSERT INTO items VALUES (?, ?)", [(i, f"v{i}") for i in range(rows)])
        conn.commit()


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_secrets_in_connections_resolve_and_are_never_shown(
    tmp_path: Path,
    master_key: str,  # noqa: F811 - the imported fixture
    clean_env: Path,
    pg_url: str,
) -> None:
    make_source(tmp_path / f"{FILE_VALUE}.db")
    (tmp_path / "db_name.txt").write_text(FILE_VALUE + "\n")
    done = cli_with_stdin(PASSWORD, "secrets", "set", "PG_PASSWORD", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    u = sa.make_url(pg_url)
    jobs = tmp_path / "jobs"
    write(
        jobs / "connections.yaml",
        "# shared by every job in this folder\n"
        f"clinic: sqlite:///{tmp_path}/${{file:{tmp_path}/db_name.txt}}.db\n"
        f"warehouse: postgresql://{u.username}:${{secret:PG_PASSWORD}}@{u.host}:{u.port}/"
        f"{u.database}\n",
    )
    spec = write(jobs / "nightly.yaml", "source: clinic\ntarget: warehouse\ntables: [items]\n")
    outputs = []
    for args in (
        ("validate", "jobs"),
        ("plan", spec),
        ("plan", "jobs", "--format", "markdown", "--out", "plan.json"),
        ("run", "jobs", "--log-format", "json", "--debug"),
        ("history", "--format", "json"),
    ):
        done = run_cli(*args, cwd=tmp_path)
        assert done.returncode == 0, done.stdout + done.stderr
        outputs.append(done.stdout + done.stderr)
    outputs.append((tmp_path / "plan.json").read_text())
    (run,) = json.loads(outputs[4])
    outputs.append(run_cli("show", run["run_id"], "--format", "json", cwd=tmp_path).stdout)
    engine = sa.create_engine(pg_url)
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM items")).scalar() == 15
    engine.dispose()
    text = "\n".join(outputs)
    assert PASSWORD not in text and FILE_VALUE not in text
    assert "***" in text


def test_problems_in_connections_yaml_are_reported_where_they_are(tmp_path: Path) -> None:
    make_source(tmp_path / "source.db")
    jobs = tmp_path / "jobs"
    write(
        jobs / "connections.yaml",
        "clinic: sqlite:///source.db\n"
        "warehouse: postgresql://etl:${WAREHOUSE_PASSWORD}@db/dw\n"
        "spare: [not, a, url]\n",
    )
    write(jobs / "a.yaml", "source: clinic\ntarget: warehouse\ntables: [items]\n")
    write(jobs / "b.yaml", "source: clinic\ntarget: sqlite:///b.db\ntables: [items]\n")
    done = run_cli("validate", "jobs", cwd=tmp_path, env={"WAREHOUSE_PASSWORD": None})
    assert done.returncode == 2
    lines = done.stdout.splitlines()
    spare = "jobs/connections.yaml:3:8: spare: expected a URL (a string)"
    assert lines.count(spare) == 1  # two specs share the file; its problem is shown once
    assert "jobs/a.yaml:2:9: target: jobs/connections.yaml is invalid (see its errors)" in lines

    (jobs / "connections.yaml").write_text(
        "clinic: sqlite:///source.db\nwarehouse: postgresql://etl:${WAREHOUSE_PASSWORD}@db/dw\n"
    )
    done = run_cli("validate", "jobs", cwd=tmp_path, env={"WAREHOUSE_PASSWORD": None})
    assert done.returncode == 2
    assert (
        "jobs/connections.yaml:2:12: warehouse: undefined variable ${WAREHOUSE_PASSWORD} "
        "(set it in the environment or in jobs/.env)"
    ) in done.stdout
    assert "b.yaml" not in done.stdout  # a job that does not use the connection is fine

    (jobs / ".env").write_text("WAREHOUSE_PASSWORD=from-dotenv\n")
    done = run_cli("validate", "jobs", cwd=tmp_path, env={"WAREHOUSE_PASSWORD": None})
    assert done.returncode == 0, done.stdout

    (jobs / "connections.yaml").write_text("clinic: 'sqlite:///source.db\n")
    done = run_cli("validate", "jobs/b.yaml", cwd=tmp_path)
    assert done.returncode == 2
    assert "jobs/connections.yaml:1:9: invalid YAML: " in done.stdout


@pytest.mark.parametrize(
    "text",
    [
        "connections:\n  clinic: sqlite:///source.db\n",  # under a top-level key
        "clinic: sqlite:///source.db\n",
    ],
)
def test_both_forms_of_the_file(tmp_path: Path, text: str) -> None:
    make_source(tmp_path / "source.db")
    write(tmp_path / "connections.yaml", text)
    spec = write(tmp_path / "job.yaml", "source: clinic\ntarget: sqlite:///t.db\ntables: [items]\n")
    assert run_cli("run", spec, cwd=tmp_path).returncode == 0
    with closing(sqlite3.connect(tmp_path / "t.db")) as conn:
        assert conn.execute("SELECT count(*) FROM items").fetchone() == (15,)


def test_a_connections_key_in_a_spec_points_to_the_file(tmp_path: Path) -> None:
    spec = write(
        tmp_path / "job.yaml",
        "connections: {clinic: sqlite:///a.db}\nsource: clinic\ntarget: sqlite:///t.db\n"
        "tables: [items]\n",
    )
    done = run_cli("validate", spec, cwd=tmp_path)
    assert done.returncode == 2
    assert "connections: unknown key: named connections go in a connections.yaml" in done.stdout


def test_the_gitops_example_runs(tmp_path: Path) -> None:
    """examples/gitops/jobs: named connections and SQL steps (``on: source``) on the demo data."""
    import subprocess
    import sys

    from conftest import REPO

    clinic = tmp_path / "clinic.db"
    subprocess.run(
        [sys.executable, REPO / "demo" / "make_clinic.py", clinic, "--rows-scale", "0.02"],
        check=True,
        capture_output=True,
    )
    env = {"CLINIC_URL": f"sqlite:///{clinic}", "MART_URL": f"sqlite:///{tmp_path / 'mart.db'}"}
    jobs = REPO / "examples" / "gitops" / "jobs"
    first = (jobs / "clinic_mart.yaml").read_text().splitlines()[0]
    assert first == "# yaml-language-server: $schema=../../../schemas/job.schema.json"
    assert (jobs / first.split("=", 1)[1]).resolve() == REPO / "schemas" / "job.schema.json"
    done = run_cli("run", jobs, cwd=tmp_path, env=env)
    assert done.returncode == 0, done.stdout + done.stderr
    with closing(sqlite3.connect(tmp_path / "mart.db")) as conn:
        log = conn.execute("SELECT what, n FROM etl_log").fetchall()
        visits = conn.execute("SELECT count(*) FROM visits").fetchone()[0]
        indexes = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='index'")}
    assert log == [("start", 0), ("done", visits)] and visits > 0
    assert {"visits_by_patient", "visits_by_date"} <= indexes
    with closing(sqlite3.connect(clinic)) as conn:  # ANALYZE ran on the source
        assert conn.execute("SELECT count(*) FROM sqlite_stat1").fetchone()[0] > 0
