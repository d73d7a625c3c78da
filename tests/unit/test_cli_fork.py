"""``run_cli``'s forked commands (tests/cli_fork.py) behave as a new interpreter's do: the same
exit code, standard output and standard error, in the command's own folder and environment."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import cli_fork
import pytest
from conftest import REPO

SPEC = """\
job: fork-check
source: ${FORK_SOURCE}
target: sqlite:///out.db
tables: [t]
"""


def fresh(args: list[str], cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "runner", *args], cwd=cwd, env=env, stdin=subprocess.DEVNULL,
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip


@pytest.mark.skipif(not cli_fork.ENABLED, reason="ETLRUN_TEST_FORK=0: no zygote to compare")
def test_a_forked_command_answers_as_a_new_interpreter(tmp_path: Path) -> None:
    (tmp_path / "job.yaml").write_text(SPEC)
    # as run_cli's environment (this tree first on PYTHONPATH): the zygote serves one PYTHONPATH
    path = os.pathsep.join([str(REPO), *filter(None, [os.environ.get("PYTHONPATH")])])
    env = {**os.environ, "PYTHONPATH": path}
    cases = [
        (["--help"], env),
        (["validate", "job.yaml"], {**env, "FORK_SOURCE": "sqlite:///in.db"}),  # folder, env
        (["validate", "job.yaml"], env),  # ${FORK_SOURCE} unset: exit 2
        (["no-such-verb"], env),
    ]
    codes = []
    for args, case_env in cases:
        forked = cli_fork.run(args, str(tmp_path), case_env, 120)
        assert forked is not None, "the zygote did not take the command"
        expected = fresh(args, tmp_path, case_env)
        assert (forked.returncode, forked.stdout, forked.stderr) == (
            expected.returncode, expected.stdout, expected.stderr,
        ), args  # fmt: skip
        codes.append(forked.returncode)
    assert codes[0] == codes[1] == 0 and codes[2] == 2 and codes[3] != 0
    assert "FORK_SOURCE" in cli_fork.run(["validate", "job.yaml"], str(tmp_path), env, 120).stdout
