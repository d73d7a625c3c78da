"""Change workloads: moving only what changed, and checking, against native PostgreSQL commands.

All run PostgreSQL -> PostgreSQL on ``events_mut`` (a copy of ``events`` that the workloads
change), side by side in rounds: each round first changes 1% of the rows (untimed, in the first
tool's reset), then every tool runs once against the same change.

C1 strategy: checksum, 1% updated in ONE contiguous key range   vs the native full copy
C2 strategy: checksum, 1% updated scattered over every chunk    vs the native full copy
C3 strategy: cursor, 1% updated anywhere (updated_at moved)     vs the native delta: COPY of the
   changed rows (updated_at > the target's max) into a temporary table + INSERT ON CONFLICT
C4 etlrun check on equal tables                                  vs the native full copy

C1, C2 and C4 also run etlrun's own full copy of the table, for the "x full copy" ratios.
Targets: events_full (native copy), events_copy (etlrun copy), events_sum (checksum),
events_cur (cursor) and events_nat (native delta) in the destination database.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from pathlib import Path

from _data import PG, PG_DST, PG_SRC, pg_connect, pg_ddl
from _measure import Tool, pg_count

PSQL = "psql -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -U postgres"
COLUMNS = ("user_id, big_value, amount, score, is_active, label, note, email, event_date, "
           "created_at, updated_at, payload")  # fmt: skip
SPEC = """\
# written by bench/_changes.py
version: 1
job: bench-{name}
source: {PG}/{PG_SRC}
target: {PG}/{PG_DST}
workers: 2
defaults: {{chunk_rows: 100000{extra}}}
tables: [{{name: events_mut, to: {target}}}]
"""
_round = itertools.count(1)


def _exec(db: str, *sql: str) -> None:
    with pg_connect(db) as conn:
        for statement in sql:
            conn.execute(statement)


def prepare(rows: int, work: Path, etlrun: Path) -> None:
    """events_mut from events, and every target loaded once (untimed): the state a nightly job
    is in before the night's changes."""
    import subprocess

    _exec(PG_SRC, "DROP TABLE IF EXISTS events_mut",
          "CREATE TABLE events_mut AS SELECT * FROM events",
          "ALTER TABLE events_mut ADD PRIMARY KEY (id)", "VACUUM (ANALYZE) events_mut")  # fmt: skip
    targets = ("events_sum", "events_cur", "events_nat")
    _exec(PG_DST, *(f"DROP TABLE IF EXISTS {t}" for t in targets), pg_ddl("events_nat"))
    subprocess.run(
        f"{PSQL} -d {PG_SRC} -c 'COPY events_mut TO STDOUT (FORMAT binary)' | "
        f"{PSQL} -d {PG_DST} -c 'COPY events_nat FROM STDIN (FORMAT binary)'",
        shell=True, check=True,
    )  # fmt: skip
    state = work / "changes-state.db"
    state.unlink(missing_ok=True)
    for name in ("ck", "cur"):
        subprocess.run([etlrun, "run", spec(work, name), "--state", f"sqlite:///{state}"],
                       check=True, capture_output=True, cwd=work)  # fmt: skip


def spec(work: Path, name: str) -> Path:
    extra = {
        "ck": ", mode: incremental, strategy: checksum",
        "cur": ", mode: incremental, cursor: updated_at",
        "copy": "",
    }[name]
    target = {"ck": "events_sum", "cur": "events_cur", "copy": "events_copy"}[name]
    path = work / f"changes-{name}.yaml"
    path.write_text(SPEC.format(name=name, PG=PG, PG_SRC=PG_SRC, PG_DST=PG_DST, extra=extra,
                                target=target))  # fmt: skip
    return path


def _checkpoint() -> None:
    _exec(PG_SRC, "CHECKPOINT")
    _exec(PG_DST, "CHECKPOINT")


