"""etlrun against the physical baselines (and, optionally, its peers) on the standard workloads.

    .venv/bin/python bench/run.py [--rows N] [--repeat 3] [--workloads W1,W1S,W2,W3] [--keep]
                                  [--markdown] [--memory-check [--rows-list 1000000,5000000]]

Generates the deterministic ``events`` table (bench/_data.py) in PostgreSQL and MariaDB, then runs
each workload ``--repeat`` times, alternating etlrun with the baseline (and the peers), and prints
the median wall seconds, rows/s, peak RSS of the measured process tree and the ratio to the
baseline. Every run's target is counted and its ids summed: a run that copied nothing fails.
Results also go to bench/.work/results.json. A benchmark, not a test: it asserts nothing.

W1 PostgreSQL -> PostgreSQL   baseline: psql COPY TO STDOUT (FORMAT binary) | psql COPY FROM STDIN
W2 MariaDB -> SQLite          baseline: bench/baseline_w2.py (streaming cursor + executemany)
W3 PostgreSQL -> Parquet      baseline: bench/baseline_w3.py (ADBC record batches + ParquetWriter)
W1S W1 with sanitize rules    baseline: etlrun's own W1 without them (the cost of sanitizing)
C1-C4 changes, PostgreSQL -> PostgreSQL: incremental checksum / cursor and `etlrun check` against
      the native full copy and the native delta (bench/_changes.py)
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _changes  # noqa: E402
from _data import (  # noqa: E402
    MY_DB,
    PG,
    PG_DST,
    PG_SRC,
    expected,
    my_drop_db,
    my_generate,
    pg_connect,
    pg_ddl,
    pg_drop_db,
    pg_generate,
)
from _measure import (  # noqa: E402
    Result,
    Tool,
    add_ratios,
    as_json,
    measure,
    parquet_count,
    pg_count,
    print_table,
    rm,
    sqlite_count,
    summarize,
)
from _peers import peer_tools  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
BENCH, WORK = ROOT / "bench", ROOT / "bench" / ".work"
VENV_PY, ETLRUN = ROOT / ".venv/bin/python", ROOT / ".venv/bin/etlrun"
PSQL = "psql -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -U postgres"

# Rows per chunk task, measured at 1M rows, 2 workers, medians of 3 (two rounds, on a busy
# machine): W1 125000 -> 1.80x and 1.81x the baseline, 250000 -> 1.30x and 1.51x: 250000 kept.
# W2 125000 -> 1.73x, 250000 -> 1.70x: no difference beyond noise; 250000 kept. (Since then a
# SQLite target runs one chunk at a time: 100000 and 250000 took the same time, and peak RSS
# within 10 MB, 1M rows, 4 runs under load.)
CHUNK_ROWS = {"W1": 250_000, "W2": 250_000}
WORKERS = 2  # the machine has 2 cores
BENCH_LOCK = 0x65746C72  # one bench run at a time per server, whatever checkout it runs from

# etlrun's W3 target: one Parquet file per table (split: table, the default)
ETLRUN_W3_TARGET = (f"file://{WORK}/w3/", {"format": "parquet"})

SPEC = """\
# written by bench/run.py: {workload}, {note}
version: 1
job: bench-{name}
source: {source}
target: {target}
workers: {workers}
defaults:
  chunk_rows: {chunk_rows}{extra}
tables: [events]
"""
# W1S: W1 with one keyed hash, one mask and one fake, each on a text column whose values are
# (nearly) all distinct, so no rule is cheap by repetition. Issue 5: at most 1.25x plain W1.
SANITIZE = """\
sanitize:
  key: ${SANITIZE_KEY}
  rules:
    email: hash
    note: {mask: {keep_last: 4}}
    label: {fake: name}
