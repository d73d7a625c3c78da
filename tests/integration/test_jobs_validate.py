"""Every example job in ``jobs/`` is a valid spec, through the loader and through the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from runner.spec.load import load
from runner.spec.models import Job

REPO = Path(__file__).resolve().parents[2]
JOBS = sorted((REPO / "jobs").glob("*.y*ml"))

# the variables the example jobs read, so a developer's shell cannot change what is tested
JOB_VARIABLES = (
    "CLINIC_URL",
    "ANALYTICS_URL",
    "DASHBOARD_URL",
    "POSTGRES_URL",
    "MARIADB_URL",
    "DEIDENTIFIED_URL",
    "INSTRUMENT_DATA_URL",
    "DATA_SERVER_URL",
)
# jobs/clinic_deidentified.yaml takes its HMAC key from the environment only (no default)
SECRETS = {"SANITIZE_KEY": "test-only-sanitize-key-0123456789"}


def test_there_are_example_jobs() -> None:
    assert {p.name for p in JOBS} >= {"nightly.yaml", "recent_visits.yaml"}


@pytest.mark.parametrize("path", JOBS, ids=lambda p: p.name)
def test_job_loads_with_its_defaults(path: Path) -> None:
    job = load(path, env=dict(SECRETS))
    assert isinstance(job, Job)
    assert job.name, "every job has a name"
    assert job.tables or job.files, "every job moves something"
    for url in (job.source, job.target):
        assert "${" not in url, f"{url}: a variable was left unexpanded"
        assert "://" in url


@pytest.mark.parametrize("path", JOBS, ids=lambda p: p.name)
def test_job_takes_its_urls_from_the_environment(path: Path) -> None:
    env = {
        "CLINIC_URL": "sqlite:///elsewhere/clinic.db",
        "ANALYTICS_URL": "duckdb:///elsewhere/analytics.duckdb",
        "DASHBOARD_URL": "sqlite:///elsewhere/dashboard.db",
        "POSTGRES_URL": "postgresql://etl@db.example:5432/clinic",
        "MARIADB_URL": "mariadb://etl@mdb.example:3306/clinic",
        "DEIDENTIFIED_URL": "sqlite:///elsewhere/deidentified.db",
    }
    job = load(path, env={**env, **SECRETS})
    text = path.read_text()
    for name, value in env.items():
        for key, url in (("source", job.source), ("target", job.target)):
            line = next(line for line in text.splitlines() if line.startswith(f"{key}:"))
            if "${" + name in line:
                assert url == value, f"{key} does not come from ${name}"


def test_nightly_is_the_documented_demo() -> None:
    job = load(REPO / "jobs" / "nightly.yaml", env={})
    assert job.name == "nightly"
    assert job.source == "sqlite:///demo/clinic.db"
    assert job.target == "duckdb:///demo/analytics.duckdb"
    assert [t.name for t in job.tables] == ["patients", "visits", "lab_results"]


def test_validate_jobs_folder_exits_0(run_cli) -> None:
    result = run_cli("validate", "jobs/", cwd=REPO, env={**dict.fromkeys(JOB_VARIABLES), **SECRETS})
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"{len(JOBS)} specs valid" in result.stdout


def test_validate_jobs_folder_as_json(run_cli) -> None:
    env = {**dict.fromkeys(JOB_VARIABLES), **SECRETS}
    result = run_cli("validate", "jobs/", "--format", "json", cwd=REPO, env=env)
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads(result.stdout)
    assert report["valid"] is True
    assert report["errors"] == []
    assert sorted(Path(f).name for f in report["files"]) == [p.name for p in JOBS]
