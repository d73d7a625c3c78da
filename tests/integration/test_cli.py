"""The ``etlrun`` command end to end (DESIGN §4, README "Commands"): verbs, options, exit codes.

Jobs run on a copy of the demo database in a temporary folder laid out like the repository
(``jobs/`` + ``demo/clinic.db``), SQLite -> SQLite or SQLite -> DuckDB, so no server is needed.
"""

from __future__ import annotations

import datetime as dt
import importlib
import json
import re
import shutil
import sqlite3
import subprocess
import sys
from collections.abc import Callable
from contextlib import closing
from decimal import Decimal
from pathlib import Path

import pytest

from runner.cli import NOT_YET  # the verbs of DESIGN §4 whose issues have not landed yet
from runner.state.store import StateStore

REPO = Path(__file__).resolve().parents[2]
NO_JOB_VARIABLES = dict.fromkeys(
    (
        "CLINIC_URL",
        "ANALYTICS_URL",
        "DASHBOARD_URL",
        "POSTGRES_URL",
        "MARIADB_URL",
        "DEIDENTIFIED_URL",
    )
)
POSITION = re.compile(r"^(?P<file>[^\s:]+\.yaml):(?P<line>\d+):(?P<col>\d+): (?P<rest>.*)$")

Cli = Callable[..., subprocess.CompletedProcess[str]]


@pytest.fixture(scope="module")
def clinic_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The demo database at full scale, made once for the module."""
    path = tmp_path_factory.mktemp("clinic") / "clinic.db"
    subprocess.run(
        [sys.executable, str(REPO / "demo" / "make_clinic.py"), str(path)],
        check=True,
        capture_output=True,
        timeout=120,
    )
    return path


@pytest.fixture
def demo(tmp_path: Path, clinic_db: Path) -> Path:
    """A fresh folder like the repository: jobs/ and demo/clinic.db."""
    root = tmp_path / "repo"
    shutil.copytree(REPO / "jobs", root / "jobs")
    (root / "demo").mkdir()
    shutil.copy(clinic_db, root / "demo" / "clinic.db")
    return root


@pytest.fixture
def cli(run_cli: Cli, demo: Path) -> Cli:
    """``etlrun ARGS`` in the demo folder, without the job variables of the developer's shell."""

    def call(*args: str | Path, **kwargs: object) -> subprocess.CompletedProcess[str]:
        kwargs.setdefault("cwd", demo)
        kwargs["env"] = {**NO_JOB_VARIABLES, **(kwargs.get("env") or {})}  # type: ignore[dict-item]
        return run_cli(*args, **kwargs)

    return call


def ok(result: subprocess.CompletedProcess[str]) -> subprocess.CompletedProcess[str]:
    assert result.returncode == 0, f"exit {result.returncode}\n{result.stdout}\n{result.stderr}"
    return result


@pytest.fixture
def main(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, demo: Path) -> Cli:
    """``runner.cli.main(ARGS)`` in this process, in the demo folder: for the commands that only
    parse, print or read the state store, where a Python start-up per call would be most of the
    time. Logging is left as pytest has it (main would point loguru at the captured stderr)."""
    import runner.cli

    # `runner.execute` is the execute() stage, so the module is taken from importlib
    progress = importlib.import_module("runner.execute.progress")
    monkeypatch.setattr(progress, "configure_logging", lambda *a, **k: None)
    monkeypatch.chdir(demo)
    for name in NO_JOB_VARIABLES:
        monkeypatch.delenv(name, raising=False)

    def call(*args: str | Path) -> subprocess.CompletedProcess[str]:
        capsys.readouterr()
        code = runner.cli.main([str(a) for a in args])
        out, err = capsys.readouterr()
        return subprocess.CompletedProcess(list(args), code, out, err)

    return call


def state(url: str | None = None) -> StateStore:
    """The state store the CLI used (``ETLRUN_STATE``, set per test by conftest)."""
    return StateStore(url)


