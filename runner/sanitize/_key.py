"""The sanitize key, which never travels: the spec's ``sanitize.key`` is registered in the process
that loads the job, tasks carry only its id (a keyed fingerprint), and whoever runs a task looks
the key up by that id: registered here, or from ``ETLRUN_SANITIZE_KEY`` (a Dask worker)."""

from __future__ import annotations

import hmac
import os
import threading

from runner.errors import TaskError

KEY_ENV = "ETLRUN_SANITIZE_KEY"
"""Where a worker in another process (Dask) finds the key: the spec's ``sanitize.key`` value."""

_keys: dict[str, bytes] = {}
_keys_lock = threading.Lock()


def key_id(secret: str | bytes) -> str:
    """A fingerprint of the key that says nothing about it: ``HMAC(key, "etlrun key id")``.

    Tasks, plans and state carry this id, never the key; a changed key changes the id, so a
    run planned with one key cannot be finished with another.
    """
    raw = secret.encode() if isinstance(secret, str) else secret
    return hmac.digest(raw, b"etlrun/sanitize/key-id", "sha256").hex()[:16]


def register_key(secret: str) -> str:
    """Remember the key of a job loaded in this process; returns its id."""
    identifier = key_id(secret)
    with _keys_lock:
        _keys[identifier] = secret.encode()
    return identifier


def key_for(identifier: str) -> bytes:
    """The key whose id is ``identifier``: registered here, or in ``ETLRUN_SANITIZE_KEY``."""
    with _keys_lock:
        found = _keys.get(identifier)
    if found is not None:
        return found
    from_env = os.environ.get(KEY_ENV)
    if from_env and key_id(from_env) == identifier:
        return from_env.encode()
    where = f"; {KEY_ENV} holds a different key" if from_env else ""
    raise TaskError(
        f"the sanitize key this run was planned with is not known here{where}: on a worker "
        f"in another process set {KEY_ENV} to the spec's sanitize.key; if the key was changed, "
        "re-run with --fresh"
    )
