"""demo/make_clinic.py: the same rows on every run, row counts that scale, consistent keys."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "demo" / "make_clinic.py"
TABLES = {"patients": 10_000, "visits": 40_000, "lab_results": 50_000}


def make(path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(SCRIPT), str(path), *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def counts(path: Path) -> dict[str, int]:
    with sqlite3.connect(path) as conn:
        return {t: conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in TABLES}


@pytest.fixture(scope="module")
def small(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("clinic") / "clinic.db"
    result = make(path, "--rows-scale", "0.05")
    assert result.returncode == 0, result.stderr
    return path


def test_two_runs_give_the_same_database(small: Path, tmp_path: Path) -> None:
    again = tmp_path / "again.db"
    assert make(again, "--rows-scale", "0.05").returncode == 0
    with sqlite3.connect(small) as a, sqlite3.connect(again) as b:
        assert list(a.iterdump()) == list(b.iterdump())
    assert small.read_bytes() == again.read_bytes()


@pytest.mark.parametrize("scale", [0.01, 0.05])
def test_row_counts_scale(tmp_path: Path, scale: float) -> None:
    path = tmp_path / "c.db"
    result = make(path, "--rows-scale", str(scale))
    assert result.returncode == 0, result.stderr
    assert counts(path) == {t: round(n * scale) for t, n in TABLES.items()}


def test_foreign_keys_are_declared_and_consistent(small: Path) -> None:
    with sqlite3.connect(small) as conn:
        assert conn.execute("PRAGMA foreign_key_check").fetchall() == []
        fks = {
            table: [
                (row[2], row[3], row[4])
                for row in conn.execute(f"PRAGMA foreign_key_list({table})")
            ]
            for table in TABLES
        }
        for child, fk, parent in (
            ("visits", "patient_id", "patients"),
            ("lab_results", "visit_id", "visits"),
        ):
            orphans = conn.execute(
                f"SELECT count(*) FROM {child} c LEFT JOIN {parent} p ON p.id = c.{fk} "
                "WHERE p.id IS NULL"
            ).fetchone()[0]
            assert orphans == 0
    assert fks == {
        "patients": [],
        "visits": [("patients", "patient_id", "id")],
        "lab_results": [("visits", "visit_id", "id")],
    }


def test_declared_types_and_stored_forms(small: Path) -> None:
    with sqlite3.connect(small) as conn:
        declared = {
            (table, row[1]): row[2]
            for table in TABLES
            for row in conn.execute(f"PRAGMA table_info({table})")
        }
        assert declared[("patients", "id")] == "INTEGER"
        assert declared[("patients", "birth_date")] == "DATE"
        assert declared[("visits", "cost")] == "DECIMAL(10,2)"
        assert declared[("lab_results", "abnormal")] == "BOOLEAN"
        assert declared[("lab_results", "taken_at")] == "TIMESTAMP"

        def one(sql: str) -> object:
            return conn.execute(sql).fetchone()[0]

        # dates and timestamps are ISO text, with and without microseconds
        date = "[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]"
        assert one(f"SELECT count(*) FROM visits WHERE visit_date NOT GLOB '{date}'") == 0
        stamp = f"{date} [0-9][0-9]:[0-9][0-9]:[0-9][0-9]"
        assert one(f"SELECT count(*) FROM visits WHERE updated_at GLOB '{stamp}'") > 0
        assert one(f"SELECT count(*) FROM visits WHERE updated_at GLOB '{stamp}.[0-9]*'") > 0
        assert one("SELECT count(*) FROM visits WHERE typeof(updated_at) <> 'text'") == 0
        assert one("SELECT count(*) FROM lab_results WHERE abnormal NOT IN (0, 1)") == 0
        assert one("SELECT count(*) FROM lab_results WHERE abnormal = 1") > 0
        assert one("SELECT count(*) FROM visits WHERE notes IS NULL") > 0
        assert one("SELECT count(*) FROM visits WHERE notes LIKE '%🎨%'") == 1
        # ZIP codes keep their leading zeros
        assert one("SELECT count(*) FROM patients WHERE typeof(zip) <> 'text'") == 0
        # cost has two decimals at most (NUMERIC affinity stores '123.45' as a REAL)
        assert one("SELECT count(*) FROM visits WHERE round(cost, 2) <> cost") == 0
        names = {r[0] for r in conn.execute("SELECT first_name || ' ' || last_name FROM patients")}
    assert {"Zoé Ødegård", "Jürgen Müller", "伟 李"} <= names


def test_refuses_to_overwrite_without_force(small: Path, tmp_path: Path) -> None:
    path = tmp_path / "c.db"
    path.write_text("precious")
    result = make(path, "--rows-scale", "0.01")
    assert result.returncode == 1
    assert "--force" in result.stderr
    assert path.read_text() == "precious"
    assert make(path, "--rows-scale", "0.01", "--force").returncode == 0
    assert counts(path)["patients"] == 100
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.db"]  # no temp file left behind
