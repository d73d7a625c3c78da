"""``run_cli``'s fast path: each ``python -m runner`` forked from a process that has imported the
libraries already (a zygote), instead of a new interpreter importing them again.

The suite starts etlrun ~1,000 times; a fresh interpreter spent ~0.5 s of each on imports
(SQLAlchemy, pyarrow, sqlglot, pydantic and etlrun's spec models), most of the suite's time on
two cores. The zygote imports them once, then for each command forks a child that takes the
command's working folder, environment, argv and output files and runs ``runner`` as ``-m``
does, exiting through etlrun's own entry (``runner/_entry.py``). Nothing it imports reads the
environment when imported (``runner.tokens`` and ``runner.connectors.postgres`` do, and are
left to the child).

A fork is what a fresh process would be only when the zygote has a single thread: it checks
that before it serves (pyarrow's jemalloc would start a background purging thread on import:
the zygote turns it off, so the commands run without it). ``run_cli`` falls back to a plain
subprocess when the zygote is busy (a test running commands side by side), when it could not
start, and when ``ETLRUN_TEST_FORK=0``.
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import signal
import subprocess
import sys
import tempfile
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

ENABLED = os.environ.get("ETLRUN_TEST_FORK", "1") != "0"

PRELOAD = (
    "runner.cli",
    "runner.spec.load",
    "pyarrow",
    "pyarrow.compute",
    "pyarrow.csv",
    "pyarrow.ipc",
    "pyarrow.parquet",
    "sqlalchemy",
    "sqlalchemy.dialects.postgresql",
    "sqlalchemy.dialects.sqlite",
    "sqlalchemy.dialects.mysql",
    "psycopg",
    "adbc_driver_postgresql.dbapi",
    "pymysql",
    "duckdb",
    "fsspec.implementations.local",
    "yaml",
)

ZYGOTE = r"""
import importlib, json, os, runpy, sys, time, traceback

for name in json.loads(sys.argv[1]):
    try:
        importlib.import_module(name)
    except ImportError:
        pass
requests, replies = sys.stdin.buffer, os.dup(1)
if len(os.listdir("/proc/self/task")) != 1:  # a thread would not survive the fork
    os.write(replies, b'{"error": "threads"}\n')
    sys.exit(0)
os.write(replies, b'{"ready": true}\n')


def child(req):
    code = 1
    try:
        os.close(replies)
        null = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null, 0)
        for fd, path in ((1, req["stdout"]), (2, req["stderr"])):
            os.dup2(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), fd)
        os.chdir(req["cwd"])
        os.environ.clear()
        os.environ.update(req["env"])
        time.tzset()
        import runner

        sys.argv = [os.path.join(os.path.dirname(runner.__file__), "__main__.py"), *req["args"]]
        runpy.run_module("runner", run_name="__main__", alter_sys=True)
        code = 0
    except SystemExit as exc:
        if exc.code is None:
            code = 0
        elif isinstance(exc.code, int):
            code = exc.code
        else:
            print(exc.code, file=sys.stderr)
            code = 1
    except BaseException:
        traceback.print_exc()
    finally:
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except Exception:
                pass
        os._exit(code)


for line in requests:
    req = json.loads(line)
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid == 0:
        child(req)
    os.write(replies, (json.dumps({"pid": pid}) + "\n").encode())
    _, status = os.waitpid(pid, 0)
    os.write(replies, (json.dumps({"code": os.waitstatus_to_exitcode(status)}) + "\n").encode())
"""


class Zygote:
    def __init__(self, env: Mapping[str, str]) -> None:
        self.lock = threading.Lock()
        self.broken = False
        self.pythonpath = env.get("PYTHONPATH")
        self.proc = subprocess.Popen(
            [sys.executable, "-c", ZYGOTE, json.dumps(PRELOAD)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            # pyarrow's jemalloc starts a purging thread when imported; the zygote must have none
            env={**env, "JE_ARROW_MALLOC_CONF": "background_thread:false"},
            cwd=tempfile.gettempdir(),
        )
        self._buffer = b""
        ready = self._reply(120)
        if not ready or not ready.get("ready"):
            self.close()
            raise RuntimeError(f"the CLI zygote did not start: {ready}")

    def _reply(self, timeout: float | None) -> dict[str, Any] | None:
        assert self.proc.stdout is not None
        fd = self.proc.stdout.fileno()
        while b"\n" not in self._buffer:
            ready, _, _ = select.select([fd], [], [], timeout)
            if not ready:
                return None
            data = os.read(fd, 65536)
            if not data:
                raise RuntimeError("the CLI zygote is gone")
            self._buffer += data
        line, self._buffer = self._buffer.split(b"\n", 1)
        return json.loads(line)

    def run(
        self, args: Sequence[str], cwd: str, env: Mapping[str, str], timeout: float
    ) -> subprocess.CompletedProcess[str] | None:
        """The command's result; None when the zygote cannot take it (busy, or another
        PYTHONPATH)."""
        if self.broken or env.get("PYTHONPATH") != self.pythonpath:
            return None
        if not self.lock.acquire(blocking=False):
            return None
        started: dict[str, Any] | None = None
        try:
            with tempfile.TemporaryDirectory(prefix="etlrun-cli-") as folder:
                out, err = Path(folder, "stdout"), Path(folder, "stderr")
                request = {"args": list(args), "cwd": cwd, "env": dict(env),
                           "stdout": str(out), "stderr": str(err)}  # fmt: skip
                assert self.proc.stdin is not None
                self.proc.stdin.write((json.dumps(request) + "\n").encode())
                self.proc.stdin.flush()
                started = self._reply(60)
                if started is None:
                    raise RuntimeError("the CLI zygote did not fork")
                finished = self._reply(timeout)
                command = [sys.executable, "-m", "runner", *args]
                if finished is None:  # as subprocess.run does: kill, then raise
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(started["pid"], signal.SIGKILL)
                    self._reply(60)
                    raise subprocess.TimeoutExpired(command, timeout, _text(out), _text(err))
                return subprocess.CompletedProcess(
                    command, finished["code"], _text(out), _text(err)
                )
        except subprocess.TimeoutExpired:
            raise
        except BaseException:
            # interrupted mid-command (a test's timeout, ^C): the replies may be out of step
            # with the requests from here on, so the zygote serves no more
            self.broken = True
            if started is not None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(started["pid"], signal.SIGKILL)
            self.close()
            raise
        finally:
            self.lock.release()

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.proc.kill()
            self.proc.wait(10)


def _text(path: Path) -> str:
    """What ``subprocess.run(text=True)`` makes of the bytes: decoded, universal newlines."""
    if not path.exists():
        return ""
    data = path.read_bytes().decode("utf-8")
    return data.replace("\r\n", "\n").replace("\r", "\n")


_ZYGOTE: Zygote | None = None
_FAILED = False
_START = threading.Lock()


def run(
    args: Sequence[str], cwd: str, env: Mapping[str, str], timeout: float
) -> subprocess.CompletedProcess[str] | None:
    """The command run by a fork of the zygote; None where a plain subprocess must run it."""
    global _ZYGOTE, _FAILED
    if not ENABLED or _FAILED or sys.platform != "linux":
        return None
    with _START:
        if _ZYGOTE is None:
            try:
                _ZYGOTE = Zygote(env)
            except (OSError, RuntimeError) as exc:
                print(f"cli_fork: plain subprocesses ({exc})", file=sys.stderr)
                _FAILED = True
                return None
    return _ZYGOTE.run(args, cwd, env, timeout)


def close() -> None:
    if _ZYGOTE is not None:
        _ZYGOTE.close()
