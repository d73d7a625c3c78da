"""``etlrun history``, ``show``, ``state`` and ``secrets``: what the state store and the
secrets file hold."""

from __future__ import annotations

import argparse
import json
import sys

from runner.cli._util import _console
from runner.errors import UsageError


def cmd_history(args: argparse.Namespace) -> int:
    from rich.table import Table

    from runner.state.store import StateStore

    if args.purges:
        return _purge_history(args)
    if args.audit_db:
        raise UsageError("--audit-db goes with --purges")
    rows = StateStore(args.state).history(args.job, args.limit)
    if args.format == "json":
        print(json.dumps(rows, indent=2, default=str))
        return 0
    table = Table(title="etlrun history")
    for column in ("run", "job", "status", "started (UTC)", "seconds", "rows", "exit", "error"):
        table.add_column(column, overflow="fold", no_wrap=column != "error")
    for r in rows:
        table.add_row(
            r["run_id"],
            r["job"],
            r["status"],
            f"{r['started_at']:%Y-%m-%d %H:%M:%S}",
            str(r.get("seconds", "")),
            f"{r['rows'] or 0:,}",
            str(r["exit_code"] if r["exit_code"] is not None else ""),
            (r["error"] or "")[:120],
        )
    _console().print(table)
    return 0


def _purge_history(args: argparse.Namespace) -> int:
    from rich.table import Table

    from runner.state.store import StateStore

    if args.audit_db:
        from runner.state.purge_audit import read_database

        requests = read_database(args.audit_db, args.job, args.limit)
    else:
        requests = StateStore(args.state).purges(args.job, args.limit)
    if args.format == "json":
        print(json.dumps(requests, indent=2, default=str))
        return 0
    console = _console()
    for r in requests:
        console.print(
            f"purge {r['job']} {r['table_name']}  run {r['run_id']}  {r['status']}  "
            f"planned {r['rows_planned'] or 0:,}  deleted {r['rows_deleted'] or 0:,}  "
            f"where {r['where_sql']}",
            markup=False,
        )
        table = Table()
        for column in ("chunk", "keys", "backed up", "deleted", "status", "file", "sha256"):
            table.add_column(column, overflow="fold")
        for d in r["details"]:
            table.add_row(
                str(d["chunk"]),
                f"{d['key_lo']}..{d['key_hi']}",
                f"{d['rows_backed_up']:,}",
                f"{d['rows_deleted'] or 0:,}",
                d["status"],
                d["backup_file"],
                d["sha256"][:16],
            )
        console.print(table)
    if not requests:
        console.print("no purges recorded")
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    from rich.table import Table

    from runner.state.store import StateStore

    run = StateStore(args.state).run(args.run_id)
    if run is None:
        raise UsageError(f"no run '{args.run_id}' in the state store")
    if args.format == "json":
        print(json.dumps(run, indent=2, default=str))
        return 0
    console = _console()
    console.print(
        f"run {run['run_id']}  job {run['job']}  {run['status']}  exit {run['exit_code']}  "
        f"attempts {run['attempts']}  rows {run['rows'] or 0:,}  {run.get('seconds', '?')}s"
        + (f"  rejected {run['rejected']:,}" if run.get("rejected") else "")
    )
    if run["error"]:
        console.print(f"error: {run['error']}", markup=False)
    table = Table()
    for column in ("task", "status", "rows", "seconds", "tries", "run attempt", "error"):
        table.add_column(column, overflow="fold", no_wrap=column != "error")
    for t in run["tasks"]:
        table.add_row(
            t["task_id"],
            t["status"],
            f"{t['rows'] or 0:,}",
            f"{t['seconds'] or 0:.2f}",
            str(t["attempts"]),
            str(t.get("run_attempt") or 1),
            (t["error"] or "")[:120],
        )
    console.print(table)
    return 0


def _state_command(args: argparse.Namespace) -> int:
    from runner.state import transfer

    if args.state_verb == "export":
        print(transfer.export_state(args.state, args.url))
    elif args.state_verb == "import":
        print(transfer.import_state(args.state, args.url, force=args.force))
    else:
        print(transfer.unlock(args.state, args.job_name, force=args.force))
    return 0


def _secrets_command(args: argparse.Namespace) -> int:
    import getpass

    from runner import secretfile

    if args.secrets_verb == "keygen":
        print(secretfile.new_key())
        return 0
    if args.secrets_verb == "list":
        for name in secretfile.names():
            print(name)
        return 0
    if sys.stdin.isatty():  # never from argv: every local user can read a process's arguments
        value = getpass.getpass(f"value of {args.name}: ")
    else:
        value = sys.stdin.read()
        value = value[:-1] if value.endswith("\n") else value
    replaced = secretfile.set_secret(args.name, value)
    print(f"{'replaced' if replaced else 'stored'} secret {args.name} in {secretfile.path()}")
    return 0
