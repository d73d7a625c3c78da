"""backup mode end to end: files, manifest (written last), verification, retention, full disk."""

from __future__ import annotations

import hashlib
import json
import sqlite3
from pathlib import Path

import pytest

from runner.cli import main
from runner.errors import VerifyError
from runner.restore import open_manifest, verify
from tests.connectors.test_fs import full_disk_filesystem


def make_source(path: Path, rows: int = 1000) -> str:
    with sqlite3.connect(path) as conn:
        conn.execute(
            "CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT, price DECIMAL(10,2), "
            "born DATE, seen TIMESTAMP)"
        )
        conn.executemany(
            "INSERT INTO items VALUES (?, ?, ?, ?, ?)",
            [
                (i, f"név {i}" if i % 7 else None, f"{i}.25", "2001-02-03",
                 "2020-01-02 03:04:05")
                for i in range(1, rows + 1)
            ],
        )  # fmt: skip
        conn.execute("CREATE TABLE tags (id INTEGER PRIMARY KEY, tag TEXT)")
        conn.executemany("INSERT INTO tags VALUES (?, ?)", [(i, f"t{i}") for i in range(1, 51)])
    return f"sqlite:///{path}"


def write_spec(tmp_path: Path, source: str, target: str, extra: str = "") -> Path:
    spec = tmp_path / "job.yaml"
    spec.write_text(
        f"job: nightly\nsource: {source}\ntarget: {target}\n"
        f"defaults:\n  mode: backup\n  chunk_rows: 300\n{extra}tables: [items, tags]\n"
    )
    return spec


def manifests(root: Path) -> list[Path]:
    return sorted((root / "nightly").glob("manifest-*.json"))


@pytest.mark.parametrize("fmt", ["parquet", "csv", "jsonl"])
def test_backup_manifest_and_restore(tmp_path: Path, fmt: str) -> None:
    source = make_source(tmp_path / "src.db")
    root = tmp_path / "backups"
    spec = write_spec(tmp_path, source, f"file://{root}/", f"  format: {fmt}\n")
    state = f"sqlite:///{tmp_path}/state.db"
    assert main(["run", str(spec), "--state", state]) == 0
    [manifest_file] = manifests(root)
    manifest = json.loads(manifest_file.read_text())
    assert manifest["job"] == "nightly" and manifest["etlrun_version"]
    assert manifest["source"] == source and manifest["spec_hash"]
    assert {t: manifest["tables"][t]["rows"] for t in manifest["tables"]} == {
        "items": 1000,
        "tags": 50,
    }
    for info in manifest["tables"].values():
        assert info["format"] == fmt
        for f in info["files"]:
            data = (root / f["path"]).read_bytes()
            assert f["bytes"] == len(data)
            assert f["sha256"] == hashlib.sha256(data).hexdigest()
    leftovers = [p for p in root.rglob("*") if p.name.startswith(".etlrun")]
    assert leftovers == []
    assert verify(open_manifest(str(manifest_file))) == {"items": 1000, "tags": 50}

    restored = tmp_path / "restored.db"
    args = ["restore", str(manifest_file), "--target", f"sqlite:///{restored}", "--state", state]
    assert main(args) == 0
    with sqlite3.connect(tmp_path / "src.db") as a, sqlite3.connect(restored) as b:
        for query in ("SELECT id, name, born FROM items ORDER BY id", "SELECT * FROM tags"):
            assert a.execute(query).fetchall() == b.execute(query).fetchall()
        prices = b.execute("SELECT price FROM items ORDER BY id LIMIT 2").fetchall()
        assert [float(p[0]) for p in prices] == [1.25, 2.25]


def test_restore_refuses_a_tampered_file(tmp_path: Path) -> None:
    source = make_source(tmp_path / "src.db")
    root = tmp_path / "backups"
    state = f"sqlite:///{tmp_path}/state.db"
    assert (
        main(["run", str(write_spec(tmp_path, source, f"file://{root}/")), "--state", state]) == 0
    )
    [manifest_file] = manifests(root)
    manifest = json.loads(manifest_file.read_text())
    victim = root / manifest["tables"]["tags"]["files"][0]["path"]
    victim.write_bytes(victim.read_bytes()[:-10] + b"0123456789")
    with pytest.raises(VerifyError, match="sha256"):
        verify(open_manifest(str(manifest_file)))
    restored = tmp_path / "restored.db"
    args = ["restore", str(manifest_file), "--target", f"sqlite:///{restored}", "--state", state]
    assert main(args) == 4
    assert not restored.exists()


