"""Folders of jobs: ``run|plan|validate jobs/``, ``--changed-since GIT_REF`` in a temporary git
repository, and ``connections.yaml`` beside the jobs with connections referenced by name."""

from __future__ import annotations

import json
import sqlite3
import subprocess
from contextlib import closing
from pathlib import Path

import pytest
from conftest import run_cli


def git(repo: Path, *args: str) -> str:
    done = subprocess.run(
        ["git", "-c", "user.email=ci@example.org", "-c", "user.name=ci", *args],
        cwd=repo,
        capture_output=True,
        text=True,
        check=True,
    )
    return done.stdout


def make_source(path: Path) -> None:
    with closing(sqlite3.connect(path)) as conn:
        conn.execute("CREATE TABLE items (id INTEGER PRIMARY KEY, v TEXT NOT NULL)")
        conn.executemany("INSERT INTO items VALUES (?, ?)", [(i, f"v{i}") for i in range(12)])
        conn.commit()


def spec_text(target: str, chunk_rows: int = 5) -> str:
    defaults = f"defaults: {{chunk_rows: {chunk_rows}}}\n"
    return f"source: clinic\ntarget: {target}\n{defaults}tables: [items]\n"


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A git repository with jobs/{a,b,c}.yaml and jobs/connections.yaml, all committed."""
    make_source(tmp_path / "source.db")
    jobs = tmp_path / "jobs"
    jobs.mkdir()
    (jobs / "connections.yaml").write_text(
        "clinic: ${CLINIC_URL:-sqlite:///source.db}\nout_a: sqlite:///a.db\n"
    )
    (jobs / "a.yaml").write_text(spec_text("out_a"))
    (jobs / "b.yaml").write_text(spec_text("sqlite:///b.db"))
    (jobs / "c.yaml").write_text(spec_text("sqlite:///c.db"))
    git(tmp_path, "init", "-q", "-b", "main")
    git(tmp_path, "add", ".")
    git(tmp_path, "commit", "-q", "-m", "jobs")
    return tmp_path


def validated(repo: Path, *args: str) -> list[str]:
    done = run_cli("validate", "jobs", "--format", "json", *args, cwd=repo)
    assert done.returncode == 0, done.stdout + done.stderr
    return sorted(Path(f).name for f in json.loads(done.stdout)["files"])


def test_changed_since_picks_exactly_the_changed_specs(repo: Path) -> None:
    assert validated(repo) == ["a.yaml", "b.yaml", "c.yaml"]  # connections.yaml is no job
    assert run_cli("validate", "jobs", "--changed-since", "HEAD", cwd=repo).stdout.startswith(
        "no job spec changed since HEAD"
    )

    (repo / "jobs" / "b.yaml").write_text(spec_text("sqlite:///b.db", chunk_rows=3))  # edited
    (repo / "jobs" / "d.yaml").write_text(spec_text("sqlite:///d.db"))  # new, untracked
    assert validated(repo, "--changed-since", "HEAD") == ["b.yaml", "d.yaml"]

    git(repo, "add", ".")
    git(repo, "commit", "-q", "-m", "b and d")
    assert validated(repo, "--changed-since", "HEAD~1") == ["b.yaml", "d.yaml"]
    assert validated(repo, "--changed-since", "HEAD") == []  # printed as "no job spec changed"

    planned = run_cli("plan", "jobs", "--changed-since", "HEAD~1", "--format", "json", cwd=repo)
    assert planned.returncode == 0, planned.stderr
    assert sorted(p["job"] for p in json.loads(planned.stdout)) == ["b", "d"]

    ran = run_cli("run", "jobs", "--changed-since", "HEAD~1", cwd=repo)
    assert ran.returncode == 0, ran.stderr
    assert (repo / "b.db").exists() and (repo / "d.db").exists()
    assert not (repo / "a.db").exists() and not (repo / "c.db").exists()


def test_a_changed_connections_file_selects_every_job_beside_it(repo: Path) -> None:
    with (repo / "jobs" / "connections.yaml").open("a") as file:
        file.write("spare: sqlite:///spare.db\n")
    assert validated(repo, "--changed-since", "HEAD") == ["a.yaml", "b.yaml", "c.yaml"]


def test_a_bad_ref_is_a_usage_error(repo: Path) -> None:
    done = run_cli("validate", "jobs", "--changed-since", "no-such-ref", cwd=repo)
    assert done.returncode == 2
    assert "--changed-since: git diff" in done.stderr


def test_run_over_a_folder_with_named_connections(repo: Path) -> None:
    ran = run_cli("run", "jobs", cwd=repo)
    assert ran.returncode == 0, ran.stderr
    for name in ("a", "b", "c"):
        with closing(sqlite3.connect(repo / f"{name}.db")) as conn:
            assert conn.execute("SELECT count(*) FROM items").fetchone() == (12,)
    plan = run_cli("plan", "jobs/a.yaml", cwd=repo)
    assert "source  sqlite:///source.db" in plan.stdout


def test_an_unknown_connection_name_is_a_spec_error(repo: Path) -> None:
    (repo / "jobs" / "a.yaml").write_text(spec_text("warehouse"))
    done = run_cli("validate", "jobs/a.yaml", cwd=repo)
    assert done.returncode == 2
    assert "jobs/a.yaml:2:9: target: no connection 'warehouse' in jobs/connections.yaml" in (
        done.stdout
    )
    assert "(defined: clinic, out_a)" in done.stdout


def test_a_spec_error_in_a_folder_runs_nothing(repo: Path) -> None:
    (repo / "jobs" / "c.yaml").write_text("source: clinic\ntarget: sqlite:///c.db\ntables: []\n")
    done = run_cli("run", "jobs", cwd=repo)
    assert done.returncode == 2
    assert not (repo / "a.db").exists()


def test_validate_format_github_annotates_each_error(repo: Path) -> None:
    (repo / "jobs" / "b.yaml").write_text(
        "source: clinic\ntarget: sqlite:///b.db\ndefaults: {chunk_rowz: 5}\ntables: [items]\n"
    )
    done = run_cli("validate", "jobs", "--format", "github", cwd=repo)
    assert done.returncode == 2
    (annotation,) = [line for line in done.stdout.splitlines() if line.startswith("::")]
    assert annotation.startswith("::error file=jobs/b.yaml,line=3,col=12::jobs/b.yaml:3:12: ")
    assert "defaults.chunk_rowz: unknown key (did you mean 'chunk_rows'?)" in annotation


def test_ci_files() -> None:
    import yaml

    root = Path(__file__).resolve().parents[2]
    (hook,) = yaml.safe_load((root / ".pre-commit-hooks.yaml").read_text())
    assert hook["id"] == "etlrun-validate" and hook["entry"] == "etlrun validate"
    workflow = yaml.safe_load((root / "examples" / "ci" / "etlrun.yml").read_text())
    steps = [s.get("run", "") for job in workflow["jobs"].values() for s in job["steps"]]
    assert any("--format github" in s for s in steps)
    assert any("--format markdown" in s and "--out plan.json" in s for s in steps)
    assert "etlrun apply plan.json" in steps
    assert any("etlrun check" in s and "--format github" in s for s in steps)
    for spec in sorted((root / "jobs").glob("*.yaml")):
        first = spec.read_text().splitlines()[0]
        assert first == "# yaml-language-server: $schema=../schemas/job.schema.json", spec
