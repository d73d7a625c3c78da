"""Running one measured command, checking what it copied, and printing the results."""

from __future__ import annotations

import os
import re
import shutil
import sqlite3
import statistics
import subprocess
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import pyarrow.compute as pc
import pyarrow.dataset as ds
from _data import pg_connect


@dataclass
class Tool:
    """One way of running a workload: the command, what resets its target, what checks it."""

    name: str
    command: list[str] | str  # a str runs under `bash -c` (pipelines)
    reset: Callable[[], None]  # untimed, before every run
    verify: Callable[[], tuple[int, int]]  # (rows, sum of ids) found in the target
    env: dict[str, str] = field(default_factory=dict)
    detail: str = ""  # shown beside the name, e.g. the baseline's driver


@dataclass
class Run:
    seconds: float
    rss_mb: float
    error: str | None = None


TIME = shutil.which("time", path="/usr/bin:/bin")  # GNU time (Debian package `time`)


def measure(tool: Tool, log: Path, expected: tuple[int, int], cwd: Path) -> Run:
    """Run ``tool`` once: wall seconds, and the peak RSS of its process tree.

    The RSS is ``ru_maxrss`` from wait4: the largest of the process and of every descendant it
    waited for. Linux carries a process's peak over exec, so a child forked straight from this
    runner would report the runner's own RSS (~100 MB of pyarrow) as its floor; the command is
    therefore started by GNU time (1 MB), whose wait4 of it is what ``%M`` prints.
    """
    tool.reset()
    argv = tool.command
    if isinstance(argv, str):
        argv = ["bash", "-o", "pipefail", "-c", argv]
    rss_file = log.with_suffix(".rss")
    if TIME:
        argv = [TIME, "-f", "%M", "-o", rss_file, *argv]
    with open(log, "w") as out:
        start = time.perf_counter()
        proc = subprocess.Popen(
            [str(a) for a in argv], stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
            env={**os.environ, **tool.env}, cwd=cwd,
        )  # fmt: skip
        _, status, usage = os.wait4(proc.pid, 0)
        seconds = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    rss_kb = int(rss_file.read_text().split()[-1]) if TIME else usage.ru_maxrss
    run = Run(round(seconds, 3), round(rss_kb / 1024, 1))
    if proc.returncode != 0:
        run.error = f"exit {proc.returncode}: {error_lines(log)}"
        return run
    try:
        found = tool.verify()
    except Exception as exc:  # the target is missing or unreadable: the run copied nothing
        run.error = f"verification failed: {type(exc).__name__}: {exc}"
        return run
    if tuple(found) != expected:
        run.error = f"target has {found[0]} rows, id sum {found[1]}; expected {expected}"
    return run


def rm(path: Path) -> None:
    """A target file or folder, and SQLite's journal files beside it."""
    if path.is_dir():
        shutil.rmtree(path)
    for p in (path, Path(f"{path}-journal"), Path(f"{path}-wal"), Path(f"{path}-shm")):
        p.unlink(missing_ok=True)


def error_lines(log: Path) -> str:
    """The lines of a failed run's output that say what went wrong (ANSI colours removed)."""
    lines = [re.sub(r"\x1b\[[0-9;]*m", "", line).strip() for line in log.read_text().splitlines()]
    lines = [line for line in lines if line]
    errors = [line for line in lines if re.search(r"error|fatal|failed|exception", line, re.I)]
    return " | ".join((errors or lines)[-4:])


def pg_count(db: str, table: str) -> tuple[int, int]:
    with pg_connect(db) as conn:
        return conn.execute(f"SELECT count(*), coalesce(sum(id), 0) FROM {table}").fetchone()


def sqlite_count(path: Path, table: str = "events") -> tuple[int, int]:
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as conn:
        return conn.execute(f"SELECT count(*), coalesce(sum(id), 0) FROM {table}").fetchone()


def parquet_count(path: Path) -> tuple[int, int]:
    """A Parquet file, or a folder of them (peers write one file per load)."""
    ids = ds.dataset(path, format="parquet").to_table(columns=["id"])["id"]
    return len(ids), pc.sum(ids).as_py() or 0


@dataclass
class Result:
    workload: str
    tool: str
    detail: str
    runs: list[Run]
    median_s: float | None = None
    rows_per_s: float | None = None
    peak_rss_mb: float | None = None
    x_baseline: float | None = None
    error: str | None = None


def summarize(workload: str, tool: Tool, runs: list[Run], rows: int) -> Result:
    result = Result(workload, tool.name, tool.detail, runs)
    failed = [r for r in runs if r.error]
    if failed:
        result.error = failed[0].error
        return result
    result.median_s = round(statistics.median(r.seconds for r in runs), 3)
    result.rows_per_s = round(rows / result.median_s) if result.median_s else None
    result.peak_rss_mb = max(r.rss_mb for r in runs)
    return result


def add_ratios(results: list[Result]) -> None:
    base = {r.workload: r.median_s for r in results if r.tool == "baseline" and r.median_s}
    for r in results:
        if r.median_s and base.get(r.workload):
            r.x_baseline = round(r.median_s / base[r.workload], 2)


HEADER = ("workload", "tool", "median s", "rows/s", "peak RSS MB", "x baseline")


def cells(r: Result) -> tuple[str, ...]:
    tool = f"{r.tool} ({r.detail})" if r.detail else r.tool
    if r.error:
        return (r.workload, tool, "failed", "-", "-", "-")
    if r.median_s is None:
        return (r.workload, tool, "n/a", "-", "-", "-")
    return (
        r.workload, tool, f"{r.median_s:.2f}", f"{r.rows_per_s:,.0f}", f"{r.peak_rss_mb:.0f}",
        f"{r.x_baseline:.2f}" if r.x_baseline is not None else "-",
    )  # fmt: skip


def print_table(results: list[Result], title: str, markdown: bool) -> None:
    rows = [cells(r) for r in results]
    if markdown:
        print(f"\n{title}\n")
        print("| " + " | ".join(HEADER) + " |")
        print("|" + "|".join("---" if i < 2 else "---:" for i in range(len(HEADER))) + "|")
        for row in rows:
            print("| " + " | ".join(row) + " |")
    else:
        from rich.console import Console
        from rich.table import Table

        table = Table(title=title)
        for i, name in enumerate(HEADER):
            table.add_column(name, justify="left" if i < 2 else "right")
        for row in rows:
            table.add_row(*row)
        Console(width=120).print(table)
    for r in results:
        if r.error:
            print(f"  {r.workload} {r.tool} failed: {r.error}")


def as_json(results: list[Result]) -> list[dict]:
    return [asdict(r) for r in results]
