"""fsspec file systems for a URL: local, S3, SFTP connected with a strict host-key policy, and
SharePoint (:mod:`._sharepoint`)."""

from __future__ import annotations

import base64
import hashlib
import os
from typing import Any
from urllib.parse import unquote, urlsplit

from runner.errors import ConnectError, SpecError


def _known_hosts_keys(path: str) -> Any:
    import paramiko

    keys = paramiko.HostKeys()
    if os.path.exists(path):
        keys.load(path)
    return keys


def fingerprint(key: Any) -> str:
    """OpenSSH's ``SHA256:...`` fingerprint of a paramiko key."""
    digest = hashlib.sha256(key.asbytes()).digest()
    return "SHA256:" + base64.b64encode(digest).decode().rstrip("=")


def sftp_filesystem(url: str) -> Any:
    """An fsspec SFTP filesystem whose connection was made with a strict host-key policy."""
    try:
        import paramiko
        from fsspec.implementations.sftp import SFTPFileSystem
    except ImportError as exc:
        raise ConnectError('SFTP needs paramiko: pip install "etlrun[sftp]"') from exc

    parts = urlsplit(url)
    query = _query(parts.query)
    host, port = parts.hostname or "", parts.port or 22
    pinned = (query.get("host_key_fingerprint") or "").strip()
    known_hosts = os.path.expanduser(query.get("known_hosts", "~/.ssh/known_hosts"))

    class _Strict(SFTPFileSystem):  # type: ignore[misc]
        def _connect(self) -> None:
            client = paramiko.SSHClient()
            if pinned:

                class _Pinned(paramiko.MissingHostKeyPolicy):
                    def missing_host_key(self, _client: Any, hostname: str, key: Any) -> None:
                        if fingerprint(key) != pinned:
                            raise paramiko.SSHException(
                                f"host key of {hostname} is {fingerprint(key)}, "
                                f"not the pinned {pinned}"
                            )

                client.set_missing_host_key_policy(_Pinned())
            else:
                client._host_keys = _known_hosts_keys(known_hosts)
                client._host_keys_filename = None
                client.set_missing_host_key_policy(paramiko.RejectPolicy())
            self.client = client
            client.connect(self.host, **self.ssh_kwargs)
            self.ftp = client.open_sftp()

    kwargs: dict[str, Any] = {"port": port, "look_for_keys": False, "allow_agent": False}
    if parts.username:
        kwargs["username"] = unquote(parts.username)
    if parts.password:
        kwargs["password"] = unquote(parts.password)
    key_file = query.get("key_file") or os.environ.get("ETLRUN_SFTP_KEY_FILE")
    if key_file:
        kwargs["key_filename"] = os.path.expanduser(key_file)
    elif not parts.password and os.environ.get("ETLRUN_SFTP_PASSWORD"):
        kwargs["password"] = os.environ["ETLRUN_SFTP_PASSWORD"]
    try:
        return _Strict(host, skip_instance_cache=True, timeout=30, **kwargs)
    except paramiko.BadHostKeyException as exc:
        raise ConnectError(
            f"SFTP host key of {host}:{port} does not match known_hosts ({known_hosts}); "
            "refused before authenticating"
        ) from exc
    except paramiko.AuthenticationException as exc:
        raise ConnectError(f"SFTP {host}:{port}: authentication failed ({exc})") from exc
    except paramiko.SSHException as exc:
        raise ConnectError(f"SFTP {host}:{port}: {exc}; refused before authenticating") from exc
    except OSError as exc:
        raise ConnectError(f"SFTP {host}:{port}: {exc}") from exc


def _query(text: str) -> dict[str, str]:
    """URL query parameters; a '+' stays a '+' (fingerprints are base64)."""
    pairs = (item.partition("=") for item in text.split("&") if item)
    return {unquote(k): unquote(v) for k, _, v in pairs}


def filesystem(url: str) -> tuple[Any, str]:
    """(fsspec filesystem, root path) for a file store URL."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme == "file":
        from fsspec.implementations.local import LocalFileSystem

        return LocalFileSystem(), unquote(parts.netloc + parts.path) or "/"
    if scheme == "sftp":
        return sftp_filesystem(url), unquote(parts.path) or "/"
    if scheme == "s3":
        try:
            import s3fs
        except ImportError as exc:
            raise ConnectError('S3 needs s3fs: pip install "etlrun[s3]"') from exc
        query = _query(parts.query)
        client = {"endpoint_url": query["endpoint_url"]} if "endpoint_url" in query else {}
        fs = s3fs.S3FileSystem(client_kwargs=client, skip_instance_cache=True)
        return fs, f"{parts.netloc}{parts.path}".rstrip("/")
    if scheme == "sharepoint":
        from runner.connectors import _sharepoint

        return _sharepoint.filesystem(url)
    raise SpecError(f"no file store for URL scheme '{scheme}'")