"""


def pg_reset(*sql: str) -> None:
    with pg_connect(PG_DST) as conn:
        for statement in sql:
            conn.execute(statement)
        conn.execute("CHECKPOINT")  # the previous run's dirty pages are not this run's cost


def etlrun_tool(
    workload: str,
    target: str,
    reset,
    verify,
    chunk_rows: int,
    extra=None,
    executor="threads",
    tail: str = "",
) -> Tool:
    spec = WORK / f"{workload.lower()}.yaml"
    source = f"mariadb://root@127.0.0.1:3306/{MY_DB}" if workload == "W2" else f"{PG}/{PG_SRC}"
    note = f"chunk_rows {chunk_rows}" + (
        " (set by --chunk-rows)"
        if chunk_rows != CHUNK_ROWS.get(workload.rstrip("S"))
        else " (see CHUNK_ROWS in bench/run.py)"
    )
    extra = "".join(f"\n  {k}: {v}" for k, v in (extra or {}).items())
    spec.write_text(
        SPEC.format(workload=workload, name=workload.lower(), workers=WORKERS, note=note,
                    chunk_rows=chunk_rows, source=source, target=target, extra=extra) + tail
    )  # fmt: skip
    state = f"sqlite:///{WORK}/state.db"
    command = [ETLRUN, "run", spec, "--fresh", "--state", state]
    if executor == "threads":
        return Tool("etlrun", command, reset, verify)
    address = DASK_CLUSTER.address() if executor == "dask" else None
    name = f"etlrun {executor}"  # also names the log file: no '/'
    detail = "dask://, a 2-worker cluster started beforehand; RSS: the driver" if address else ""
    return Tool(name, [*command, "--executor", address or executor], reset, verify, detail=detail)


class _Cluster:
    """The 2-worker cluster ``--executor dask://`` runs on, started once (not timed), stopped at
    exit. Like a cluster a team already runs: its start is not part of a run's cost."""

    def __init__(self) -> None:
        self.cluster = None

    def address(self) -> str:
        if self.cluster is None:
            import distributed

            self.cluster = distributed.LocalCluster(
                n_workers=WORKERS, threads_per_worker=1, processes=True,
                dashboard_address=None, scheduler_kwargs={"dashboard_address": ":0"},
            )  # fmt: skip
        host, port = self.cluster.scheduler_address.removeprefix("tcp://").rsplit(":", 1)
        return f"dask://{host}:{port}"

    def close(self) -> None:
        if self.cluster is not None:
            self.cluster.close()


DASK_CLUSTER = _Cluster()


def baseline_python() -> tuple[Path, str]:
    """The interpreter for W2's baseline: bench/.work/baseline-venv with mysqlclient when it
    builds here (needs `apt-get install libmariadb-dev pkg-config`), else the project's
    (PyMySQL)."""
    venv, failed = WORK / "baseline-venv", WORK / "baseline-venv.failed"
    python = venv / "bin" / "python"
    check = [str(python), "-c", "import MySQLdb"]
    if python.exists() and subprocess.run(check, capture_output=True).returncode == 0:
        return python, ""
    if failed.exists():
        return VENV_PY, f"mysqlclient did not install earlier (see {failed}; delete it to retry)"
    print("W2: installing mysqlclient into bench/.work/baseline-venv (once) ...", flush=True)
    rm(venv)
    steps = [[sys.executable, "-m", "venv", str(venv)],
             [str(venv / "bin/pip"), "install", "--quiet", "mysqlclient"]]  # fmt: skip
    for step in steps:
        done = subprocess.run(step, capture_output=True, text=True, timeout=900)
        if done.returncode != 0:
            failed.write_text(done.stdout + done.stderr)
            return VENV_PY, f"mysqlclient did not install (see {failed}): using PyMySQL"
    return python, ""


