"""Saved plans of file jobs through the CLI: ``etlrun plan JOB --out plan.json`` records every
file as the plan saw it, ``etlrun apply plan.json`` runs exactly those actions, and refuses
(exit 2, each file named, nothing copied) when a planned change no longer holds."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

from tests.files_tree import tree, write_job

ENTRY = {"include": ["*.csv"], "delete": True}


def _source(tmp_path: Path) -> Path:
    src = tmp_path / "src"
    for i in range(8):
        (src / f"d{i % 2}").mkdir(parents=True, exist_ok=True)
        (src / f"d{i % 2}/f{i}.csv").write_text(f"file {i}\n" * (i + 1))
    return src


def _synced(tmp_path: Path, run_cli, name: str = "saved", **entry: object):  # type: ignore[no-untyped-def]
    src, dst = _source(tmp_path), tmp_path / "dst"
    urls = (f"file://{src}", f"file://{dst}")
    spec = write_job(tmp_path / "job.yaml", name, *urls, {**ENTRY, **entry})
    first = run_cli("run", spec)
    assert first.returncode == 0, first.stderr
    return src, dst, spec


def _history(run_cli, job: str) -> list[dict[str, object]]:  # type: ignore[no-untyped-def]
    done = run_cli("history", job, "--format", "json")
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)  # type: ignore[no-any-return]


def _tasks(run_cli, run_id: object) -> set[str]:  # type: ignore[no-untyped-def]
    done = run_cli("show", run_id, "--format", "json")
    return {t["task_id"] for t in json.loads(done.stdout)["tasks"]}


def _later(path: Path, seconds: float = 5) -> None:
    """A new mtime, surely other than the one recorded, whatever the clock's granularity."""
    t = path.stat().st_mtime + seconds
    os.utime(path, (t, t))


def test_apply_runs_exactly_the_saved_plan(tmp_path: Path, run_cli) -> None:
    src, dst, spec = _synced(tmp_path, run_cli)
    (src / "d0/f0.csv").write_text("changed before the plan\n")
    (src / "d1/new.csv").write_text("new before the plan\n")
    (src / "d1/f3.csv").unlink()
    plan_file = tmp_path / "plan.json"
    planned = run_cli("plan", spec, "--out", plan_file)
    assert planned.returncode == 0, planned.stderr
    assert f"saved plan: {plan_file}" in planned.stderr
    saved = json.loads(plan_file.read_text())
    entry = saved["jobs"][0]
    assert entry["kind"] == "files" and entry["spec_path"] == str(spec)
    files = {f["path"]: f for f in entry["plan"]["files"]}
    assert {p for p, f in files.items() if f["action"] != "unchanged"} == {
        "d0/f0.csv", "d1/new.csv", "d1/f3.csv",
    }  # fmt: skip
    assert files["d0/f0.csv"]["size"] == len("changed before the plan\n")
    assert files["d0/f0.csv"]["mtime"] == (src / "d0/f0.csv").stat().st_mtime_ns / 1e9

    # after the plan: a new file and a change the plan does not hold; apply leaves them
    (src / "d0/after.csv").write_text("new after the plan\n")
    (src / "d0/f2.csv").write_text("changed after the plan\n")
    applied = run_cli("apply", plan_file)
    assert applied.returncode == 0, applied.stderr
    last = _history(run_cli, "saved")[0]
    assert _tasks(run_cli, last["run_id"]) == {
        "update:d0/f0.csv", "copy:d1/new.csv", "delete:d1/f3.csv",
    }  # fmt: skip
    assert (dst / "d0/f0.csv").read_text() == "changed before the plan\n"
    assert not (dst / "d1/f3.csv").exists() and not (dst / "d0/after.csv").exists()
    assert (dst / "d0/f2.csv").read_text() == "file 2\n" * 3

    again = run_cli("run", spec)  # the next run takes what came after the plan
    assert again.returncode == 0, again.stderr
    assert _tasks(run_cli, _history(run_cli, "saved")[0]["run_id"]) == {
        "copy:d0/after.csv", "update:d0/f2.csv",
    }  # fmt: skip
    assert tree(dst) == tree(src)


