"""Sanitize is part of the data path, not of a mode: incremental, bulk and sync write sanitized
values only, run after run, SQLite -> SQLite through the CLI (no server). (copy: test_sanitize*.py;
backup: test_backup.py.)

Each run is searched for the raw values of the sanitized columns: the target file, stdout and
stderr of a --debug run, and everything under .etlrun/ (state store, rejects, crash files).
"""

from __future__ import annotations

import sqlite3
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest
from conftest import run_cli

KEY = "modes-test-key-0123456789abcdef"
T0, T1 = "2024-01-01 12:00:00", "2024-02-01 12:00:00"
RULES = """\
sanitize:
  key: ${SANITIZE_KEY}
tables:
  - name: people
    sanitize:
      ssn: hash
      email: {email: {keep_domain: false}}
      full_name: {fake: name}
      phone: {mask: {keep_last: 2}}
"""


def person(i: int, stamp: str, version: str = "") -> tuple[Any, ...]:
    return (
        i,
        f"8{i:02d}-55-{7000 + i}",
        f"quilla.v{i:03d}{version}@raw-people.example",
        f"Quilla Vandermeer-{i:03d}{version}",
        f"+1-555-{3300 + i}{version}",
        i % 5,
        stamp,
    )


def make_source(path: Path, rows: list[tuple[Any, ...]]) -> None:
    with closing(sqlite3.connect(path)) as conn:
        conn.execute(
            "CREATE TABLE IF NOT EXISTS people (id INTEGER PRIMARY KEY, ssn VARCHAR(11), "
            "email TEXT, full_name TEXT, phone TEXT, grade INTEGER, updated_at TIMESTAMP)"
        )
        conn.executemany("INSERT OR REPLACE INTO people VALUES (?,?,?,?,?,?,?)", rows)
        conn.commit()


def raw_values(rows: list[tuple[Any, ...]]) -> set[str]:
    return {str(v) for r in rows for v in r[1:5]}


def target_rows(path: Path) -> dict[int, tuple[Any, ...]]:
    with closing(sqlite3.connect(path)) as conn:
        found = conn.execute(
            "SELECT id, ssn, email, full_name, phone, grade FROM people ORDER BY id"
        ).fetchall()
    return {r[0]: r for r in found}


