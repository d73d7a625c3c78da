"""File jobs from other stores: an SFTP source (a real sshd) to a local folder, and an fsspec
store etlrun has no code of its own for (``memory://``)."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import fsspec

from runner.files.run import run
from runner.spec.load import load_text
from tests.files_tree import make_small, temps, tree, write_job
from tests.sftp_server import SftpServer, sftp_server  # noqa: F401 - the fixture


def test_sftp_source_to_local(
    sftp_server: SftpServer,  # noqa: F811
    tmp_path: Path,
    run_cli,
) -> None:
    remote = sftp_server.root / "instrument"
    paths = make_small(remote, count=30)
    (remote / "big.bin").write_bytes(os.urandom(3 * (1 << 20) + 5))  # prefetched reads
    dst = tmp_path / "dst"
    entry = {"include": ["*"], "compare": "md5", "delete": True}
    spec = write_job(
        tmp_path / "job.yaml", "pull", sftp_server.url("instrument"), f"file://{dst}", entry
    )

    done = run_cli("run", spec)
    assert done.returncode == 0, done.stderr
    assert tree(dst) == tree(remote)
    assert run_cli("check", spec).returncode == 0

    (remote / paths[0]).write_bytes(b"new content")
    (remote / paths[1]).unlink()
    again = run_cli("run", spec)
    assert again.returncode == 0, again.stderr
    assert tree(dst) == tree(remote)
    assert temps(dst) == []
    assert run_cli("plan", spec, "--detailed-exitcode").returncode == 0


def test_any_fsspec_store(tmp_path: Path) -> None:
    fs = fsspec.filesystem("memory")
    root = f"/etlrun-test-{uuid.uuid4().hex[:8]}"
    try:
        for i in range(6):
            fs.pipe(f"{root}/src/d{i % 2}/f{i}.csv", os.urandom(1000 + i))
        fs.pipe(f"{root}/src/skip.txt", b"not selected")
        job = load_text(
            f"job: mem\nmode: sync\nsource: memory://{root}/src\ntarget: memory://{root}/dst\n"
            "files: [{include: ['*.csv'], delete: true}]\n",
            env={},
        )
        state = f"sqlite:///{tmp_path / 'state.db'}"
        assert run(job, "<memory>", state) == 0
        copied = sorted(p.removeprefix(f"{root}/dst/") for p in fs.find(f"{root}/dst"))
        assert copied == sorted(f"d{i % 2}/f{i}.csv" for i in range(6))
        fs.rm(f"{root}/src/d0/f0.csv")
        fs.pipe(f"{root}/src/d1/f1.csv", b"changed")
        assert run(job, "<memory>", state) == 0
        assert fs.cat(f"{root}/dst/d1/f1.csv") == b"changed"
        assert not fs.exists(f"{root}/dst/d0/f0.csv")
        assert fs.cat(f"{root}/dst/d0/f2.csv") == fs.cat(f"{root}/src/d0/f2.csv")
    finally:
        fs.rm(root, recursive=True)
