"""A real OpenSSH server for the SFTP tests: Debian's ``sshd`` on a loopback port.

The fixture generates a host key and a client key pair, writes its own ``sshd_config`` (the
current user, key auth only, ``AuthorizedKeysFile`` in the temp folder, internal-sftp) and
starts ``sshd -D -e`` as a child process with ``-E logfile -o LogLevel=VERBOSE``, so tests can
read what the server saw. No mock anywhere. Without ``/usr/sbin/sshd`` the tests skip with the
reason, unless ``ETLRUN_REQUIRE_SERVERS=1`` (then they fail).
"""

from __future__ import annotations

import getpass
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

SSHD = os.environ.get("ETLRUN_TEST_SSHD", "/usr/sbin/sshd")


@dataclass
class SftpServer:
    host: str
    port: int
    user: str
    key_file: Path
    """The client's private key."""
    host_key: Path
    known_hosts: Path
    """A known_hosts file holding the server's real host key."""
    log: Path
    root: Path
    """A folder the user can write, for the tests' files."""

    def url(self, path: str = "", **query: str) -> str:
        params = {"known_hosts": str(self.known_hosts), "key_file": str(self.key_file), **query}
        text = "&".join(f"{k}={v}" for k, v in params.items())
        return f"sftp://{self.user}@{self.host}:{self.port}{self.root}/{path}?{text}"

    def fingerprint(self) -> str:
        out = subprocess.run(
            ["ssh-keygen", "-l", "-E", "sha256", "-f", f"{self.host_key}.pub"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        return out.split()[1]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _keygen(path: Path, kind: str = "ed25519") -> None:
    subprocess.run(
        ["ssh-keygen", "-q", "-t", kind, "-N", "", "-C", "etlrun-test", "-f", str(path)],
        check=True,
    )


def _missing(reason: str) -> None:
    if os.environ.get("ETLRUN_REQUIRE_SERVERS") == "1":
        pytest.fail(f"{reason} (ETLRUN_REQUIRE_SERVERS=1)")
    pytest.skip(reason)


def start_sftp_server(folder: Path) -> Iterator[SftpServer]:
    if not os.path.exists(SSHD) or shutil.which("ssh-keygen") is None:
        _missing(f"no OpenSSH server at {SSHD} (apt-get install openssh-server)")
    pytest.importorskip("paramiko")
    folder.mkdir(parents=True, exist_ok=True)
    os.chmod(folder, 0o755)
    host_key, client_key = folder / "host_key", folder / "client_key"
    _keygen(host_key)
    _keygen(client_key)
    authorized = folder / "authorized_keys"
    authorized.write_text((folder / "client_key.pub").read_text())
    os.chmod(authorized, 0o600)
    port = _free_port()
    user = getpass.getuser()
    log = folder / "sshd.log"
    config = folder / "sshd_config"
    config.write_text(
        f"Port {port}\n"
        "ListenAddress 127.0.0.1\n"
        f"HostKey {host_key}\n"
        f"PidFile {folder / 'sshd.pid'}\n"
        f"AuthorizedKeysFile {authorized}\n"
        f"AllowUsers {user}\n"
        "PermitRootLogin prohibit-password\n"
        "PubkeyAuthentication yes\n"
        "PasswordAuthentication no\n"
        "KbdInteractiveAuthentication no\n"
        "UsePAM no\n"
        "StrictModes no\n"
        "Subsystem sftp internal-sftp\n"
    )
    known_hosts = folder / "known_hosts"
    public = (folder / "host_key.pub").read_text().split()
    known_hosts.write_text(f"[127.0.0.1]:{port} {public[0]} {public[1]}\n")
    if os.geteuid() == 0:
        os.makedirs("/run/sshd", exist_ok=True)  # sshd's privilege separation folder
    process = subprocess.Popen(
        [SSHD, "-D", "-e", "-f", str(config), "-E", str(log), "-o", "LogLevel=VERBOSE"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 15
        while True:
            if process.poll() is not None:
                text = log.read_text() if log.exists() else ""
                _missing(f"sshd did not start (exit {process.returncode}): {text[-400:]}")
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                    break
            except OSError:
                if time.monotonic() > deadline:
                    _missing("sshd did not listen within 15 s")
                time.sleep(0.1)
        root = folder / "files"
        root.mkdir()
        yield SftpServer("127.0.0.1", port, user, client_key, host_key, known_hosts, log, root)
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture
def sftp_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SftpServer]:
    """A fresh sshd per test (its log then holds that test's connections only)."""
    yield from start_sftp_server(tmp_path_factory.mktemp("sshd"))
