"""File jobs end to end through the CLI, local -> local and local -> SFTP (a real sshd):
500 small files and one 200 MB file; first sync, a re-run that sends nothing, then exactly
the changes, locks and deletes made; a SIGKILL in the middle of the big file."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.files_tree import (
    BIG_NAME,
    BIG_SIZE,
    big_file,  # noqa: F401 - the fixture
    make_small,
    temps,
    tree,
    write_job,
)
from tests.sftp_server import sftp_server  # noqa: F401 - the fixture

REPO = Path(__file__).resolve().parents[2]
ENTRY = {"include": ["*.csv", "*.bin"], "exclude": ["*.tmp"], "delete": True}


@pytest.fixture(params=["local", "sftp"])
def target(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[str, Path]:
    """(target URL, the folder it names on this machine)."""
    if request.param == "local":
        folder = tmp_path / "dst"
        return f"file://{folder}", folder
    server = request.getfixturevalue("sftp_server")
    return server.url("dst"), server.root / "dst"


def _source(tmp_path: Path, big: Path) -> tuple[Path, list[str]]:
    src = tmp_path / "src"
    small = make_small(src)
    (src / BIG_NAME).parent.mkdir(parents=True)
    os.link(big, src / BIG_NAME)
    (src / "notes.txt").write_text("not included")
    (src / "run00" / "scratch.tmp").write_text("excluded")
    return src, small


def _selected(src: Path) -> dict[str, str]:
    return {k: v for k, v in tree(src).items() if k.endswith((".csv", ".bin"))}


def _plan(run_cli, spec: Path) -> dict[str, object]:
    done = run_cli("plan", spec, "--format", "json")
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def _paths(plan: dict[str, object], action: str) -> set[str]:
    return {f["path"] for f in plan["files"] if f["action"] == action}  # type: ignore[attr-defined]


def _last_run(run_cli, job: str) -> dict[str, object]:
    done = run_cli("history", job, "--format", "json")
    assert done.returncode == 0, done.stderr
    run_id = json.loads(done.stdout)[0]["run_id"]
    shown = run_cli("show", run_id, "--format", "json")
    assert shown.returncode == 0, shown.stderr
    return json.loads(shown.stdout)


def _file_rows(run_cli, job: str) -> dict[str, dict[str, object]]:
    done = run_cli("files", "list", job, "--format", "json")
    assert done.returncode == 0, done.stderr
    return {r["path"]: r for r in json.loads(done.stdout)}


@pytest.mark.slow
def test_sync_copies_all_then_nothing_then_exactly_the_changes(
    target: tuple[str, Path],
    tmp_path: Path,
    big_file: Path,  # noqa: F811
    run_cli,
) -> None:
    url, dst = target
    src, small = _source(tmp_path, big_file)
    spec = write_job(tmp_path / "job.yaml", "scenario", f"file://{src}", url, ENTRY)
    expected = _selected(src)
    assert len(expected) == 501

    plan = _plan(run_cli, spec)
    assert plan["totals"]["copy"] == {"files": 501, "bytes": sum(  # type: ignore[index]
        (src / p).stat().st_size for p in expected
    )}  # fmt: skip

    first = run_cli("run", spec)
    assert first.returncode == 0, first.stderr
    assert tree(dst) == expected
    assert temps(dst) == []
    assert _last_run(run_cli, "scenario")["rows"] == 501
    copied = tree(dst)

    again = run_cli("run", spec)
    assert again.returncode == 0, again.stderr
    run = _last_run(run_cli, "scenario")
    assert run["rows"] == 0 and run["tasks"] == []
    assert run_cli("plan", spec, "--detailed-exitcode").returncode == 0

    changed = [small[3], small[104], small[205]]
    same_size = src / changed[0]
    same_size.write_bytes(bytes(b ^ 0xFF for b in same_size.read_bytes()))
    with open(src / changed[1], "ab") as f:
        f.write(b"one more line\n")
    (src / changed[2]).write_bytes(b"rewritten\n")
    touched = src / small[306]
    os.utime(touched, (time.time() + 60, time.time() + 60))  # new mtime, same content
    locked = small[407]
    done = run_cli("files", "lock", spec, locked)
    assert done.returncode == 0, done.stderr
    assert f"locked {locked}" in done.stdout
    (src / locked).write_bytes(b"changed after it was locked\n")
    deleted = [small[8], small[9]]
    for path in deleted:
        (src / path).unlink()

    plan = _plan(run_cli, spec)
    assert _paths(plan, "update") == set(changed)
    assert _paths(plan, "delete") == set(deleted)
    assert _paths(plan, "locked") == {locked}
    assert _paths(plan, "copy") == set()
    assert small[306] in _paths(plan, "unchanged")
    assert run_cli("plan", spec, "--detailed-exitcode").returncode == 2
    text = run_cli("plan", spec).stdout
    assert "copy 0 (0 B), update 3" in text and "delete 2" in text and "locked 1" in text

    third = run_cli("run", spec)
    assert third.returncode == 0, third.stderr
    run = _last_run(run_cli, "scenario")
    tasks = {t["task_id"] for t in run["tasks"]}
    assert tasks == {f"update:{p}" for p in changed} | {f"delete:{p}" for p in deleted}
    assert run["rows"] == 3

    final = tree(dst)
    now = _selected(src)
    assert set(final) == set(now)  # the deleted two are gone, nothing else
    for path in changed:
        assert final[path] == now[path]
    assert final[locked] == copied[locked] != now[locked]  # locked: never copied again
    assert {p: d for p, d in final.items() if p != locked} == {
        p: d for p, d in now.items() if p != locked
    }
    rows = _file_rows(run_cli, "scenario")
    assert rows[locked]["code"] == 2
    assert not set(deleted) & set(rows)
    assert rows[changed[0]]["checksum"] == now[changed[0]]
    assert temps(dst) == []

    # the touched file's new mtime was recorded: the next plan reads nothing and changes nothing
    assert run_cli("plan", spec, "--detailed-exitcode").returncode == 0


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    return env


def _start(spec: Path, log: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "runner", "run", str(spec)],
        env=_env(),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=open(log, "wb"),  # noqa: SIM115 - the child holds it
    )


def _big_in_flight(dst: Path, process: subprocess.Popen[bytes]) -> Path:
    """Wait until the big file is being written under its temporary name."""
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and process.poll() is None:
        for temp in temps(dst):
            if temp.name.endswith("-big.bin") and temp.stat().st_size > 0:
                return temp
        time.sleep(0.002)
    pytest.fail(f"the big file was never seen in flight (run exit {process.poll()})")


@pytest.mark.slow
def test_sigkill_during_the_big_file_leaves_no_partial_file_and_resumes(
    target: tuple[str, Path],
    tmp_path: Path,
    big_file: Path,  # noqa: F811
    run_cli,
) -> None:
    url, dst = target
    src, _ = _source(tmp_path, big_file)
    spec = write_job(tmp_path / "job.yaml", "killed", f"file://{src}", url, ENTRY, workers=2)
    expected = _selected(src)

    process = _start(spec, tmp_path / "first.log")
    partial = _big_in_flight(dst, process)
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=30)
    assert process.returncode == -signal.SIGKILL
    assert partial.exists() and partial.stat().st_size < BIG_SIZE, "killed mid-file"
    assert not (dst / BIG_NAME).exists(), "no partial file under its final name"
    before = tree(dst)
    assert BIG_NAME not in before
    assert all(expected[path] == digest for path, digest in before.items())
    recorded = set(_file_rows(run_cli, "killed"))
    assert recorded <= set(before)

    again = run_cli("run", spec)
    assert again.returncode == 0, again.stderr
    assert "resuming run" in again.stderr
    assert tree(dst) == expected
    assert temps(dst) == [], "the killed run's temporary file was removed"
    run = _last_run(run_cli, "killed")
    assert run["attempts"] == 2 and run["status"] == "succeeded"
    by_attempt: dict[int, set[str]] = {1: set(), 2: set()}
    for task in run["tasks"]:
        assert task["status"] == "done"
        by_attempt[task["run_attempt"]].add(task["task_id"].split(":", 1)[1])
    assert by_attempt[1] == recorded
    assert by_attempt[2] == set(expected) - recorded, "completed files were not sent again"
    assert BIG_NAME in by_attempt[2]
    rows = _file_rows(run_cli, "killed")
    assert {p: r["checksum"] for p, r in rows.items()} == expected


@pytest.mark.slow
def test_sigterm_during_the_big_file_stops_cleanly(
    tmp_path: Path,
    big_file: Path,  # noqa: F811
    run_cli,
) -> None:
    src, small = _source(tmp_path, big_file)
    dst = tmp_path / "dst"
    spec = write_job(tmp_path / "job.yaml", "stopped", f"file://{src}", f"file://{dst}", ENTRY)
    assert run_cli("run", spec).returncode == 0
    (src / small[0]).unlink()  # a delete is due, but a stopped run deletes nothing
    (src / BIG_NAME).unlink()
    (src / BIG_NAME).write_bytes(big_file.read_bytes()[::-1])
    process = _start(spec, tmp_path / "run.log")
    _big_in_flight(dst, process)
    process.send_signal(signal.SIGTERM)
    process.wait(timeout=60)
    log = (tmp_path / "run.log").read_text()
    assert process.returncode == 143, log
    assert "stopped by signal 15" in log and "nothing was deleted" in log
    assert temps(dst) == []
    assert (dst / small[0]).exists()
    assert tree(dst)[BIG_NAME] != tree(src)[BIG_NAME]  # the old version, whole
    assert (dst / BIG_NAME).stat().st_size == BIG_SIZE
