"""The per-file state of file jobs: ``check`` (and ``--update-state``), locks, the delete
guard, failures that leave the state honest, and the job lock."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from runner.state.store import StateStore
from tests.files_tree import make_small, temps, tree, write_job
from tests.sftp_server import sftp_server  # noqa: F401 - the fixture


@pytest.fixture(params=["local", "sftp"])
def target(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[str, Path]:
    if request.param == "local":
        folder = tmp_path / "dst"
        return f"file://{folder}", folder
    server = request.getfixturevalue("sftp_server")
    return server.url("dst"), server.root / "dst"


def _json(done) -> object:  # type: ignore[no-untyped-def]
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def _mtimes(root: Path) -> dict[str, int]:
    return {str(p.relative_to(root)): p.stat().st_mtime_ns for p in root.rglob("*") if p.is_file()}


def _last_run(run_cli, job: str) -> dict[str, object]:
    run_id = _json(run_cli("history", job, "--format", "json"))[0]["run_id"]  # type: ignore[index]
    return _json(run_cli("show", run_id, "--format", "json"))  # type: ignore[return-value]


def test_check_fills_the_state_without_copying(
    target: tuple[str, Path], tmp_path: Path, run_cli
) -> None:
    url, dst = target
    src = tmp_path / "src"
    paths = make_small(src, count=40)
    shutil.copytree(src, dst)  # already there, copied by hand (or by an older tool)
    differs, missing = paths[5], [paths[6], paths[7]]
    (dst / differs).write_bytes(b"edited on the server")
    for path in missing:
        (dst / path).unlink()
    spec = write_job(tmp_path / "job.yaml", "prefilled", f"file://{src}", url, {"include": ["*"]})
    untouched = _mtimes(dst)

    check = run_cli("check", spec)
    assert check.returncode == 4, check.stdout + check.stderr
    assert "source and target differ" in check.stdout
    assert f"differs   {differs}" in check.stdout
    found = json.loads(run_cli("check", spec, "--format", "json").stdout)
    assert found["counts"] == {"equal": 37, "differs": 1, "missing": 2}
    assert _json(run_cli("files", "list", "prefilled", "--format", "json")) == []

    filled = run_cli("check", spec, "--update-state")
    assert filled.returncode == 4
    assert "37 file(s) recorded as in sync; nothing was copied" in filled.stdout
    rows = {r["path"]: r for r in _json(run_cli("files", "list", "prefilled", "--format", "json"))}
    assert set(rows) == set(paths) - {differs, *missing}
    assert {r["code"] for r in rows.values()} == {1}
    assert _mtimes(dst) == untouched, "check copied nothing"

    plan = _json(run_cli("plan", spec, "--format", "json"))
    to_copy = {f["path"] for f in plan["files"] if f["action"] == "copy"}  # type: ignore[index]
    assert to_copy == {differs, *missing}
    assert plan["totals"]["unchanged"]["files"] == 37  # type: ignore[index]

    done = run_cli("run", spec)
    assert done.returncode == 0, done.stderr
    tasks = {t["task_id"] for t in _last_run(run_cli, "prefilled")["tasks"]}  # type: ignore[union-attr]
    assert tasks == {f"copy:{p}" for p in (differs, *missing)}
    after = _mtimes(dst)
    assert {p: after[p] for p in rows} == {p: untouched[p] for p in rows}
    assert tree(dst) == tree(src)
    assert run_cli("check", spec).returncode == 0


def test_check_compares_size_and_mtime_without_reading(tmp_path: Path, run_cli) -> None:
    src, dst = tmp_path / "src", tmp_path / "dst"
    make_small(src, count=5)
    entry = {"include": ["*"], "compare": "size_mtime"}
    spec = write_job(tmp_path / "job.yaml", "sizes", f"file://{src}", f"file://{dst}", entry)
    assert run_cli("run", spec).returncode == 0
    assert run_cli("check", spec).returncode == 0  # the copy kept the source's mtime
    rows = _json(run_cli("files", "list", "sizes", "--format", "json"))
    assert {r["algo"] for r in rows} == {"size_mtime"} and {r["checksum"] for r in rows} == {None}


def test_locked_files_are_never_copied(tmp_path: Path, run_cli) -> None:
    src, dst = tmp_path / "src", tmp_path / "dst"
    (src / "sub").mkdir(parents=True)
    for name in ("a.csv", "b.csv", "sub/c.csv"):
        (src / name).write_text(f"{name} v1\n")
    spec = write_job(tmp_path / "job.yaml", "locks", f"file://{src}", f"file://{dst}")

    # a file can be locked before it was ever copied: the spec lets etlrun find it
    locked = run_cli("files", "lock", spec, "b.csv")
    assert locked.returncode == 0, locked.stderr
    assert "1 file(s) locked" in locked.stdout
    assert run_cli("run", spec).returncode == 0
    assert sorted(tree(dst)) == ["a.csv", "sub/c.csv"]
    (src / "b.csv").write_text("b.csv v2\n")
    assert run_cli("run", spec).returncode == 0
    assert not (dst / "b.csv").exists()

    # locking a copied file by job name: its target copy stays as it is
    assert run_cli("files", "lock", "locks", "sub/*.csv").returncode == 0
    (src / "sub" / "c.csv").write_text("sub/c.csv v2\n")
    plan = _json(run_cli("plan", spec, "--format", "json"))
    actions = {f["path"]: f["action"] for f in plan["files"]}  # type: ignore[index]
    assert actions == {"a.csv": "unchanged", "b.csv": "locked", "sub/c.csv": "locked"}
    assert run_cli("run", spec).returncode == 0
    assert (dst / "sub" / "c.csv").read_text() == "sub/c.csv v1\n"
    rows = {r["path"]: r["code"] for r in _json(run_cli("files", "list", spec, "--format", "json"))}
    assert rows == {"a.csv": 1, "b.csv": 2, "sub/c.csv": 2}
    listing = run_cli("files", "list", "locks")
    assert "2 locked" in listing.stdout and "1 copy-if-changed" in listing.stdout

    unlocked = run_cli("files", "unlock", spec, "*.csv")
    assert unlocked.returncode == 0 and "2 file(s) unlocked" in unlocked.stdout
    assert run_cli("run", spec).returncode == 0
    assert tree(dst) == tree(src)

    nothing = run_cli("files", "lock", "locks", "nomatch*")
    assert nothing.returncode == 2 and "no file of job 'locks' matches 'nomatch*'" in nothing.stderr


def test_max_delete_refuses_before_anything_changes(tmp_path: Path, run_cli) -> None:
    src, dst = tmp_path / "src", tmp_path / "dst"
    paths = make_small(src, count=10)
    entry = {"include": ["*.csv"], "delete": True, "max_delete": 2}
    spec = write_job(tmp_path / "job.yaml", "guarded", f"file://{src}", f"file://{dst}", entry)
    assert run_cli("run", spec).returncode == 0
    before = tree(dst)
    for path in paths[:3]:
        (src / path).unlink()
    (src / "run00" / "new.csv").write_text("new\n")

    plan = run_cli("plan", spec)
    assert plan.returncode == 0
    assert "3 target files would be deleted, more than max_delete 2" in plan.stdout
    refused = run_cli("run", spec)
    assert refused.returncode == 6, refused.stderr
    assert "max_delete 2" in refused.stderr and "nothing was copied or deleted" in refused.stderr
    assert tree(dst) == before
    run = _last_run(run_cli, "guarded")
    assert run["status"] == "failed" and run["exit_code"] == 6

    (src / paths[0]).write_text("back\n")  # two deletes are within the limit
    assert run_cli("run", spec).returncode == 0
    assert tree(dst) == tree(src)


def test_a_failed_file_is_not_recorded_and_the_next_run_resumes(tmp_path: Path, run_cli) -> None:
    src, dst = tmp_path / "src", tmp_path / "dst"
    (src / "x").mkdir(parents=True)
    (src / "x" / "a.csv").write_text("a\n")
    (src / "b.csv").write_text("b\n")
    dst.mkdir()
    (dst / "x").write_text("a file where the folder x must go")
    spec = write_job(tmp_path / "job.yaml", "blocked", f"file://{src}", f"file://{dst}")

    failed = run_cli("run", spec)
    assert failed.returncode == 1, failed.stderr
    assert "1 file(s) not copied: x/a.csv" in failed.stderr
    assert "1 file(s) copied and recorded" in failed.stderr
    rows = _json(run_cli("files", "list", "blocked", "--format", "json"))
    assert [r["path"] for r in rows] == ["b.csv"]
    run = _last_run(run_cli, "blocked")
    assert run["status"] == "failed"
    assert {t["task_id"]: t["status"] for t in run["tasks"]} == {  # type: ignore[union-attr]
        "copy:b.csv": "done",
        "copy:x/a.csv": "failed",
    }
    assert temps(dst) == []

    (dst / "x").unlink()
    again = run_cli("run", spec)
    assert again.returncode == 0, again.stderr
    assert "resuming run" in again.stderr
    assert tree(dst) == tree(src)
    run = _last_run(run_cli, "blocked")
    assert run["attempts"] == 2 and run["rows"] == 2
    assert {t["task_id"]: t["run_attempt"] for t in run["tasks"]} == {  # type: ignore[union-attr]
        "copy:b.csv": 1,
        "copy:x/a.csv": 2,
    }


def test_a_second_run_of_the_job_is_refused_while_one_holds_the_lock(
    tmp_path: Path, run_cli
) -> None:
    src, dst = tmp_path / "src", tmp_path / "dst"
    make_small(src, count=3)
    spec = write_job(tmp_path / "job.yaml", "busy", f"file://{src}", f"file://{dst}")
    StateStore().acquire_lock("busy", "20990101T000000-aaaaaa")  # this live test process
    refused = run_cli("run", spec)
    assert refused.returncode == 5, refused.stderr
    assert "job 'busy' is already running" in refused.stderr
    assert not dst.exists()


def test_validate_plan_and_errors_of_a_file_job(tmp_path: Path, run_cli) -> None:
    src = tmp_path / "src"
    make_small(src, count=3)
    spec = tmp_path / "job.yaml"
    spec.write_text(
        f"source: file://{src}\ntarget: sqlite:///x.db\nfiles:\n  - include: ['*.csv']\n"
        "    delete: true\n"
    )
    bad = run_cli("validate", spec)
    assert bad.returncode == 2
    assert "job.yaml:2:9: target: a file job moves files between file stores" in bad.stdout
    assert "job.yaml:5:13: files[0].delete: deleting needs mode: sync" in bad.stdout

    spec.write_text(
        f"source: file://{tmp_path / 'nowhere'}\ntarget: file://{tmp_path}/d\nfiles: ['*']\n"
    )
    missing = run_cli("run", spec)
    assert missing.returncode == 1
    assert "does not exist or is not a folder; nothing was copied" in missing.stderr
    assert run_cli("plan", spec, "--format", "mermaid").returncode == 2
