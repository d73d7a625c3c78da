"""File jobs in the spec: files: entries, their defaults and shorthands, and their errors at
file:line:col."""

from __future__ import annotations

import pytest

from runner.errors import SpecError
from runner.spec.load import load_text

HEAD = "source: file:///data/in\ntarget: sftp://etl@host/srv/data\n"


def headlines(text: str) -> list[str]:
    with pytest.raises(SpecError) as caught:
        load_text(text, env={})
    return [issue.headline() for issue in caught.value.errors]


def test_a_file_job_and_its_defaults() -> None:
    job = load_text(HEAD + "files:\n  - include: ['*.res', '*.csv']\n", env={})
    assert job.tables == [] and job.mode is None
    (entry,) = job.files or []
    assert entry.include == ["*.res", "*.csv"] and entry.exclude == []
    assert (entry.compare, entry.delete, entry.max_delete, entry.recursive) == (
        "sha256",
        False,
        None,
        True,
    )


def test_shorthands_and_folders() -> None:
    job = load_text(
        HEAD + "mode: sync\nfiles:\n  - '*.res'\n"
        "  - {path: /raw/, to: archive/raw, compare: size_mtime, delete: true, max_delete: 5}\n"
        "  - {path: logs, recursive: false, compare: md5}\n"
        .replace("/raw/", "raw/"),
        env={},
    )  # fmt: skip
    first, second, third = job.files or []
    assert first.include == ["*.res"]
    assert (second.path, second.to, second.max_delete) == ("raw", "archive/raw", 5)
    assert (third.recursive, third.compare) == (False, "md5")


CASES = {
    "no tables and no files": (HEAD, ["<string>:1:1: missing required key 'tables'"]),
    "both": (
        "source: sqlite:///a.db\ntarget: sqlite:///b.db\ntables: [t]\nfiles: ['*']\n",
        ["<string>:4:8: files: a job moves tables or files, not both (make two jobs)"],
    ),
    "a database at one end": (
        "source: sqlite:///a.db\ntarget: file:///out\nfiles: ['*']\n",
        [
            "<string>:1:9: source: a file job moves files between file stores (file://, "
            "sftp://, s3://, or another fsspec URL), not 'sqlite'"
        ],
    ),
    "delete without sync": (
        HEAD + "files:\n  - include: ['*']\n    delete: true\n",
        ["<string>:5:13: files[0].delete: deleting needs mode: sync (the job's is copy)"],
    ),
    "max_delete without delete": (
        HEAD + "mode: sync\nfiles:\n  - {max_delete: 3}\n",
        ["<string>:5:18: files[0].max_delete: applies only with delete: true"],
    ),
    "unknown compare": (
        HEAD + "files:\n  - {compare: sha1}\n",
        [
            "<string>:4:15: files[0].compare: 'sha1' is not one of: sha256, md5, size_mtime "
            "(did you mean 'sha256'?)"
        ],
    ),
    "typo in a key": (
        HEAD + "files:\n  - includ: ['*']\n",
        ["<string>:4:5: files[0].includ: unknown key (did you mean 'include'?)"],
    ),
    "absolute glob and a way out": (
        HEAD + "files:\n  - {include: [/etc/*], path: ../up}\n",
        [
            "<string>:4:15: files[0].include: '/etc/*': a glob here is relative to the "
            "source or target URL",
            "<string>:4:31: files[0].path: '../up': '..' is not allowed (a folder stays under "
            "its URL)",
        ],
    ),
    "table options in a file job": (
        HEAD + "defaults: {chunk_rows: 5}\nfiles: ['*']\n",
        ["<string>:3:11: defaults: applies to tables; a file job (files:) has none"],
    ),
    "a job-wide mode in a table job": (
        "source: sqlite:///a.db\ntarget: sqlite:///b.db\nmode: sync\ntables: [t]\n",
        [
            "<string>:3:7: mode: a job-wide mode is for file jobs (files:); a table job sets it "
            "under defaults: or per table"
        ],
    ),
    "an unknown file mode": (
        HEAD + "mode: mirror\nfiles: ['*']\n",
        ["<string>:3:7: mode: 'mirror' is not one of: copy, sync"],
    ),
    "an empty files list": (
        HEAD + "files: []\n",
        ["<string>:3:8: files: must have at least 1 item(s)"],
    ),
}


@pytest.mark.parametrize("text, expected", list(CASES.values()), ids=list(CASES))
def test_bad_file_spec(text: str, expected: list[str]) -> None:
    assert headlines(text) == expected
