"""The leak test: a sanitized PostgreSQL -> PostgreSQL copy leaves no raw value anywhere.

A run with a forced unique violation (``ssn``, the primary key, hashed to one hex character:
60 people, 16 tokens) runs with ``--debug --log-format json``, once stopping on it and once with
``on_error: reject`` (the refused rows go to a reject file); then stdout, stderr, the state
store, everything under ``.etlrun/`` (rejects included), ``etlrun history`` / ``show`` and a
``pg_dump`` of the target database are searched for every raw value of every sanitized column:
zero hits. The same job with a full-length hash then succeeds, and the target is searched again.
A generated column computed from a sanitized one must have a rule of its own.
"""

from __future__ import annotations

import datetime as dt
import json
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
import servers
from sqlalchemy.engine import make_url

from runner.sanitize import rules

KEY = "leak-test-key-0123456789abcdef"
PEOPLE = 60


def raw_people() -> list[tuple[object, ...]]:
    """Values no rule can produce by chance: the search for them must find nothing."""
    rows = []
    for i in range(1, PEOPLE + 1):
        rows.append(
            (
                i,
                f"9{i:02d}-71-{4000 + i}",  # ssn
                f"Zebulon Quixotic-{i:03d} Ødegård",  # full_name
                f"zebulon.q{i:03d}@leaky-clinic.example",  # email
                dt.date(1930 + i, 1 + i % 12, 1 + i % 28),  # dob
                f"+1-555-{7100 + i}",  # phone
                f"Seen by Dr. Plum; pt SSN 9{i:02d}-71-{4000 + i} says hi",  # notes
                f"M{i:07d}X",  # mrn
                i * 3,  # visits: not sanitized
            )
        )
    return rows


SANITIZED = {"ssn": 1, "full_name": 2, "email": 3, "dob": 4, "phone": 5, "notes": 6, "mrn": 7}


def raw_values() -> list[str]:
    values = [str(row[i]) for row in raw_people() for i in SANITIZED.values()]
    return values + [f"{row[1]}#tail" for row in raw_people()]  # ssn_tail, generated


@pytest.fixture
def pg_target() -> Iterator[str]:
    url = servers.create_postgres_database()
    yield url
    servers.drop_postgres_database(url)


def seed(url: str) -> None:
    with servers.postgres_connect(url) as conn:
        conn.execute(
            "CREATE TABLE people (ssn varchar(11) PRIMARY KEY, id bigint NOT NULL UNIQUE, "
            "full_name text NOT NULL, email text, dob date, phone varchar(20), notes text, "
            "mrn varchar(12) NOT NULL DEFAULT 'M0000000X' CHECK (mrn LIKE 'M%'), visits int, "
            "ssn_tail text GENERATED ALWAYS AS (ssn || '#tail') STORED)"
        )
        conn.execute("COMMENT ON COLUMN people.ssn IS 'social security number'")
        with conn.cursor() as cur:
            cur.executemany(
                "INSERT INTO people (id, ssn, full_name, email, dob, phone, notes, mrn, visits) "
                "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)",
                raw_people(),
            )


def spec(
    source: str, target: str, ssn_rule: str, on_error: str = "stop", tail: str = "drop"
) -> str:
    return f"""\
source: {source}
target: {target}
defaults: {{on_error: {on_error}}}
sanitize:
  key: ${{SANITIZE_KEY}}
  rules:
    "*name*": {{fake: name}}
tables:
  - name: people
    sanitize:
      ssn: {ssn_rule}
      email: {{email: {{keep_domain: false}}}}
      dob: {{truncate_date: year}}
      phone: {{mask: {{keep_last: 2}}}}
      notes: {{redact: {{pattern: '[0-9]', replace: '#'}}}}
      mrn: {{constant: REDACTED}}
      {"ssn_tail: " + tail if tail else ""}
"""


def pg_dump(url: str) -> str:
    parsed = make_url(url)
    command = [
        shutil.which("pg_dump") or "pg_dump",
        "-h", parsed.host or "127.0.0.1", "-p", str(parsed.port or 5432),
        "-U", parsed.username or "postgres", "--no-password", parsed.database or "",
    ]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True, timeout=120, check=True)
    assert "CREATE TABLE" in result.stdout
    return result.stdout


def everything_under(folder: Path) -> str:
    return "\n".join(
        p.read_bytes().decode("utf-8", "replace") for p in sorted(folder.rglob("*")) if p.is_file()
    )


def leaks(text: str) -> list[str]:
    return [value for value in raw_values() if value in text]


