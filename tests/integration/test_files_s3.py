"""File jobs local -> S3 through the CLI, against moto's S3 server on loopback (a real HTTP
S3 API reached through s3fs, endpoint in the URL, credentials in the environment): a first
sync copies all, a re-run nothing, then exactly the changes and deletes; ``check
--update-state`` adopts objects already in the bucket without copying them."""

from __future__ import annotations

import hashlib
import os
import random
import time
from pathlib import Path

from tests.files_tree import cli_json, last_tasks, make_small, tree, write_job
from tests.s3_server import S3Server, s3_endpoint, s3_server  # noqa: F401 - the fixtures

BIG = "raw/big.bin"
BIG_SIZE = 3 * (1 << 20) + 17  # several parts of the 1 MB chunks, not a multiple of them


def _source(tmp_path: Path) -> tuple[Path, list[str]]:
    src = tmp_path / "src"
    small = make_small(src, count=36)
    (src / BIG).parent.mkdir(parents=True)
    (src / BIG).write_bytes(random.Random(3).randbytes(BIG_SIZE))
    return src, small


def _bucket_tree(s3: S3Server, prefix: str) -> dict[str, str]:
    """relative path -> sha256 of every object under ``prefix`` (the bytes read back)."""
    return {
        p.removeprefix(f"{prefix}/"): hashlib.sha256(s3.read(p)).hexdigest()
        for p in s3.find(prefix)
    }


def _plan_paths(run_cli, spec: Path, action: str) -> set[str]:  # type: ignore[no-untyped-def]
    plan = cli_json(run_cli("plan", spec, "--format", "json"))
    return {f["path"] for f in plan["files"] if f["action"] == action}  # type: ignore[index]


def test_local_to_s3_sync(s3_server: S3Server, tmp_path: Path, run_cli) -> None:  # noqa: F811
    src, small = _source(tmp_path)
    entry = {"include": ["*.csv", "*.bin"], "delete": True}
    spec = write_job(tmp_path / "job.yaml", "to_s3", f"file://{src}", s3_server.url("up"), entry)
    assert len(tree(src)) == 37
    hour_ago = time.time() - 3600
    for path in src.rglob("*"):
        os.utime(path, (hour_ago, hour_ago))
    # the same target checked by size and mtime: S3 keeps the upload time, not the source's
    by_mtime = write_job(
        tmp_path / "mtime.yaml", "to_s3_mtime", f"file://{src}", s3_server.url("up"),
        {**entry, "compare": "size_mtime"},
    )  # fmt: skip

    first = run_cli("run", spec)
    assert first.returncode == 0, first.stderr
    assert _bucket_tree(s3_server, "up") == tree(src)
    rows, tasks = last_tasks(run_cli, "to_s3")
    assert rows == 37 and len(tasks) == 37
    assert not [p for p in s3_server.find("up") if ".etlrun-tmp-" in p]

    again = run_cli("run", spec)
    assert again.returncode == 0, again.stderr
    assert last_tasks(run_cli, "to_s3") == (0, set())
    assert run_cli("plan", spec, "--detailed-exitcode").returncode == 0
    assert run_cli("check", spec).returncode == 0
    assert run_cli("check", by_mtime).returncode == 0

    same_size = src / small[4]
    same_size.write_bytes(bytes(b ^ 0x55 for b in same_size.read_bytes()))
    (src / small[11]).write_bytes(b"rewritten\n")
    (src / small[20]).unlink()
    later = time.time() + 120  # surely after the upload, however slow this machine is
    os.utime(same_size, (later, later))
    found = cli_json(run_cli("check", by_mtime, "--format", "json"))
    differ = {f["path"]: f["detail"] for f in found["files"] if f["status"] == "differs"}  # type: ignore[index]
    assert differ[small[4]] == "source modified after the upload"
    assert set(differ) == {small[4], small[11]}  # small[11] by its size
    assert _plan_paths(run_cli, spec, "update") == {small[4], small[11]}
    assert _plan_paths(run_cli, spec, "delete") == {small[20]}

    third = run_cli("run", spec)
    assert third.returncode == 0, third.stderr
    rows, tasks = last_tasks(run_cli, "to_s3")
    assert tasks == {f"update:{small[4]}", f"update:{small[11]}", f"delete:{small[20]}"}
    assert rows == 2
    final = _bucket_tree(s3_server, "up")
    assert small[20] not in final
    assert final == tree(src)
    assert run_cli("check", spec).returncode == 0
    assert run_cli("plan", spec, "--detailed-exitcode").returncode == 0


def test_check_update_state_against_s3(s3_server: S3Server, tmp_path: Path, run_cli) -> None:  # noqa: F811
    src = tmp_path / "src"
    paths = make_small(src, count=24)
    fs = s3_server.fs()
    for path in paths:  # already in the bucket, uploaded by another tool
        fs.pipe_file(f"{s3_server.bucket}/pre/{path}", (src / path).read_bytes())
    differs, missing = paths[3], paths[9]
    fs.pipe_file(f"{s3_server.bucket}/pre/{differs}", b"edited in the bucket")
    fs.rm_file(f"{s3_server.bucket}/pre/{missing}")
    before = {p: fs.info(f"{s3_server.bucket}/{p}")["ETag"] for p in s3_server.find("pre")}
    spec = write_job(
        tmp_path / "job.yaml", "adopt", f"file://{src}", s3_server.url("pre"), {"include": ["*"]}
    )

    found = cli_json(run_cli("check", spec, "--format", "json"))
    assert found["counts"] == {"equal": 22, "differs": 1, "missing": 1}  # type: ignore[index]
    filled = run_cli("check", spec, "--update-state")
    assert filled.returncode == 4, filled.stdout + filled.stderr
    assert "22 file(s) recorded as in sync; nothing was copied" in filled.stdout
    rows = cli_json(run_cli("files", "list", "adopt", "--format", "json"))
    assert {r["path"] for r in rows} == set(paths) - {differs, missing}  # type: ignore[union-attr]
    assert {p: fs.info(f"{s3_server.bucket}/{p}")["ETag"] for p in s3_server.find("pre")} == before

    assert _plan_paths(run_cli, spec, "copy") == {differs, missing}
    done = run_cli("run", spec)
    assert done.returncode == 0, done.stderr
    assert last_tasks(run_cli, "adopt")[1] == {f"copy:{differs}", f"copy:{missing}"}
    assert _bucket_tree(s3_server, "pre") == tree(src)
    assert os.path.exists(src / differs)
