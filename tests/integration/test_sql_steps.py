"""``before:`` / ``after:`` SQL steps run in DAG order: job before -> table before -> the table's
prepare ... finalize -> table after -> job after, observed through a log table in the target."""

from __future__ import annotations

import json
import sqlite3
from contextlib import closing
from pathlib import Path

from conftest import run_cli

SPEC = """\
source: sqlite:///source.db
target: sqlite:///target.db
workers: 4
defaults: {chunk_rows: 5}
before:
  - CREATE TABLE IF NOT EXISTS etl_log (seq INTEGER PRIMARY KEY AUTOINCREMENT, what TEXT, n INT)
  - INSERT INTO etl_log (what, n) VALUES ('job before', 0)
tables:
  - name: a
    before:
      # 0 tables named a*: this runs before a's prepare creates its staging table
      - >-
        INSERT INTO etl_log (what, n)
        SELECT 'a before', count(*) FROM sqlite_master WHERE name LIKE 'a%'
      - {sql: "INSERT INTO src_log VALUES ('read by etlrun')", on: source}
    after:
      - INSERT INTO etl_log (what, n) SELECT 'a after', count(*) FROM a
  - name: b
    after: [steps/b_after.sql]
after:
  - >-
    INSERT INTO etl_log (what, n)
    SELECT 'job after', (SELECT count(*) FROM a) + (SELECT count(*) FROM b)
"""


def make_job(folder: Path) -> Path:
    with closing(sqlite3.connect(folder / "source.db")) as conn:
        for table, rows in (("a", 12), ("b", 7)):
            conn.execute(f"CREATE TABLE {table} (id INTEGER PRIMARY KEY, v TEXT)")
            conn.executemany(f"INSERT INTO {table} VALUES (?, ?)", [(i, "x") for i in range(rows)])
        conn.execute("CREATE TABLE src_log (what TEXT)")
        conn.commit()
    (folder / "steps").mkdir()
    (folder / "steps" / "b_after.sql").write_text(
        "-- two statements, one transaction\n"
        "INSERT INTO etl_log (what, n) SELECT 'b after', count(*) FROM b;\n"
        "UPDATE etl_log SET what = what || ' (file)' WHERE what = 'b after';\n"
    )
    spec = folder / "steps.yaml"
    spec.write_text(SPEC)
    return spec


def log(folder: Path) -> list[tuple[str, int]]:
    with closing(sqlite3.connect(folder / "target.db")) as conn:
        return conn.execute("SELECT what, n FROM etl_log ORDER BY seq").fetchall()


def test_steps_run_in_dag_order(tmp_path: Path) -> None:
    spec = make_job(tmp_path)
    done = run_cli("run", spec, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    entries = log(tmp_path)
    names = [what for what, _ in entries]
    assert names[0] == "job before" and names[-1] == "job after"
    assert sorted(names[1:-1]) == ["a after", "a before", "b after (file)"]
    assert names.index("a before") < names.index("a after")
    counts = dict(entries)
    assert counts["a before"] == 0  # before a's prepare
    assert counts["a after"] == 12  # after a's swap
    assert counts["b after (file)"] == 7
    assert counts["job after"] == 19  # after every table
    with closing(sqlite3.connect(tmp_path / "source.db")) as conn:
        assert conn.execute("SELECT what FROM src_log").fetchall() == [("read by etlrun",)]


def test_steps_are_tasks_of_the_plan(tmp_path: Path) -> None:
    spec = make_job(tmp_path)
    plan = json.loads(run_cli("plan", spec, "--format", "json", cwd=tmp_path).stdout)
    tasks = {t["id"]: t for t in plan["tasks"]}
    assert tasks["job:before:2"]["deps"] == ["job:before:1"]
    assert tasks["a:before:1"]["deps"] == ["job:before:2"]
    assert tasks["a:prepare"]["deps"] == ["a:before:2"]
    assert tasks["b:prepare"]["deps"] == ["job:before:2"]
    assert tasks["a:after:1"]["deps"] == ["a:finalize"]
    assert tasks["b:after:1"]["deps"] == ["b:finalize"]
    assert sorted(tasks["job:after:1"]["deps"]) == ["a:after:1", "b:after:1"]
    assert tasks["a:before:2"]["params"]["run_on"] == "source"
    assert len(tasks["b:after:1"]["params"]["statements"]) == 2

    text = run_cli("plan", spec, cwd=tmp_path).stdout
    assert "a:before:1  (after job:before:2)" in text
    assert "-- a:before:2 on source" in text
    markdown = run_cli("plan", spec, "--format", "markdown", cwd=tmp_path).stdout
    assert "-- job:after:1 on target" in markdown


def test_a_changed_sql_file_changes_the_spec_hash(tmp_path: Path) -> None:
    spec = make_job(tmp_path)
    assert run_cli("plan", spec, "--out", "plan.json", cwd=tmp_path).returncode == 0
    with (tmp_path / "steps" / "b_after.sql").open("a") as file:
        file.write("DELETE FROM etl_log WHERE n = 0;\n")
    applied = run_cli("apply", "plan.json", cwd=tmp_path)
    assert applied.returncode == 2 and "steps.yaml changed" in applied.stderr


def test_step_errors_are_spec_errors(tmp_path: Path) -> None:
    spec = make_job(tmp_path)
    spec.write_text(
        SPEC.replace(
            "  - INSERT INTO etl_log (what, n) VALUES ('job before', 0)\n",
            "  - INSERT INTO etl_log VALUES (1, 'x', 0); DELETE FROM etl_log\n",
        ).replace("[steps/b_after.sql]", "[steps/missing.sql]")
    )
    done = run_cli("validate", spec, cwd=tmp_path)
    assert done.returncode == 2
    assert "steps.yaml:7:5: before[1]: one statement per entry, not 2" in done.stdout
    assert "tables[1].after[0]: cannot read the SQL file" in done.stdout


def test_on_is_the_key_and_run_on_an_alias(tmp_path: Path) -> None:
    """etlrun reads YAML 1.2: a bare ``on:`` in a step is the text 'on', not true."""
    spec = make_job(tmp_path)
    block = (
        '    before:\n      - {sql: "SELECT 1", on: source}\n'
        '      - {sql: "SELECT 2", run_on: source}\n'
    )
    text = SPEC.replace("  - name: b\n", "  - name: b\n" + block)
    spec.write_text(text)
    plan = json.loads(run_cli("plan", spec, "--format", "json", cwd=tmp_path).stdout)
    tasks = {t["id"]: t for t in plan["tasks"]}
    assert tasks["b:before:1"]["params"]["run_on"] == "source"
    assert tasks["b:before:2"]["params"]["run_on"] == "source"

    spec.write_text(
        text.replace(
            'on: source}\n      - {sql: "SELECT 2"', 'on: sauce}\n      - {sql: "SELECT 2"'
        )
    )
    done = run_cli("validate", spec, cwd=tmp_path)
    assert done.returncode == 2
    assert "tables[1].before[0].on: 'sauce' is not one of: source, target" in done.stdout

    spec.write_text(text.replace("run_on: source}", "run_on: source, on: target}"))
    done = run_cli("validate", spec, cwd=tmp_path)
    assert done.returncode == 2 and "'on' and 'run_on' are the same key" in done.stdout

    # elsewhere a bare `on` is still the YAML 1.1 trap it is
    spec.write_text(text.replace("workers: 4\n", "workers: 4\non: true\n"))
    done = run_cli("validate", spec, cwd=tmp_path)
    assert done.returncode == 2 and "ambiguous YAML value 'on'" in done.stdout