def test_nothing_raw_reaches_output_logs_state_or_the_target(
    pg_url: str, pg_target: str, tmp_path: Path, run_cli: Any
) -> None:
    if shutil.which("pg_dump") is None:
        pytest.fail("pg_dump is not installed (Debian: postgresql-client)")
    seed(pg_url)
    job = tmp_path / "people.yaml"
    job.write_text(spec(pg_url, pg_target, "{hash: {length: 1}}"))
    state = tmp_path / ".etlrun" / "state.db"
    env = {"SANITIZE_KEY": KEY}

    def etlrun(*args: str) -> subprocess.CompletedProcess[str]:
        return run_cli(
            "--debug", "--log-format", "json", "--state", f"sqlite:///{state}", *args,
            cwd=tmp_path, env=env,
        )  # fmt: skip

    # a generated column computed from a sanitized one, left without a rule: a spec error
    job.write_text(spec(pg_url, pg_target, "hash", tail=""))
    unruled = etlrun("plan", str(job))
    assert unruled.returncode == 2, unruled.stdout + unruled.stderr
    assert "column 'ssn_tail' is generated from 'ssn', which has a rule" in unruled.stderr

    job.write_text(spec(pg_url, pg_target, "{hash: {length: 1}}"))
    failed = etlrun("run", str(job))
    outputs = [unruled.stdout, unruled.stderr, failed.stdout, failed.stderr]
    assert failed.returncode == 1, failed.stdout + failed.stderr
    # the staging table gets its key once loaded (modes/copy.py): the duplicate fails there
    assert "primary key value more than once" in failed.stderr, failed.stderr
    assert "could not create unique index" in failed.stderr, failed.stderr
    assert "DETAIL" not in failed.stderr and "Key (" not in failed.stderr

    # the same with on_error: reject: the refused rows go to the reject file, the rest commit
    job.write_text(spec(pg_url, pg_target, "{hash: {length: 1}}", on_error="reject"))
    rejected = etlrun("run", str(job), "--fresh")
    outputs += [rejected.stdout, rejected.stderr]
    assert rejected.returncode == 3, rejected.stdout + rejected.stderr
    reject_files = list((tmp_path / ".etlrun" / "rejects").rglob("*.jsonl"))
    records = [json.loads(line) for f in reject_files for line in f.read_text().splitlines()]
    tokens = rules.hash_hex(
        pa.array([str(r[1]) for r in raw_people()]), rules.subkey(KEY.encode(), "hash"), 1
    )
    assert len(records) == PEOPLE - len(set(tokens.to_pylist())), "one row per token commits"
    assert all("duplicate key" in r["reason"] and "Key (" not in r["reason"] for r in records)

    plan = etlrun("plan", str(job), "--format", "json")
    history = etlrun("history", "--format", "json")
    run_id = json.loads(history.stdout)[0]["run_id"]
    shown = etlrun("show", run_id, "--format", "json")
    outputs += [plan.stdout, plan.stderr, history.stdout, shown.stdout]
    dump = pg_dump(pg_target)
    searched = {
        "stdout/stderr/plan/history/show": "\n".join(outputs),
        ".etlrun/ (state store)": everything_under(tmp_path / ".etlrun"),
        "pg_dump of the target": dump,
    }
    for where, text in searched.items():
        assert not leaks(text), f"raw values in {where}: {leaks(text)[:5]}"
        assert KEY not in text, f"the key is in {where}"

    # the run record says what happened to each column, without values
    record = json.loads(shown.stdout)["sanitize"]["people"]
    by_column = {c["column"]: c["rule"] for c in record}
    assert by_column["ssn"] == "{hash: {length: 1}}" and by_column["full_name"] == "{fake: name}"
    assert by_column["visits"] is None

    # the same job with a full-length token succeeds; the target holds tokens, not values
    job.write_text(spec(pg_url, pg_target, "hash", tail="{constant: gone}"))
    done = etlrun("run", str(job), "--fresh")
    assert done.returncode == 0, done.stdout + done.stderr
    dump = pg_dump(pg_target)
    assert not leaks(dump + done.stdout + done.stderr + everything_under(tmp_path / ".etlrun"))
    assert "COPY public.people" in dump
    with servers.postgres_connect(pg_target) as conn:
        rows = conn.execute(
            "SELECT ssn, full_name, email, dob, phone, notes, mrn, visits FROM people "
            "ORDER BY visits"
        ).fetchall()
        columns = {
            r[0]: (r[1], r[2])
            for r in conn.execute(
                "SELECT column_name, is_nullable, column_default FROM information_schema.columns "
                "WHERE table_name = 'people'"
            )
        }
        comments = conn.execute(
            "SELECT count(*) FROM pg_description d JOIN pg_class c ON c.oid = d.objoid "
            "WHERE c.relname = 'people'"
        ).fetchone()[0]
        checks = conn.execute(
            "SELECT count(*) FROM pg_constraint "
            "WHERE conrelid = 'people'::regclass AND contype = 'c'"
        ).fetchone()[0]
        generated = conn.execute(
            "SELECT count(*) FROM information_schema.columns "
            "WHERE table_name = 'people' AND is_generated <> 'NEVER'"
        ).fetchone()[0]
        tails = {r[0] for r in conn.execute("SELECT ssn_tail FROM people")}
    assert len(rows) == PEOPLE
    assert [r[7] for r in rows] == [i * 3 for i in range(1, PEOPLE + 1)], "other columns intact"
    assert all(len(r[0]) == 64 for r in rows)
    assert all(r[2].endswith("@example.invalid") for r in rows)
    assert {r[3] for r in rows} == set(range(1931, 1931 + PEOPLE)), "years only"
    assert all(r[4].startswith("*") for r in rows) and all("#" in r[5] for r in rows)
    assert {r[6] for r in rows} == {"REDACTED"}
    # DDL: types and the key only; no default, check, comment or NOT NULL of the source
    assert columns["mrn"] == ("YES", None) and columns["full_name"][0] == "YES"
    assert columns["ssn"][0] == "NO", "the primary key stays"
    assert comments == 0 and checks == 0 and generated == 0
    assert tails == {"gone"}
