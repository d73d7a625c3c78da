"""``etlrun restore MANIFEST --target URL``: load a backup back into a database.

Every file the manifest lists is read back first and checked (sha256 and row count); one bad
file and nothing is loaded. The verified files are then staged in a local DuckDB database and
loaded through the normal copy path (a staging table, then the swap, or ``if_exists``), so a
restore is a job run like any other: chunked, resumable, recorded in the state store.
"""

from __future__ import annotations

import json
import os
import posixpath
import tempfile
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import pyarrow as pa

from runner.connectors.fs import FsConnector, read_table
from runner.errors import SpecError, UsageError, VerifyError
from runner.plan.types import arrow_from_str


@dataclass
class Backup:
    """A manifest, and the file store its paths are relative to."""

    manifest: dict[str, Any]
    store: FsConnector


def _as_url(location: str) -> str:
    if "://" in location:
        return location
    return "file://" + os.path.abspath(location)


def open_manifest(location: str) -> Backup:
    """Read the manifest at ``location`` (a path or a file store URL)."""
    url = _as_url(location)
    parts = urlsplit(url)
    folder, name = posixpath.split(parts.path)
    store = FsConnector(parts._replace(path=folder + "/").geturl())
    try:
        manifest = json.loads(store.read_bytes(name))
    except FileNotFoundError:
        raise UsageError(f"no manifest at {store.display_url}{name}") from None
    except ValueError as exc:
        raise VerifyError(f"{location}: not a manifest ({exc})") from None
    if not isinstance(manifest, dict) or manifest.get("etlrun_manifest") != 1:
        raise VerifyError(f"{location}: not an etlrun manifest")
    # file paths are relative to the backup's root: the manifest's own path below it is known
    relative = str(manifest.get("manifest", ""))
    depth = relative.count("/")
    root = folder
    for _ in range(depth):
        root = posixpath.dirname(root.rstrip("/"))
    store.close()
    return Backup(manifest, FsConnector(parts._replace(path=root.rstrip("/") + "/").geturl()))


def verify(backup: Backup, tables: list[str] | None = None) -> dict[str, int]:
    """Read every file back; the rows per table, or VerifyError naming the first bad file."""
    from runner.modes.backup import verify_files

    counts = {}
    for name, info in _tables(backup, tables).items():
        verify_files(backup.store, info["files"], info["format"])
        counts[name] = int(info["rows"])
    return counts


def _tables(backup: Backup, tables: list[str] | None) -> dict[str, Any]:
    known = backup.manifest["tables"]
    if not tables:
        return dict(known)
    missing = [t for t in tables if t not in known]
    if missing:
        raise UsageError(
            f"--tables: '{missing[0]}' is not in this backup (tables: {', '.join(known)})"
        )
    return {t: known[t] for t in tables}


def stage(backup: Backup, folder: str, tables: list[str] | None = None) -> str:
    """The verified files as tables of a DuckDB database in ``folder``; its URL."""
    try:
        import duckdb
    except ImportError as exc:
        raise UsageError('restore needs DuckDB: pip install "etlrun[duckdb]"') from exc
    path = os.path.join(folder, "restore.duckdb")
    conn = duckdb.connect(path)
    try:
        for name, info in _tables(backup, tables).items():
            schema = pa.schema([(c, arrow_from_str(t)) for c, t in info["schema"]])
            quoted = '"' + name.replace('"', '""') + '"'
            first = True
            for f in info["files"]:
                data = backup.store.read_bytes(f["path"])
                table = read_table(data, info["format"], schema)
                if info["format"] == "csv" and table.num_rows == 0 and not data:
                    table = schema.empty_table()
                table = table.cast(schema)
                conn.register("batch", table)
                if first:
                    conn.execute(f"CREATE TABLE {quoted} AS SELECT * FROM batch")
                    first = False
                else:
                    conn.execute(f"INSERT INTO {quoted} SELECT * FROM batch")
                conn.unregister("batch")
            if first:
                conn.register("batch", schema.empty_table())
                conn.execute(f"CREATE TABLE {quoted} AS SELECT * FROM batch")
                conn.unregister("batch")
    finally:
        conn.close()
    return f"duckdb:///{path}"


def restore_job(backup: Backup, source_url: str, target: str, tables: list[str] | None) -> Any:
    """The job that copies the staged tables into ``target`` (copy mode, staging + swap)."""
    from runner.spec.models import Job

    entries = []
    for name, info in _tables(backup, tables).items():
        entry: dict[str, Any] = {"name": name}
        if info.get("primary_key"):
            entry["primary_key"] = list(info["primary_key"])
        entries.append(entry)
    try:
        return Job.model_validate(
            {
                "job": f"restore-{backup.manifest['job']}",
                "source": source_url,
                "target": target,
                "tables": entries,
            }
        )
    except ValueError as exc:
        raise SpecError(f"restore: {exc}") from None


def command(
    manifest: str, target: str, tables: list[str] | None, state_url: str | None, workers: int
) -> int:
    """What ``etlrun restore`` does; the exit code."""
    import sys

    from rich.console import Console

    from runner.connectors import connect
    from runner.execute.context import RunContext
    from runner.execute.progress import reporter_for, summary_table
    from runner.execute.run import execute
    from runner.execute.threads import ThreadExecutor
    from runner.plan.compiler import compile, spec_hash
    from runner.state.store import StateStore, new_run_id

    if "://" not in target:
        raise UsageError(f"--target must be a database URL, got '{target}'")
    backup = open_manifest(manifest)
    counts = verify(backup, tables)
    print(
        f"verified {sum(len(backup.manifest['tables'][t]['files']) for t in counts)} file(s), "
        f"{sum(counts.values()):,} rows in {len(counts)} table(s) of backup "
        f"{backup.manifest['job']} {backup.manifest['run_id']}",
        file=sys.stderr,
    )
    console = Console()
    with tempfile.TemporaryDirectory(prefix="etlrun-restore-") as folder:
        source_url = stage(backup, folder, tables)
        job = restore_job(backup, source_url, target, tables)
        state = StateStore(state_url)
        run_id = new_run_id(job.name)
        state.acquire_lock(job.name, run_id)
        source, target_conn = connect(job.source), connect(job.target)
        executor = ThreadExecutor(workers)
        try:
            plan = compile(job, source, target_conn)
            state.start_run(run_id, job.name, spec_hash(job), "restore", plan.to_json(), False)
            ctx = RunContext(source=source, target=target_conn, run_id=run_id)
            reporter = reporter_for(console)
            ctx.progress = reporter.advance
            result = execute(plan, executor, state, run_id, ctx, reporter)
        finally:
            executor.shutdown()
            state.release_lock(job.name, run_id)
            source.close()
            target_conn.close()
    console.print(summary_table(result))
    if result.error:
        print(f"error: {result.error}", file=sys.stderr)
        return result.exit_code
    for name, expected in counts.items():
        got = result.tables.get(name)
        if got is not None and got.rows != expected:
            raise VerifyError(f"restore of {name}: loaded {got.rows} rows, backup has {expected}")
    return 0
