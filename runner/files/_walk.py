"""Listing a folder of a file store, recursively or not, the way each kind of store lists:
``os.scandir`` for local files (nanosecond mtimes), ``listdir_attr`` over SFTP, fsspec's
``find`` for the rest. Files land in :attr:`Listing.files`; etlrun's own temporary files
(``.etlrun-tmp-*``) in :attr:`Listing.temps`. An absent folder lists as empty."""

from __future__ import annotations

import contextlib
import os
import posixpath
import stat as stat_mode
from typing import Any

from runner.connectors.fs import TEMP_PREFIX
from runner.files.listing import Listing, Stat, etag_of, mtime_of


def walk_local(path: str, prefix: str, recursive: bool, listing: Listing) -> None:
    try:
        entries = list(os.scandir(path))
    except (FileNotFoundError, NotADirectoryError):
        return
    for entry in entries:
        relative = f"{prefix}{entry.name}"
        if entry.is_dir(follow_symlinks=False):  # a linked folder could loop: not followed
            if recursive:
                walk_local(entry.path, f"{relative}/", recursive, listing)
        elif entry.is_file():
            st = entry.stat()
            _add(listing, relative, entry.name, st.st_size, st.st_mtime_ns)


def walk_sftp(ftp: Any, path: str, prefix: str, recursive: bool, listing: Listing) -> None:
    """``ftp``: the paramiko SFTP client of this thread's connection."""
    try:
        entries = ftp.listdir_attr(path)
    except FileNotFoundError:
        return
    for attr in entries:
        relative = f"{prefix}{attr.filename}"
        full = posixpath.join(path, attr.filename)
        mode = attr.st_mode or 0
        if stat_mode.S_ISLNK(mode):
            with contextlib.suppress(OSError):
                attr = ftp.stat(full)  # a link to a file is that file; to a folder: skipped
                mode = attr.st_mode or 0
                if stat_mode.S_ISDIR(mode):
                    continue
        if stat_mode.S_ISDIR(mode):
            if recursive:
                walk_sftp(ftp, full, f"{relative}/", recursive, listing)
        elif stat_mode.S_ISREG(mode):
            size, mtime = attr.st_size or 0, float(attr.st_mtime or 0)
            _add(listing, relative, attr.filename, size, mtime)


def walk_fsspec(fs: Any, path: str, recursive: bool, listing: Listing, whole: bool) -> None:
    """``whole``: the store is S3, whose mtimes are kept in whole seconds (see ``mtime_of``)."""
    try:
        found = fs.find(path, maxdepth=None if recursive else 1, detail=True)
    except FileNotFoundError:
        return
    for name, info in found.items():
        if info.get("type") == "directory" or name.endswith("/"):
            continue  # a folder, or an S3 folder marker (a key ending in '/')
        relative = name.strip("/")[len(path.strip("/")) :].lstrip("/")
        size = int(info.get("size") or 0)
        mtime = mtime_of(info, whole)
        _add(listing, relative, posixpath.basename(relative), size, mtime, etag_of(info))


def _add(
    listing: Listing,
    relative: str,
    name: str,
    size: int,
    mtime: float | int,
    etag: str | None = None,
) -> None:
    """``mtime``: seconds as a float, or nanoseconds as an int (local files)."""
    if name.startswith(TEMP_PREFIX):
        listing.temps.append(relative)
    elif isinstance(mtime, int):
        listing.files[relative] = Stat(size, mtime / 1e9, mtime)
    else:
        listing.files[relative] = Stat(size, mtime, etag=etag)
