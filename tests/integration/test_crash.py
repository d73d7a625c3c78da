"""Crash reports: an unexpected exception (a bug, not a database error) writes
``.etlrun/crash/<run-or-timestamp>.json`` with the version, spec hash, task and a scrubbed
traceback, and the one-line error says where it is."""

from __future__ import annotations

import json
import re
import sqlite3
from contextlib import closing
from pathlib import Path

import pytest

from runner import __version__, cli, secrets
from runner.modes import copy as copy_mode

PASSWORD = "pa55-w0rd-in-a-bug"


def make_job(folder: Path) -> Path:
    with closing(sqlite3.connect(folder / "source.db")) as conn:
        conn.execute("CREATE TABLE items (id INTEGER PRIMARY KEY, v TEXT NOT NULL)")
        conn.executemany("INSERT INTO items VALUES (?, ?)", [(i, f"v{i}") for i in range(1, 21)])
        conn.commit()
    spec = folder / "job.yaml"
    spec.write_text(
        "job: crashy\nsource: sqlite:///source.db\ntarget: sqlite:///target.db\nworkers: 1\n"
        "defaults: {chunk_rows: 10}\ntables: [items]\n"
    )
    return spec


def only_report(folder: Path) -> dict[str, object]:
    (report,) = (folder / ".etlrun" / "crash").glob("*.json")
    assert oct(report.stat().st_mode & 0o777) == "0o600"
    data: dict[str, object] = json.loads(report.read_text())
    return data


def test_a_bug_in_a_task_writes_a_report_naming_the_task(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    spec = make_job(tmp_path)
    monkeypatch.chdir(tmp_path)
    secrets.register(PASSWORD)

    def buggy(task, ctx):  # type: ignore[no-untyped-def]
        raise ZeroDivisionError(f"division by zero near {PASSWORD}")

    monkeypatch.setattr(copy_mode, "_chunk", buggy)
    assert cli.main(["run", str(spec)]) == 1
    err = capsys.readouterr().err
    match = re.search(r"crash report: (\S+\.json)", err)
    assert match, err
    report = only_report(tmp_path)
    assert Path(match.group(1)).resolve() == next((tmp_path / ".etlrun/crash").glob("*")).resolve()
    assert report["etlrun_version"] == __version__
    assert report["task"] == "items:chunk:0001"
    assert report["job"] == "crashy" and len(str(report["spec_hash"])) == 16
    assert str(report["run_id"]) in match.group(1)
    assert "ZeroDivisionError" in "".join(report["traceback"])  # type: ignore[arg-type]
    assert PASSWORD not in json.dumps(report) and PASSWORD not in err


def test_a_bug_outside_a_task_writes_a_report_too(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    spec = make_job(tmp_path)
    monkeypatch.chdir(tmp_path)

    def buggy(*_args: object, **_kwargs: object) -> None:
        raise KeyError("no such thing")

    monkeypatch.setattr("runner.plan.compiler.compile", buggy)
    assert cli.main(["plan", str(spec)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: unexpected KeyError: 'no such thing' (crash report: ")
    report = only_report(tmp_path)
    assert report["command"] == "plan"
    assert report["exception"] == "KeyError: 'no such thing'"


def test_errors_the_user_can_fix_write_no_report(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.chdir(tmp_path)
    assert cli.main(["plan", "missing.yaml"]) == 2
    assert not (tmp_path / ".etlrun" / "crash").exists()
