"""``etlrun validate``, ``plan`` and ``apply``: checking specs, showing and running saved plans."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from runner.cli._run import run_job
from runner.cli._util import _job_files, _load, _split_tables
from runner.errors import EtlrunError, SpecError, UsageError
from runner.secrets import scrub


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
    from runner.apply import SavedPlan, save_files_job, save_job
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
                if args.out:
                    saved.jobs.append(save_files_job(path, job, plans[-1]))
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

    if args.tables:
        raise UsageError(f"{path}: --tables applies to table jobs; this one moves files")
    if args.format == "mermaid":
        raise UsageError(f"{path}: a file job has no task graph; use --format text or json")
    return plan_job(job, args.state)


def cmd_apply(args: argparse.Namespace) -> int:
    from runner.apply import SavedPlan, check, check_files
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
        if _is_files(entry.plan):
            check_files(entry, job, args.state)
            jobs.append((job, entry))
            continue
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
