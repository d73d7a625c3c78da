"""Where the files of ``backup`` and of ``copy`` into a file store go: the ``path:`` template and
its placeholders, the checks that keep one backup (or chunk) from overwriting another, and the
name of a backup's manifest."""

from __future__ import annotations

import string
from typing import Any

PLACEHOLDERS = ("job", "table", "run_id", "run_date", "chunk", "ext")
DEFAULT_COPY_PATH = "{table}.{ext}"
DEFAULT_BACKUP_PATH = "{job}/{run_id}/{table}.{ext}"
DEFAULT_BACKUP_CHUNK_PATH = "{job}/{run_id}/{table}/{chunk}.{ext}"


def manifest_path(job: str, run_id: str) -> str:
    return f"{job}/manifest-{run_id}.json"


def check_path(template: str, mode: str, split: str) -> None:
    """Refuse templates that name unknown fields, or could overwrite another backup or chunk."""
    try:
        fields = {f for _, f, _, _ in string.Formatter().parse(template) if f is not None}
    except ValueError as exc:
        raise ValueError(f"path '{template}': {exc}") from None
    unknown = fields - set(PLACEHOLDERS)
    if unknown:
        raise ValueError(
            f"path '{template}': unknown placeholder '{{{sorted(unknown)[0]}}}' "
            f"(use: {', '.join('{' + p + '}' for p in PLACEHOLDERS)})"
        )
    if mode == "backup" and "run_id" not in fields:
        raise ValueError(
            f"path '{template}' must contain {{run_id}}: a new backup must never overwrite "
            "the files of an earlier one"
        )
    if split == "chunk" and "chunk" not in fields:
        raise ValueError(f"path '{template}' must contain {{chunk}} with split: chunk")
    if ".." in template.split("/"):
        raise ValueError(f"path '{template}': '..' is not allowed")


def render(template: str, **values: Any) -> str:
    return template.format(**{k: values.get(k, "") for k in PLACEHOLDERS})


def run_date(run_id: str) -> str:
    stamp = run_id[:8]
    return f"{stamp[:4]}-{stamp[4:6]}-{stamp[6:8]}" if stamp.isdigit() else stamp
