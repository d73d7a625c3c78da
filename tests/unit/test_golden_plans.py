"""``etlrun plan`` of the example jobs against the demo database, compared with golden files.

The demo database (``demo/make_clinic.py``, full scale, deterministic) is made in a temporary
folder laid out like the repository (``jobs/`` and ``demo/clinic.db``), and ``etlrun plan`` runs
there, so the plans read ``sqlite:///demo/clinic.db`` exactly as in the README.
Regenerate the golden files with ``make golden`` (``ETLRUN_UPDATE_GOLDEN=1``) and review the diff.

Every ``etlrun plan`` invocation of the module runs once, up front and two at a time (each is a
Python start-up), and the tests look at the results.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from runner.plan.plan import Plan

REPO = Path(__file__).resolve().parents[2]
GOLDEN = REPO / "tests" / "golden" / "plans"
JOBS = ("nightly", "recent_visits")
GOLDEN_FORMATS = {"text": "plan.txt", "json": "plan.json"}
# every way the module runs `etlrun plan jobs/<job>.yaml`, by name
INVOCATIONS = {
    "text": ("--format", "text", "--detailed-exitcode"),
    "json": ("--format", "json"),
    "json again": ("--format", "json"),
    "mermaid": ("--format", "mermaid"),
}
TARGET_FILES = ("demo/analytics.duckdb", "demo/dashboard.db")


def update_golden() -> bool:
    return os.environ.get("ETLRUN_UPDATE_GOLDEN", "").strip().lower() in ("1", "true", "yes")


def etlrun(*args: str | Path, cwd: Path, state: Path) -> subprocess.CompletedProcess[str]:
    """``python -m runner ARGS`` in a clean environment: no ETLRUN_* or job variables of the
    developer's shell, the state store at ``state`` (which plan must never create)."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("ETLRUN_") and k not in ("CLINIC_URL", "ANALYTICS_URL", "DASHBOARD_URL")
    }
    env.update(ETLRUN_STATE=f"sqlite:///{state}", NO_COLOR="1", PYTHONPATH=str(REPO))
    return subprocess.run(
        [sys.executable, "-m", "runner", *map(str, args)],
        cwd=cwd,
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def snapshot(root: Path) -> dict[str, tuple[int, int]]:
    """Every file and folder under ``root``, with size and mtime."""
    return {
        str(p.relative_to(root)): (p.stat().st_size, p.stat().st_mtime_ns) for p in root.rglob("*")
    }


class Demo:
    """The demo folder, and what each plan invocation printed."""

    def __init__(self, root: Path, state: Path) -> None:
        self.root = root
        self.state = state
        self.results: dict[tuple[str, str], subprocess.CompletedProcess[str]] = {}
        self.before: dict[str, tuple[int, int]] = {}
        self.after: dict[str, tuple[int, int]] = {}

    def __getitem__(self, key: tuple[str, str]) -> subprocess.CompletedProcess[str]:
        return self.results[key]


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Demo:
    root = tmp_path_factory.mktemp("demo-repo")
    shutil.copytree(REPO / "jobs", root / "jobs")
    (root / "demo").mkdir()
    subprocess.run(
        [sys.executable, str(REPO / "demo" / "make_clinic.py"), str(root / "demo" / "clinic.db")],
        check=True,
        capture_output=True,
        timeout=120,
    )
    demo = Demo(root, tmp_path_factory.mktemp("plan-state") / "state.db")
    demo.before = snapshot(root)
    keys = [(job, name) for job in JOBS for name in INVOCATIONS]
    with ThreadPoolExecutor(2) as pool:
        outcomes = pool.map(
            lambda key: etlrun(
                "plan", f"jobs/{key[0]}.yaml", *INVOCATIONS[key[1]], cwd=root, state=demo.state
            ),
            keys,
        )
        demo.results = dict(zip(keys, outcomes, strict=True))
    demo.after = snapshot(root)
    return demo


@pytest.mark.parametrize("fmt", GOLDEN_FORMATS)
@pytest.mark.parametrize("job", JOBS)
def test_plan_matches_golden(demo: Demo, job: str, fmt: str) -> None:
    result = demo[job, fmt]
    assert result.returncode == (2 if fmt == "text" else 0), result.stderr  # 2: --detailed-exitcode
    golden = GOLDEN / f"{job}.{GOLDEN_FORMATS[fmt]}"
    if update_golden():
        golden.parent.mkdir(parents=True, exist_ok=True)
        golden.write_text(result.stdout)
        return
    assert golden.exists(), f"{golden} is missing: run `make golden`"
    assert result.stdout == golden.read_text(), (
        f"`etlrun plan jobs/{job}.yaml --format {fmt}` differs from {golden.relative_to(REPO)}; "
        "if the change is intended, run `make golden` and review the diff"
    )


@pytest.mark.parametrize("job", JOBS)
def test_plan_json_is_byte_identical_and_round_trips(demo: Demo, job: str) -> None:
    first, second = demo[job, "json"], demo[job, "json again"]
    assert first.returncode == second.returncode == 0, first.stderr + second.stderr
    assert first.stdout == second.stdout
    parsed = Plan.from_json(first.stdout)
    assert parsed.to_json() == first.stdout
    assert parsed.source == "sqlite:///demo/clinic.db"


def test_plan_shows_what_the_readme_says(demo: Demo) -> None:
    text = demo["nightly", "text"].stdout
    data = json.loads(demo["nightly", "json"].stdout)
    assert [t["target"] for t in data["tables"]] == ["patients", "visits", "lab_results"]
    assert [t["rows"] for t in data["tables"]] == [10_000, 40_000, 50_000]
    # chunk_rows 5000 by default, 10000 for visits
    assert [len(t["chunks"]) for t in data["tables"]] == [2, 4, 10]
    # foreign keys order the tables: visits after patients, lab_results after visits
    deps = {t["id"]: t["deps"] for t in data["tasks"]}
    assert "patients:finalize" in deps["visits:finalize"]
    assert "visits:finalize" in deps["lab_results:finalize"]
    for line in (
        "job nightly",
        "source  sqlite:///demo/clinic.db  [sqlite]",
        "target  duckdb:///demo/analytics.duckdb  [duckdb]",
        "table patients -> patients  [copy, create]",
        "lossy casts: 0",
    ):
        assert line in text


def test_plan_writes_nothing(demo: Demo) -> None:
    assert all(r.returncode in (0, 2) for r in demo.results.values())
    assert demo.after == demo.before, "plan created or changed files"
    for name in TARGET_FILES:
        assert not (demo.root / name).exists(), f"plan created {name}"
    assert not (demo.root / ".etlrun").exists(), "plan created a state store"
    assert not demo.state.parent.exists() or not any(demo.state.parent.iterdir()), (
        "plan wrote to the state store"
    )


@pytest.mark.parametrize("job", JOBS)
def test_plan_as_mermaid(demo: Demo, job: str) -> None:
    result = demo[job, "mermaid"]
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("flowchart")
    data = json.loads(demo[job, "json"].stdout)
    edges = sum(len(t["deps"]) for t in data["tasks"])
    assert result.stdout.count(" --> ") == edges


@pytest.mark.parametrize("job", JOBS)
def test_detailed_exitcode_is_2_when_tables_would_be_copied(demo: Demo, job: str) -> None:
    # the text plans were made with --detailed-exitcode, and print as without it
    result = demo[job, "text"]
    assert "--detailed-exitcode" in result.args
    assert result.returncode == 2, result.stderr
    assert result.stdout.startswith(f"job {json.loads(demo[job, 'json'].stdout)['job']} ")


def test_detailed_exitcode_is_1_on_any_error(demo: Demo, tmp_path: Path) -> None:
    missing = tmp_path / "missing_source.yaml"
    missing.write_text(
        "version: 1\nsource: sqlite:///demo/no_such.db\ntarget: sqlite:///demo/out.db\n"
        "tables: [patients]\n"
    )
    # a spec error is 1 as well under --detailed-exitcode: 2 would read "changes pending"
    bad = tmp_path / "bad.yaml"
    bad.write_text("version: 1\nsource: sqlite:///demo/clinic.db\ntarget: x\ntables: []\n")
    with ThreadPoolExecutor(2) as pool:
        runs = list(
            pool.map(
                lambda spec: etlrun(
                    "plan", spec, "--detailed-exitcode", cwd=demo.root, state=demo.state
                ),
                (missing, bad),
            )
        )
    missing_run, bad_run = runs
    assert missing_run.returncode == 1, missing_run.stderr
    assert "no_such.db" in missing_run.stderr
    assert "Traceback" not in missing_run.stderr
    assert bad_run.returncode == 1, bad_run.stderr
    assert "bad.yaml:4:9:" in bad_run.stderr
    assert not (demo.root / "demo" / "no_such.db").exists()
    assert not (demo.root / "demo" / "out.db").exists()
