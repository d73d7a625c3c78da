"""The ``etlrun`` command: parses arguments, calls the stages, turns errors into exit codes.

Every handled failure prints one line (no traceback unless ``--debug``) and exits with the code
of DESIGN §4. Nothing here knows about backends or modes.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import signal
import sys
import traceback
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rich.console import Console

from runner.errors import EtlrunError, SpecError, UsageError
from runner.secrets import scrub

VERBS = (
    "run",
    "validate",
    "plan",
    "history",
    "show",
    "schema",
    "check",
    "restore",
    "schedule",
    "apply",
    "files",
    "state",
    "secrets",
)
NOT_YET: dict[str, str] = {}


def _common(defaults: bool) -> argparse.ArgumentParser:
    """The options every command takes. Only the top-level parser sets their defaults: a
    subparser's default would overwrite a value given before the verb (``etlrun --state X run``)."""

    def default(value: object) -> object:
        return value if defaults else argparse.SUPPRESS

    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--state",
        metavar="URL",
        default=default(None),
        help="state store URL (default: ETLRUN_STATE or sqlite:///.etlrun/state.db)",
    )
    common.add_argument(
        "--debug",
        action="store_true",
        default=default(False),
        help="show tracebacks and debug logs",
    )
    common.add_argument("--log-format", choices=("text", "json"), default=default("text"))
    return common


