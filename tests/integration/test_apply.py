"""Saved plans: ``etlrun plan --out`` then ``etlrun apply`` runs exactly that plan, and refuses
(exit 2, naming what changed) when the spec, the source schema or the state moved since."""

from __future__ import annotations

import json
import sqlite3
from contextlib import closing
from pathlib import Path

import sqlalchemy as sa
from conftest import run_cli


def make_source(path: Path, rows: int = 25) -> str:
    with closing(sqlite3.connect(path)) as conn:
        conn.execute("CREATE TABLE items (id INTEGER PRIMARY KEY, v TEXT NOT NULL)")
        conn.executemany("INSERT INTO items VALUES (?, ?)", [(i, f"v{i}") for i in range(rows)])
        conn.execute("CREATE TABLE other (id INTEGER PRIMARY KEY, w REAL)")
        conn.commit()
    return f"sqlite:///{path}"


def write_spec(folder: Path, name: str, source: str, target: str, chunk_rows: int = 10) -> Path:
    spec = folder / f"{name}.yaml"
    spec.write_text(
        f"source: {source}\ntarget: {target}\ndefaults: {{chunk_rows: {chunk_rows}}}\n"
        "tables: [items]\n"
    )
    return spec


def target_rows(path: Path) -> list[tuple[int, str]]:
    with closing(sqlite3.connect(path)) as conn:
        return conn.execute("SELECT id, v FROM items ORDER BY id").fetchall()


def test_plan_out_then_apply_runs_exactly_that_plan(tmp_path: Path) -> None:
    source = make_source(tmp_path / "source.db")
    spec = write_spec(tmp_path, "copy", source, f"sqlite:///{tmp_path / 'target.db'}")

    planned = run_cli("plan", spec, "--out", tmp_path / "plan.json", cwd=tmp_path)
    assert planned.returncode == 0, planned.stderr
    assert "saved plan" in planned.stderr
    saved = json.loads((tmp_path / "plan.json").read_text())
    assert saved["format"] == "etlrun-saved-plan"
    (job,) = saved["jobs"]
    assert job["catalog"]["items"]["primary_key"] == ["id"]
    assert [c[0] for c in job["catalog"]["items"]["columns"]] == ["id", "v"]
    assert job["state"] == {"watermarks": {}}

    # rows added after planning do not make the plan stale (data moves; schemas do not)
    with closing(sqlite3.connect(tmp_path / "source.db")) as conn:
        conn.execute("INSERT INTO items VALUES (1000, 'late')")
        conn.commit()
    applied = run_cli("apply", tmp_path / "plan.json", cwd=tmp_path)
    assert applied.returncode == 0, applied.stderr
    assert target_rows(tmp_path / "target.db")[:2] == [(0, "v0"), (1, "v1")]
    history = run_cli("history", "--format", "json", cwd=tmp_path)
    (run,) = json.loads(history.stdout)
    assert run["status"] == "succeeded"
    # the run recorded exactly the saved plan
    shown = json.loads(run_cli("show", run["run_id"], "--format", "json").stdout)
    assert len(shown["tasks"]) == len(job["plan"]["tasks"])


def test_apply_refuses_after_a_spec_edit(tmp_path: Path) -> None:
    source = make_source(tmp_path / "source.db")
    spec = write_spec(tmp_path, "copy", source, f"sqlite:///{tmp_path / 'target.db'}")
    assert run_cli("plan", spec, "--out", "plan.json", cwd=tmp_path).returncode == 0

    write_spec(tmp_path, "copy", source, f"sqlite:///{tmp_path / 'target.db'}", chunk_rows=5)
    applied = run_cli("apply", "plan.json", cwd=tmp_path)
    assert applied.returncode == 2
    assert "stale" in applied.stderr
    assert "the spec" in applied.stderr and "copy.yaml changed" in applied.stderr
    assert not (tmp_path / "target.db").exists()


def test_apply_refuses_after_a_source_alter_table(tmp_path: Path) -> None:
    source = make_source(tmp_path / "source.db")
    spec = write_spec(tmp_path, "copy", source, f"sqlite:///{tmp_path / 'target.db'}")
    assert run_cli("plan", spec, "--out", "plan.json", cwd=tmp_path).returncode == 0

    with closing(sqlite3.connect(tmp_path / "source.db")) as conn:
        conn.execute("ALTER TABLE items ADD COLUMN extra INTEGER")
        conn.commit()
    applied = run_cli("apply", "plan.json", cwd=tmp_path)
    assert applied.returncode == 2, applied.stderr
    assert "source table items: column extra was added (INTEGER)" in applied.stderr
    assert not (tmp_path / "target.db").exists()