def change(kind: str, rows: int, work: Path) -> Callable[[], None]:
    """A reset that changes 1% of events_mut: a fresh contiguous range, every 100th id, or
    every 100th id with updated_at moved; it also notes the native delta's watermark."""

    def reset() -> None:
        n = next(_round)
        if kind == "contiguous":
            size = rows // 100
            lo = (n * 7 * size) % max(rows - size, 1)
            where = f"id > {lo} AND id <= {lo + size}"
        else:
            where = f"id % 100 = {n % 100}"
        stamp = ", updated_at = clock_timestamp()" if kind == "cursor" else ""
        with pg_connect(PG_DST) as conn:
            mark = conn.execute("SELECT max(updated_at) FROM events_nat").fetchone()[0]
        (work / "native-watermark").write_text(str(mark))
        _exec(PG_SRC, f"UPDATE events_mut SET big_value = big_value + 1{stamp} WHERE {where}")
        _checkpoint()

    return reset


def catch_up(work: Path, etlrun: Path) -> None:
    """Untimed: bring events_sum up to date (C3 changed events_mut) so check finds it equal."""
    import subprocess

    state = f"sqlite:///{work / 'changes-state.db'}"
    subprocess.run([etlrun, "run", spec(work, "ck"), "--state", state], check=True,
                   capture_output=True, cwd=work)  # fmt: skip
    _checkpoint()


def native_copy(target: str) -> Tool:
    return Tool(
        "baseline",
        f'{PSQL} -d {PG_SRC} -c "COPY events_mut TO STDOUT (FORMAT binary)" | '
        f'{PSQL} -d {PG_DST} -c "COPY {target} FROM STDIN (FORMAT binary)"',
        lambda: (_exec(PG_DST, f"DROP TABLE IF EXISTS {target}", pg_ddl(target)), _checkpoint()),
        lambda: pg_count(PG_DST, target),
        detail="native full copy: psql COPY binary pipe",
    )


def tools(workload: str, rows: int, work: Path, etlrun: Path) -> list[Tool]:
    state = ["--state", f"sqlite:///{work / 'changes-state.db'}"]
    copy = Tool("etlrun copy", [etlrun, "run", spec(work, "copy"), "--fresh", *state],
                lambda: (_exec(PG_DST, "DROP TABLE IF EXISTS events_copy"), _checkpoint()),
                lambda: pg_count(PG_DST, "events_copy"), detail="full copy")  # fmt: skip
    if workload in ("C1", "C2"):
        kind = "contiguous" if workload == "C1" else "scattered"
        return [
            native_copy("events_full"),
            copy,
            Tool("etlrun", [etlrun, "run", spec(work, "ck"), *state], change(kind, rows, work),
                 lambda: pg_count(PG_DST, "events_sum"),
                 detail=f"strategy: checksum, 1% {kind}"),
        ]  # fmt: skip
    if workload == "C3":
        updates = ", ".join(f"{c.strip()} = excluded.{c.strip()}" for c in COLUMNS.split(","))
        native = (
            f"WM=$(cat {work / 'native-watermark'}); "
            f'{PSQL} -d {PG_SRC} -c "COPY (SELECT * FROM events_mut WHERE updated_at > '
            f"'$WM') TO STDOUT (FORMAT binary)\" | {PSQL} -d {PG_DST} "
            '-c "CREATE TEMP TABLE delta (LIKE events_nat)" '
            '-c "COPY delta FROM STDIN (FORMAT binary)" '
            f'-c "INSERT INTO events_nat SELECT * FROM delta ON CONFLICT (id) DO UPDATE SET '
            f'{updates}"'
        )
        return [
            Tool("baseline", native, change("cursor", rows, work),
                 lambda: pg_count(PG_DST, "events_nat"),
                 detail="native delta: COPY changed rows to temp + INSERT ON CONFLICT"),
            Tool("etlrun", [etlrun, "run", spec(work, "cur"), *state], _checkpoint,
                 lambda: pg_count(PG_DST, "events_cur"), detail="strategy: cursor, 1% updated"),
        ]  # fmt: skip
    # C4: the tables are equal after C1/C2 (or prepare): check them
    return [
        native_copy("events_full"),
        copy,
        Tool("etlrun", [etlrun, "check", spec(work, "ck")], lambda: catch_up(work, etlrun),
             lambda: pg_count(PG_DST, "events_sum"), detail="etlrun check, equal tables"),
    ]  # fmt: skip