def last_run(url: str | None = None) -> dict:
    store = state(url)
    try:
        (latest, *_) = store.history()
        run = store.run(latest["run_id"])
        assert run is not None
        return run
    finally:
        store.close()


def runs(url: str | None = None) -> list[dict]:
    store = state(url)
    try:
        return store.history()
    finally:
        store.close()


def sqlite_rows(path: Path, sql: str) -> list[tuple]:
    with closing(sqlite3.connect(path)) as conn:
        return conn.execute(sql).fetchall()


def sqlite_tables(path: Path) -> set[str]:
    return {r[0] for r in sqlite_rows(path, "SELECT name FROM sqlite_master WHERE type='table'")}


def duckdb_tables(path: Path) -> set[str]:
    import duckdb

    with closing(duckdb.connect(str(path), read_only=True)) as db:
        return {
            r[0] for r in db.execute("SELECT table_name FROM information_schema.tables").fetchall()
        }


# --- validate and usage -----------------------------------------------------------------------


def test_validate_jobs_folder(run_cli: Cli) -> None:
    # jobs/clinic_deidentified.yaml reads its HMAC key from the environment only
    key = {"SANITIZE_KEY": "test-only-sanitize-key-0123456789"}
    result = ok(run_cli("validate", "jobs/", cwd=REPO, env={**NO_JOB_VARIABLES, **key}))
    assert "specs valid" in result.stdout


BAD_SPEC = """\
version: 1
source: sqlite:///demo/clinic.db
target: sqlite:///demo/out.db
workers: many
tables:
  - name: patients
    chunk_rowz: 10
  - name: visits
    if_exists: sometimes
"""


def test_bad_spec_errors_at_file_line_col_as_text_and_json(main: Cli, demo: Path) -> None:
    spec = demo / "jobs" / "bad.yaml"
    spec.write_text(BAD_SPEC)
    text = main("validate", spec)
    as_json = main("validate", spec, "--format", "json")
    assert text.returncode == as_json.returncode == 2
    headlines = [m for line in text.stdout.splitlines() if (m := POSITION.match(line))]
    assert len(headlines) == 3, text.stdout
    assert all(m["file"] == str(spec) for m in headlines)
    found = {(int(m["line"]), int(m["col"])) for m in headlines}
    assert {line for line, _ in found} == {4, 7, 9}
    assert "did you mean 'chunk_rows'" in text.stdout
    assert "3 errors" in text.stdout

    report = json.loads(as_json.stdout)
    assert report["valid"] is False
    assert [Path(f) for f in report["files"]] == [spec]
    errors = report["errors"]
    assert {(e["line"], e["col"]) for e in errors} == found
    assert {f"{e['path']}: {e['message']}" for e in errors} == {m["rest"] for m in headlines}

    # running or planning it is refused the same way, on stderr, before anything opens
    for verb in ("run", "plan"):
        refused = main(verb, spec)
        assert refused.returncode == 2
        shown = [m["rest"] for m in map(POSITION.match, refused.stderr.splitlines()) if m]
        assert sorted(shown) == sorted(m["rest"] for m in headlines)
    assert not (demo / "demo" / "out.db").exists()


def test_missing_spec_file_is_a_usage_error(main: Cli, demo: Path) -> None:
    before = sorted(demo.rglob("*"))
    for args in (("run", "nope.yaml"), ("nope.yaml",), ("plan", "nope.yaml")):
        result = main(*args)
        assert result.returncode == 2, args
        assert "nope.yaml" in result.stderr
        assert "Traceback" not in result.stderr
    assert sorted(demo.rglob("*")) == before


