"""File jobs reading from S3 (moto's S3 server on loopback, reached through s3fs): S3 -> local
and S3 -> SFTP (a real sshd). A first sync copies all, a re-run nothing, then exactly the
changes and deletes; ``check --update-state`` adopts a target filled by hand; an object
replaced while it is being read is copied again, never recorded half old, half new."""

from __future__ import annotations

import hashlib
import random
from pathlib import Path

from loguru import logger

from runner.files.store import FileStore
from runner.files.transfer import copy_file
from tests.files_tree import cli_json, last_tasks, temps, tree, write_job
from tests.s3_server import S3Server, s3_endpoint, s3_server  # noqa: F401 - the fixtures
from tests.sftp_server import SftpServer, sftp_server  # noqa: F401 - the fixture

BIG = "raw/big.bin"
BIG_SIZE = 3 * (1 << 20) + 17  # several of the 1 MB chunks, not a multiple of them


def _fill(s3: S3Server, prefix: str, count: int = 30) -> dict[str, bytes]:
    """``count`` small objects in three folders and one of several MB: path -> bytes."""
    rng = random.Random(5)
    objects = {
        f"run{i % 3}/data_{i:02d}.csv": rng.randbytes(rng.randint(50, 3000)) for i in range(count)
    }
    objects[BIG] = rng.randbytes(BIG_SIZE)
    fs = s3.fs()
    for path, data in objects.items():
        fs.pipe_file(f"{s3.bucket}/{prefix}/{path}", data)
    return objects


def _sha(objects: dict[str, bytes]) -> dict[str, str]:
    return {p: hashlib.sha256(d).hexdigest() for p, d in objects.items()}


def _plan(run_cli, spec: Path) -> dict[str, set[str]]:  # type: ignore[no-untyped-def]
    plan = cli_json(run_cli("plan", spec, "--format", "json"))
    out: dict[str, set[str]] = {}
    for f in plan["files"]:  # type: ignore[index]
        out.setdefault(f["action"], set()).add(f["path"])
    return out


def test_s3_to_local_sync(s3_server: S3Server, tmp_path: Path, run_cli) -> None:  # noqa: F811
    objects = _fill(s3_server, "inst")
    dst = tmp_path / "dst"
    entry = {"include": ["*.csv", "*.bin"], "delete": True}
    url = s3_server.url("inst")
    spec = write_job(tmp_path / "job.yaml", "from_s3", url, f"file://{dst}", entry)
    by_mtime = write_job(
        tmp_path / "mtime.yaml", "from_s3_mtime", s3_server.url("inst"), f"file://{dst}",
        {**entry, "compare": "size_mtime"},
    )  # fmt: skip

    first = run_cli("run", spec)
    assert first.returncode == 0, first.stderr
    assert tree(dst) == _sha(objects)
    rows, tasks = last_tasks(run_cli, "from_s3")
    assert rows == 31 and len(tasks) == 31
    # each file got its object's LastModified (whole seconds), so size_mtime sees them equal
    fs = s3_server.fs()
    listed = fs.info(f"{s3_server.bucket}/inst/{BIG}")["LastModified"].timestamp()
    assert (dst / BIG).stat().st_mtime == int(listed)
    state = cli_json(run_cli("files", "list", "from_s3", "--format", "json"))
    etags = {r["path"]: r["etag"] for r in state}  # type: ignore[union-attr]
    assert etags[BIG] == fs.info(f"{s3_server.bucket}/inst/{BIG}")["ETag"].strip('"')

    again = run_cli("run", spec)
    assert again.returncode == 0, again.stderr
    assert last_tasks(run_cli, "from_s3") == (0, set())
    assert run_cli("plan", spec, "--detailed-exitcode").returncode == 0
    assert run_cli("check", spec).returncode == 0
    assert run_cli("check", by_mtime).returncode == 0

    paths = sorted(p for p in objects if p.endswith(".csv"))
    same_size, longer, gone = paths[4], paths[11], paths[20]
    objects[same_size] = bytes(b ^ 0x55 for b in objects[same_size])  # same size, new bytes
    objects[longer] = objects[longer] + b"more"
    objects["run9/new.csv"] = b"a new measurement\n"
    del objects[gone]
    for path in (same_size, longer, "run9/new.csv"):
        fs.pipe_file(f"{s3_server.bucket}/inst/{path}", objects[path])
    fs.rm_file(f"{s3_server.bucket}/inst/{gone}")

    plan = _plan(run_cli, spec)
    assert plan["update"] == {same_size, longer}
    assert plan["copy"] == {"run9/new.csv"}
    assert plan["delete"] == {gone}
    third = run_cli("run", spec)
    assert third.returncode == 0, third.stderr
    rows, tasks = last_tasks(run_cli, "from_s3")
    assert tasks == {
        f"update:{same_size}", f"update:{longer}", "copy:run9/new.csv", f"delete:{gone}",
    }  # fmt: skip
    assert rows == 3
    assert tree(dst) == _sha(objects)
    assert temps(dst) == []
    assert run_cli("check", spec).returncode == 0
    assert run_cli("check", by_mtime).returncode == 0
    assert run_cli("plan", spec, "--detailed-exitcode").returncode == 0