def _parser() -> argparse.ArgumentParser:
    common = _common(defaults=False)
    parser = argparse.ArgumentParser(
        prog="etlrun",
        parents=[_common(defaults=True)],
        description="Move data between databases from YAML job specs. "
        "'etlrun JOB.yaml' runs a job.",
    )
    sub = parser.add_subparsers(dest="verb", metavar="COMMAND")

    run = sub.add_parser("run", parents=[common], help="run a job (also: etlrun JOB.yaml)")
    run.add_argument("job", metavar="JOB.yaml|DIR", help="a spec, or a folder of specs")
    run.add_argument("--changed-since", metavar="GIT_REF", help="only specs changed since REF")
    run.add_argument(
        "--tables",
        action="append",
        metavar="NAMES",
        help="only these tables (comma-separated names or globs)",
    )
    run.add_argument(
        "--workers", type=int, metavar="N", help="tasks in flight (overrides the spec)"
    )
    run.add_argument(
        "--executor",
        metavar="EXECUTOR",
        help="threads (default), dask-local[:N] (a local Dask cluster of N worker processes, "
        "default 2) or dask://HOST:PORT (a Dask scheduler); also ETLRUN_EXECUTOR or "
        "executor: in the spec",
    )
    run.add_argument(
        "--fresh", action="store_true", help="start over instead of resuming an unfinished run"
    )

    validate = sub.add_parser(
        "validate", parents=[common], help="check specs; every error in one pass"
    )
    validate.add_argument("paths", nargs="+", metavar="PATH")
    validate.add_argument(
        "--format",
        choices=("text", "json", "github"),
        default="text",
        help="github: ::error annotations for GitHub Actions",
    )
    validate.add_argument("--changed-since", metavar="GIT_REF", help="only specs changed since REF")

    plan = sub.add_parser("plan", parents=[common], help="show what a run would do; writes nothing")
    plan.add_argument("job", metavar="JOB.yaml|DIR", help="a spec, or a folder of specs")
    plan.add_argument(
        "--format",
        choices=("text", "json", "mermaid", "markdown", "github"),
        default="text",
        help="markdown (or github): a summary for a pull-request comment",
    )
    plan.add_argument(
        "--out", metavar="PLAN.json", help="also save the plan for 'etlrun apply PLAN.json'"
    )
    plan.add_argument("--changed-since", metavar="GIT_REF", help="only specs changed since REF")
    plan.add_argument(
        "--emit-sql", metavar="DIR", help="also write each table's statements as .sql files"
    )
    plan.add_argument(
        "--sql-dialects",
        metavar="LIST",
        help="with --emit-sql: purge and copy scripts for these dialects too (comma list or "
        "all: postgres, mysql, sqlite, oracle, tsql, redshift, snowflake)",
    )
    plan.add_argument("--tables", action="append", metavar="NAMES")
    plan.add_argument(
        "--detailed-exitcode", action="store_true", help="0 no changes, 2 changes pending, 1 error"
    )

    history = sub.add_parser("history", parents=[common], help="recent runs from the state store")
    history.add_argument("job", nargs="?")
    history.add_argument(
        "--purges", action="store_true", help="the purge audit: requests, chunks, steps"
    )
    history.add_argument(
        "--audit-db",
        metavar="URL",
        help="with --purges: read the audit tables a purge with audit_table: true keeps there",
    )
    history.add_argument("--limit", type=int, default=20)
    history.add_argument("--format", choices=("text", "json"), default="text")

    show = sub.add_parser("show", parents=[common], help="one run and its tasks")
    show.add_argument("run_id", metavar="RUN")
    show.add_argument("--format", choices=("text", "json"), default="text")

    restore = sub.add_parser(
        "restore", parents=[common], help="verify a backup's files, then load them into a database"
    )
    restore.add_argument("manifest", metavar="MANIFEST", help="a manifest's path or URL")
    restore.add_argument("--target", required=True, metavar="URL", help="the database to load")
    restore.add_argument("--tables", action="append", metavar="NAMES", help="only these tables")
    restore.add_argument("--workers", type=int, default=4, metavar="N", help="tasks in flight")

    schema = sub.add_parser("schema", parents=[common], help="write the JSON Schema of the spec")
    schema.add_argument("--out", default="schemas/job.schema.json")

    schedule = sub.add_parser(
        "schedule",
        parents=[common],
        help="run due jobs on their cron schedules until SIGTERM/SIGINT",
    )
    schedule.add_argument("paths", nargs="+", metavar="PATH")
    pick = schedule.add_mutually_exclusive_group()
    pick.add_argument("--list", action="store_true", help="print the next fire times and exit")
    pick.add_argument(
        "--once", action="store_true", help="run what is due now and exit (for cron, timers)"
    )
    schedule.add_argument(
        "--count", type=int, default=5, metavar="N", help="--list: fire times per job (default 5)"
    )
    schedule.add_argument(
        "--window",
        type=float,
        default=1.0,
        metavar="MINUTES",
        help="--once: a fire time this recent is due (default 1)",
    )
    schedule.add_argument(
        "--grace",
        type=float,
        default=60.0,
        metavar="SECONDS",
        help="on SIGTERM/SIGINT, wait this long for running jobs, then stop them (default 60)",
    )

    apply = sub.add_parser(
        "apply", parents=[common], help="run exactly a saved plan; refuses a stale one (exit 2)"
    )
    apply.add_argument("plan_file", metavar="PLAN.json")
    apply.add_argument("--workers", type=int, metavar="N", help="tasks in flight")
    apply.add_argument("--executor", metavar="EXECUTOR", help="as for 'etlrun run'")

    state = sub.add_parser("state", parents=[common], help="export, import or unlock state")
    state_sub = state.add_subparsers(dest="state_verb", metavar="ACTION", required=True)
    for name, what in (
        ("export", "copy the state store to URL (a path or an fsspec URL)"),
        ("import", "replace the state store with the copy at URL"),
    ):
        action = state_sub.add_parser(name, parents=[common], help=what)
        action.add_argument("url", metavar="URL")
        if name == "import":
            action.add_argument(
                "--force", action="store_true", help="replace a store that already has runs"
            )
    unlock = state_sub.add_parser(
        "unlock", parents=[common], help="clear the lock of a job whose holder is dead"
    )
    unlock.add_argument("job_name", metavar="JOB")
    unlock.add_argument(
        "--force", action="store_true", help="also clear a lock held by a live local process"
    )

    secrets_cmd = sub.add_parser(
        "secrets", parents=[common], help="the encrypted secrets file (${secret:NAME})"
    )
    secrets_sub = secrets_cmd.add_subparsers(dest="secrets_verb", metavar="ACTION", required=True)
    set_ = secrets_sub.add_parser(
        "set", parents=[common], help="store a secret; the value is read from stdin or a prompt"
    )
    set_.add_argument("name", metavar="NAME")
    secrets_sub.add_parser("list", parents=[common], help="the names of the stored secrets")
    secrets_sub.add_parser("keygen", parents=[common], help="print a new key for ETLRUN_MASTER_KEY")

    check = sub.add_parser(
        "check", parents=[common], help="compare source and target; exit 4 when they differ"
    )
    check.add_argument("job", metavar="JOB.yaml")
    check.add_argument("--tables", action="append", metavar="NAMES")
    check.add_argument(
        "--format",
        choices=("text", "json", "github"),
        default="text",
        help="github: also an ::error annotation on the spec line of each table that differs",
    )
    check.add_argument(
        "--update-state",
        action="store_true",
        help="file jobs: record the files found equal as in sync (nothing is copied)",
    )

    files = sub.add_parser("files", parents=[common], help="the per-file state of a file job")
    files_sub = files.add_subparsers(dest="files_verb", metavar="ACTION", required=True)
    for name, what in (
        ("list", "each file's state: code, size, mtime, checksum, when copied, where"),
        ("lock", "code 2: the matching files are never copied again"),
        ("unlock", "code 1: the matching files are copied again when they change"),
    ):
        action = files_sub.add_parser(name, parents=[common], help=what)
        action.add_argument("job", metavar="JOB", help="a job spec, or a job name")
        action.add_argument(
            "pattern", metavar="PATTERN", nargs="?", help="a glob over the source paths"
        )
        if name == "list":
            action.add_argument("--format", choices=("text", "json"), default="text")

    for verb, what in NOT_YET.items():
        later = sub.add_parser(verb, parents=[common], help=f"not available yet: {what}")
        later.add_argument("rest", nargs="*")
    return parser


