"""What users write for a file job: the ``files:`` entries (DESIGN §3) and the checks that need
the whole job (file store URLs at both ends, options that only tables have).

Kept apart from :mod:`runner.spec.models` so the table models stay one concern; ``Job`` imports
:class:`FileSpec` and calls :func:`check_file_job`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

if TYPE_CHECKING:
    from runner.spec.models import Job

FILE_MODES = ("copy", "sync")
"""The modes a file job can have: copy never deletes on the target; sync may (delete: true)."""
BUILTIN_STORES = ("file", "sftp", "s3", "sharepoint")


class FileSpec(BaseModel):
    """One entry of ``files:``: which files under the source move, and how a change is seen;
    a bare glob is shorthand for ``{include: [glob]}``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    include: Annotated[list[str], Field(min_length=1)] = ["*"]
    """Globs of the files to move (default: every file). A glob without '/' matches the file's
    name in any folder ("*.csv"); one with '/' matches the path under `path` ("raw/**/*.res");
    '**' spans folders."""
    exclude: list[str] = []
    """Globs of files to leave out, matched like include; they win over include."""
    path: str | None = None
    """A folder under the source URL to read (default: the source URL itself)."""
    to: str | None = None
    """The folder under the target URL the files go to (default: the same as path)."""
    recursive: bool = True
    """Also move the files in sub-folders (their folders are created on the target)."""
    compare: Literal["sha256", "md5", "size_mtime"] = "sha256"
    """How a changed file is told from an unchanged one: sha256 (default) or md5 of the content
    (computed while the file is read, and cached with its size and mtime so an unchanged file is
    not read again), or size_mtime (size and modification time only; nothing is hashed)."""
    delete: bool = False
    """mode sync: delete target files (matching include/exclude) whose source file is gone."""
    max_delete: Annotated[int, Field(ge=0)] | None = None
    """Refuse the run (exit 6, nothing copied or deleted) when this entry would delete more
    target files than this (default: no limit)."""

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, data: Any) -> Any:
        return {"include": [data]} if isinstance(data, str) else data

    @field_validator("include", "exclude")
    @classmethod
    def _relative_globs(cls, value: list[str]) -> list[str]:
        for glob in value:
            _check_relative(glob, "glob")
        return value

    @field_validator("path", "to")
    @classmethod
    def _relative_folder(cls, value: str | None) -> str | None:
        if value is None or value.strip() in (".", "./"):
            return None if value is None else ""  # '.': the URL's folder itself
        _check_relative(value, "folder")
        return value.strip("/")


def _check_relative(text: str, what: str) -> None:
    if not text.strip():
        raise ValueError(f"an empty {what} matches nothing")
    if text.startswith("/"):
        raise ValueError(f"'{text}': a {what} here is relative to the source or target URL")
    if ".." in text.split("/"):
        raise ValueError(f"'{text}': '..' is not allowed (a {what} stays under its URL)")


def is_file_store(url: str) -> bool:
    """Whether ``url`` names a file store: file://, sftp://, s3://, sharepoint://, or another
    fsspec protocol."""
    scheme = url.split("://", 1)[0].lower() if "://" in url else ""
    if scheme in BUILTIN_STORES:
        return True
    if not scheme:
        return False
    from fsspec.registry import known_implementations, registry

    return scheme in known_implementations or scheme in registry


def check_file_job(job: Job) -> list[tuple[tuple[str | int, ...], str]]:
    """What is wrong with ``job`` as a file job (or with a table job's file-only keys), as
    (key path, message) pairs."""
    problems: list[tuple[tuple[str | int, ...], str]] = []
    if job.files is None:
        if job.mode is not None:
            problems.append(
                (
                    ("mode",),
                    "a job-wide mode is for file jobs (files:); a table job sets it under "
                    "defaults: or per table",
                )
            )
        return problems
    if job.tables:  # which of the two was meant is unclear: the rest would be noise
        return [(("files",), "a job moves tables or files, not both (make two jobs)")]
    for key in ("defaults", "sanitize", "before", "after", "executor"):
        if key in job.model_fields_set:
            problems.append(((key,), "applies to tables; a file job (files:) has none"))
    for key in ("source", "target"):
        url = getattr(job, key)
        if not is_file_store(url):
            problems.append(
                (
                    (key,),
                    "a file job moves files between file stores (file://, sftp://, s3://, or "
                    f"another fsspec URL), not '{url.split('://', 1)[0]}'",
                )
            )
    mode = job.mode or "copy"
    for index, entry in enumerate(job.files):
        if mode != "sync" and entry.delete:
            problems.append(
                (("files", index, "delete"), f"deleting needs mode: sync (the job's is {mode})")
            )
        if entry.max_delete is not None and not entry.delete:
            problems.append((("files", index, "max_delete"), "applies only with delete: true"))
    return problems
