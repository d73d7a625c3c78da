"""The ``etlrun`` command: parses arguments, calls the stages, turns errors into exit codes.

Every handled failure prints one line (no traceback unless ``--debug``) and exits with the code
of DESIGN §4. Nothing here knows about backends or modes.
"""

from __future__ import annotations

import sys
import traceback
from collections.abc import Sequence
from typing import Any

from runner.cli._inspect import cmd_apply, cmd_plan, cmd_validate
from runner.cli._misc import (
    _files_command,
    cmd_check,
    cmd_not_yet,
    cmd_restore,
    cmd_schedule,
    cmd_schema,
)
from runner.cli._parser import NOT_YET, VERBS, _parser
from runner.cli._run import cmd_run, run_job
from runner.cli._state import _secrets_command, _state_command, cmd_history, cmd_show
from runner.errors import EtlrunError, SpecError
from runner.secrets import scrub

__all__ = [
    "COMMANDS",
    "NOT_YET",
    "VERBS",
    "cmd_apply",
    "cmd_check",
    "cmd_history",
    "cmd_not_yet",
    "cmd_plan",
    "cmd_restore",
    "cmd_run",
    "cmd_schedule",
    "cmd_schema",
    "cmd_show",
    "cmd_validate",
    "main",
    "run_job",
]


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
