"""``etlrun schema``, ``schedule``, ``restore``, ``check`` and ``files``: thin calls into their
own modules."""

from __future__ import annotations

import argparse
import sys

from runner.cli._parser import NOT_YET
from runner.cli._util import _load, _split_tables
from runner.errors import UsageError
from runner.secrets import scrub


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
        plan = compile(job, source, target, _split_tables(args.tables), sizes=False)
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