def _split_tables(values: list[str] | None) -> list[str] | None:
    if not values:
        return None
    return [name.strip() for value in values for name in value.split(",") if name.strip()]


def _first_positional(args: list[str]) -> int | None:
    skip = False
    for index, arg in enumerate(args):
        if skip:
            skip = False
        elif arg in ("--state", "--log-format"):
            skip = True
        elif not arg.startswith("-"):
            return index
    return None


def main(argv: Sequence[str] | None = None) -> int:
    args_list = list(sys.argv[1:] if argv is None else argv)
    # `etlrun jobs/nightly.yaml` is `etlrun run jobs/nightly.yaml`
    position = _first_positional(args_list)
    if position is not None and args_list[position] not in VERBS:
        args_list.insert(position, "run")
    parser = _parser()
    try:
        args = parser.parse_args(args_list)
    except SystemExit as exc:
        return 2 if exc.code not in (0, None) else 0
    if not args.verb:
        parser.print_help()
        return 2
    from runner.execute.progress import configure_logging

    configure_logging(args.log_format, args.debug)
    try:
        return int(COMMANDS[args.verb](args) or 0)
    except SpecError as exc:
        print(scrub(exc.render()), file=sys.stderr)
        if exc.errors:
            print(
                f"{len(exc.errors)} error{'s' if len(exc.errors) != 1 else ''}; nothing was run.",
                file=sys.stderr,
            )
        return exc.exit_code
    except EtlrunError as exc:
        if args.debug:  # scrubbed too: a chained driver error may quote a URL or a value
            print(scrub(traceback.format_exc()), file=sys.stderr, end="")
        print(f"error: {scrub(str(exc))}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # noqa: BLE001 - the last line of defence: one line, no traceback
        from runner import crash

        if args.debug:
            print(scrub(traceback.format_exc()), file=sys.stderr)
        report = crash.write(exc, command=args.verb)
        crash.reset()
        where = f"crash report: {report}" if report else "--debug shows the traceback"
        print(
            f"error: unexpected {type(exc).__name__}: {scrub(str(exc))} ({where})",
            file=sys.stderr,
        )
        return 1


# --- commands -----------------------------------------------------------------------------------
def _load(path: str) -> Any:
    from runner.spec.load import load

    if not Path(path).exists():
        raise UsageError(f"{path}: no such file")
    return load(path)


def _plan_key(spec_hash: str, tables: list[str] | None) -> str:
    return hashlib.sha256(f"{spec_hash}|{','.join(tables or [])}".encode()).hexdigest()[:16]


class _Signals:
    """Remember the first SIGINT/SIGTERM; the driver polls it and stops cleanly."""

    def __init__(self) -> None:
        self.received: int | None = None

    def __enter__(self) -> _Signals:
        self._old = {s: signal.signal(s, self._handle) for s in (signal.SIGINT, signal.SIGTERM)}
        return self

    def _handle(self, signum: int, _frame: Any) -> None:
        if self.received is not None:  # a second signal: stop waiting for in-flight chunks
            raise KeyboardInterrupt
        self.received = signum

    def __exit__(self, *exc: object) -> None:
        for sig, handler in self._old.items():
            signal.signal(sig, handler)

    def __call__(self) -> int | None:
        return self.received


def _job_files(path: str, changed_since: str | None) -> tuple[list[Path], bool]:
    """The specs ``path`` names (a folder: every spec under it), and whether it is a folder."""
    from runner.gitops import changed_since as changed
    from runner.gitops import expand

    files = expand([path])
    if changed_since:
        files = changed(changed_since, files)
        if not files:
            print(f"no job spec changed since {changed_since}", file=sys.stderr)
    return files, Path(path).is_dir() or bool(changed_since)


def cmd_run(args: argparse.Namespace) -> int:
    files, many = _job_files(args.job, getattr(args, "changed_since", None))
    if not many:
        return run_job(_load(args.job), args.job, args)
    jobs = [(_load(str(f)), str(f)) for f in files]  # every spec valid before any job runs
    worst = 0
    for job, path in jobs:
        print(f"== {path} (job {job.name})", file=sys.stderr)
        code = run_job(job, path, args)
        worst = worst or code
    return worst


def run_job(job: Any, job_path: str, args: argparse.Namespace, saved: Any = None) -> int:
    """Run ``job`` (or exactly the plan ``saved``, for ``etlrun apply``)."""
    if job.files is not None:
        from runner.files.run import run as run_files

        if args.tables:
            raise UsageError(f"{job_path}: --tables applies to table jobs; this one moves files")
        return run_files(job, job_path, args.state, args.workers, getattr(args, "fresh", False))
    from runner import crash
    from runner.connectors import connect
    from runner.errors import InterruptedError_
    from runner.execute.context import RunContext, TaskResult
    from runner.execute.dask import choose_executor
    from runner.execute.progress import reporter_for, summary_table
    from runner.execute.run import execute
    from runner.execute.threads import ThreadExecutor
    from runner.plan.compiler import compile, spec_hash
    from runner.plan.plan import Plan
    from runner.state.store import StateStore, new_run_id

    choice = choose_executor(args.executor, job.executor)
    workers = job.workers if args.workers is None else args.workers
    if workers < 1:
        raise UsageError("--workers must be at least 1")
    tables = _split_tables(args.tables)
    console = Console()
    with _Signals() as signals:
        state = StateStore(args.state)
        plan_hash = spec_hash(job)
        key = _plan_key(plan_hash, tables)
        resume = None if args.fresh else state.resumable(job.name, key)
        if (
            resume
            and saved is not None
            and Plan.from_json(resume.plan_json).fingerprint != saved.fingerprint
        ):
            resume = None  # apply runs the saved plan, not another unfinished one
        run_id = resume.run_id if resume else new_run_id(job.name)
        crash.note(job=job.name, spec_hash=plan_hash, run_id=run_id, spec=job_path)
        state.acquire_lock(job.name, run_id)
        source, target = connect(job.source), connect(job.target)
        executor: Any = None
        try:
            if choice.kind == "threads":
                executor = ThreadExecutor(workers)
            else:  # a dask-local cluster starts while the plan is made
                from runner.execute.dask import start

                hmac_key = job.sanitize.key if job.sanitize else None
                secret = hmac_key.get_secret_value() if hmac_key else None
                executor = start(choice, workers, source, target, job_path, sanitize_key=secret)
            if resume:
                plan = Plan.from_json(resume.plan_json)
                print(
                    f"resuming run {run_id}: {len(resume.done)} tasks already committed",
                    file=sys.stderr,
                )
            elif saved is not None:
                plan = saved
            else:
                plan = compile(job, source, target, tables, state=state)
            if signals():
                raise InterruptedError_(signals() or 2, "stopped before anything was written")
            state.start_run(
                run_id, job.name, plan.spec_hash, key, plan.to_json(), resumed=bool(resume)
            )
            done = resume.done if resume else {}
            ctx = RunContext(
                source=source,
                target=target,
                resumed=bool(resume),
                run_id=run_id,
                state_url=state.url,
                # chunk tasks share this process's memory: a file target's chunks can then
                # assemble one file while they run (modes/_assemble)
                assemble=executor.name == "threads",
                done=frozenset(done),
                results={
                    tid: TaskResult(
                        int(d["rows"] or 0), int(d["bytes"] or 0), float(d["seconds"] or 0)
                    )
                    for tid, d in done.items()
                },
            )
            reporter = reporter_for(console)
            ctx.progress = reporter.advance
            result = execute(plan, executor, state, run_id, ctx, reporter, signals)
        finally:
            if executor is not None:
                executor.shutdown()
            state.release_lock(job.name, run_id)
            source.close()
            target.close()
    crash.reset()  # the run is over: a later crash in this process is not about it
    console.print(summary_table(result))
    if result.error:
        print(f"error: {result.error}", file=sys.stderr)
    return result.exit_code


def cmd_validate(args: argparse.Namespace) -> int:
    from runner.spec.load import validate_paths

    paths = args.paths
    if args.changed_since:
        from runner.gitops import changed_since, expand

        paths = [str(p) for p in changed_since(args.changed_since, expand(paths))]
        if not paths:
            if args.format == "json":
                print(json.dumps({"files": [], "valid": True, "errors": []}, indent=2))
            else:
                print(f"no job spec changed since {args.changed_since}.")
            return 0
    files, issues = validate_paths(paths)
    if args.format == "github":
        for issue in issues:  # GitHub Actions workflow commands: one annotation per issue
            print(_github_annotation(issue.file, issue.line, issue.col, issue.headline()))
        print(f"{len(issues)} error(s) in {len(files)} spec file(s).")
    elif args.format == "json":
        print(
            json.dumps(
                {
                    "files": [str(f) for f in files],
                    "valid": not issues,
                    "errors": [i.as_dict() for i in issues],
                },
                indent=2,
            )
        )
    else:
        for issue in issues:
            print(scrub(issue.render()))
        bad = len({i.file for i in issues})
        if issues:
            print(
                f"{len(issues)} error{'s' if len(issues) != 1 else ''} in {bad} of "
                f"{len(files)} file(s); nothing was run."
            )
        else:
            print(f"{len(files)} spec{'s' if len(files) != 1 else ''} valid.")
    return 2 if issues else 0


def _github_annotation(file: str, line: int, col: int, message: str) -> str:
    from runner._github import annotation

    return annotation("error", file, line, col, message)


def cmd_plan(args: argparse.Namespace) -> int:
    from runner.apply import SavedPlan, save_job
    from runner.connectors import connect
    from runner.plan.compiler import compile
    from runner.plan.emit_sql import emit, parse_dialects
    from runner.plan.render import to_markdown, to_mermaid, to_text

    tables = _split_tables(args.tables)
    dialects = parse_dialects(args.sql_dialects)
    if dialects and not args.emit_sql:
        raise UsageError("--sql-dialects goes with --emit-sql DIR")
    plans, saved = [], SavedPlan()
    try:  # under --detailed-exitcode a spec error is 1 too: 2 would read "changes pending"
        files, many = _job_files(args.job, args.changed_since)
        jobs = [(_load(str(f) if many else args.job), str(f) if many else args.job) for f in files]
        for job, path in jobs:
            if job.files is not None:
                plans.append(_file_plan(job, path, args))
                continue
            source, target = connect(job.source), connect(job.target)
            try:
                plan = compile(job, source, target, tables, state=_state_to_read(args.state))
                if args.out:
                    saved.jobs.append(save_job(path, job, plan, source, args.state, tables))
            finally:
                source.close()
                target.close()
            plans.append(plan)
    except EtlrunError:
        if args.detailed_exitcode:
            raise _AsOne() from None
        raise
    if args.format in ("markdown", "github"):
        from runner.files.render import to_markdown as files_markdown

        table_plans = [p for p in plans if not _is_files(p)]
        parts = [to_markdown(table_plans)] if table_plans else []
        parts += [files_markdown(p) for p in plans if _is_files(p)]
        sys.stdout.write(scrub("\n".join(parts)))
    else:
        from runner.files.render import to_text as files_text

        render = {"text": to_text, "json": lambda p: p.to_json(), "mermaid": to_mermaid}
        if args.format == "json" and many:
            body = ",\n".join(render["json"](p).rstrip("\n") for p in plans)
            sys.stdout.write(scrub(f"[\n{body}\n]\n"))
        else:
            sys.stdout.write(
                scrub(
                    "\n".join(
                        files_text(p)
                        if _is_files(p) and args.format == "text"
                        else render[args.format](p)
                        for p in plans
                    )
                )
            )
    if args.emit_sql:
        written = [f for p in plans for f in emit(p, args.emit_sql, dialects)]
        print(f"wrote {len(written)} .sql file(s) under {args.emit_sql}", file=sys.stderr)
    if args.out:
        print(
            f"saved plan: {saved.write(args.out)} (run it with: etlrun apply {args.out})",
            file=sys.stderr,
        )
    if args.detailed_exitcode:
        return 2 if any(p.has_changes for p in plans) else 0
    return 0


def _is_files(plan: Any) -> bool:
    return getattr(plan, "kind", "tables") == "files"


def _file_plan(job: Any, path: str, args: argparse.Namespace) -> Any:
    from runner.files.run import plan_job

    if args.out:
        raise UsageError(f"{path}: a file job's plan cannot be saved for apply; run the job")
    if args.tables:
        raise UsageError(f"{path}: --tables applies to table jobs; this one moves files")
    if args.format == "mermaid":
        raise UsageError(f"{path}: a file job has no task graph; use --format text or json")
    return plan_job(job, args.state)


def cmd_apply(args: argparse.Namespace) -> int:
    from runner.apply import SavedPlan, check
    from runner.connectors import connect

    saved = SavedPlan.read(args.plan_file)
    jobs = []
    for entry in saved.jobs:  # every job checked before any runs: all fresh, or nothing runs
        if not Path(entry.spec_path).exists():
            raise UsageError(
                f"{args.plan_file}: job '{entry.plan.job}': {entry.spec_path}: no such file "
                "(apply from the folder the plan was made in)"
            )
        job = _load(entry.spec_path)
        source = connect(job.source)
        try:
            check(entry, job, source, args.state)
        finally:
            source.close()
        jobs.append((job, entry))
    worst = 0
    for job, entry in jobs:
        if len(jobs) > 1:
            print(f"== {entry.spec_path} (job {job.name})", file=sys.stderr)
        run_args = argparse.Namespace(**vars(args), fresh=False, tables=entry.tables)
        worst = worst or run_job(job, entry.spec_path, run_args, saved=entry.plan)
    return worst


def _state_to_read(url: str | None) -> Any:
    """The state store a plan reads watermarks from, when one exists (a plan never creates it)."""
    import os

    from runner.state.store import DEFAULT_URL, StateStore

    url = url or os.environ.get("ETLRUN_STATE") or DEFAULT_URL
    if url.startswith("sqlite:///") and not Path(url.removeprefix("sqlite:///")).exists():
        return None
    return StateStore(url)


class _AsOne(EtlrunError):
    """`plan --detailed-exitcode` follows Terraform: any error is 1."""

    def __init__(self) -> None:
        cause = sys.exc_info()[1]
        super().__init__(str(cause.render() if isinstance(cause, SpecError) else cause))


def _console() -> Console:
    # tables keep their ids and timestamps on one line in CI logs and pipes too
    console = Console()
    return console if console.is_terminal else Console(width=200)


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


def cmd_schema(args: argparse.Namespace) -> int:
    from runner.spec.schema import write_schema

    path = write_schema(args.out)
    print(f"wrote {path}")
    return 0


def cmd_schedule(args: argparse.Namespace) -> int:
    from runner.schedule import command

    return command(
        args.paths,
        state=args.state,
        list_only=args.list,
        once=args.once,
        count=args.count,
        window=args.window,
        grace=args.grace,
        log_format=args.log_format,
    )


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


def _files_command(args: argparse.Namespace) -> int:
    from runner.files.commands import command

    return command(args)


def cmd_restore(args: argparse.Namespace) -> int:
    from runner.restore import command

    if args.workers < 1:
        raise UsageError("--workers must be at least 1")
    return command(args.manifest, args.target, _split_tables(args.tables), args.state, args.workers)


def cmd_check(args: argparse.Namespace) -> int:
    from runner.check import check, render_json, render_text
    from runner.connectors import connect
    from runner.plan.compiler import compile

    job = _load(args.job)
    if job.files is not None:
        from runner.files import check as files_check

        found = files_check.check(job, args.state, args.update_state)
        render = files_check.render_json if args.format == "json" else None
        text = render(found) if render else files_check.render_text(found, args.update_state)
        sys.stdout.write(scrub(text))
        return 0 if found.equal else 4
    if args.update_state:
        raise UsageError("--update-state applies to file jobs (files:)")
    source, target = connect(job.source), connect(job.target)
    try:
        plan = compile(job, source, target, _split_tables(args.tables))
        results = check(list(plan.tables), source, target, job.workers)
    finally:
        source.close()
        target.close()
    if args.format == "github":
        from runner.check import render_github

        sys.stdout.write(scrub(render_github(results, args.job)))
    else:
        sys.stdout.write(scrub((render_json if args.format == "json" else render_text)(results)))
    return 0 if all(r.equal for r in results) else 4


def cmd_not_yet(args: argparse.Namespace) -> int:
    raise UsageError(f"'etlrun {args.verb}' is not available yet: {NOT_YET[args.verb]}")


COMMANDS: dict[str, Any] = {
    "run": cmd_run,
    "validate": cmd_validate,
    "plan": cmd_plan,
    "check": cmd_check,
    "history": cmd_history,
    "show": cmd_show,
    "schema": cmd_schema,
    "schedule": cmd_schedule,
    "restore": cmd_restore,
    "apply": cmd_apply,
    "state": lambda args: _state_command(args),
    "secrets": lambda args: _secrets_command(args),
    "files": lambda args: _files_command(args),
    **dict.fromkeys(NOT_YET, cmd_not_yet),
}
