"""etlrun: move data between databases from declarative YAML job specs.

The stages are plain functions of each other's results:
``load(path) -> Job``, ``compile(job, source, target) -> Plan``,
``execute(plan, ...) -> RunResult``.
"""

from __future__ import annotations

from runner.errors import (
    ConnectError,
    EtlrunError,
    LockedError,
    SafetyError,
    SpecError,
    TaskError,
    TransientError,
    VerifyError,
)
from runner.execute.run import RunResult, execute
from runner.plan.compiler import compile
from runner.plan.plan import Plan, Task
from runner.spec.models import Job, TableSpec

__version__ = "0.1.0"


def __getattr__(name: str) -> object:
    # the loader arrives from runner.spec.load; imported lazily to keep `import runner` light
    if name == "load":
        from runner.spec.load import load

        return load
    raise AttributeError(name)


__all__ = [
    "ConnectError",
    "EtlrunError",
    "Job",
    "LockedError",
    "Plan",
    "RunResult",
    "SafetyError",
    "SpecError",
    "TableSpec",
    "Task",
    "TaskError",
    "TransientError",
    "VerifyError",
    "__version__",
    "compile",
    "execute",
    "load",
]
