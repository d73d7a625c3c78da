"""Job spec files -> :class:`~runner.spec.models.Job`, or every problem in them at file:line:col.

The stages, each adding to one list of problems so a user sees them all in one pass:

1. YAML -> plain data plus positions (:mod:`runner.spec._yaml`); a syntax error stops here.
2. ``${VAR}`` / ``${VAR:-default}`` from the environment, then a ``.env`` beside the job.
3. The pydantic models, their errors retold in the user's words (:mod:`runner.spec._messages`).
   ``where:`` is parsed there, in the source's SQL dialect (passed as validation context).
4. Checks that need the whole job: ``types:`` in the target's dialect, ``columns`` with
   ``exclude``.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from loguru import logger
from pydantic import ValidationError

from runner import secrets
from runner.errors import SpecError, SpecIssue
from runner.spec import _messages
from runner.spec._interpolate import DotEnv, chain, interpolate, read_dotenv
from runner.spec._positions import Loc, Positions, render_path, snippet
from runner.spec._yaml import Document, Problem, parse
from runner.spec.models import Job
from runner.spec.validators import parse_type

STRING_FILE = "<string>"
_INLINE_PASSWORD = re.compile(r"^[a-z][a-z0-9+.-]*://[^:/@]*:([^@]+)@", re.IGNORECASE)


def load(path: str | Path, env: Mapping[str, str] | None = None) -> Job:
    """Read, interpolate and validate the job spec at ``path``.

    Args:
        path: The spec file; errors name it as given here.
        env: Variables for ``${VAR}``; defaults to ``os.environ``. A ``.env`` file beside the
            spec fills in what ``env`` lacks.

    Returns:
        The validated job, its ``job`` name defaulting to the file's stem.

    Raises:
        SpecError: with ``errors`` holding every problem found, each at file:line:col.

    Example:
        >>> import pathlib, tempfile
        >>> spec = pathlib.Path(tempfile.mkdtemp()) / "nightly.yaml"
        >>> _ = spec.write_text("source: ${SRC}\\ntarget: sqlite:///out.db\\ntables: [patients]\\n")
        >>> job = load(spec, env={"SRC": "sqlite:///clinic.db"})
        >>> job.name, job.source, job.tables[0].name
        ('nightly', 'sqlite:///clinic.db', 'patients')
    """
    file = str(path)
    try:
        raw = Path(path).read_bytes()
    except OSError as exc:
        raise SpecError(errors=[_file_issue(file, f"cannot read: {exc.strerror}")]) from None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        col = exc.start - (raw.rfind(b"\n", 0, exc.start) + 1) + 1
        message = f"not UTF-8 text (byte 0x{raw[exc.start]:02x} cannot be decoded)"
        raise SpecError(errors=[SpecIssue(file, line, col, "", message)]) from None
    return load_text(text, file=file, env=env)


def load_text(text: str, file: str = STRING_FILE, env: Mapping[str, str] | None = None) -> Job:
    """Like :func:`load`, from ``text``; ``file`` names it in errors and locates ``.env``.

    Example:
        >>> load_text("source: sqlite:///a.db\\ntarget: sqlite:///b.db\\ntables: [t]").workers
        4
    """
    job, issues = check_text(text, file, os.environ if env is None else env)
    if issues or job is None:
        raise SpecError(errors=issues)
    return job


def validate_paths(
    paths: list[str], env: Mapping[str, str] | None = None
) -> tuple[list[Path], list[SpecIssue]]:
    """Check spec files and folders (every ``*.yaml``/``*.yml`` under one, sorted).

    Returns:
        The files checked, and every issue in them; a missing path is an issue too.
    """
    files: list[Path] = []
    issues: list[SpecIssue] = []
    for given in paths:
        path = Path(given)
        if path.is_dir():
            from runner.gitops import is_spec

            found = sorted(p for p in path.rglob("*") if is_spec(p) and p.is_file())
            if not found:
                issues.append(_file_issue(given, "no *.yaml or *.yml files in this folder"))
        elif path.exists():
            found = [path]
        else:
            issues.append(_file_issue(given, "no such file or folder"))
            found = []
        for spec in found:
            if spec in files:
                continue
            files.append(spec)
            try:
                load(given if spec == path else spec, env)
            except SpecError as exc:  # a shared connections.yaml's issue is reported once
                issues.extend(i for i in exc.errors if i not in issues)
    return files, issues


def check_text(text: str, file: str, env: Mapping[str, str]) -> tuple[Job | None, list[SpecIssue]]:
    """The job in ``text`` if it is valid, and every issue found either way."""
    doc = parse(text)
    if doc.fatal:
        return None, _issues(file, doc.positions, doc.problems)
    dotenv_issues = _interpolate(doc, file, env)
    problems = list(doc.problems)
    job = None
    if doc.data is None and not doc.bad:
        message = "the spec is empty; a job needs at least source, target and tables"
        problems.append(Problem(doc.positions.root(), (), message))
    elif () not in doc.bad:
        try:
            context = {
                "source_dialect": _dialect_of(doc.data, "source"),
                "spec_dir": None if file == STRING_FILE else Path(file).parent,
            }
            job = Job.model_validate(doc.data, context=context)
        except ValidationError as exc:
            problems += _messages.problems(exc, doc.data, doc.positions, doc.bad)
    problems += _check_whole(doc.data, doc.positions, {p.loc for p in problems} | doc.bad)
    if job is not None:
        if job.job is None and file != STRING_FILE:
            job = job.model_copy(update={"job": Path(file).stem})
    issues = dotenv_issues + _issues(file, doc.positions, problems)
    return (None if issues else job), issues


def _interpolate(doc: Document, file: str, env: Mapping[str, str]) -> list[SpecIssue]:
    """Expand ``${...}`` in every string of ``doc.data`` in place; register what is secret.

    Returns the issues found in other files: the ``.env`` and ``connections.yaml`` beside it."""
    dotenv_path = Path(file).parent / ".env"
    where = "the environment" if file == STRING_FILE else f"the environment or in {dotenv_path}"
    cache: list[DotEnv | None] = []

    def dotenv() -> DotEnv | None:
        if not cache:
            real = file != STRING_FILE and dotenv_path.is_file()
            cache.append(read_dotenv(dotenv_path) if real else None)
        return cache[0]

    lookup = chain(env, dotenv)

    def walk(value: Any, loc: Loc) -> Any:
        if isinstance(value, dict):
            return {k: walk(v, (*loc, k)) for k, v in value.items()}
        if isinstance(value, list):
            return [walk(v, (*loc, i)) for i, v in enumerate(value)]
        if not isinstance(value, str) or "$" not in value:
            return value
        expansion = interpolate(value, lookup, where)
        for error in expansion.errors:
            doc.problems.append(Problem(doc.positions.value(loc), loc, error))
            doc.bad.add(loc)
        for name, secret in expansion.used.items():
            if secrets.is_secret_name(name):
                secrets.register(secret)
        return expansion.text

    raw = doc.data
    doc.data = walk(raw, ())
    connection_issues: list[SpecIssue] = []
    if isinstance(raw, dict) and isinstance(doc.data, dict) and file != STRING_FILE:
        from runner.connections import Connections

        named = Connections(file)
        for key in ("source", "target"):  # a name from connections.yaml beside the spec
            if isinstance(doc.data.get(key), str) and (key,) not in doc.bad:
                found = named.resolve(doc.data[key], lookup, where)
                if found.error:
                    doc.problems.append(Problem(doc.positions.value((key,)), (key,), found.error))
                    doc.bad.add((key,))
                connection_issues += [i for i in found.issues if i not in connection_issues]
                doc.data[key] = found.url
    if isinstance(raw, dict) and isinstance(doc.data, dict):
        for key in ("source", "target"):
            if isinstance(doc.data.get(key), str):
                secrets.register_url(doc.data[key])
            if isinstance(raw.get(key), str):
                _warn_inline_password(raw[key], file, doc.positions, key)
    loaded = cache[0] if cache else None
    if loaded is None:
        return connection_issues
    dotenv_issues = [SpecIssue(str(loaded.path), line, 1, "", msg) for line, msg in loaded.errors]
    return dotenv_issues + connection_issues


def _warn_inline_password(url: str, file: str, positions: Positions, key: str) -> None:
    match = _INLINE_PASSWORD.match(url)
    if not match or "${" in match.group(1):
        return
    secrets.register(match.group(1))
    line = positions.value((key,)).line
    logger.warning(
        f"{file}:{line}: {key}: the URL holds a plaintext password "
        f"({secrets.mask_url(url)}); take it from a variable instead, e.g. "
        f"${{{key.upper()}_PASSWORD}} in the environment or .env"
    )


def _dialect_of(data: Any, key: str) -> str | None:
    """The sqlglot dialect of the ``source``/``target`` URL in ``data``, if it is known."""
    url = data.get(key) if isinstance(data, dict) else None
    if not isinstance(url, str):
        return None
    try:
        from runner.connectors import dialect_for_url
    except ImportError:
        return None
    try:
        return dialect_for_url(url)
    except Exception:  # an odd URL is the connector's to report, at connect time
        return None


def _check_whole(data: Any, positions: Positions, reported: set[Loc]) -> list[Problem]:
    """Checks that need more than one field: ``types:`` in the target's dialect, and clashes.

    They read the raw data rather than a :class:`Job`, so they run even when some other part
    of the spec is invalid; a value already reported is not reported again.
    """
    if not isinstance(data, dict):
        return []
    target = _dialect_of(data, "target")
    defaults: dict[str, Any] = data["defaults"] if isinstance(data.get("defaults"), dict) else {}
    scopes: list[tuple[Loc, dict[str, Any]]] = [(("defaults",), defaults)]
    tables: list[Any] = data["tables"] if isinstance(data.get("tables"), list) else []
    scopes += [(("tables", i), t) for i, t in enumerate(tables) if isinstance(t, dict)]
    out: list[Problem] = []

    def report(at: Loc, message: str, key: bool = False) -> None:
        if at not in reported:
            span = positions.key(at) if key else positions.value(at)
            out.append(Problem(span, at, message))

    for loc, options in scopes:
        types = options.get("types")
        for column, type_sql in types.items() if isinstance(types, dict) else ():
            if isinstance(type_sql, str):
                try:
                    parse_type(type_sql, target)
                except ValueError as exc:
                    report((*loc, "types", column), str(exc))
        own = {"columns", "exclude"} & {k for k, v in options.items() if v is not None}
        inherited = (
            set()
            if loc == ("defaults",)
            else {k for k in ("columns", "exclude") if defaults.get(k) is not None}
        )
        if own and len(own | inherited) == 2:
            key = "exclude" if "exclude" in own else "columns"
            from_defaults = inherited - own
            note = f" ('{from_defaults.pop()}' comes from defaults:)" if from_defaults else ""
            report(
                (*loc, key), f"'columns' and 'exclude' cannot both apply to a table{note}", key=True
            )
    return out


def _issues(file: str, positions: Positions, problems: list[Problem]) -> list[SpecIssue]:
    ordered = sorted(problems, key=lambda p: (p.span.line, p.span.col))
    return [
        SpecIssue(
            file=file,
            line=p.span.line,
            col=p.span.col,
            path=render_path(p.loc),
            message=secrets.scrub(p.message),
            snippet=snippet(positions.lines, p.span),
        )
        for p in ordered
    ]


def _file_issue(file: str, message: str) -> SpecIssue:
    return SpecIssue(file=file, line=1, col=1, path="", message=message)
