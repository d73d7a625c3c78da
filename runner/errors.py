"""Every error etlrun raises on purpose, each knowing its exit code and whether a retry can help.

    EtlrunError                  exit 1 unless a subclass says otherwise
    ├── SpecError                exit 2: the spec or the command line is wrong; nothing ran
    │   └── UsageError
    ├── ConnectError             exit 1: a server refused us (auth, unknown host, missing driver)
    ├── TaskError                exit 1: a task failed for good (missing table, type error, ...)
    │   └── TransientError       retried with backoff: deadlocks, serialization, lost connections
    ├── RejectedRowsError        exit 3: the run finished, some rows went to the reject file
    ├── VerifyError              exit 4: source and target differ
    ├── LockedError              exit 5: another live run holds the job's lock
    ├── SafetyError              exit 6: a guard refused a destructive step
    └── InterruptedError_        exit 130 / 143: stopped by SIGINT / SIGTERM after a clean stop

The executor decides on retries with ``isinstance(exc, TransientError)``, never by message text.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass


class EtlrunError(Exception):
    exit_code = 1
    retryable = False


@dataclass(frozen=True)
class SpecIssue:
    """One problem in one spec file, positioned for editors and CI annotations."""

    file: str
    line: int
    col: int
    path: str
    message: str
    snippet: str = ""

    def headline(self) -> str:
        where = f"{self.path}: " if self.path else ""
        return f"{self.file}:{self.line}:{self.col}: {where}{self.message}"

    def render(self) -> str:
        return self.headline() + (f"\n{self.snippet}" if self.snippet else "")

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


class SpecError(EtlrunError):
    """The spec is invalid. ``errors`` holds every issue found in one pass."""

    exit_code = 2

    def __init__(self, message: str = "", errors: list[SpecIssue] | None = None) -> None:
        self.errors = list(errors or [])
        if not message and self.errors:
            message = self.errors[0].headline()
        super().__init__(message)

    def render(self) -> str:
        if not self.errors:
            return str(self)
        return "\n".join(issue.render() for issue in self.errors)


class UsageError(SpecError):
    """The command line is wrong."""


class ConnectError(EtlrunError):
    """Could not reach or authenticate to a database or file store."""


class TaskError(EtlrunError):
    """A task failed and retrying it will not help."""


class TransientError(TaskError):
    """A task failed in a way that a retry may fix."""

    retryable = True


class RejectedRowsError(EtlrunError):
    exit_code = 3


class VerifyError(EtlrunError):
    exit_code = 4


class LockedError(EtlrunError):
    exit_code = 5


class SafetyError(EtlrunError):
    exit_code = 6


class InterruptedError_(EtlrunError):  # noqa: N801 - the builtin InterruptedError means EINTR
    """The run stopped cleanly on a signal; in-flight chunks were rolled back."""

    def __init__(self, signum: int, message: str = "") -> None:
        self.signum = signum
        self.exit_code = 128 + signum
        super().__init__(message or f"interrupted by signal {signum}")
