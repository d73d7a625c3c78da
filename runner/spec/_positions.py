"""Where each key and value of a spec is written, and how an error points at it.

Paths (``loc``) are tuples of mapping keys and list indexes, as in the data the YAML becomes,
so a pydantic ``loc`` can be looked up once its union noise is dropped.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field

from runner import secrets

Loc = tuple[str | int, ...]

# PyYAML counts exactly these as line breaks; str.splitlines() knows more and would drift.
_LINE_BREAK = re.compile(r"\r\n|[\r\n\x85\u2028\u2029]")
_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
# Snippets quote the file; a URL password written in it must not be quoted along with it.
_URL_PASSWORD = re.compile(r"([a-z][a-z0-9+.-]*://[^:/@\s]*:)([^@\s]+)@", re.IGNORECASE)
GUTTER = 5


@dataclass(frozen=True)
class Span:
    """A 1-based line and column, and how many characters to underline."""

    line: int
    col: int
    width: int = 1


ROOT = Span(1, 1, 1)


def split_lines(text: str) -> list[str]:
    return _LINE_BREAK.split(text)


def mask_line(line: str) -> str:
    return secrets.scrub(_URL_PASSWORD.sub(rf"\1{secrets.MASK}@", line))


def render_path(loc: Loc) -> str:
    """``('tables', 1, 'cursr')`` -> ``tables[1].cursr``; odd keys are quoted."""
    out = ""
    for item in loc:
        if isinstance(item, int):
            out += f"[{item}]"
        elif _IDENT.fullmatch(item):
            out += f".{item}" if out else item
        else:
            out += f"[{json.dumps(item, ensure_ascii=False)}]"
    return out


def snippet(lines: list[str], span: Span, context: int = 2) -> str:
    """The line at ``span`` with ``context`` lines before it and a caret line under it.

    Example:
        >>> print(snippet(["a: 1", "b: 2"], Span(2, 4, 1)))
            1 | a: 1
            2 | b: 2
              |    ^
    """
    out = []
    for number in range(max(1, span.line - context), span.line + 1):
        text = lines[number - 1] if number <= len(lines) else ""
        out.append(f"{number:>{GUTTER}} | {mask_line(text)}".rstrip())
    target = lines[span.line - 1] if span.line <= len(lines) else ""
    # Keep tabs so the caret lines up in a terminal however wide its tab stops are.
    pad = "".join("\t" if c == "\t" else " " for c in target[: span.col - 1])
    pad += " " * max(0, span.col - 1 - len(target))
    out.append(f"{'':>{GUTTER}} | {pad}{'^' * max(1, span.width)}")
    return "\n".join(out)


@dataclass
class Positions:
    """Spans of the keys and values of one YAML document, by path."""

    lines: list[str]
    keys: dict[Loc, Span] = field(default_factory=dict)
    values: dict[Loc, Span] = field(default_factory=dict)

    def key(self, loc: Loc) -> Span:
        """Where the key of ``loc`` is written; its value, or the nearest parent, if no key."""
        return self.keys.get(loc) or self.value(loc)

    def value(self, loc: Loc) -> Span:
        for end in range(len(loc), 0, -1):
            span = self.values.get(loc[:end]) or self.keys.get(loc[:end])
            if span is not None:
                return span
        return self.root()

    def root(self) -> Span:
        first = self.lines[0].rstrip() if self.lines else ""
        return Span(1, 1, 1 if first.startswith("#") else max(1, len(first)))

    def span_of(self, start: tuple[int, int], end: tuple[int, int]) -> Span:
        """A span from 0-based (line, col) marks; one running past its line stops at the end."""
        line, col = start
        text = self.lines[line] if line < len(self.lines) else ""
        if end[0] == line and end[1] > col:
            width = end[1] - col
        else:
            width = len(text.rstrip()) - col
        return Span(line + 1, col + 1, max(1, width))