def workload_tools(workload: str, rows: int, args: argparse.Namespace) -> list[Tool]:
    """The baseline first, then etlrun, then the peers."""
    chunk = args.chunk_rows or CHUNK_ROWS.get(workload.rstrip("S"), 250_000)
    if workload == "W1S":  # the same copy with and without the rules: the ratio is their cost
        plain = etlrun_tool("W1", f"{PG}/{PG_DST}", lambda: pg_reset("DROP TABLE IF EXISTS events"),
                            lambda: pg_count(PG_DST, "events"), chunk)  # fmt: skip
        plain.name, plain.detail = "baseline", "etlrun W1 without sanitize"
        sanitized = etlrun_tool("W1S", f"{PG}/{PG_DST}", plain.reset, plain.verify, chunk,
                                tail=SANITIZE)  # fmt: skip
        sanitized.detail = "hash + mask + fake"
        sanitized.env = {"SANITIZE_KEY": "bench-sanitize-key-0123456789abcdef"}
        # a sanitized chunk must be decoded: the plain copy's undecoded binary COPY pipe is not
        # open to it. This row is the plain copy through Arrow too: the cost of the rules alone
        arrow = etlrun_tool("W1", f"{PG}/{PG_DST}", plain.reset, plain.verify, chunk)
        arrow.name, arrow.detail = "etlrun Arrow", "W1 without sanitize, ETLRUN_PG_PIPE=0"
        arrow.env = {"ETLRUN_PG_PIPE": "0"}
        return [plain, arrow, sanitized]
    if workload.startswith("C"):
        return _changes.tools(workload, rows, WORK, ETLRUN)
    if workload == "W1":
        copy_out = f'{PSQL} -d {PG_SRC} -c "COPY events TO STDOUT (FORMAT binary)"'
        copy_in = f'{PSQL} -d {PG_DST} -c "COPY events_copy FROM STDIN (FORMAT binary)"'
        tools = [
            Tool("baseline", f"{copy_out} | {copy_in}",
                 lambda: pg_reset("DROP TABLE IF EXISTS events_copy", pg_ddl("events_copy")),
                 lambda: pg_count(PG_DST, "events_copy"), detail="psql COPY binary pipe"),
            *(etlrun_tool("W1", f"{PG}/{PG_DST}", lambda: pg_reset("DROP TABLE IF EXISTS events"),
                          lambda: pg_count(PG_DST, "events"), chunk, executor=executor)
              for executor in args.executors.split(",") if executor),
        ]  # fmt: skip
    elif workload == "W2":
        python, note = baseline_python()
        if note:
            print(f"W2: {note}")
        base, db = WORK / "w2_baseline.db", WORK / "w2.db"
        tools = [
            Tool("baseline", [python, BENCH / "baseline_w2.py", base], lambda: rm(base),
                 lambda: sqlite_count(base)),
            etlrun_tool("W2", f"sqlite:///{db}", lambda: rm(db), lambda: sqlite_count(db), chunk),
        ]  # fmt: skip
    else:
        base, out = WORK / "w3_baseline.parquet", WORK / "w3"
        tools = [
            Tool("baseline", [VENV_PY, BENCH / "baseline_w3.py", base, "2"], lambda: rm(base),
                 lambda: parquet_count(base), detail="ADBC, 2 streams"),
        ]  # fmt: skip
        if ETLRUN_W3_TARGET:
            target, extra = ETLRUN_W3_TARGET
            tools.append(etlrun_tool("W3", target, lambda: rm(out), lambda: parquet_count(out),
                                     chunk, extra))  # fmt: skip
    peers = os.environ.get("ETLRUN_BENCH_PEERS")
    if peers:
        tools += peer_tools(Path(peers), workload, WORK)
    return tools


def run_workload(workload: str, rows: int, repeat: int, args, only=None) -> list[Result]:
    tools = [t for t in workload_tools(workload, rows, args) if only is None or t.name in only]
    runs: dict[str, list] = {t.name: [] for t in tools}
    for i in range(repeat):
        for tool in tools:  # alternating: baseline, etlrun, peers, baseline, ...
            log = WORK / "logs" / f"{workload}-{tool.name}-{rows}-{i + 1}.log"
            run = measure(tool, log, expected(rows), ROOT)
            runs[tool.name].append(run)
            if tool.name == "baseline" and not tool.detail and log.exists():
                first = log.read_text().splitlines()[:1]
                tool.detail = first[0].removeprefix("driver: ") if first else ""
            status = run.error or f"{run.seconds:.2f} s, {run.rss_mb:.0f} MB"
            print(f"  {workload} {tool.name:9} run {i + 1}/{repeat}: {status}", flush=True)
    results = [summarize(workload, t, runs[t.name], rows) for t in tools]
    if workload == "W3" and not ETLRUN_W3_TARGET:
        print("  W3 etlrun: n/a (no file target yet)", flush=True)
        results.insert(1, Result("W3", "etlrun", "n/a: no file target yet", []))
    return results


def generate(rows: int, workloads: list[str], keep: bool) -> None:
    start = time.perf_counter()
    made = []
    if {"W1", "W1S", "W3", "C1", "C2", "C3", "C4"} & set(workloads):
        made += ["PostgreSQL"] if pg_generate(rows, keep) else []
    if "W2" in workloads:
        made += ["MariaDB"] if my_generate(rows, keep) else []
    if any(w.startswith("C") for w in workloads):
        _changes.prepare(rows, WORK, ETLRUN)  # events_mut and the targets' first load
    took = time.perf_counter() - start
    print(f"events, {rows:,} rows: " + (f"generated in {', '.join(made)} in {took:.1f} s"
          if made else "kept from an earlier run (--keep)"))  # fmt: skip


def cleanup() -> None:
    """Without --keep: drop what was generated and written (logs and results stay)."""
    pg_drop_db(PG_SRC)
    pg_drop_db(PG_DST)
    my_drop_db()
    for path in WORK.glob("w[123]*"):
        if path.suffix != ".yaml":
            rm(path)


