"""The seed scenario: a clinic's MariaDB tables exported to SQLite, HIPAA-sanitized, with an age
column derived from the birth dates (shared/seeds/004: "MysqlToSQLite" with its age appender).

The job is the committed example ``jobs/clinic_deidentified.yaml``, pointed at MariaDB by
``CLINIC_URL``. The clinic is the demo's data (``demo/make_clinic.py``, small scale) in the
column types a MariaDB application would declare.
"""

from __future__ import annotations

import datetime as dt
import shutil
import sqlite3
import subprocess
import sys
from contextlib import closing
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
import servers

from runner.sanitize import rules

REPO = Path(__file__).resolve().parents[2]
KEY = "clinic-test-key-0123456789abcdef"
DDL = (
    """CREATE TABLE patients (
        id INT PRIMARY KEY, mrn VARCHAR(16) NOT NULL UNIQUE, first_name VARCHAR(64) NOT NULL,
        last_name VARCHAR(64) NOT NULL, birth_date DATE, sex CHAR(1), email VARCHAR(128),
        phone VARCHAR(32), zip VARCHAR(10), created_at DATETIME NOT NULL)""",
    """CREATE TABLE visits (
        id INT PRIMARY KEY, patient_id INT NOT NULL, visit_date DATE NOT NULL,
        department VARCHAR(32) NOT NULL, notes TEXT, cost DECIMAL(10,2),
        updated_at TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
        FOREIGN KEY (patient_id) REFERENCES patients(id))""",
    """CREATE TABLE lab_results (
        id INT PRIMARY KEY, visit_id INT NOT NULL, test_code VARCHAR(8) NOT NULL, value DOUBLE,
        unit VARCHAR(16), abnormal BOOLEAN NOT NULL, taken_at DATETIME(6) NOT NULL,
        FOREIGN KEY (visit_id) REFERENCES visits(id))""",
)


@pytest.fixture(scope="module")
def small_clinic(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("clinic") / "clinic.db"
    subprocess.run(
        [sys.executable, str(REPO / "demo" / "make_clinic.py"), str(path), "--rows-scale", "0.05"],
        check=True, capture_output=True, timeout=120,
    )  # fmt: skip
    return path


def load_into_mariadb(clinic: Path, url: str) -> dict[str, list[tuple[Any, ...]]]:
    with closing(sqlite3.connect(clinic)) as lite:
        data = {
            table: lite.execute(f"SELECT * FROM {table} ORDER BY id").fetchall()
            for table in ("patients", "visits", "lab_results")
        }
    conn = servers.mariadb_connect(url)
    try:
        with conn.cursor() as cur:
            for statement in DDL:
                cur.execute(statement)
            for table, rows in data.items():
                marks = ", ".join(["%s"] * len(rows[0]))
                cur.executemany(f"INSERT INTO {table} VALUES ({marks})", rows)
    finally:
        conn.close()
    return data


def test_clinic_mariadb_to_sqlite_under_hipaa(
    mariadb_url: str, small_clinic: Path, tmp_path: Path, run_cli: Any
) -> None:
    source = load_into_mariadb(small_clinic, mariadb_url)
    shutil.copytree(REPO / "jobs", tmp_path / "jobs")
    target = tmp_path / "deidentified.db"
    env = {"CLINIC_URL": mariadb_url, "DEIDENTIFIED_URL": f"sqlite:///{target}"}

    # without the key: a spec error that names the variable; nothing runs
    nokey = run_cli("run", "jobs/clinic_deidentified.yaml", cwd=tmp_path, env=env)
    assert nokey.returncode == 2 and "${SANITIZE_KEY}" in nokey.stderr, nokey.stderr
    env["SANITIZE_KEY"] = KEY

    plan = run_cli("plan", "jobs/clinic_deidentified.yaml", cwd=tmp_path, env=env)
    assert plan.returncode == 0, plan.stderr
    assert "sanitize (profile hipaa):" in plan.stdout
    assert "(G)" not in plan.stdout and "birth date" in plan.stdout

    today = dt.datetime.now(dt.UTC).date()
    result = run_cli("run", "jobs/clinic_deidentified.yaml", cwd=tmp_path, env=env)
    assert result.returncode == 0, result.stdout + result.stderr
    with closing(sqlite3.connect(target)) as conn:
        columns = [row[1] for row in conn.execute("PRAGMA table_info(patients)")]
        patients = conn.execute("SELECT id, age, zip, created_at, email FROM patients").fetchall()
        visits = conn.execute("SELECT patient_id, visit_date FROM visits").fetchall()
        labs = conn.execute("SELECT count(*), min(taken_at) FROM lab_results").fetchone()
    assert columns == ["id", "mrn", "first_name", "last_name", "age", "sex", "email", "zip",
                       "created_at"], "phone dropped, birth_date turned into age"  # fmt: skip
    assert len(patients) == len(source["patients"]) and labs[0] == len(source["lab_results"])

    # the age appender: each patient's age, found through the keyed surrogate of their id
    hashed = rules.hash_int(
        pa.array([p[0] for p in source["patients"]]), rules.subkey(KEY.encode(), "hash")
    )
    born = pa.array(
        [None if p[4] is None else dt.date.fromisoformat(p[4]) for p in source["patients"]]
    )
    expected = dict(zip(hashed.to_pylist(), rules.age(born, today).to_pylist(), strict=True))
    assert {p[0]: p[1] for p in patients} == expected
    ages = [p[1] for p in patients]
    assert "90+" in ages and all(a is None or a == "90+" or int(a) < 90 for a in ages)

    # joins survive: every visit's patient is there, by the same surrogate
    ids = {p[0] for p in patients}
    assert all(v[0] in ids for v in visits)
    assert {v[1] for v in visits} <= set(range(2018, 2026)), "visit dates cut to the year"
    assert {p[2] for p in patients} <= {None, "000"} | {f"{i:03d}" for i in range(1000)}

    # no identifier of the source is in the file
    raw = target.read_bytes()
    for p in source["patients"]:
        for value in (p[1], p[6], p[7], p[4]):  # mrn, email, phone, birth date
            if value:
                assert str(value).encode() not in raw, "a raw value reached the target"
    for v in source["visits"]:
        if v[4]:
            assert v[4].encode() not in raw, "a visit note reached the target"


def test_clinic_without_rules_is_refused_before_anything_is_written(
    mariadb_url: str, small_clinic: Path, tmp_path: Path, run_cli: Any
) -> None:
    load_into_mariadb(small_clinic, mariadb_url)
    target = tmp_path / "out.db"
    job = tmp_path / "bare.yaml"
    job.write_text(
        f"source: {mariadb_url}\ntarget: sqlite:///{target}\n"
        "sanitize:\n  profile: hipaa\ntables: [patients, visits, lab_results]\n"
    )
    result = run_cli("run", str(job), cwd=tmp_path)
    assert result.returncode == 6, result.stdout + result.stderr
    assert "patients.birth_date" in result.stderr and "(C) dates" in result.stderr
    assert "      zip: zip3" in result.stderr
    assert not target.exists(), "nothing was written"
