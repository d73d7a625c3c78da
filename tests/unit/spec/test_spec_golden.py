"""Error output as users see it, reviewable in diffs: tests/golden/errors/*.yaml -> *.txt.

Regenerate after an intended change with ``ETLRUN_UPDATE_GOLDEN=1 pytest tests/unit/spec``
and review the diff.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from runner.errors import SpecError
from runner.spec.load import load

ROOT = Path(__file__).resolve().parents[3]
GOLDEN = ROOT / "tests" / "golden" / "errors"
SPECS = sorted(GOLDEN.glob("*.yaml"))
ENV = {"ANALYTICS_URL": "duckdb:///demo/analytics.duckdb"}


def test_there_are_golden_specs() -> None:
    assert len(SPECS) >= 5


@pytest.mark.parametrize("spec", SPECS, ids=lambda p: p.stem)
def test_golden_error_output(spec: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)  # so errors name the file relative to the repository
    relative = spec.relative_to(ROOT).as_posix()
    with pytest.raises(SpecError) as caught:
        load(relative, env=ENV)
    actual = caught.value.render() + "\n"
    expected_file = spec.with_suffix(".txt")
    if os.environ.get("ETLRUN_UPDATE_GOLDEN") == "1":
        expected_file.write_text(actual, encoding="utf-8")
    assert expected_file.is_file(), (
        f"{expected_file.name} is missing: run ETLRUN_UPDATE_GOLDEN=1 pytest tests/unit/spec"
    )
    assert actual == expected_file.read_text(encoding="utf-8"), (
        "error output changed; if intended, run ETLRUN_UPDATE_GOLDEN=1 pytest tests/unit/spec "
        "and review the diff"
    )