def test_not_yet_verbs_exit_2(main: Cli, run_cli: Cli, tmp_path: Path) -> None:
    assert set(NOT_YET) <= {"check", "restore", "schedule", "apply", "files", "state", "secrets"}
    for verb in NOT_YET:
        result = main(verb)
        assert result.returncode == 2, verb
        assert "not available yet" in result.stderr, verb
    # and through the real entry point, once
    for verb in sorted(NOT_YET)[:1]:
        result = run_cli(verb, "whatever", cwd=tmp_path)
        assert result.returncode == 2
        assert f"'etlrun {verb}' is not available yet" in result.stderr
        assert "Traceback" not in result.stderr
    # the verbs that landed answer for themselves
    for verb in {"files"} - set(NOT_YET):
        result = run_cli(verb, "--help", cwd=tmp_path)
        assert result.returncode == 0 and "not available yet" not in result.stdout, verb


def test_usage_errors_exit_2(main: Cli) -> None:
    assert main("run", "jobs/recent_visits.yaml", "--workers", "0").returncode == 2
    assert main("run", "jobs/recent_visits.yaml", "--executor", "no-such-executor").returncode == 2
    assert main("--no-such-option").returncode == 2
    assert main().returncode == 2
    assert main("show", "no-such-run").returncode == 2


# --- run -------------------------------------------------------------------------------------


def test_job_path_alone_is_run(cli: Cli, demo: Path, tmp_path: Path) -> None:
    # `etlrun JOB.yaml` and `etlrun run JOB.yaml`: same job, same result; the global options
    # work before the job path too (here: its own state store, and JSON log lines)
    other = tmp_path / "other"
    shutil.copytree(demo, other)
    elsewhere = f"sqlite:///{tmp_path / 'elsewhere' / 'state.db'}"
    short = ok(cli("--state", elsewhere, "--log-format", "json", "jobs/recent_visits.yaml"))
    long = ok(cli("run", "jobs/recent_visits.yaml", cwd=other))
    for result in (short, long):
        assert "recent-visits: succeeded" in result.stdout
    dumps = [
        sqlite_rows(root / "demo" / "dashboard.db", "SELECT * FROM visits_recent ORDER BY id")
        for root in (demo, other)
    ]
    assert dumps[0] == dumps[1] and len(dumps[0]) > 1000
    (first,), (second,) = runs(elsewhere), runs()
    assert first["status"] == second["status"] == "succeeded"
    assert first["rows"] == second["rows"]
    assert first["tables"] == second["tables"] == ["patients", "visits_recent"]

    # --log-format json: every line on stderr is a JSON log record
    lines = [line for line in short.stderr.splitlines() if line.strip()]
    assert lines, "no log lines"
    records = [json.loads(line) for line in lines]
    messages = [r["record"]["message"] for r in records]
    assert any("chunk 1/" in m for m in messages)
    assert any(m.endswith("committed") for m in messages)
    assert {r["record"]["level"]["name"] for r in records} <= {"DEBUG", "INFO", "WARNING"}
    assert long.stderr.startswith("INFO ")  # text logs by default


def _spans(run: dict) -> list[tuple[dt.datetime, dt.datetime]]:
    return sorted((t["started_at"], t["finished_at"]) for t in run["tasks"])


def test_tables_and_workers(cli: Cli, demo: Path) -> None:
    # --tables by target name (visits -> visits_recent)
    ok(cli("run", "jobs/recent_visits.yaml", "--tables", "visits_recent"))
    assert sqlite_tables(demo / "demo" / "dashboard.db") == {"visits_recent"}
    run = last_run()
    assert run["tables"] == ["visits_recent"]
    assert {t["table_name"] for t in run["tasks"]} == {"visits_recent"}
    # by glob over source names, comma-separated and repeated; --workers 1 overrides the spec's 4
    ok(
        cli(
            "run", "jobs/nightly.yaml", "--tables", "pat*,nothing*", "--tables", "lab_results",
            "--workers", "1",
        )
    )  # fmt: skip
    assert duckdb_tables(demo / "demo" / "analytics.duckdb") == {"patients", "lab_results"}
    run = last_run()
    assert run["tables"] == ["patients", "lab_results"]
    spans = _spans(run)
    assert len(spans) == (1 + 2 + 1) + (1 + 10 + 1)
    for (_, end), (start, _) in zip(spans, spans[1:], strict=False):
        assert end <= start, "two tasks overlapped with --workers 1"
    # a selection matching nothing is a usage error
    nothing = cli("run", "jobs/nightly.yaml", "--tables", "nope")
    assert nothing.returncode == 2
    assert "matches no table" in nothing.stderr


