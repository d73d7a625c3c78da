"""Globs over '/'-separated relative paths, as ``files:`` entries and ``etlrun files`` use them.

A glob without '/' matches a file's name in any folder (``*.csv`` matches ``a/b/x.csv``), as in
.gitignore; a glob with '/' matches the whole path (``raw/*.res``). ``*`` and ``?`` stay inside
one folder name, ``**`` spans folders (``raw/**/*.res`` matches ``raw/x.res`` and
``raw/2024/x.res``), ``[abc]`` is a character class.
"""

from __future__ import annotations

import functools
import posixpath
import re
from collections.abc import Iterable


@functools.lru_cache(maxsize=512)
def _compile(glob: str) -> re.Pattern[str]:
    out, i = [], 0
    while i < len(glob):
        c = glob[i]
        if glob.startswith("**/", i):
            out.append("(?:.*/)?")
            i += 3
        elif glob.startswith("**", i):
            out.append(".*")
            i += 2
        elif c == "*":
            out.append("[^/]*")
            i += 1
        elif c == "?":
            out.append("[^/]")
            i += 1
        elif c == "[":
            end = glob.find("]", i + 2)
            if end == -1:
                out.append(re.escape(c))
                i += 1
            else:
                body = glob[i + 1 : end]
                if body.startswith("!"):
                    body = "^" + body[1:]
                out.append("[" + body.replace("\\", "\\\\") + "]")
                i = end + 1
        else:
            out.append(re.escape(c))
            i += 1
    return re.compile("".join(out) + r"\Z")


def matches(glob: str, path: str) -> bool:
    """Whether the relative ``path`` matches ``glob``.

    Example:
        >>> matches("*.csv", "run1/x.csv"), matches("raw/**/*.res", "raw/2024/a.res")
        (True, True)
        >>> matches("raw/*.res", "raw/2024/a.res")
        False
    """
    glob = glob.strip("/")
    subject = path if "/" in glob else posixpath.basename(path)
    return _compile(glob).match(subject) is not None


def selected(path: str, include: Iterable[str], exclude: Iterable[str]) -> bool:
    """Included by one glob of ``include`` and by none of ``exclude``."""
    return any(matches(g, path) for g in include) and not any(matches(g, path) for g in exclude)
