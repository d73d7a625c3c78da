"""The ``etlrun`` command's process entry: :func:`runner.cli.main`, then a quick exit.

Tearing down the interpreter (collecting pyarrow's, SQLAlchemy's and sqlglot's module graphs)
took 0.4-0.6 s after every command on the 2-core machine: 10-15% of a 1M-row copy. Once the
command has returned, with only the main thread left, the output is flushed and the exit
handlers run (logging, loguru, anything registered with ``atexit``), then the process exits
without the teardown. Everything the command wrote is already committed or closed by then.
"""

from __future__ import annotations

import atexit
import os
import sys
import threading


def entry() -> None:
    from runner.cli import main

    code = main()
    if threading.active_count() > 1:  # a thread still working: the normal, waiting exit
        raise SystemExit(code)
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a closed pipe: nothing more can be said on it
            pass
    atexit._run_exitfuncs()
    os._exit(code)