def test_stale_plan_is_refused(tmp_path: Path, run_cli) -> None:
    src, dst, spec = _synced(tmp_path, run_cli)
    (src / "d0/f0.csv").write_text("to update\n")
    (src / "d0/f2.csv").write_text("to update too\n")
    (src / "d1/new.csv").write_text("to copy\n")
    (src / "d1/lock.csv").write_text("to copy, locked later\n")
    (src / "d1/f3.csv").unlink()
    (src / "d1/f5.csv").unlink()
    plan_file = tmp_path / "plan.json"
    assert run_cli("plan", spec, "--out", plan_file).returncode == 0
    before, runs = tree(dst), len(_history(run_cli, "saved"))

    (src / "d0/f0.csv").write_text("changed again, longer than planned\n")  # size
    _later(src / "d0/f2.csv")  # same size, a new mtime
    (src / "d1/new.csv").unlink()  # vanished
    (src / "d1/f3.csv").write_text("back\n")  # the planned delete's source is back
    assert run_cli("files", "lock", spec, "d1/lock.csv").returncode == 0
    (dst / "d1/f5.csv").write_text("rewritten on the target\n")  # the planned delete changed
    refused = run_cli("apply", plan_file)
    assert refused.returncode == 2, refused.stdout + refused.stderr
    err = refused.stderr
    assert "the saved plan of job 'saved' is stale; nothing was run" in err
    assert "d0/f0.csv: planned to update; changed since the plan (size 10 -> 35 bytes" in err
    assert "d0/f2.csv: planned to update; changed since the plan (mtime " in err
    assert "d1/new.csv: planned to copy; gone from the source" in err
    assert (
        "d1/f3.csv: planned to delete; its source file is back (a run would now update it)" in err
    )
    assert "d1/f5.csv: planned to delete; its size on the target changed" in err
    assert "d1/lock.csv: planned to copy; locked since the plan" in err
    assert f"plan again: etlrun plan {spec} --out PLAN.json" in err
    assert len(_history(run_cli, "saved")) == runs
    assert tree(dst) == {**before, "d1/f5.csv": tree(dst)["d1/f5.csv"]}


def test_plan_made_stale_by_another_run(tmp_path: Path, run_cli) -> None:
    src, _dst, spec = _synced(tmp_path, run_cli)
    (src / "d1/new.csv").write_text("new\n")
    plan_file = tmp_path / "plan.json"
    assert run_cli("plan", spec, "--out", plan_file).returncode == 0
    assert run_cli("run", spec).returncode == 0
    refused = run_cli("apply", plan_file)
    assert refused.returncode == 2
    assert "d1/new.csv: planned to copy; already in sync (another run copied it)" in refused.stderr


def test_changed_spec_and_edited_plan(tmp_path: Path, run_cli) -> None:
    src, _dst, spec = _synced(tmp_path, run_cli)
    (src / "d1/new.csv").write_text("new\n")
    plan_file = tmp_path / "plan.json"
    assert run_cli("plan", spec, "--out", plan_file).returncode == 0

    data = json.loads(plan_file.read_text())
    for f in data["jobs"][0]["plan"]["files"]:
        f["action"] = "delete" if f["path"] == "d0/f0.csv" else f["action"]
    edited = tmp_path / "edited.json"
    edited.write_text(json.dumps(data))
    done = run_cli("apply", edited)
    assert done.returncode == 2
    assert "the plan of job 'saved' was edited after it was saved" in done.stderr

    spec.write_text(spec.read_text().replace("workers: 4", "workers: 2"))
    done = run_cli("apply", plan_file)
    assert done.returncode == 2
    assert f"the spec {spec} changed (spec hash" in done.stderr
    assert not (_dst / "d1/new.csv").exists()


def test_saved_plan_over_max_delete_refuses(tmp_path: Path, run_cli) -> None:
    src, dst, spec = _synced(tmp_path, run_cli, max_delete=1)
    for i in (1, 3, 5):
        (src / f"d1/f{i}.csv").unlink()
    plan_file = tmp_path / "plan.json"
    assert run_cli("plan", spec, "--out", plan_file).returncode == 0
    time.sleep(0.01)
    done = run_cli("apply", plan_file)
    assert done.returncode == 6, done.stderr
    assert "more than max_delete 1" in done.stderr
    assert (dst / "d1/f1.csv").exists()