def test_check_update_state_from_s3(s3_server: S3Server, tmp_path: Path, run_cli) -> None:  # noqa: F811
    objects = _fill(s3_server, "pre", count=12)
    dst = tmp_path / "dst"
    for path, data in objects.items():  # already copied by hand
        (dst / path).parent.mkdir(parents=True, exist_ok=True)
        (dst / path).write_bytes(data)
    paths = sorted(objects)
    differs, missing = paths[2], paths[7]
    (dst / differs).write_bytes(b"edited on the server")
    (dst / missing).unlink()
    spec = write_job(tmp_path / "job.yaml", "adopt_s3", s3_server.url("pre"), f"file://{dst}")

    found = cli_json(run_cli("check", spec, "--format", "json"))
    assert found["counts"] == {"equal": 11, "differs": 1, "missing": 1}  # type: ignore[index]
    filled = run_cli("check", spec, "--update-state")
    assert filled.returncode == 4, filled.stdout + filled.stderr
    assert "11 file(s) recorded as in sync; nothing was copied" in filled.stdout
    rows = cli_json(run_cli("files", "list", "adopt_s3", "--format", "json"))
    assert {r["path"] for r in rows} == set(paths) - {differs, missing}  # type: ignore[union-attr]
    assert all(r["etag"] for r in rows)  # type: ignore[union-attr]

    assert _plan(run_cli, spec)["copy"] == {differs, missing}
    done = run_cli("run", spec)
    assert done.returncode == 0, done.stderr
    assert last_tasks(run_cli, "adopt_s3")[1] == {f"copy:{differs}", f"copy:{missing}"}
    assert tree(dst) == _sha(objects)


def test_s3_to_sftp(
    s3_server: S3Server,  # noqa: F811
    sftp_server: SftpServer,  # noqa: F811
    tmp_path: Path,
    run_cli,
) -> None:
    objects = _fill(s3_server, "inst", count=9)
    entry = {"include": ["*"], "compare": "md5", "delete": True}
    spec = write_job(
        tmp_path / "job.yaml", "s3_sftp", s3_server.url("inst"), sftp_server.url("dst"), entry
    )
    first = run_cli("run", spec)
    assert first.returncode == 0, first.stderr
    assert tree(sftp_server.root / "dst") == _sha(objects)

    fs = s3_server.fs()
    changed = sorted(objects)[1]
    objects[changed] = b"changed on the instrument"
    fs.pipe_file(f"{s3_server.bucket}/inst/{changed}", objects[changed])
    gone = sorted(objects)[3]
    fs.rm_file(f"{s3_server.bucket}/inst/{gone}")
    del objects[gone]
    again = run_cli("run", spec)
    assert again.returncode == 0, again.stderr
    assert last_tasks(run_cli, "s3_sftp")[0] == 1
    assert tree(sftp_server.root / "dst") == _sha(objects)
    assert run_cli("check", spec).returncode == 0
    assert run_cli("plan", spec, "--detailed-exitcode").returncode == 0


def _replace_once(s3: S3Server, key: str, data: bytes):  # type: ignore[no-untyped-def]
    """An on_bytes callback that replaces the object after its first chunk was read."""
    fs, done = s3.fs(), []

    def on_bytes(n: int) -> None:
        if n > 0 and not done:
            done.append(n)
            fs.pipe_file(f"{s3.bucket}/{key}", data)

    return on_bytes


def test_object_replaced_while_read(s3_server: S3Server, tmp_path: Path) -> None:  # noqa: F811
    """Replaced at the same size (likely within the same second): only the ETag tells. With
    the default block size s3fs has the first version whole and the stat after the copy
    sees the new ETag; with 1 MB blocks the next range is refused (If-Match) mid-file."""
    objects = _fill(s3_server, "live", count=1)
    seen: list[str] = []
    sink = logger.add(lambda m: seen.append(str(m)), level="WARNING")
    for block, why in ((None, "; ETag "), (1 << 20, "refused the rest of the old version")):
        source = FileStore(s3_server.url("live"))
        target = FileStore(f"file://{tmp_path / 'dst'}")
        source.connect()
        if block is not None:
            source.fs.default_block_size = block
        new = random.Random(block).randbytes(BIG_SIZE)
        assert new != objects[BIG]
        copied = copy_file(
            source, target, BIG, BIG, "sha256", "test",
            on_bytes=_replace_once(s3_server, f"live/{BIG}", new),
        )  # fmt: skip
        assert copied.attempts == 2
        assert (tmp_path / "dst" / BIG).read_bytes() == new
        assert copied.checksum == hashlib.sha256(new).hexdigest()
        info = s3_server.fs().info(f"{s3_server.bucket}/live/{BIG}")
        assert copied.etag == info["ETag"].strip('"')
        assert temps(tmp_path / "dst") == []
        assert len(seen) == 1 and why in seen.pop()
        objects[BIG] = new
        source.close()
    logger.remove(sink)
