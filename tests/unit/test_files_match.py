"""The globs of files: entries and 'etlrun files' patterns."""

from __future__ import annotations

import pytest

from runner.files.match import matches, selected


@pytest.mark.parametrize(
    "glob, path, expected",
    [
        ("*.csv", "x.csv", True),
        ("*.csv", "run1/deep/x.csv", True),  # no '/': the name, in any folder
        ("*.csv", "x.csv.bak", False),
        ("raw/*.res", "raw/a.res", True),
        ("raw/*.res", "raw/2024/a.res", False),  # '*' stays in one folder
        ("raw/**/*.res", "raw/a.res", True),
        ("raw/**/*.res", "raw/2024/05/a.res", True),
        ("**/tmp/*", "a/tmp/x", True),
        ("data_?.csv", "data_1.csv", True),
        ("data_?.csv", "data_12.csv", False),
        ("data_[0-4].csv", "data_3.csv", True),
        ("data_[!0-4].csv", "data_7.csv", True),
        ("data_[!0-4].csv", "data_3.csv", False),
        ("a+b(1).csv", "a+b(1).csv", True),  # regex characters are literal
        ("run07/data_407.csv", "run07/data_407.csv", True),
        ("*", "any/thing", True),
    ],
)
def test_matches(glob: str, path: str, expected: bool) -> None:
    assert matches(glob, path) is expected


def test_exclude_wins_over_include() -> None:
    assert selected("a/x.csv", ["*.csv"], [])
    assert not selected("a/x.csv", ["*.csv"], ["a/*"])
    assert not selected("a/x.txt", ["*.csv"], [])