FAILING_SPEC = """\
version: 1
job: fails-then-fresh
source: sqlite:///demo/clinic.db
target: sqlite:///demo/out.db
defaults:
  chunk_rows: 10000
tables:
  - visits
  - name: patients
    if_exists: fail
"""


def test_unfinished_run_resumes_and_fresh_starts_over(cli: Cli, demo: Path) -> None:
    spec = demo / "jobs" / "fails.yaml"
    spec.write_text(FAILING_SPEC)
    out = demo / "demo" / "out.db"
    with closing(sqlite3.connect(out)) as conn:
        conn.execute("CREATE TABLE patients (id INTEGER PRIMARY KEY)")
        conn.commit()

    first = cli("run", spec)
    assert first.returncode == 1, first.stderr
    assert "if_exists: fail" in first.stderr
    (failed,) = runs()
    assert failed["status"] == "failed" and failed["exit_code"] == 1

    fresh = cli("run", spec, "--fresh")
    assert fresh.returncode == 1
    assert "resuming" not in fresh.stderr
    latest, earlier = runs()
    assert earlier["run_id"] == failed["run_id"] and earlier["attempts"] == 1
    assert latest["run_id"] != failed["run_id"] and latest["attempts"] == 1

    # once the cause is gone, the latest run resumes and finishes, keeping its visits chunks
    committed = {
        t["task_id"]
        for t in state().run(latest["run_id"])["tasks"]
        if t["kind"] == "chunk" and t["status"] == "done"
    }
    with closing(sqlite3.connect(out)) as conn:
        conn.execute("DROP TABLE patients")
        conn.commit()
    done = ok(cli("run", spec))
    assert f"resuming run {latest['run_id']}" in done.stderr
    run = state().run(latest["run_id"])
    assert run["status"] == "succeeded" and run["attempts"] == 2
    assert run["rows"] == 10_000 + 40_000
    for task in run["tasks"]:
        assert task["run_attempt"] == (1 if task["task_id"] in committed else 2), task
    assert len(runs()) == 2
    assert sqlite_rows(out, "SELECT count(*), count(DISTINCT id) FROM visits") == [(40_000,) * 2]


def test_history_and_show(cli: Cli, main: Cli) -> None:
    result = ok(cli("run", "jobs/recent_visits.yaml"))
    history = json.loads(ok(main("history", "--format", "json")).stdout)
    (run,) = history
    run_id = run["run_id"]
    assert run_id in result.stdout
    assert run["job"] == "recent-visits"
    assert run["status"] == "succeeded" and run["exit_code"] == 0 and run["error"] is None
    assert run["tables"] == ["patients", "visits_recent"]
    assert run["rows"] > 10_000

    assert json.loads(main("history", "recent-visits", "--format", "json").stdout) == history
    assert json.loads(main("history", "no-such-job", "--format", "json").stdout) == []

    text = ok(main("history")).stdout
    assert run_id in text and "recent-visits" in text and "succeeded" in text
    assert f"{run['rows']:,}" in text

    detail = json.loads(ok(main("show", run_id[:12], "--format", "json")).stdout)  # a prefix
    assert detail["run_id"] == run_id
    chunks = [t for t in detail["tasks"] if t["kind"] == "chunk"]
    assert sum(t["rows"] for t in chunks) == run["rows"]
    assert {t["status"] for t in detail["tasks"]} == {"done"}
    assert all(t["run_attempt"] == 1 and t["attempts"] == 1 for t in detail["tasks"])
    kinds = {t["task_id"]: t["kind"] for t in detail["tasks"]}
    assert kinds["patients:prepare"] == "prepare" and kinds["visits_recent:finalize"] == "finalize"

    shown = ok(main("show", run_id)).stdout
    assert run_id in shown and "succeeded" in shown
    for task in detail["tasks"]:
        assert task["task_id"] in shown
    assert f"{chunks[0]['rows']:,}" in shown


