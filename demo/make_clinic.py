#!/usr/bin/env python3
"""Generate the sample clinic database for the demo and the tests: ``demo/clinic.db`` (SQLite).

Three tables with declared types and foreign keys, the way an application would have made them:
``patients`` (~10,000 rows) <- ``visits`` (~40,000) <- ``lab_results`` (~50,000).

The data is made up and deterministic: the same seed and scale give the same rows, byte for
byte, on every run (``random.Random(seed)``; no Faker, no clock, no network). It carries the
things that trip data movers: non-ASCII names (é, ø, ü, 李), one emoji, NULLs, quotes, commas and
newlines in free text, ZIP codes with leading zeros, decimals, booleans stored as 0/1, dates as
``YYYY-MM-DD`` and timestamps as ``YYYY-MM-DD HH:MM:SS`` with and without ``.ffffff``.

SQLite applies type affinity: ``cost`` is written as text like ``'123.45'``, but a
``DECIMAL(10,2)`` column has NUMERIC affinity, so SQLite stores it as a REAL (or an INTEGER for
``'120.00'``). Dates and timestamps stay text.

Usage::

    python demo/make_clinic.py                       # writes demo/clinic.db
    python demo/make_clinic.py /tmp/c.db --rows-scale 0.05 --force
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import random
import sqlite3
import sys
import tempfile
import time
import unicodedata
from pathlib import Path

DEFAULT_PATH = "demo/clinic.db"
DEFAULT_SEED = 20240229
ROWS = {"patients": 10_000, "visits": 40_000, "lab_results": 50_000}

SCHEMA = """
CREATE TABLE patients (
    id INTEGER PRIMARY KEY,
    mrn TEXT NOT NULL UNIQUE,
    first_name TEXT NOT NULL,
    last_name TEXT NOT NULL,
    birth_date DATE,
    sex TEXT,
    email TEXT,
    phone TEXT,
    zip TEXT,
    created_at TIMESTAMP NOT NULL
);
CREATE TABLE visits (
    id INTEGER PRIMARY KEY,
    patient_id INTEGER NOT NULL REFERENCES patients(id),
    visit_date DATE NOT NULL,
    department TEXT NOT NULL,
    notes TEXT,
    cost DECIMAL(10,2),
    updated_at TIMESTAMP NOT NULL
);
CREATE TABLE lab_results (
    id INTEGER PRIMARY KEY,
    visit_id INTEGER NOT NULL REFERENCES visits(id),
    test_code TEXT NOT NULL,
    value REAL,
    unit TEXT,
    abnormal BOOLEAN NOT NULL,
    taken_at TIMESTAMP NOT NULL
);
CREATE INDEX visits_patient_id ON visits(patient_id);
CREATE INDEX lab_results_visit_id ON lab_results(visit_id);
"""

FIRST_NAMES = (
    "Anna", "Ben", "Carla", "David", "Emma", "Farid", "Grace", "Hugo", "Ines", "James", "Kari",
    "Liam", "Maria", "Noah", "Olivia", "Pablo", "Quinn", "Rosa", "Sam", "Tara", "Umar", "Vera",
    "Will", "Xenia", "Yusuf", "Zoé", "Chloé", "José", "Bjørn", "Søren", "Jürgen", "Zoë", "Ayşe",
    "Łukasz", "伟", "芳", "Nguyễn", "Siobhán",
)  # fmt: skip
LAST_NAMES = (
    "Smith", "Johnson", "Brown", "Garcia", "Miller", "Davis", "Wilson", "Anderson", "Taylor",
    "Thomas", "Moore", "Martin", "Lee", "Walker", "Hall", "Young", "King", "O'Brien", "Müller",
    "Ødegård", "Åberg", "Lindstrøm", "Dubois", "Lefèvre", "Núñez", "Schröder", "李", "王",
    "van der Berg", "Smith-Jones",
)  # fmt: skip
DOMAINS = ("example.org", "example.com", "example.net")
DEPARTMENTS = (
    "general", "general", "general", "cardiology", "dermatology", "emergency", "neurology",
    "oncology", "pediatrics", "radiology", "admin",
)  # fmt: skip
NOTES = (
    "Routine check-up.",
    "Follow-up in 6 weeks.",
    "Patient reports mild headache, no fever.",
    'Patient said "much better" since last visit.',
    "BP 120/80, HR 72; no changes to medication.",
    "Referred to cardiology, see letter.",
    "Allergic to penicillin; amoxicillin avoided.",
    "Discussed diet, exercise and sleep.",
    "Results reviewed with patient.\nNext review: 3 months.",
    "Dressing changed, wound healing well.",
    "Vaccination given (left arm), lot #A-1173.",
    "Café au lait spots noted, benign.",
)
LAB_TESTS = (  # code, unit, low, high (normal range)
    ("GLU", "mg/dL", 70.0, 99.0),
    ("HGB", "g/dL", 12.0, 17.5),
    ("WBC", "10^9/L", 4.0, 11.0),
    ("NA", "mmol/L", 135.0, 145.0),
    ("K", "mmol/L", 3.5, 5.1),
    ("CHOL", "mg/dL", 125.0, 200.0),
    ("HBA1C", "%", 4.0, 5.6),
    ("CRP", "mg/L", 0.0, 10.0),
    ("TSH", "mIU/L", 0.4, 4.0),
)
EMOJI_NOTE = "Brought her drawings for the nurses 🎨; in good spirits."

_BIRTH_FIRST = dt.date(1930, 1, 1).toordinal()
_BIRTH_LAST = dt.date(2023, 12, 31).toordinal()
_CREATED_FIRST = dt.date(2015, 1, 1).toordinal()
_VISIT_FIRST = dt.date(2018, 1, 1).toordinal()
_LAST_DAY = dt.date(2025, 12, 31).toordinal()


def scaled(count: int, scale: float) -> int:
    """Rows of a table at ``scale`` (at least one)."""
    return max(1, round(count * scale))


def _date(ordinal: int) -> str:
    return dt.date.fromordinal(ordinal).isoformat()


def _timestamp(ordinal: int, seconds: int, micros: int | None = None) -> str:
    hh, rest = divmod(seconds, 3600)
    mm, ss = divmod(rest, 60)
    text = f"{_date(ordinal)} {hh:02d}:{mm:02d}:{ss:02d}"
    return text if micros is None else f"{text}.{micros:06d}"


def _ascii(name: str) -> str:
    folded = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    return "".join(ch for ch in folded.lower() if ch.isalnum())


def _patients(rng: random.Random, n: int) -> tuple[list[tuple[object, ...]], list[int]]:
    rows: list[tuple[object, ...]] = []
    created: list[int] = [0]  # created_at day per patient id (index 0 unused)
    # the first three always exist, so every scale has the non-ASCII names
    fixed = {1: ("Zoé", "Ødegård"), 2: ("Jürgen", "Müller"), 3: ("伟", "李")}
    for pid in range(1, n + 1):
        first, last = fixed.get(pid) or (rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES))
        birth = None if rng.random() < 0.01 else _date(rng.randint(_BIRTH_FIRST, _BIRTH_LAST))
        sex = rng.choices(("F", "M", "X"), weights=(49, 49, 2))[0]
        local = f"{_ascii(first) or 'patient'}.{_ascii(last) or pid}{rng.randint(1, 99)}"
        email = None if rng.random() < 0.08 else f"{local}@{rng.choice(DOMAINS)}"
        phone: str | None = f"(555) {rng.randint(200, 999)}-{rng.randint(0, 9999):04d}"
        if rng.random() < 0.05:
            phone = None
        zip_code = f"{rng.randint(501, 99950):05d}"  # leading zeros: text, never a number
        day = rng.randint(_CREATED_FIRST, _LAST_DAY)
        created.append(day)
        created_at = _timestamp(day, rng.randint(7 * 3600, 19 * 3600))
        mrn = f"MRN{pid * 7919 % 10_000_000:07d}"  # 7919 is prime: unique below 10 million
        rows.append((pid, mrn, first, last, birth, sex, email, phone, zip_code, created_at))
    return rows, created


def _visits(
    rng: random.Random, n: int, created: list[int]
) -> tuple[list[tuple[object, ...]], list[int]]:
    rows: list[tuple[object, ...]] = []
    days: list[int] = [0]  # visit_date per visit id
    patients = len(created) - 1
    for vid in range(1, n + 1):
        patient_id = rng.randint(1, patients)
        day = rng.randint(max(created[patient_id], _VISIT_FIRST), _LAST_DAY)
        days.append(day)
        department = rng.choice(DEPARTMENTS)
        if vid == 1:
            notes: str | None = EMOJI_NOTE
        elif rng.random() < 0.4:
            notes = None
        else:
            notes = rng.choice(NOTES)
            if rng.random() < 0.2:
                notes = f"{notes} {rng.choice(NOTES)}"
        cents = rng.randint(2_000, 500_000)
        cost = f"{cents // 100}.{cents % 100:02d}"
        # updated a little after the visit: same day, or a few days later when billing caught up
        updated_day = day + (0 if rng.random() < 0.7 else rng.randint(1, 20))
        seconds = rng.randint(8 * 3600, 20 * 3600 - 1)
        micros = rng.randint(0, 999_999) if rng.random() < 0.35 else None
        updated_at = _timestamp(updated_day, seconds, micros)
        rows.append((vid, patient_id, _date(day), department, notes, cost, updated_at))
    return rows, days


def _lab_results(rng: random.Random, n: int, visit_days: list[int]) -> list[tuple[object, ...]]:
    rows: list[tuple[object, ...]] = []
    visits = len(visit_days) - 1
    for lid in range(1, n + 1):
        visit_id = rng.randint(1, visits)
        code, unit, low, high = rng.choice(LAB_TESTS)
        mid, spread = (low + high) / 2, (high - low) / 2
        if rng.random() < 0.005:
            value: float | None = None  # sample lost
        else:
            value = round(max(0.0, rng.gauss(mid, spread * 0.8)), 2)
        abnormal = 0 if value is None else int(not low <= value <= high)
        taken_at = _timestamp(
            visit_days[visit_id], rng.randint(8 * 3600, 18 * 3600), rng.randint(0, 999_999)
        )
        rows.append((lid, visit_id, code, value, unit, abnormal, taken_at))
    return rows


def build(path: str | os.PathLike[str], *, scale: float = 1.0, seed: int = DEFAULT_SEED) -> dict:
    """Write the clinic database to ``path`` (which must not exist); return rows per table."""
    rng = random.Random(seed)
    patients, created = _patients(rng, scaled(ROWS["patients"], scale))
    visits, days = _visits(rng, scaled(ROWS["visits"], scale), created)
    labs = _lab_results(rng, scaled(ROWS["lab_results"], scale), days)
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        conn.execute("PRAGMA journal_mode=OFF")
        conn.execute("PRAGMA synchronous=OFF")
        conn.execute("PRAGMA foreign_keys=ON")
        conn.execute("BEGIN")
        for statement in _statements(SCHEMA):  # not executescript(): it would commit first
            conn.execute(statement)
        conn.executemany(f"INSERT INTO patients VALUES ({', '.join('?' * 10)})", patients)
        conn.executemany(f"INSERT INTO visits VALUES ({', '.join('?' * 7)})", visits)
        conn.executemany(f"INSERT INTO lab_results VALUES ({', '.join('?' * 7)})", labs)
        problems = conn.execute("PRAGMA foreign_key_check").fetchall()
        if problems:
            raise RuntimeError(f"foreign key violations: {problems[:5]}")
        conn.execute("COMMIT")
    finally:
        conn.close()
    return {"patients": len(patients), "visits": len(visits), "lab_results": len(labs)}


def _statements(script: str) -> list[str]:
    return [s.strip() for s in script.split(";") if s.strip()]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Generate the sample clinic SQLite database (deterministic)."
    )
    parser.add_argument("path", nargs="?", default=DEFAULT_PATH, help=f"default: {DEFAULT_PATH}")
    parser.add_argument("--force", action="store_true", help="replace the file if it exists")
    parser.add_argument(
        "--rows-scale", type=float, default=1.0, metavar="X",
        help="multiply every table's row count by X (default 1.0: ~100,000 rows in all)",
    )  # fmt: skip
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.rows_scale <= 0:
        parser.error("--rows-scale must be greater than 0")

    target = Path(args.path)
    if target.exists() and not args.force:
        print(f"make_clinic: {target} exists; use --force to replace it", file=sys.stderr)
        return 1
    target.parent.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    # build next to the target and rename: a reader never sees a half-written database
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)  # an empty file is a valid, empty SQLite database
    umask = os.umask(0o022)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes it 0600; give it the mode open() would
    try:
        counts = build(tmp, scale=args.rows_scale, seed=args.seed)
        os.replace(tmp, target)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    summary = ", ".join(f"{n:,} {table}" for table, n in counts.items())
    print(f"wrote {target}: {summary} ({time.perf_counter() - started:.1f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
