"""``etlrun schedule`` as a real process: --list, --once running a real sqlite job, SIGTERM."""

from __future__ import annotations

import os
import queue
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from conftest import REPO, run_cli

from runner.schedule import StateRecord


def job(folder: Path, name: str, schedule: str | None, table: str = "items") -> Path:
    folder.mkdir(exist_ok=True)
    path = folder / f"{name}.yaml"
    lines = ["source: sqlite:///src.db", "target: sqlite:///dst.db", f"tables: [{table}]"]
    if schedule is not None:
        lines.insert(2, f"schedule: {schedule}")
    path.write_text("\n".join(lines) + "\n")
    return path


def source(tmp_path: Path, rows: int = 25) -> None:
    with sqlite3.connect(tmp_path / "src.db") as conn:
        conn.execute("CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT NOT NULL)")
        conn.executemany("INSERT INTO items VALUES (?, ?)", [(i, f"n{i}") for i in range(rows)])
    conn.close()


def test_validate_reports_a_bad_cron_and_zone_at_file_line(tmp_path: Path) -> None:
    job(tmp_path / "jobs", "cron", "'61 * * * *'")
    job(tmp_path / "jobs", "zone", "{cron: '0 2 * * *', timezone: Europe/Olso}")
    result = run_cli("validate", "jobs", cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    assert (
        "jobs/cron.yaml:3:11: schedule: '61 * * * *' is not a valid cron expression "
        "(minute hour day month weekday)" in result.stdout
    )
    assert (
        "jobs/zone.yaml:3:41: schedule.timezone: unknown time zone 'Europe/Olso' "
        "(did you mean 'Europe/Oslo'?); use an IANA name like Europe/Oslo" in result.stdout
    )


def test_list_prints_next_fire_times_in_zone_and_utc(tmp_path: Path) -> None:
    job(tmp_path / "jobs", "noon", "{cron: '0 12 * * *', timezone: Europe/Oslo}")
    job(tmp_path / "jobs", "adhoc", None)
    before = datetime.now(UTC)
    result = run_cli("schedule", "--list", "--count", "3", "jobs", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    oslo = ZoneInfo("Europe/Oslo")
    local = before.astimezone(oslo)
    noon = local.replace(hour=12, minute=0, second=0, microsecond=0)
    if noon <= local:
        noon = (noon + timedelta(days=1)).replace(hour=12)
    days = [(noon.replace(tzinfo=None) + timedelta(days=d)).replace(tzinfo=oslo) for d in range(3)]
    assert result.stdout.splitlines() == [
        "adhoc  (jobs/adhoc.yaml)  unscheduled",
        "noon  (jobs/noon.yaml)  '0 12 * * *' Europe/Oslo",
        *(f"  {d:%Y-%m-%d %H:%M %Z %z}   {d.astimezone(UTC):%Y-%m-%d %H:%M} UTC" for d in days),
    ]


def test_once_runs_a_due_job_once(tmp_path: Path) -> None:
    source(tmp_path)
    job(tmp_path / "jobs", "hourly", "'0 * * * *'")  # with a 61-minute window: always due
    job(tmp_path / "jobs", "nightly", "{cron: '0 3 1 1 *', timezone: Europe/Oslo}")
    job(tmp_path / "jobs", "adhoc", None)
    hour = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    first = run_cli("schedule", "--once", "--window", "61", "jobs", cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    with sqlite3.connect(tmp_path / "dst.db") as conn:
        assert conn.execute("SELECT count(*), max(name) FROM items").fetchone() == (25, "n9")
    conn.close()
    due = f"{hour:%Y-%m-%d %H:%M} UTC"
    assert f"hourly: started the run due at {due}" in first.stderr
    assert f"hourly: run due at {due} exited 0: ok" in first.stderr
    assert "nightly: not due; next run" in first.stderr
    assert "adhoc" not in first.stderr

    again = run_cli("schedule", "--once", "--window", "61", "jobs", cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    if datetime.now(UTC).replace(minute=0, second=0, microsecond=0) == hour:
        assert f"hourly: the run due at {due} was already run; skipped" in again.stderr
        assert "started" not in again.stderr


def test_once_exits_with_the_worst_child_code(tmp_path: Path) -> None:
    source(tmp_path)
    job(tmp_path / "jobs", "good", "'* * * * *'")
    job(tmp_path / "jobs", "missing", "'* * * * *'", table="no_such_table")
    result = run_cli("schedule", "--once", "--window", "2", "jobs", cwd=tmp_path)
    assert result.returncode == 1, result.stderr
    assert "exited 0: ok" in result.stderr
    assert "missing: run due at" in result.stderr and "exited 1: failed (exit 1" in result.stderr


def test_once_with_an_invalid_spec_runs_the_rest_and_exits_2(tmp_path: Path) -> None:
    source(tmp_path)
    job(tmp_path / "jobs", "good", "'* * * * *'")
    job(tmp_path / "jobs", "bad", "'61 * * * *'")
    result = run_cli("schedule", "--once", "--window", "2", "jobs", cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    assert "jobs/bad.yaml:3:11: schedule: '61 * * * *' is not a valid cron" in result.stderr
    assert "good: run due at" in result.stderr and "exited 0: ok" in result.stderr


def test_missing_path_is_a_usage_error(tmp_path: Path) -> None:
    result = run_cli("schedule", "nowhere", cwd=tmp_path)
    assert result.returncode == 2
    assert "nowhere: no such file or folder" in result.stderr


class Loop:
    """``python -m runner schedule ARGS`` in the background, its log lines read as they come."""

    def __init__(self, cwd: Path, *args: str) -> None:
        pythonpath = os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "runner", "schedule", *args],
            cwd=cwd,
            env=dict(os.environ, PYTHONPATH=pythonpath),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.lines: list[str] = []
        self._queue: queue.Queue[str] = queue.Queue()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self._queue.put(line)

    def wait_for(self, text: str, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while not any(text in line for line in self.lines):
            self.lines.append(self._queue.get(timeout=max(0.1, deadline - time.monotonic())))

    def stop(self, signum: int = signal.SIGTERM) -> tuple[int, float]:
        """Send ``signum``; the exit code and the seconds it took to exit."""
        self.proc.send_signal(signum)
        sent = time.monotonic()
        try:
            code = self.proc.wait(timeout=10)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
        took = time.monotonic() - sent
        self._reader.join(timeout=5)
        while not self._queue.empty():
            self.lines.append(self._queue.get())
        return code, took


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_signal_stops_an_idle_loop_cleanly(tmp_path: Path, signum: int) -> None:
    job(tmp_path / "jobs", "yearly", "{cron: '0 3 1 1 *', timezone: Europe/Oslo}")
    loop = Loop(tmp_path, "jobs")
    loop.wait_for("yearly: '0 3 1 1 *' Europe/Oslo; next run")
    code, took = loop.stop(signum)
    assert code == 0 and took < 3, loop.lines
    assert any("scheduler stopped" in line for line in loop.lines), loop.lines


def test_loop_runs_a_catch_up_in_a_child_process(tmp_path: Path) -> None:
    source(tmp_path)
    job(tmp_path / "jobs", "hourly", "{cron: '0 * * * *', catchup: true}")
    yesterday = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(days=1)
    assert StateRecord().claim("hourly", yesterday, "ok")  # the store of ETLRUN_STATE
    loop = Loop(tmp_path, "jobs")
    loop.wait_for("hourly: run due at")
    code, _ = loop.stop()
    assert code == 0, loop.lines
    assert any("catchup: true, running it once" in line for line in loop.lines), loop.lines
    assert any("exited 0: ok" in line for line in loop.lines), loop.lines
    with sqlite3.connect(tmp_path / "dst.db") as conn:
        assert conn.execute("SELECT count(*) FROM items").fetchone() == (25,)
    conn.close()
