"""Sanitizing end to end through the CLI, SQLite -> SQLite (no server): the example job, the same
tokens run after run, the refusal of profile hipaa, and the key kept out of every output."""

from __future__ import annotations

import json
import shutil
import sqlite3
import subprocess
import sys
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
KEY = "cli-test-key-0123456789abcdef"
OTHER_KEY = "cli-other-key-abcdef0123456789"
JOB = "jobs/clinic_deidentified.yaml"


@pytest.fixture(scope="module")
def clinic(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("clinic") / "clinic.db"
    subprocess.run(
        [sys.executable, str(REPO / "demo" / "make_clinic.py"), str(path), "--rows-scale", "0.1"],
        check=True, capture_output=True, timeout=120,
    )  # fmt: skip
    return path


@pytest.fixture
def repo(tmp_path: Path, clinic: Path) -> Path:
    root = tmp_path / "repo"
    shutil.copytree(REPO / "jobs", root / "jobs")
    (root / "demo").mkdir()
    shutil.copy(clinic, root / "demo" / "clinic.db")
    return root


def etlrun(run_cli: Any, repo: Path, *args: str, key: str | None = KEY) -> Any:
    env = {"CLINIC_URL": None, "DEIDENTIFIED_URL": None, "SANITIZE_KEY": key}
    return run_cli(
        "--state", f"sqlite:///{repo / '.etlrun' / 'state.db'}", *args, cwd=repo, env=env
    )


def rows(path: Path, sql: str) -> list[tuple[Any, ...]]:
    with closing(sqlite3.connect(path)) as conn:
        return conn.execute(sql).fetchall()


def test_the_example_job_needs_its_key_from_the_environment(run_cli: Any, repo: Path) -> None:
    result = etlrun(run_cli, repo, "validate", "jobs/", key=None)
    assert result.returncode == 2
    assert "clinic_deidentified.yaml:16:8: sanitize.key: undefined variable ${SANITIZE_KEY}" in (
        result.stdout
    )
    assert etlrun(run_cli, repo, "validate", "jobs/").returncode == 0


def test_same_key_same_tokens_other_key_other_tokens(run_cli: Any, repo: Path) -> None:
    target = repo / "demo" / "clinic_deidentified.db"
    query = "SELECT id, mrn, first_name, email, age FROM patients ORDER BY mrn"
    first = etlrun(run_cli, repo, JOB, "--log-format", "json", "--debug")
    assert first.returncode == 0, first.stdout + first.stderr
    run1 = rows(target, query)
    again = etlrun(run_cli, repo, JOB)
    assert again.returncode == 0, again.stderr
    assert rows(target, query) == run1, "a run with the same key gives the same tokens"
    other = etlrun(run_cli, repo, JOB, key=OTHER_KEY)
    assert other.returncode == 0, other.stderr
    run3 = rows(target, query)
    for column in (0, 1, 3):  # hash surrogates: disjoint under another key
        tokens = [{r[column] for r in run if r[column] is not None} for run in (run1, run3)]
        assert tokens[0] and not tokens[0] & tokens[1]
    assert sorted(r[4] or "" for r in run1) == sorted(r[4] or "" for r in run3), "ages are ages"
    # the source's values are not in the target
    source = repo / "demo" / "clinic.db"
    raw = rows(source, "SELECT mrn, email, phone, birth_date FROM patients")
    data = target.read_bytes()
    assert not [v for r in raw for v in r if v and str(v).encode() in data]
    # the key is nowhere: outputs, state store, plan
    state = "".join(p.read_bytes().decode("utf-8", "replace")
                    for p in (repo / ".etlrun").rglob("*") if p.is_file())  # fmt: skip
    for text in (first.stdout, first.stderr, again.stderr, state):
        assert KEY not in text
    history = json.loads(etlrun(run_cli, repo, "history", "--format", "json").stdout)
    record = history[0]["sanitize"]["patients"]
    assert {c["column"]: c["rule"] for c in record}["birth_date"] == "{age: {into: age}}"
    classes = {c["column"]: c["class"] for c in record}
    assert classes["mrn"] == "(H) medical record numbers" and classes["sex"] is None


def test_a_new_key_never_finishes_a_run_planned_with_the_old(run_cli: Any, repo: Path) -> None:
    plan1 = json.loads(etlrun(run_cli, repo, "plan", JOB, "--format", "json").stdout)
    plan2 = json.loads(etlrun(run_cli, repo, "plan", JOB, "--format", "json", key=OTHER_KEY).stdout)
    assert plan1["spec_hash"] != plan2["spec_hash"], "so a resume starts over instead"


def test_hipaa_refuses_and_prints_the_rules_to_paste(run_cli: Any, repo: Path) -> None:
    job = repo / "jobs" / "bare.yaml"
    job.write_text(
        "source: sqlite:///demo/clinic.db\ntarget: sqlite:///demo/bare.db\n"
        "sanitize:\n  profile: hipaa\n  allow: [lab_results.taken_at]\n"
        "tables: [patients, lab_results]\n"
    )
    for verb in ("plan", "run"):
        result = etlrun(run_cli, repo, verb, str(job), key=None)
        assert result.returncode == 6, result.stdout + result.stderr
        assert "patients.first_name" in result.stderr and "(A) names" in result.stderr
        assert "      first_name: {fake: first_name}" in result.stderr
        assert "lab_results." not in result.stderr, "allowed"
    assert not (repo / "demo" / "bare.db").exists()
