"""``${VAR}`` / ``${VAR:-default}`` in spec strings, from the environment and a ``.env`` file.

The real environment wins over ``.env``, so a CI secret or a shell override always applies.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_TOKEN = re.compile(r"\$\$\{|\$\{([^}]*)\}|\$\{")
_ENV_LINE = re.compile(r"(?:export\s+)?([A-Za-z_][A-Za-z0-9_]*)\s*=\s*(.*)")
_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", '"': '"', "\\": "\\", "$": "$"}


@dataclass
class Expansion:
    """The result of interpolating one string."""

    text: str
    used: dict[str, str] = field(default_factory=dict)
    """Variable name -> the value substituted (from the environment, .env or the default)."""
    errors: list[str] = field(default_factory=list)


def interpolate(text: str, lookup: Callable[[str], str | None], where: str) -> Expansion:
    """Expand every ``${...}`` in ``text``; ``$${`` is a literal ``${``.

    ``where`` names the places a missing variable can be set, for the error message.

    Example:
        >>> interpolate("${HOST:-localhost}:${PORT}", {"PORT": "5432"}.get, "the environment").text
        'localhost:5432'
    """
    out = Expansion("")
    parts: list[str] = []
    pos = 0
    for match in _TOKEN.finditer(text):
        parts.append(text[pos : match.start()])
        pos = match.end()
        token, body = match.group(0), match.group(1)
        if token == "$${":
            parts.append("${")
        elif body is None:
            out.errors.append("unclosed '${' (write '$${' for a literal '${')")
        else:
            parts.append(_expand(body, lookup, where, out))
    parts.append(text[pos:])
    out.text = "".join(parts)
    return out


def _expand(body: str, lookup: Callable[[str], str | None], where: str, out: Expansion) -> str:
    if body.startswith(("secret:", "file:")):
        return _expand_external(body, out)
    name, sep, default = body.partition(":-")
    if not _NAME.fullmatch(name):
        out.errors.append(
            f"'${{{body}}}' is not a variable reference; write ${{NAME}} or ${{NAME:-default}} "
            "(NAME: letters, digits and _), or '$${' for a literal '${'"
        )
        return ""
    value = lookup(name)
    if not value and sep:  # as in the shell, ':-' also covers a variable set to ''
        value = default
    if value is None:
        out.errors.append(f"undefined variable ${{{name}}} (set it in {where})")
        return ""
    out.used[name] = value
    return value


def _expand_external(body: str, out: Expansion) -> str:
    """``${secret:NAME}`` from the encrypted secrets file, ``${file:/path}`` from a file (its
    text, one trailing newline dropped). Both are secrets: registered, so never printed."""
    from runner import secrets

    kind, _, ref = body.partition(":")
    if not ref:
        out.errors.append(f"'${{{body}}}' names no {kind}; write ${{{kind}:NAME}}")
        return ""
    try:
        if kind == "secret":
            from runner import secretfile

            value = secretfile.get(ref)
        else:
            value = Path(ref).read_text(encoding="utf-8")
            value = value[:-1] if value.endswith("\n") else value
            value = value[:-1] if value.endswith("\r") else value
    except KeyError as exc:
        out.errors.append(f"${{{body}}}: {exc.args[0]}")
        return ""
    except OSError as exc:
        out.errors.append(f"${{{body}}}: cannot read {ref}: {exc.strerror}")
        return ""
    except Exception as exc:  # UsageError: no key, wrong key, no cryptography
        out.errors.append(f"${{{body}}}: {exc}")
        return ""
    secrets.register(value)
    out.used[body] = value
    return value


@dataclass
class DotEnv:
    """The ``KEY=VALUE`` lines of a ``.env`` file."""

    path: Path
    values: dict[str, str] = field(default_factory=dict)
    errors: list[tuple[int, str]] = field(default_factory=list)
    """(1-based line, message) for each line that is not ``KEY=VALUE``."""


def read_dotenv(path: Path) -> DotEnv:
    """Parse ``path``: ``KEY=VALUE``, ``#`` comments, optional ``export`` and quotes.

    Example:
        >>> import tempfile, pathlib
        >>> p = pathlib.Path(tempfile.mkdtemp()) / ".env"
        >>> _ = p.write_text('# db\\nexport A=1  # one\\nB="x y"\\n')
        >>> read_dotenv(p).values
        {'A': '1', 'B': 'x y'}
    """
    env = DotEnv(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        env.errors.append((1, f"cannot read {path}: {exc}"))
        return env
    for number, line in enumerate(text.splitlines(), 1):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        match = _ENV_LINE.fullmatch(stripped)
        if not match:
            env.errors.append((number, "expected KEY=VALUE (KEY: letters, digits and _)"))
            continue
        value, error = _env_value(match.group(2))
        if error:
            env.errors.append((number, error))
        else:
            env.values[match.group(1)] = value
    return env


def _env_value(raw: str) -> tuple[str, str | None]:
    if raw[:1] in ("'", '"'):
        quote = raw[0]
        end = _closing_quote(raw, quote)
        if end < 0:
            return "", f"unclosed {quote} quote"
        rest = raw[end + 1 :].strip()
        if rest and not rest.startswith("#"):
            return "", f"unexpected text after the closing {quote} quote"
        inner = raw[1:end]
        if quote == '"':
            inner = re.sub(r"\\(.)", lambda m: _ESCAPES.get(m.group(1), m.group(0)), inner)
        return inner, None
    # An unquoted value ends at ' #', as in docker compose and python-dotenv.
    return re.split(r"\s+#", raw, maxsplit=1)[0].strip(), None


def _closing_quote(raw: str, quote: str) -> int:
    i = 1
    while i < len(raw):
        if raw[i] == "\\" and quote == '"':
            i += 2
            continue
        if raw[i] == quote:
            return i
        i += 1
    return -1


def chain(
    env: Mapping[str, str], dotenv: Callable[[], DotEnv | None]
) -> Callable[[str], str | None]:
    """Look a name up in ``env``, then (read on first need) in the ``.env`` file."""

    def lookup(name: str) -> str | None:
        if name in env:
            return env[name]
        loaded = dotenv()
        return loaded.values.get(name) if loaded else None

    return lookup