def test_unreachable_postgres_source_fails_in_one_line(cli: Cli, tmp_path: Path) -> None:
    spec = tmp_path / "unreachable.yaml"
    spec.write_text(
        "version: 1\nsource: postgresql://etl@127.0.0.1:1/nothing\n"
        "target: sqlite:///out.db\ntables: [patients]\n"
    )
    plain = cli("run", spec, cwd=tmp_path)
    assert plain.returncode == 1
    lines = [line for line in plain.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, plain.stderr
    assert lines[0].startswith("error: ") and "127.0.0.1" in lines[0]
    assert "Traceback" not in plain.stderr

    debug = cli("run", spec, "--debug", cwd=tmp_path)
    assert debug.returncode == 1
    assert "Traceback (most recent call last)" in debug.stderr
    assert debug.stderr.rstrip().splitlines()[-1] == lines[0]
    assert not (tmp_path / "out.db").exists()


# --- the demo ---------------------------------------------------------------------------------

# per table: aggregates that both SQLite and DuckDB compute, normalised in Python
AGGREGATES = {
    "patients": "count(*), sum(id), count(email), count(DISTINCT zip), min(birth_date), "
    "max(created_at), sum(length(last_name))",
    "visits": "count(*), sum(id), sum(patient_id), sum(cost), count(notes), min(visit_date), "
    "max(updated_at), count(DISTINCT department)",
    "lab_results": "count(*), sum(id), sum(visit_id), sum(value), "
    "sum(CASE WHEN abnormal THEN 1 ELSE 0 END), max(taken_at), count(unit)",
}
ROWS = {"patients": 10_000, "visits": 40_000, "lab_results": 50_000}


def _normal(value: object) -> object:
    if isinstance(value, str) and len(value) >= 19 and value[10] == " ":
        value = dt.datetime.fromisoformat(value)  # SQLite keeps timestamps as text
    if isinstance(value, float | Decimal):
        return round(float(value), 2)
    if isinstance(value, dt.datetime):
        return value.isoformat(sep=" ")
    if isinstance(value, dt.date):
        return value.isoformat()
    return value


def test_demo_job_end_to_end(cli: Cli, demo: Path) -> None:
    import duckdb

    result = ok(cli("jobs/nightly.yaml"))
    summary = result.stdout
    assert "nightly: succeeded" in summary
    for table, rows in ROWS.items():
        assert re.search(rf"│ {table}\s+│\s+{rows:,} │", summary), summary
    assert re.search(r"│ total\s+│\s+100,000 │", summary)

    target = demo / "demo" / "analytics.duckdb"
    assert duckdb_tables(target) == set(ROWS), "staging or old tables were left behind"
    with closing(duckdb.connect(str(target), read_only=True)) as db:
        for table, aggregates in AGGREGATES.items():
            sql = f"SELECT {aggregates} FROM {table}"
            theirs = [_normal(v) for v in db.execute(sql).fetchone()]
            ours = [_normal(v) for v in sqlite_rows(demo / "demo" / "clinic.db", sql)[0]]
            assert theirs == ours, table
            assert theirs[0] == ROWS[table]
            distinct = db.execute(f"SELECT count(DISTINCT id) FROM {table}").fetchone()[0]
            assert distinct == ROWS[table], "a key arrived twice"
    run = last_run()
    assert run["rows"] == sum(ROWS.values())
    # workers: 4 in the spec: tasks ran side by side
    spans = _spans(run)
    assert any(start < end for (_, end), (start, _) in zip(spans, spans[1:], strict=False))
