"""sling, ingestr and dlt on the same workloads, each from its own virtualenv under
``$ETLRUN_BENCH_PEERS`` (``sling/``, ``ingestr/``, ``dlt/``; each optional). PEERS.md says how to
install them without run-time downloads:

    python3 -m venv $P/sling   && $P/sling/bin/pip install sling-linux-amd64==1.4.11
    python3 -m venv $P/ingestr && $P/ingestr/bin/pip install ingestr==1.1.22
    python3 -m venv $P/dlt     && $P/dlt/bin/pip install pyarrow connectorx pymysql \\
        "dlt[postgres,sql_database,parquet,sqlalchemy]"

Each writes its own target (``events_<peer>`` in PostgreSQL, ``w2_<peer>.db``, ``w3_<peer>``),
which is dropped before every run and counted after it.
"""

from __future__ import annotations

from pathlib import Path

from _data import PG, PG_DST, PG_SRC, pg_connect
from _measure import Tool, parquet_count, pg_count, rm, sqlite_count

NOSSL = "?sslmode=disable"


def _drop_pg(name: str, schema: bool = False) -> None:
    with pg_connect(PG_DST) as conn:
        conn.execute(f"DROP {'SCHEMA' if schema else 'TABLE'} IF EXISTS {name} CASCADE")
        conn.execute("CHECKPOINT")


def _sling(venv: Path, workload: str, work: Path) -> Tool | None:
    found = sorted(venv.glob("lib/python*/site-packages/sling_linux_amd64/bin/sling*"))
    if not found:
        return None
    env = {
        "SLING_HOME_DIR": str(work / "sling-home"),
        "PG_SRC": f"{PG}/{PG_SRC}{NOSSL}",
        "PG_DST": f"{PG}/{PG_DST}{NOSSL}",
        "MY_SRC": "mysql://root@127.0.0.1:3306/etlrun_bench",
    }
    stream = "etlrun_bench.events" if workload == "W2" else "public.events"
    cmd = [str(found[0]), "run", "--src-stream", stream, "--mode", "full-refresh"]
    if workload == "W1":
        cmd += [
            "--src-conn",
            "PG_SRC",
            "--tgt-conn",
            "PG_DST",
            "--tgt-object",
            "public.events_sling",
        ]
        return Tool("sling", cmd, lambda: _drop_pg("events_sling"),
                    lambda: pg_count(PG_DST, "events_sling"), env)  # fmt: skip
    if workload == "W2":
        db = work / "w2_sling.db"
        # Debian's sqlite3 CLI gives sling its bulk path (else it inserts row by row)
        env |= {"SQLITE_DST": f"sqlite://{db}", "SQLITE_PATH": "/usr/bin/sqlite3"}
        cmd += ["--src-conn", "MY_SRC", "--tgt-conn", "SQLITE_DST", "--tgt-object", "main.events"]
        return Tool("sling", cmd, lambda: rm(db), lambda: sqlite_count(db), env)
    out = work / "w3_sling.parquet"
    env["SLING_DUCKDB_COMPUTE"] = "false"  # its DuckDB path would download DuckDB
    cmd += ["--src-conn", "PG_SRC", "--tgt-object", f"file://{out}",
            "--tgt-options", '{"format": "parquet"}']  # fmt: skip
    return Tool("sling", cmd, lambda: rm(out), lambda: parquet_count(out), env)


def _ingestr(venv: Path, workload: str, work: Path) -> Tool | None:
    exe = venv / "bin" / "ingestr"
    if not exe.exists():
        return None
    pipelines = str(work / "ingestr-pipelines")
    cmd = [str(exe), "ingest", "--yes", "--progress", "log", "--pipelines-dir", pipelines]
    source, table = f"{PG}/{PG_SRC}{NOSSL}", "public.events"
    if workload == "W1":
        cmd += ["--dest-uri", f"{PG}/{PG_DST}{NOSSL}", "--dest-table", "public.events_ingestr"]
        reset = lambda: _drop_pg("events_ingestr")  # noqa: E731
        verify = lambda: pg_count(PG_DST, "events_ingestr")  # noqa: E731
    elif workload == "W2":
        db = work / "w2_ingestr.db"
        source, table = "mysql://root@127.0.0.1:3306/etlrun_bench", "etlrun_bench.events"
        cmd += ["--dest-uri", f"sqlite:///{db}", "--dest-table", "main.events"]
        staging = work / "w2_ingestr__bruin_staging.db"  # ingestr's staging database
        reset, verify = lambda: [rm(db), rm(staging)], lambda: sqlite_count(db)
    else:
        out = work / "w3_ingestr.parquet"
        cmd += ["--dest-uri", f"parquet://{out}", "--dest-table", "events"]
        reset, verify = lambda: rm(out), lambda: parquet_count(out)
    cmd += ["--source-uri", source, "--source-table", table]
    return Tool("ingestr", cmd, reset, verify)


def _dlt(venv: Path, workload: str, work: Path) -> Tool | None:
    python = venv / "bin" / "python"
    if not python.exists():
        return None
    script = Path(__file__).with_name("peer_dlt.py")
    pipelines = work / "dlt-pipelines"
    env = {"RUNTIME__DLTHUB_TELEMETRY": "false", "DLT_DATA_DIR": str(work / "dlt-data")}
    if workload == "W1":
        target = f"postgresql://postgres:unused@127.0.0.1:5432/{PG_DST}"  # dlt wants a password
        reset, verify = (
            lambda: _drop_pg("bench_dlt", schema=True),
            lambda: pg_count(PG_DST, "bench_dlt.events"),
        )
    elif workload == "W2":
        db = work / "w2_dlt.db"
        target, reset, verify = str(db), lambda: rm(db), lambda: sqlite_count(db)
    else:
        out = work / "w3_dlt"
        target, reset = str(out), lambda: rm(out)
        verify = lambda: parquet_count(out / "bench_dlt" / "events")  # noqa: E731

    def reset_all() -> None:
        rm(pipelines)  # dlt keeps pipeline state: start every run from nothing
        reset()

    return Tool("dlt", [str(python), str(script), workload, target, str(pipelines)],
                reset_all, verify, env)  # fmt: skip


def peer_tools(peers: Path, workload: str, work: Path) -> list[Tool]:
    tools = []
    for name, make in (("ingestr", _ingestr), ("sling", _sling), ("dlt", _dlt)):
        if (peers / name).is_dir() and (tool := make(peers / name, workload, work)):
            tools.append(tool)
    return tools
