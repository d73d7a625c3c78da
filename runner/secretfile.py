"""The encrypted secrets file: ``etlrun secrets set|list``, read by ``${secret:NAME}`` in specs.

Each value is a Fernet token (AES-128-CBC + HMAC-SHA256, from ``cryptography``, the ``secrets``
extra) under the key in ``ETLRUN_MASTER_KEY``; the names are stored in the clear, so
``secrets list`` needs no key. The file is ``.etlrun/secrets.json`` under the working folder
unless ``ETLRUN_SECRETS_FILE`` names another, and is written 0600.

Values never come from the command line (argv is visible to every local user in ``ps``): they are
read from stdin or a prompt, and every value read is registered with :mod:`runner.secrets`.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

from runner import secrets
from runner.errors import UsageError

DEFAULT_PATH = ".etlrun/secrets.json"
KEY_ENV = "ETLRUN_MASTER_KEY"
PATH_ENV = "ETLRUN_SECRETS_FILE"
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]*")


def path() -> Path:
    return Path(os.environ.get(PATH_ENV) or DEFAULT_PATH)


def _fernet() -> Any:
    try:
        from cryptography.fernet import Fernet
    except ImportError:
        raise UsageError(
            'the secrets file needs the cryptography package: pip install "etlrun[secrets]"'
        ) from None
    key = os.environ.get(KEY_ENV)
    if not key:
        raise UsageError(
            f"{KEY_ENV} is not set; it holds the key of the secrets file "
            "(make one with 'etlrun secrets keygen' and keep it in your CI's secret store)"
        )
    secrets.register(key)
    try:
        return Fernet(key.encode())
    except (ValueError, TypeError):
        raise UsageError(
            f"{KEY_ENV} is not a Fernet key (32 url-safe base64-encoded bytes; "
            "'etlrun secrets keygen' makes one)"
        ) from None


def new_key() -> str:
    from cryptography.fernet import Fernet

    return Fernet.generate_key().decode()


def _read() -> dict[str, str]:
    file = path()
    if not file.exists():
        return {}
    try:
        data = json.loads(file.read_text())
        tokens = data["secrets"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise UsageError(f"{file}: not an etlrun secrets file ({exc})") from None
    return {str(k): str(v) for k, v in tokens.items()}


def names() -> list[str]:
    return sorted(_read())


def get(name: str) -> str:
    """The value of secret ``name``, registered so it is scrubbed from every output."""
    from cryptography.fernet import InvalidToken

    tokens = _read()
    if name not in tokens:
        known = ", ".join(sorted(tokens)) or "none"
        raise KeyError(f"no secret '{name}' in {path()} (defined: {known})")
    try:
        value: str = _fernet().decrypt(tokens[name].encode()).decode()
    except InvalidToken:
        raise UsageError(
            f"{path()}: secret '{name}' does not decrypt with {KEY_ENV} (wrong key?)"
        ) from None
    secrets.register(value)
    return value


def set_secret(name: str, value: str) -> bool:
    """Store ``value`` as ``name``; True if it replaced an existing secret."""
    if not _NAME.fullmatch(name):
        raise UsageError(f"'{name}' is not a secret name (letters, digits, _ . -)")
    if not value:
        raise UsageError("refusing to store an empty secret")
    secrets.register(value)
    token = _fernet().encrypt(value.encode()).decode()
    tokens = _read()
    replaced = name in tokens
    tokens[name] = token
    file = path()
    file.parent.mkdir(parents=True, exist_ok=True)
    tmp = file.with_name(file.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        json.dump({"version": 1, "secrets": dict(sorted(tokens.items()))}, out, indent=2)
    os.replace(tmp, file)
    return replaced
