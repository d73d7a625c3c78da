"""``${secret:NAME}`` (the encrypted secrets file) and ``${file:/path}``: their values reach the
connectors and nowhere else: not output, logs, plans, saved plans, state or crash reports."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from contextlib import closing
from pathlib import Path

import pytest
from conftest import REPO, run_cli

from runner import cli

SECRET_PATH = "very-secret-source-name.db"  # the source file's name, kept in the secrets file
FILE_VALUE = "hunter2-from-a-file"  # the HMAC key of the keyed rules, read from a file


def cli_with_stdin(stdin: str, *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run(
        [sys.executable, "-m", "runner", *args],
        input=stdin,
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )


@pytest.fixture
def master_key(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    key = run_cli("secrets", "keygen").stdout.strip()
    assert len(key) == 44
    monkeypatch.setenv("ETLRUN_MASTER_KEY", key)
    monkeypatch.setenv("ETLRUN_SECRETS_FILE", str(tmp_path / "secrets.json"))
    monkeypatch.setenv("ETLRUN_CRASH_DIR", str(tmp_path / "crash"))
    return key


def test_set_reads_stdin_and_list_shows_names_only(tmp_path: Path, master_key: str) -> None:
    done = cli_with_stdin("s3cr3t-value-one\n", "secrets", "set", "ONE", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "stored secret ONE" in done.stdout
    again = cli_with_stdin("s3cr3t-value-two\n", "secrets", "set", "ONE", cwd=tmp_path)
    assert "replaced secret ONE" in again.stdout
    cli_with_stdin("other-value", "secrets", "set", "TWO", cwd=tmp_path)

    listed = run_cli("secrets", "list", cwd=tmp_path)
    assert listed.stdout.split() == ["ONE", "TWO"]
    stored = (tmp_path / "secrets.json").read_text()
    assert "s3cr3t" not in stored and "other-value" not in stored
    assert oct((tmp_path / "secrets.json").stat().st_mode & 0o777) == "0o600"
    # a value is never taken from argv
    assert run_cli("secrets", "set", "THREE", "value-in-argv", cwd=tmp_path).returncode == 2


def test_a_wrong_or_missing_key_is_a_spec_error(tmp_path: Path, master_key: str) -> None:
    cli_with_stdin("value-one", "secrets", "set", "ONE", cwd=tmp_path)
    spec = tmp_path / "job.yaml"
    spec.write_text("source: sqlite:///${secret:ONE}\ntarget: sqlite:///t.db\ntables: [t]\n")
    other = run_cli("secrets", "keygen").stdout.strip()
    wrong = run_cli("validate", spec, env={"ETLRUN_MASTER_KEY": other})
    assert wrong.returncode == 2
    assert "secret 'ONE' does not decrypt with ETLRUN_MASTER_KEY" in wrong.stdout
    missing = run_cli("validate", spec, env={"ETLRUN_MASTER_KEY": None})
    assert "ETLRUN_MASTER_KEY is not set" in missing.stdout
    unknown = tmp_path / "unknown.yaml"
    unknown.write_text("source: sqlite:///${secret:NOPE}\ntarget: sqlite:///t.db\ntables: [t]\n")
    assert "no secret 'NOPE'" in run_cli("validate", unknown).stdout


def make_job(tmp_path: Path) -> Path:
    with closing(sqlite3.connect(tmp_path / SECRET_PATH)) as conn:
        conn.execute("CREATE TABLE items (id INTEGER PRIMARY KEY, v TEXT NOT NULL)")
        conn.executemany("INSERT INTO items VALUES (?, ?)", [(i, f"v{i}") for i in range(20)])
        conn.commit()
    (tmp_path / "key.txt").write_text(FILE_VALUE + "\n")
    spec = tmp_path / "job.yaml"
    spec.write_text(
        "source: sqlite:///${secret:SOURCE_DB}\n"
        "target: sqlite:///target.db\n"
        f"sanitize: {{key: '${{file:{tmp_path / 'key.txt'}}}'}}\n"
        "defaults: {chunk_rows: 5}\n"
        "tables:\n"
        "  - name: items\n"
        "    sanitize: {v: hash}\n"
    )
    return spec


def test_secret_values_appear_nowhere(
    tmp_path: Path, master_key: str, clean_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert cli_with_stdin(SECRET_PATH, "secrets", "set", "SOURCE_DB", cwd=tmp_path).returncode == 0
    spec = make_job(tmp_path)
    outputs = []
    for args in (
        ("validate", spec),
        ("plan", spec),
        ("plan", spec, "--format", "json"),
        ("plan", spec, "--format", "markdown", "--out", "plan.json"),
        ("run", spec, "--debug", "--log-format", "json"),
        ("history", "--format", "json"),
    ):
        done = run_cli(*args, cwd=tmp_path)
        assert done.returncode == 0, done.stdout + done.stderr
        outputs.append(done.stdout + done.stderr)
    run_id = json.loads(outputs[-1])[0]["run_id"]
    outputs.append(run_cli("show", run_id, "--format", "json", cwd=tmp_path).stdout)
    outputs.append((tmp_path / "plan.json").read_text())
    with closing(sqlite3.connect(clean_env / "state.db")) as conn:
        outputs += [repr(row) for t in ("etlrun_runs", "etlrun_tasks") for row in conn.execute(
            f"SELECT * FROM {t}"
        )]  # fmt: skip
    with closing(sqlite3.connect(tmp_path / "target.db")) as conn:
        assert conn.execute("SELECT count(*) FROM items").fetchone() == (20,)

    # a crash report of an exception that quotes the secrets
    monkeypatch.chdir(tmp_path)
    boom = f"boom {SECRET_PATH} {FILE_VALUE}"

    def crash(*_args: object, **_kwargs: object) -> None:
        raise RuntimeError(boom)

    monkeypatch.setattr("runner.plan.compiler.compile", crash)
    assert cli.main(["plan", str(spec)]) == 1
    (report,) = (tmp_path / "crash").glob("*.json")
    outputs.append(report.read_text())
    assert "boom" in outputs[-1]

    text = "\n".join(outputs)
    for value in (SECRET_PATH, FILE_VALUE, master_key):
        assert value not in text
    assert "***" in text


def test_a_plan_with_a_secret_in_its_sql_is_not_saved(tmp_path: Path, master_key: str) -> None:
    spec = make_job(tmp_path)
    (tmp_path / "where.txt").write_text(FILE_VALUE)
    cli_with_stdin(SECRET_PATH, "secrets", "set", "SOURCE_DB", cwd=tmp_path)
    text = spec.read_text().replace(
        "    sanitize: {v: hash}\n", f"    where: \"v <> '${{file:{tmp_path / 'where.txt'}}}'\"\n"
    )
    spec.write_text(text)
    done = run_cli("plan", spec, "--out", "plan.json", cwd=tmp_path)
    assert done.returncode == 2
    assert "holds a secret value" in done.stderr and FILE_VALUE not in done.stderr
    assert not (tmp_path / "plan.json").exists()