def test_retention_keeps_the_newest(tmp_path: Path) -> None:
    source = make_source(tmp_path / "src.db", rows=20)
    root = tmp_path / "backups"
    spec = write_spec(tmp_path, source, f"file://{root}/", "  retention: {keep: 2}\n")
    state = f"sqlite:///{tmp_path}/state.db"
    for _ in range(3):
        assert main(["run", str(spec), "--state", state, "--fresh"]) == 0
    kept = manifests(root)
    assert len(kept) == 2
    for manifest_file in kept:
        verify(open_manifest(str(manifest_file)))
    data_files = [p for p in root.rglob("*.parquet")]
    assert len(data_files) == 4  # two tables x two backups


PURGE_AFTER = """job: tidy
source: {source}
target: {source}
tables:
  - {{name: items, mode: purge, where: "id > 0", backup: "file://{root}/purged/"}}
"""


def test_full_disk_fails_cleanly(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A size-limited fsspec file system (every open file fails with ENOSPC once the disk's
    budget is spent); a real tmpfs is the test below."""
    import runner.connectors.fs as fs_module

    source = make_source(tmp_path / "src.db", rows=5000)
    root = tmp_path / "backups"
    spec = write_spec(tmp_path, source, f"file://{root}/")
    state = f"sqlite:///{tmp_path}/state.db"
    assert main(["run", str(spec), "--state", state]) == 0
    [previous] = manifests(root)
    before = {p for p in root.rglob("*") if p.is_file()}

    disk = full_disk_filesystem(20_000)  # one disk, shared by every connection to it
    monkeypatch.setattr(fs_module, "filesystem", lambda url: (disk, str(root)))
    assert main(["run", str(spec), "--state", state, "--fresh"]) == 1
    # a purge whose backup goes to the full disk refuses, deleting nothing
    purge = tmp_path / "tidy.yaml"
    purge.write_text(PURGE_AFTER.format(source=source, root=root))
    assert main(["run", str(purge), "--state", state]) == 6
    monkeypatch.undo()
    with sqlite3.connect(tmp_path / "src.db") as conn:
        assert conn.execute("SELECT COUNT(*) FROM items").fetchone()[0] == 5000
    assert manifests(root) == [previous]  # no manifest for the failed backup
    after = {p for p in root.rglob("*") if p.is_file()}
    new = after - before
    # no file of the failed run under a final name: only hidden parts it had completed
    assert all(p.name.startswith(".etlrun") for p in new), new
    verify(open_manifest(str(previous)))


TMPFS_DRIVER = """
import json, sqlite3, sys
sys.path.insert(0, {repo!r})
from pathlib import Path
from runner.cli import main
from runner.restore import open_manifest, verify

tmp, root = Path({tmp!r}), Path({root!r})
state = f"sqlite:///{{tmp}}/state.db"
out = {{}}
out["first"] = main(["run", {spec!r}, "--state", state])
out["manifests"] = sorted(str(p) for p in root.rglob("manifest-*.json"))
before = {{str(p) for p in root.rglob("*") if p.is_file()}}
with sqlite3.connect(tmp / "src.db") as conn:  # now more than the disk holds
    conn.executemany(
        "INSERT INTO items (id, name) VALUES (?, ?)",
        [(i, __import__("os").urandom(200).hex()) for i in range(10_001, 12_001)],
    )
out["second"] = main(["run", {spec!r}, "--state", state, "--fresh"])
out["purge"] = main(["run", {purge!r}, "--state", state])
out["after_manifests"] = sorted(str(p) for p in root.rglob("manifest-*.json"))
out["new"] = sorted({{str(p) for p in root.rglob("*") if p.is_file()}} - before)
out["verified"] = verify(open_manifest(out["manifests"][0]))
with sqlite3.connect(tmp / "src.db") as conn:
    out["items"] = conn.execute("SELECT COUNT(*) FROM items").fetchone()[0]
(tmp / "result.json").write_text(json.dumps(out))
"""


def _unshare_works() -> str | None:
    import shutil
    import subprocess

    if shutil.which("unshare") is None:
        return "no unshare(1)"
    probe = subprocess.run(
        ["unshare", "-rm", "sh", "-c", "mount -t tmpfs -o size=65536 tmpfs /mnt"],
        capture_output=True,
        text=True,
    )
    if probe.returncode:
        return f"cannot mount a tmpfs in a user namespace here: {probe.stderr.strip()}"
    return None


def test_full_disk_on_a_real_tmpfs(tmp_path: Path) -> None:
    """The same on a real full disk: a 256 KiB tmpfs, mounted in a private mount namespace
    (``unshare -rm``, no privileges needed), with the whole scenario run inside it."""
    import subprocess
    import sys

    problem = _unshare_works()
    if problem:
        pytest.skip(problem)  # the size-limited file system test above still runs
    source = make_source(tmp_path / "src.db", rows=200)
    root = tmp_path / "backups"
    root.mkdir()
    spec = write_spec(tmp_path, source, f"file://{root}/")
    purge = tmp_path / "tidy.yaml"
    purge.write_text(PURGE_AFTER.format(source=source, root=root))
    driver = tmp_path / "driver.py"
    repo = str(Path(__file__).resolve().parents[2])
    driver.write_text(
        TMPFS_DRIVER.format(repo=repo, tmp=str(tmp_path), root=str(root), spec=str(spec),
                            purge=str(purge))
    )  # fmt: skip
    done = subprocess.run(
        ["unshare", "-rm", "sh", "-c",
         f"mount -t tmpfs -o size=262144 tmpfs '{root}' && exec '{sys.executable}' '{driver}'"],
        capture_output=True, text=True, timeout=300, cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    out = json.loads((tmp_path / "result.json").read_text())
    assert out["first"] == 0 and len(out["manifests"]) == 1
    assert out["second"] == 1, done.stderr[-3000:]  # No space left on device
    assert "No space left on device" in done.stderr
    assert out["purge"] == 6  # its backup cannot be written: nothing deleted
    assert out["items"] == 2200
    assert out["after_manifests"] == out["manifests"]
    assert all(Path(p).name.startswith(".etlrun") for p in out["new"]), out["new"]
    assert out["verified"] == {"items": 200, "tags": 50}


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ("  path: '{job}/{table}.parquet'\n", "must contain {run_id}"),
        ("  path: '{job}/{run_id}/{tabel}.parquet'\n", "unknown placeholder '{tabel}'"),
        ("  split: chunk\n  path: '{run_id}/{table}.parquet'\n", "must contain {chunk}"),
    ],
)
def test_path_errors(tmp_path: Path, run_cli, extra: str, message: str) -> None:
    source = make_source(tmp_path / "src.db", rows=5)
    spec = write_spec(tmp_path, source, f"file://{tmp_path}/b/", extra)
    done = run_cli("plan", str(spec))
    assert done.returncode == 2, done.stderr
    assert message in done.stderr


def test_file_options_need_a_file_target(tmp_path: Path, run_cli) -> None:
    source = make_source(tmp_path / "src.db", rows=5)
    spec = tmp_path / "copy.yaml"
    spec.write_text(
        f"source: {source}\ntarget: sqlite:///{tmp_path}/t.db\n"
        "defaults: {format: csv}\ntables: [items]\n"
    )
    done = run_cli("plan", str(spec))
    assert done.returncode == 2
    assert "applies to a file store target" in done.stderr


def test_copy_into_a_folder(tmp_path: Path) -> None:
    import pyarrow.parquet as pq

    source = make_source(tmp_path / "src.db")
    spec = tmp_path / "copy.yaml"
    spec.write_text(
        f"source: {source}\ntarget: file://{tmp_path}/out/\n"
        "defaults: {chunk_rows: 100}\ntables: [items, tags]\n"
    )
    assert main(["run", str(spec), "--state", f"sqlite:///{tmp_path}/state.db"]) == 0
    names = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert names == ["items.parquet", "tags.parquet"]
    table = pq.read_table(tmp_path / "out" / "items.parquet")
    assert table.num_rows == 1000
    assert table.column("id").to_pylist() == list(range(1, 1001))


def test_a_sanitized_job_backs_up_sanitized_values_only(tmp_path: Path) -> None:
    import pyarrow.parquet as pq

    db = tmp_path / "src.db"
    with sqlite3.connect(db) as conn:
        conn.execute("CREATE TABLE people (id INTEGER PRIMARY KEY, email TEXT, phone TEXT)")
        conn.executemany(
            "INSERT INTO people VALUES (?, ?, ?)",
            [(i, f"p{i}@example.org", f"555-000-{i:04d}") for i in range(1, 101)],
        )
    spec = tmp_path / "job.yaml"
    spec.write_text(
        f"job: nightly\nsource: sqlite:///{db}\ntarget: file://{tmp_path}/b/\n"
        "defaults: {mode: backup}\ntables:\n  - name: people\n"
        "    sanitize: {email: drop, phone: {mask: {keep_last: 4}}}\n"
    )
    assert main(["run", str(spec), "--state", f"sqlite:///{tmp_path}/state.db"]) == 0
    [manifest] = manifests(tmp_path / "b")
    info = json.loads(manifest.read_text())["tables"]["people"]
    assert [c for c, _ in info["schema"]] == ["id", "phone"]
    files = [tmp_path / "b" / f["path"] for f in info["files"]]
    table = pq.read_table(files[0])
    assert table.column_names == ["id", "phone"]
    assert table.column("phone")[0].as_py() == "********0001"
    raw = b"".join(f.read_bytes() for f in files)
    assert b"example.org" not in raw and b"555-000" not in raw
