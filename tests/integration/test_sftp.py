"""SFTP against a real OpenSSH server: strict host keys, and a backup round trip."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from runner.connectors.fs import FsConnector
from runner.errors import ConnectError
from tests.sftp_server import SftpServer, sftp_server  # noqa: F401 - the fixture

AUTH_WORDS = ("publickey", "password", "Accepted", "Failed", "Invalid user", "userauth")


def _auth_lines(server: SftpServer) -> list[str]:
    lines = server.log.read_text().splitlines()
    return [line for line in lines if any(word in line for word in AUTH_WORDS)]


def _other_key(server: SftpServer, tmp_path: Path) -> str:
    import subprocess

    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(tmp_path / "impostor")],
        check=True,
    )
    return (tmp_path / "impostor.pub").read_text().split()[1]


def test_connects_with_known_hosts_and_writes(sftp_server: SftpServer) -> None:  # noqa: F811
    store = FsConnector(sftp_server.url("out/"))
    with store.open_temp("a.txt") as (temp, out):
        out.write(b"hello")
    store.rename(temp, "a.txt")
    store.close()
    assert (sftp_server.root / "out" / "a.txt").read_bytes() == b"hello"
    assert any("Accepted publickey" in line for line in _auth_lines(sftp_server))


def test_changed_host_key_is_refused_before_authentication(
    sftp_server: SftpServer,  # noqa: F811
    tmp_path: Path,
) -> None:
    # known_hosts names the server with a different key: a man in the middle, or a rebuilt host
    impostor = _other_key(sftp_server, tmp_path)
    sftp_server.known_hosts.write_text(f"[127.0.0.1]:{sftp_server.port} ssh-ed25519 {impostor}\n")
    with pytest.raises(ConnectError, match="host key"):
        _ = FsConnector(sftp_server.url("out/")).fs
    assert _auth_lines(sftp_server) == []
    assert "Connection from 127.0.0.1" in sftp_server.log.read_text()  # it did reach sshd
    assert not (sftp_server.root / "out").exists()


def test_unknown_host_key_is_refused(sftp_server: SftpServer) -> None:  # noqa: F811
    sftp_server.known_hosts.write_text("")
    with pytest.raises(ConnectError, match="not found in known_hosts|refused"):
        _ = FsConnector(sftp_server.url("out/")).fs
    assert _auth_lines(sftp_server) == []


def test_pinned_fingerprint(sftp_server: SftpServer, tmp_path: Path) -> None:  # noqa: F811
    sftp_server.known_hosts.write_text("")  # the pin alone decides
    good = sftp_server.url("out/", host_key_fingerprint=sftp_server.fingerprint())
    store = FsConnector(good)
    assert store.fs.exists(str(sftp_server.root))
    store.close()
    before = len(_auth_lines(sftp_server))
    bad = sftp_server.url("out/", host_key_fingerprint="SHA256:" + "A" * 43)
    with pytest.raises(ConnectError, match="pinned"):
        _ = FsConnector(bad).fs
    assert len(_auth_lines(sftp_server)) == before


def test_backup_to_sftp_and_restore(
    sftp_server: SftpServer,  # noqa: F811
    tmp_path: Path,
    run_cli,
) -> None:
    source = tmp_path / "src.db"
    with sqlite3.connect(source) as conn:
        conn.execute("CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT, price REAL)")
        conn.executemany(
            "INSERT INTO items VALUES (?, ?, ?)", [(i, f"n{i}", i / 4) for i in range(1, 501)]
        )
    spec = tmp_path / "job.yaml"
    spec.write_text(
        f"job: shop\nsource: sqlite:///{source}\ntarget: {sftp_server.url('backups/')}\n"
        "defaults: {mode: backup, chunk_rows: 100}\ntables: [items]\n"
    )
    state = f"sqlite:///{tmp_path}/state.db"
    done = run_cli("run", str(spec), "--state", state)
    assert done.returncode == 0, done.stderr
    manifests = list((sftp_server.root / "backups" / "shop").glob("manifest-*.json"))
    assert len(manifests) == 1
    manifest = json.loads(manifests[0].read_text())
    assert manifest["tables"]["items"]["rows"] == 500
    url = sftp_server.url(f"backups/shop/{manifests[0].name}")
    restored = tmp_path / "restored.db"
    done = run_cli("restore", url, "--target", f"sqlite:///{restored}", "--state", state)
    assert done.returncode == 0, done.stderr
    with sqlite3.connect(source) as a, sqlite3.connect(restored) as b:
        query = "SELECT id, name, price FROM items ORDER BY id"
        assert a.execute(query).fetchall() == b.execute(query).fetchall()
