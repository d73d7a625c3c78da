"""File jobs against the physical baselines: 500 small files and one 200 MB file.

    .venv/bin/python bench/files.py [--repeat 3] [--big-mb 200] [--small 500]

F1 local -> local     baseline: cp -a SRC/. DST/      (no hashing, no state)
F2 local -> SFTP      baseline: scp -r (OpenSSH) to a private sshd on 127.0.0.1
                      (the test suite's server: tests/sftp_server.py)
F3 re-run, nothing changed (local -> local)   baseline: rsync -a (which also sends nothing)

Each run starts from an empty target (F3: a synced one and a fresh state store for F1/F2) and
is checked afterwards: every file must be on the target with the source's sha256. Median wall
seconds over --repeat runs, and the ratio to the baseline. A benchmark, not a test.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.files_tree import make_big, make_small, tree  # noqa: E402
from tests.sftp_server import start_sftp_server  # noqa: E402

ETLRUN = [sys.executable, "-m", "runner"]


def _job(path: Path, source: Path, target: str) -> Path:
    path.write_text(
        f"job: bench-files\nsource: file://{source}\ntarget: {json.dumps(target)}\n"
        "workers: 4\nfiles: ['*']\n"
    )
    return path


def _timed(command: list[str], reset: Callable[[], None], check: Callable[[], None]) -> float:
    reset()
    start = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, cwd=ROOT)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"{command[:4]}... failed ({done.returncode}): {done.stderr[-600:]}")
    check()
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--big-mb", type=int, default=200)
    parser.add_argument("--small", type=int, default=500)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="etlrun-bench-files-"))
    servers = None
    try:
        src = work / "src"
        make_small(src, args.small)
        make_big(src / "raw" / "big.bin", args.big_mb * 1024 * 1024)
        expected = tree(src)
        total = sum(p.stat().st_size for p in src.rglob("*") if p.is_file())
        servers = start_sftp_server(work / "sshd")
        server = next(servers)
        local, remote = work / "dst", server.root / "dst"
        state = work / "state.db"

        def empty(folder: Path) -> Callable[[], None]:
            def reset() -> None:
                shutil.rmtree(folder, ignore_errors=True)
                folder.mkdir(parents=True)
                state.unlink(missing_ok=True)

            return reset

        def same(folder: Path) -> Callable[[], None]:
            def check() -> None:
                if tree(folder) != expected:
                    raise SystemExit(f"{folder}: not equal to the source")

            return check

        env_state = ["--state", f"sqlite:///{state}"]
        ssh = [
            "-P", str(server.port), "-i", str(server.key_file),
            "-o", f"UserKnownHostsFile={server.known_hosts}", "-o", "StrictHostKeyChecking=yes",
            "-o", "BatchMode=yes",
        ]  # fmt: skip
        cases = {
            "F1 local -> local": (
                [*ETLRUN, "run", str(_job(work / "f1.yaml", src, f"file://{local}")), *env_state],
                ["cp", "-a", f"{src}/.", f"{local}/"],
                empty(local),
                same(local),
            ),
            "F2 local -> SFTP": (
                [*ETLRUN, "run", str(_job(work / "f2.yaml", src, server.url("dst"))), *env_state],
                [
                    "scp",
                    "-q",
                    "-r",
                    *ssh,
                    *[str(p) for p in sorted(src.iterdir())],
                    f"{server.user}@127.0.0.1:{remote}/",
                ],
                empty(remote),
                same(remote),
            ),  # fmt: skip
        }
        results = []
        for name, (ours, theirs, reset, check) in cases.items():
            mine, base = [], []
            for _ in range(args.repeat):
                mine.append(_timed(ours, reset, check))
                base.append(_timed(theirs, reset, check))
            results.append((name, statistics.median(mine), statistics.median(base)))
        # F3: a re-run with nothing changed, after one full sync
        empty(local)()
        subprocess.run(
            [*ETLRUN, "run", str(work / "f1.yaml"), *env_state],
            check=True,
            cwd=ROOT,
            capture_output=True,
        )
        rerun = [
            _timed([*ETLRUN, "run", str(work / "f1.yaml"), *env_state], lambda: None, same(local))
            for _ in range(args.repeat)
        ]
        rsync = [
            _timed(["rsync", "-a", f"{src}/", f"{local}/"], lambda: None, same(local))
            for _ in range(args.repeat)
        ]
        results.append(
            ("F3 re-run, nothing changed", statistics.median(rerun), statistics.median(rsync))
        )
        files = len(expected)
        print(f"{files} files, {total / 1e6:.1f} MB; median of {args.repeat}; wall seconds")
        print(f"{'workload':<28}{'etlrun':>9}{'baseline':>10}{'ratio':>8}{'etlrun MB/s':>13}")
        for name, mine_s, base_s in results:
            rate = total / 1e6 / mine_s if not name.startswith("F3") else 0
            shown = f"{rate:13.1f}" if rate else f"{'-':>13}"
            print(f"{name:<28}{mine_s:9.2f}{base_s:10.2f}{mine_s / base_s:8.2f}{shown}")
        digest = hashlib.sha256(repr(sorted(expected.items())).encode()).hexdigest()[:12]
        print(f"(every run checked against the source's sha256 tree {digest})")
    finally:
        if servers is not None:
            servers.close()  # stops sshd
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
