"""The argument parser of the ``etlrun`` command: its verbs, their options and help text."""

from __future__ import annotations

import argparse

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
