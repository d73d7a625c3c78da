"""YAML text -> plain Python data plus the position of every key and value.

PyYAML only composes the node tree here; the data is built by :class:`_Builder`, so nothing is
ever constructed from a tag, scalars follow the YAML 1.2 core schema rather than YAML 1.1, and
the traps (duplicate keys, ``NO``/``yes``, python tags, alias bombs) become positioned problems.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import yaml
from yaml.composer import Composer
from yaml.events import AliasEvent
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode
from yaml.parser import Parser
from yaml.reader import Reader
from yaml.resolver import BaseResolver
from yaml.scanner import Scanner

from runner.spec._positions import Loc, Positions, Span, split_lines

MAX_ALIAS_NODES = 10_000
"""Values an alias may expand to, all aliases together: enough for any real spec."""
MAX_DEPTH = 100

_STD = "tag:yaml.org,2002:"
STR, SEQ, MAP = _STD + "str", _STD + "seq", _STD + "map"
_PLAIN = "!etlrun/plain"  # an untagged plain scalar, resolved here by the YAML 1.2 core schema
_SCALAR_TAGS = {_STD + t for t in ("str", "int", "float", "bool", "null")}
_INT = re.compile(r"[-+]?(?:0|[1-9][0-9]*)")
_FLOAT = re.compile(r"[-+]?(?:(?:0|[1-9][0-9]*)(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][-+]?[0-9]+)?")
_SPECIAL_FLOATS = {".inf": float("inf"), "+.inf": float("inf"), "-.inf": float("-inf")}
AMBIGUOUS = frozenset({"yes", "no", "on", "off"})
"""Plain words YAML 1.1 reads as booleans; YAML 1.2 and etlrun read them as text."""


@dataclass(frozen=True)
class Problem:
    """A spec problem before it knows its file: where, at which path, and what."""

    span: Span
    loc: Loc
    message: str


@dataclass
class Document:
    data: Any
    positions: Positions
    problems: list[Problem]
    bad: set[Loc]
    """Paths whose value is already reported, so validation does not report it twice."""
    fatal: bool = False


def resolve_plain(text: str) -> Any:
    """A plain scalar's value under the YAML 1.2 core schema; anything else stays text.

    Example:
        >>> [resolve_plain(t) for t in ("12", "0755", "TRUE", "~", "1.5", "2024-01-01")]
        [12, '0755', True, None, 1.5, '2024-01-01']
    """
    lower = text.lower()
    if lower in ("", "~", "null"):
        return None
    if lower in ("true", "false"):
        return lower == "true"
    try:
        if _INT.fullmatch(text):
            return int(text)
        if _FLOAT.fullmatch(text) and any(c in text for c in ".eE"):
            return float(text)
    except ValueError:  # more digits than int() accepts: keep the text
        return text
    if lower in _SPECIAL_FLOATS:
        return _SPECIAL_FLOATS[lower]
    if lower == ".nan":
        return float("nan")
    return text


def show_tag(tag: str) -> str:
    return "!!" + tag[len(_STD) :] if tag.startswith(_STD) else tag


class _Alias(Node):
    """An alias where it is used; PyYAML alone keeps only the anchored node."""

    id = "alias"

    def __init__(self, target: Node, start_mark: Any, end_mark: Any, name: str) -> None:
        super().__init__(target.tag, target.value, start_mark, end_mark)
        self.target = target
        self.name = name


class _Composer(Composer):
    def compose_node(self, parent: Node | None, index: Any) -> Node:
        if self.check_event(AliasEvent):
            event = self.peek_event()
            target = super().compose_node(parent, index)
            return _Alias(target, event.start_mark, event.end_mark, event.anchor)
        return super().compose_node(parent, index)


class _Resolver(BaseResolver):
    def resolve(self, kind: type, value: Any, implicit: tuple[bool, bool]) -> str:
        if kind is ScalarNode:
            return _PLAIN if implicit[0] else STR
        return str(super().resolve(kind, value, implicit))


class _Loader(Reader, Scanner, Parser, _Composer, _Resolver):
    def __init__(self, stream: str) -> None:
        Reader.__init__(self, stream)
        Scanner.__init__(self)
        Parser.__init__(self)
        _Composer.__init__(self)
        _Resolver.__init__(self)


class _Abort(Exception):
    def __init__(self, problem: Problem) -> None:
        self.problem = problem


class _Builder:
    def __init__(self, positions: Positions) -> None:
        self.positions = positions
        self.problems: list[Problem] = []
        self.bad: set[Loc] = set()
        self.expanded = 0
        self.in_alias = 0
        self.outer_alias: Problem | None = None
        self.active: set[int] = set()

    def span(self, node: Node) -> Span:
        start, end = node.start_mark, node.end_mark
        return self.positions.span_of((start.line, start.column), (end.line, end.column))

    def problem(self, node: Node, loc: Loc, message: str) -> None:
        self.problems.append(Problem(self.span(node), loc, message))
        self.bad.add(loc)

    def build(self, node: Node, loc: Loc) -> Any:
        self.positions.values[loc] = self.span(node)
        if len(loc) > MAX_DEPTH:
            raise _Abort(Problem(self.span(node), loc, f"nested more than {MAX_DEPTH} deep"))
        if not isinstance(node, _Alias):
            return self._value(node, loc)
        if id(node.target) in self.active:
            self.problem(node, loc, f"alias *{node.name} refers to itself")
            return None
        if not self.in_alias:  # a bomb is reported where it is set off, not deep inside it
            self.outer_alias = Problem(self.span(node), loc, "")
        self.in_alias += 1
        try:
            return self._value(node.target, loc)
        finally:
            self.in_alias -= 1

    def _value(self, node: Node, loc: Loc) -> Any:
        if self.in_alias:
            self.expanded += 1
            if self.expanded > MAX_ALIAS_NODES:
                message = (
                    f"too many alias expansions: the document grows past {MAX_ALIAS_NODES:,} "
                    "values (a 'billion laughs' alias bomb?)"
                )
                outer = self.outer_alias or Problem(self.positions.value(loc), loc, "")
                raise _Abort(Problem(outer.span, outer.loc, message))
        self.active.add(id(node))
        try:
            if isinstance(node, ScalarNode):
                return self._scalar(node, loc)
            if isinstance(node, SequenceNode):
                if node.tag != SEQ:
                    return self._bad_tag(node, loc)
                return [self.build(item, (*loc, i)) for i, item in enumerate(node.value)]
            if isinstance(node, MappingNode):
                if node.tag != MAP:
                    return self._bad_tag(node, loc)
                return self._mapping(node, loc)
            raise AssertionError(f"unexpected YAML node {node!r}")  # pragma: no cover
        finally:
            self.active.discard(id(node))

    def _bad_tag(self, node: Node, loc: Loc) -> None:
        self.problem(
            node,
            loc,
            f"YAML tag '{show_tag(node.tag)}' is not allowed; a spec holds plain data "
            "(strings, numbers, true/false, lists and mappings)",
        )
        return None

    def _scalar(self, node: ScalarNode, loc: Loc) -> Any:
        text = node.value
        if node.tag == STR:
            return text
        if node.tag == _PLAIN:
            if text.lower() in AMBIGUOUS:
                self.problem(node, loc, ambiguous(text))
            return resolve_plain(text)
        if node.tag not in _SCALAR_TAGS:
            return self._bad_tag(node, loc)
        value: Any = resolve_plain(text)
        kind = node.tag[len(_STD) :]
        expected: dict[str, type | tuple[type, ...]] = {
            "int": int,
            "float": (int, float),
            "bool": bool,
            "null": type(None),
        }
        valid = isinstance(value, expected[kind]) and (
            kind == "bool" or not isinstance(value, bool)
        )
        if not valid:
            self.problem(node, loc, f"'{text}' is not a valid !!{kind}")
            return text
        return float(value) if kind == "float" else value

    def _mapping(self, node: MappingNode, loc: Loc) -> dict[str, Any]:
        out: dict[str, Any] = {}
        own = []
        for key_node, value_node in node.value:
            if (
                isinstance(key_node, ScalarNode)
                and key_node.tag == _PLAIN
                and key_node.value == "<<"
            ):
                self._merge(out, value_node, loc)
            else:
                own.append((key_node, value_node))
        self.positions.values[loc] = self.span(node)
        first: dict[str, int] = {}
        for key_node, value_node in own:
            key = self._key(key_node, loc)
            if key is None:
                continue
            if key in first:
                self.problem(
                    key_node, (*loc, key), f"duplicate key '{key}' (first at line {first[key]})"
                )
                continue
            first[key] = key_node.start_mark.line + 1
            self.positions.keys[(*loc, key)] = self.span(key_node)
            out[key] = self.build(value_node, (*loc, key))  # a key of its own beats a merged one
        return out

    def _key(self, node: Node, loc: Loc) -> str | None:
        if not isinstance(node, ScalarNode):
            kind = "list" if isinstance(node, SequenceNode) else "mapping"
            self.problem(node, loc, f"a key must be a name, not a {kind}")
            return None
        if node.tag not in (_PLAIN, STR):
            self._bad_tag(node, loc)
            return None
        if node.tag == _PLAIN and node.value.lower() in AMBIGUOUS and not _step_on(node, loc):
            self.problem(node, (*loc, node.value), ambiguous(node.value))
        return str(node.value)

    def _merge(self, out: dict[str, Any], node: Node, loc: Loc) -> None:
        """``<<: *base`` (or a list of them): keys the mapping does not set itself."""
        target = node.target if isinstance(node, _Alias) else node
        sources = target.value if isinstance(target, SequenceNode) else [node]
        for source in sources:
            inner = source.target if isinstance(source, _Alias) else source
            if not isinstance(inner, MappingNode):
                self.problem(source, loc, "'<<' merges a mapping (or a list of mappings) only")
                continue
            for key, value in (self.build(source, loc) or {}).items():
                out.setdefault(key, value)  # the first merged mapping that sets a key wins


def _step_on(node: ScalarNode, loc: Loc) -> bool:
    """``on:`` in a SQL step (``before[0].on``): the key DESIGN names. etlrun reads keys as text,
    so it means 'on' here, whatever YAML 1.1 tools make of it."""
    in_step = len(loc) >= 2 and isinstance(loc[-1], int) and loc[-2] in ("before", "after")
    return node.value == "on" and in_step


def ambiguous(text: str) -> str:
    return (
        f"ambiguous YAML value '{text}': YAML 1.1 reads it as a boolean; "
        f"quote it ('{text}') or write true/false"
    )


def parse(text: str) -> Document:
    """Compose ``text`` and build its data; a syntax error or an alias bomb is ``fatal``."""
    positions = Positions(split_lines(text))
    loader = None
    try:
        loader = _Loader(text)  # the reader already refuses control characters here
        node = loader.get_single_node()
    except yaml.MarkedYAMLError as exc:
        return _fatal(positions, _syntax_problem(exc, positions))
    except yaml.reader.ReaderError as exc:
        span = _offset_span(text, exc.position)
        message = f"invalid YAML: control character U+{exc.character:04X} is not allowed"
        return _fatal(positions, Problem(span, (), message))
    except yaml.YAMLError as exc:
        return _fatal(positions, Problem(positions.root(), (), f"invalid YAML: {exc}"))
    except RecursionError:
        return _fatal(positions, Problem(positions.root(), (), "invalid YAML: nested too deep"))
    finally:
        if loader is not None:
            loader.dispose()
    if node is None:
        return Document(None, positions, [], set())
    builder = _Builder(positions)
    try:
        data = builder.build(node, ())
    except _Abort as abort:
        return _fatal(positions, abort.problem)
    except RecursionError:
        return _fatal(positions, Problem(positions.root(), (), "invalid YAML: nested too deep"))
    return Document(data, positions, builder.problems, builder.bad)


def _fatal(positions: Positions, problem: Problem) -> Document:
    return Document(None, positions, [problem], set(), fatal=True)


def _offset_span(text: str, offset: int) -> Span:
    before = split_lines(text[:offset])
    return Span(len(before), len(before[-1]) + 1, 1)


def _syntax_problem(exc: yaml.MarkedYAMLError, positions: Positions) -> Problem:
    problem, context = exc.problem or "", exc.context or ""
    mark, where = exc.problem_mark or exc.context_mark, exc.context_mark
    # An unclosed quote or bracket is found at the end of the file; where it opens is the news.
    opened = where is not None and ("end of stream" in problem or "expected ':'" in problem)
    if opened:
        mark = where
        message = f"invalid YAML: {problem} ({context} that starts here)"
    else:
        message = "invalid YAML: " + problem
        if context:
            at = f" at line {where.line + 1}" if where and mark and where.line != mark.line else ""
            message += f" ({context}{at})"
    span = Span(mark.line + 1, mark.column + 1, 1) if mark else positions.root()
    if context == "expected a single document in the stream":
        message = "invalid YAML: a spec is one YAML document, and this starts a second one"
    elif "'\\t'" in message:
        message += "; indent with spaces, not tabs"
    elif "<block end>" in message:
        message += "; check the indentation"
    elif "'{'" in message and mark and "${" in "".join(positions.lines[: mark.line + 1]):
        message += "; inside [...] or {...}, quote a value that holds ${...}"
    return Problem(span, (), message.replace("invalid YAML:  (", "invalid YAML: ("))


__all__ = ["AMBIGUOUS", "Document", "Problem", "parse", "resolve_plain"]