def test_apply_refuses_an_edited_plan_file(tmp_path: Path) -> None:
    source = make_source(tmp_path / "source.db")
    spec = write_spec(tmp_path, "copy", source, f"sqlite:///{tmp_path / 'target.db'}")
    assert run_cli("plan", spec, "--out", "plan.json", cwd=tmp_path).returncode == 0
    saved = json.loads((tmp_path / "plan.json").read_text())
    saved["jobs"][0]["plan"]["tasks"][1]["params"]["bounds"] = [None, None]
    (tmp_path / "plan.json").write_text(json.dumps(saved))
    applied = run_cli("apply", "plan.json", cwd=tmp_path)
    assert applied.returncode == 2
    assert "edited after it was saved" in applied.stderr


def test_a_folder_plans_to_one_saved_plan_and_markdown(tmp_path: Path) -> None:
    jobs = tmp_path / "jobs"
    jobs.mkdir()
    source = make_source(tmp_path / "source.db")
    write_spec(jobs, "a", source, f"sqlite:///{tmp_path / 'a.db'}")
    write_spec(jobs, "b", source, f"sqlite:///{tmp_path / 'b.db'}")

    markdown = run_cli("plan", "jobs", "--format", "markdown", "--out", "plan.json", cwd=tmp_path)
    assert markdown.returncode == 0, markdown.stderr
    assert markdown.stdout.startswith("## etlrun plan: 2 jobs, 2 tables, ~50 rows")
    assert "### job `a`" in markdown.stdout and "### job `b`" in markdown.stdout
    assert "| `items` | `items` | copy | create | 25 |" in markdown.stdout
    assert "```sql" in markdown.stdout

    applied = run_cli("apply", "plan.json", cwd=tmp_path)
    assert applied.returncode == 0, applied.stderr
    assert len(target_rows(tmp_path / "a.db")) == len(target_rows(tmp_path / "b.db")) == 25


def test_apply_with_a_postgres_source_refuses_after_alter_table(
    tmp_path: Path, pg_url: str
) -> None:
    engine = sa.create_engine(pg_url)
    with engine.begin() as conn:
        conn.execute(sa.text("CREATE TABLE items (id bigint PRIMARY KEY, v text NOT NULL)"))
        conn.execute(sa.text("INSERT INTO items SELECT g, 'v' || g FROM generate_series(1, 30) g"))
    spec = write_spec(tmp_path, "pg", pg_url, f"sqlite:///{tmp_path / 'target.db'}")
    assert run_cli("plan", spec, "--out", "plan.json", cwd=tmp_path).returncode == 0
    saved = (tmp_path / "plan.json").read_text()
    password = sa.make_url(pg_url).password
    assert not password or password not in saved

    with engine.begin() as conn:
        conn.execute(sa.text("ALTER TABLE items ALTER COLUMN v TYPE varchar(20)"))
    applied = run_cli("apply", "plan.json", cwd=tmp_path)
    assert applied.returncode == 2, applied.stderr
    assert "column v changed type" in applied.stderr

    with engine.begin() as conn:
        conn.execute(sa.text("ALTER TABLE items ALTER COLUMN v TYPE text"))
    applied = run_cli("apply", "plan.json", cwd=tmp_path)
    assert applied.returncode == 0, applied.stderr
    assert len(target_rows(tmp_path / "target.db")) == 30
    engine.dispose()


def test_markdown_says_what_each_job_deletes(tmp_path: Path) -> None:
    jobs = tmp_path / "jobs"
    jobs.mkdir()
    source = make_source(tmp_path / "source.db")
    target = f"sqlite:///{tmp_path / 'target.db'}"
    copy = write_spec(jobs, "copy", source, target)
    assert run_cli("run", copy, cwd=tmp_path).returncode == 0  # the target exists now
    (jobs / "sync.yaml").write_text(
        f"source: {source}\ntarget: {target}\n"
        "tables: [{name: items, mode: sync, max_delete: 3}]\n"
    )
    (jobs / "purge.yaml").write_text(
        f"source: {source}\ntarget: {source}\ntables:\n"
        f"  - {{name: items, mode: purge, where: 'id < 10', backup: 'file://{tmp_path}/p/'}}\n"
    )
    (jobs / "backup.yaml").write_text(
        f"source: {source}\ntarget: file://{tmp_path}/backups/\n"
        "defaults: {mode: backup, retention: {keep: 3}}\ntables: [items]\n"
    )
    done = run_cli("plan", "jobs", "--format", "markdown", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    lines = [line for line in done.stdout.splitlines() if line.startswith("| `items`")]
    assert len(lines) == 4  # one row per job, each for table items; the mode tells them apart
    by_mode = {line.split("|")[3].strip(): line.split("|")[8].strip() for line in lines}
    assert by_mode["copy"] == "**every existing target row** (replaced in one swap)"
    assert by_mode["sync"].startswith("**target rows the source no longer has**")
    assert "refused above 3 rows or 50%" in by_mode["sync"]
    assert by_mode["purge"] == (
        f"**10 rows** matching `id < 10`, backed up to `file://{tmp_path}/p/` first"
    )
    assert by_mode["backup"] == (
        "**files of backups older than the newest 3** (after this one verifies)"
    )
