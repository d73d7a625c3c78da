"""``runner.__all__`` is honest: it names exactly the public API, and every name in it works.

The public API is what DESIGN §1 draws: the three stages (``load``, ``compile``, ``execute``),
the values they pass along (``Job``, ``TableSpec``, ``Plan``, ``Task``, ``RunResult``) and the
errors a caller catches, each with the exit code of DESIGN §4 (httpx keeps its ``__all__`` the
same way).
"""

from __future__ import annotations
import __future__

import importlib
import inspect
import subprocess
import sys
import types

import pytest

import runner
from runner import errors

STAGES = {"load", "compile", "execute"}
VALUES = {"Job", "TableSpec", "Plan", "Task", "RunResult"}
ERRORS = {
    # name: (exit code, retried by the executor)
    "EtlrunError": (1, False),
    "SpecError": (2, False),
    "ConnectError": (1, False),
    "TaskError": (1, False),
    "TransientError": (1, True),
    "VerifyError": (4, False),
    "LockedError": (5, False),
    "SafetyError": (6, False),
}
DOCUMENTED = STAGES | VALUES | set(ERRORS) | {"__version__"}


def test_all_is_the_documented_api() -> None:
    assert set(runner.__all__) == DOCUMENTED
    assert len(runner.__all__) == len(set(runner.__all__)), "a name is listed twice"
    assert list(runner.__all__) == sorted(runner.__all__), "__all__ is kept sorted"


def test_every_public_name_of_the_package_is_in_all() -> None:
    # what `runner.<TAB>` offers besides subpackages must be listed (and nothing else exported)
    public = {
        name
        for name, value in vars(runner).items()
        if not name.startswith("_")
        and not isinstance(value, types.ModuleType)
        and not isinstance(value, __future__._Feature)
    }
    assert public | {"load"} == set(runner.__all__) - {"__version__"}


@pytest.mark.parametrize("name", sorted(DOCUMENTED))
def test_every_name_in_all_resolves(name: str) -> None:
    value = getattr(runner, name)
    assert value is not None
    if name != "__version__":
        assert value.__module__.startswith("runner."), f"{name} comes from {value.__module__}"


def test_star_import_gives_all() -> None:
    namespace: dict[str, object] = {}
    exec("from runner import *", namespace)  # noqa: S102 - the point of the test
    assert set(runner.__all__) <= set(namespace)


def test_load_is_lazy_and_the_loader() -> None:
    from runner.spec.load import load

    assert runner.load is load
    with pytest.raises(AttributeError):
        runner.no_such_name  # noqa: B018


def test_stages_take_what_the_design_says() -> None:
    assert list(inspect.signature(runner.load).parameters)[:2] == ["path", "env"]
    assert list(inspect.signature(runner.compile).parameters)[:4] == [
        "job",
        "source",
        "target",
        "tables",
    ]
    assert list(inspect.signature(runner.execute).parameters)[:3] == ["plan", "executor", "state"]
    for stage in ("load", "compile"):  # STYLE §6: a doctest example on the entry points
        assert "Example:" in (inspect.getdoc(getattr(runner, stage)) or ""), stage


@pytest.mark.parametrize("name", sorted(ERRORS))
def test_errors_know_their_exit_code_and_retry_class(name: str) -> None:
    cls = getattr(runner, name)
    code, retryable = ERRORS[name]
    assert issubclass(cls, runner.EtlrunError)
    assert cls is getattr(errors, name)
    assert cls.exit_code == code
    assert cls.retryable is retryable


def test_version_matches_the_distribution() -> None:
    from importlib.metadata import version

    assert runner.__version__ == version("etlrun")


def test_importing_runner_does_not_import_drivers() -> None:
    # `import runner` stays light: backends load their drivers when a URL needs them
    code = (
        "import sys, runner; "
        "heavy = [m for m in ('psycopg', 'pymysql', 'duckdb', 'adbc_driver_postgresql', "
        "'connectorx') if m in sys.modules]; "
        "print(','.join(heavy))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert out.stdout.strip() == ""


def test_submodules_named_by_the_design_import() -> None:
    for module in (
        "runner.cli",
        "runner.errors",
        "runner.spec.models",
        "runner.spec.load",
        "runner.plan.catalog",
        "runner.plan.types",
        "runner.plan.compiler",
        "runner.plan.plan",
        "runner.modes",
        "runner.connectors",
        "runner.connectors.base",
        "runner.execute.threads",
        "runner.execute.progress",
        "runner.state.store",
    ):
        importlib.import_module(module)