def memory_check(args, workloads: list[str]) -> dict:
    sizes = [int(n) for n in args.rows_list.split(",")]
    peaks: dict[str, list[float]] = {w: [] for w in workloads}
    for rows in sizes:
        generate(rows, workloads, keep=True)
        for w in workloads:
            found = run_workload(w, rows, args.repeat, args, only={"etlrun"})
            result = (
                found[0] if found and found[0].runs else Result(w, "etlrun", "", [], error="n/a")
            )
            if result.error:
                print(f"  {w} etlrun at {rows:,} rows failed: {result.error}")
            peaks[w].append(result.peak_rss_mb or float("nan"))
    report = {}
    for w, mbs in peaks.items():
        growth = (mbs[-1] / mbs[0] - 1) * 100
        verdict = "ok" if growth <= 10 and max(mbs) <= 300 else "over the issue-3 limits"
        sizes_text = ", ".join(f"{r:,} rows: {mb:.0f} MB" for r, mb in zip(sizes, mbs, strict=True))
        print(f"memory {w} etlrun peak RSS: {sizes_text}; growth {growth:+.1f}% "
              f"(limit +10%, 300 MB): {verdict}")  # fmt: skip
        report[w] = {"rows": sizes, "peak_rss_mb": mbs, "growth_pct": round(growth, 1)}
    return report


def byte_compile() -> None:
    """Compile etlrun's modules the way installing a wheel does. This checkout is installed
    editable, and where PYTHONDONTWRITEBYTECODE is set (as on the 2-core bench machine) every
    command compiled them again: ~40 ms of each etlrun run that an installed etlrun never pays."""
    subprocess.run([VENV_PY, "-m", "compileall", "-q", str(ROOT / "runner")], check=True,
                   stdout=subprocess.DEVNULL)  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--workloads", default="W1,W1S,W2,W3,C1,C2,C3,C4", help="comma-separated")
    parser.add_argument("--keep", action="store_true", help="keep generated data between runs")
    parser.add_argument("--markdown", action="store_true", help="print the table as Markdown")
    parser.add_argument(
        "--memory-check", action="store_true",
        help="etlrun's peak RSS at each --rows-list size (default workload W1)",
    )  # fmt: skip
    parser.add_argument("--rows-list", default="1000000,5000000")
    parser.add_argument("--chunk-rows", type=int, help="override the specs' chunk_rows")
    parser.add_argument(
        "--executors", default="threads,dask-local:2,dask",
        help="W1's etlrun executors: threads, dask-local:N, dask (a pre-started 2-worker cluster)",
    )  # fmt: skip
    args = parser.parse_args()
    workloads = [w.strip().upper() for w in args.workloads.split(",") if w.strip()]
    if args.memory_check and args.workloads == parser.get_default("workloads"):
        workloads = ["W1"]
    (WORK / "logs").mkdir(parents=True, exist_ok=True)
    byte_compile()
    if not os.environ.get("ETLRUN_BENCH_PEERS"):
        print("peers: set ETLRUN_BENCH_PEERS to a folder with sling/, ingestr/, dlt/ virtualenvs "
              "to run them too (see bench/_peers.py)")  # fmt: skip
    load = os.getloadavg()[0]  # other work on the machine skews every number: say how much
    out: dict = {"rows": args.rows, "repeat": args.repeat, "workloads": workloads, "load": load}
    lock = pg_connect("postgres")  # held until exit: bench runs share the servers' databases
    if not lock.execute("SELECT pg_try_advisory_lock(%s)", [BENCH_LOCK]).fetchone()[0]:
        print(f"waiting for another bench run (it holds PostgreSQL advisory lock {BENCH_LOCK})")
        lock.execute("SELECT pg_advisory_lock(%s)", [BENCH_LOCK])
    try:
        if args.memory_check:
            out = {"memory_check": memory_check(args, workloads), **out}
        else:
            generate(args.rows, workloads, args.keep)
            results: list[Result] = []
            for w in workloads:
                results += run_workload(w, args.rows, args.repeat, args)
            add_ratios(results)
            title = (f"{args.rows:,} rows, median of {args.repeat}, {os.cpu_count()} cores, "
                     f"load average {load:.1f} at the start")  # fmt: skip
            print_table(results, title, args.markdown)
            out["results"] = as_json(results)
    finally:
        DASK_CLUSTER.close()
        if not args.keep:
            cleanup()
    path = WORK / ("memory.json" if args.memory_check else "results.json")
    path.write_text(json.dumps(out, indent=2) + "\n")
    print(f"results: {path}")


if __name__ == "__main__":
    main()