def run(folder: Path, spec: Path) -> str:
    result = run_cli(
        "--debug", "--log-format", "json", "run", spec, cwd=folder, env={"SANITIZE_KEY": KEY}
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout + result.stderr


def assert_no_leak(folder: Path, target: Path, output: str, raw: set[str]) -> None:
    texts = {
        "the target": target.read_bytes().decode("utf-8", "replace"),
        "stdout/stderr": output,
        ".etlrun/": "\n".join(
            p.read_bytes().decode("utf-8", "replace")
            for p in sorted((folder / ".etlrun").rglob("*"))
            if p.is_file()
        ),
    }
    for where, text in texts.items():
        found = sorted(v for v in raw if v in text)
        assert not found, f"raw values in {where}: {found[:5]}"
    stored = {str(v) for r in target_rows(target).values() for v in r[1:5]}
    assert not stored & raw, "a target value equals a source value"


def assert_sanitized(target: Path, expected_ids: set[int]) -> dict[int, tuple[Any, ...]]:
    rows = target_rows(target)
    assert set(rows) == expected_ids
    for _id, ssn, email, name, phone, grade in rows.values():
        assert len(ssn) == 64 and email.endswith("@example.invalid")
        assert name and not name.startswith("Quilla") and phone.startswith("*")
        assert grade == _id % 5, "columns without a rule are copied as they are"
    return rows


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    pytest.importorskip("faker")
    return tmp_path


def test_incremental_sanitizes_every_run_with_the_same_tokens(folder: Path) -> None:
    source, target = folder / "source.db", folder / "target.db"
    first = [person(i, T0) for i in range(1, 51)]
    make_source(source, first)
    spec = folder / "job.yaml"
    spec.write_text(
        f"job: inc\nsource: sqlite:///{source}\ntarget: sqlite:///{target}\n"
        "defaults: {mode: incremental, cursor: updated_at, chunk_rows: 20}\n" + RULES
    )
    out = run(folder, spec)
    before = assert_sanitized(target, set(range(1, 51)))
    assert_no_leak(folder, target, out, raw_values(first))

    # new people, and five people with a new e-mail address, name and phone
    changed = [person(i, T1, version="b") for i in range(1, 6)]
    added = [person(i, T1) for i in range(51, 71)]
    make_source(source, changed + added)
    out = run(folder, spec)
    after = assert_sanitized(target, set(range(1, 71)))
    assert_no_leak(folder, target, out, raw_values(first + changed + added))
    for i in range(1, 6):
        assert after[i][1] == before[i][1], "same SSN, same key: the same token in a later run"
        assert after[i][2] != before[i][2] and after[i][4] != before[i][4], "updated"
    assert all(after[i] == before[i] for i in range(6, 51)), "unchanged rows untouched"


def test_bulk_sanitizes(folder: Path) -> None:
    source, target = folder / "source.db", folder / "target.db"
    rows = [person(i, T0) for i in range(1, 41)]
    make_source(source, rows)
    spec = folder / "job.yaml"
    spec.write_text(
        f"job: bulk\nsource: sqlite:///{source}\ntarget: sqlite:///{target}\n"
        "defaults: {mode: bulk, chunk_rows: 15}\n" + RULES
    )
    out = run(folder, spec)
    first = assert_sanitized(target, set(range(1, 41)))
    assert_no_leak(folder, target, out, raw_values(rows))
    out = run(folder, spec)  # the monthly reload: the same tokens again
    assert target_rows(target) == first
    assert_no_leak(folder, target, out, raw_values(rows))


def test_sync_sanitizes_what_it_moves(folder: Path) -> None:
    source, target = folder / "source.db", folder / "target.db"
    rows = [person(i, T0) for i in range(1, 61)]
    make_source(source, rows)
    spec = folder / "job.yaml"
    spec.write_text(
        f"job: sync\nsource: sqlite:///{source}\ntarget: sqlite:///{target}\n"
        "defaults: {mode: sync, chunk_rows: 25}\n" + RULES
    )
    out = run(folder, spec)  # the first run loads the table as copy does
    first = assert_sanitized(target, set(range(1, 61)))
    added = [person(i, T1) for i in range(61, 64)]
    make_source(source, added)
    with closing(sqlite3.connect(source)) as conn:
        conn.execute("DELETE FROM people WHERE id = 7")
        conn.execute("UPDATE people SET grade = 4 WHERE id = 10")
        conn.commit()
    out += run(folder, spec)  # only the differing ranges move, sanitized again
    rows_after = target_rows(target)
    assert set(rows_after) == set(range(1, 64)) - {7}
    assert rows_after[10][5] == 4 and rows_after[10][1:5] == first[10][1:5]
    for i in range(61, 64):
        assert len(rows_after[i][1]) == 64 and rows_after[i][2].endswith("@example.invalid")
    assert_no_leak(folder, target, out, raw_values(rows + added))


def test_a_sanitized_cursor_is_refused(folder: Path) -> None:
    source, target = folder / "source.db", folder / "target.db"
    make_source(source, [person(i, T0) for i in range(1, 4)])
    spec = folder / "job.yaml"
    spec.write_text(
        f"job: inc\nsource: sqlite:///{source}\ntarget: sqlite:///{target}\n"
        "defaults: {mode: incremental, cursor: updated_at}\n"
        + RULES
        + "      updated_at: {truncate_date: year}\n"
    )
    result = run_cli("plan", spec, cwd=folder, env={"SANITIZE_KEY": KEY})
    assert result.returncode == 2, result.stdout + result.stderr
    assert "cursor column 'updated_at' has the sanitize rule {truncate_date: year}" in (
        result.stderr
    )
    assert T0 not in result.stdout + result.stderr and not target.exists()
