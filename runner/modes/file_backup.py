"""bulk into a SQLite file: the whole old database file is kept as a copy before the first swap.

The seed's monthly bulk import replaces its SQLite database and keeps the old one beside it. The
copy is ``<stem>.prev-<run id><suffix>`` next to the file, made with SQLite's online backup API
(a consistent snapshot even while readers hold the file), once per run: before the first table's
swap, so it holds every table as it was before the run (the run's staging tables are dropped
from the copy). Copies beyond ``keep_backups`` are
removed, oldest first, after the new one is complete. The ``<table>__prev_<n>`` tables inside the
file are kept as well (they are what a quick rollback of one table renames back).
"""

from __future__ import annotations

import sqlite3
import threading
from contextlib import closing
from pathlib import Path

_lock = threading.Lock()  # tables of one run finalize on parallel threads: one copy per run


def backup_path(database: str, run_id: str) -> Path:
    path = Path(database)
    return path.with_name(f"{path.stem}.prev-{run_id}{path.suffix}")


def backup_file(database: str, run_id: str, keep: int) -> Path | None:
    """Copy ``database`` for ``run_id`` (once), keep the newest ``keep`` copies; the copy's path."""
    if keep <= 0 or not Path(database).exists():
        return None
    target = backup_path(database, run_id)
    with _lock:
        if not target.exists():
            partial = target.with_name(target.name + ".partial")
            with (
                closing(sqlite3.connect(database)) as src,
                closing(sqlite3.connect(partial)) as dst,
            ):
                src.backup(dst)
                _drop_staging(dst)
            partial.replace(target)  # complete or absent, never half a copy
        path = Path(database)
        copies = sorted(path.parent.glob(f"{path.stem}.prev-*{path.suffix}"))
        for old in copies[: max(len(copies) - keep, 0)]:  # run ids sort by time
            old.unlink(missing_ok=True)
    return target


def _drop_staging(db: sqlite3.Connection) -> None:
    """The run's staging tables hold the new rows, not the old database: not in the copy."""
    names = [
        r[0]
        for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
        if "__etlrun_stage" in r[0]
    ]
    for name in names:
        db.execute('DROP TABLE "{}"'.format(name.replace('"', '""')))
    if names:
        db.commit()
        db.execute("VACUUM")  # the copy as small as the old database
