"""Source and target URLs without their secrets, and the rules a worker finds them again by.

See the module docstring of :mod:`runner.execute.dask` for the rules themselves.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote, quote_plus, unquote

from sqlalchemy.engine import URL, make_url

from runner import secrets
from runner.connectors.base import Connector
from runner.errors import ConnectError

PASSWORD_ENV = {"source": "ETLRUN_SOURCE_PASSWORD", "target": "ETLRUN_TARGET_PASSWORD"}
"""Worker-side variables that hold the source / target password (rule 1 above)."""

_USERINFO_PASSWORD = re.compile(r"^([a-z][a-z0-9+.-]*://[^:/@]*):([^@]*)@", re.IGNORECASE)


def split_password(url: str) -> tuple[str, str | None]:
    """``url`` without its password (userinfo or ``?password=``), and the password.

    Example:
        >>> split_password("postgresql://etl:s3cr%40t@db:5432/x?sslmode=require")
        ('postgresql://etl@db:5432/x?sslmode=require', 's3cr@t')
    """
    try:
        parsed = make_url(url)
    except Exception:  # noqa: BLE001 - not a SQLAlchemy URL (an fsspec one): userinfo only
        match = _USERINFO_PASSWORD.match(url)
        if not match:
            return url, None
        return match.group(1) + "@" + url[match.end() :], unquote(match.group(2))
    in_query = [k for k in parsed.query if k.lower() == "password"]
    if parsed.password is None and not in_query:
        return url, None
    password = parsed.password
    if password is None:
        value = parsed.query[in_query[0]]
        password = value if isinstance(value, str) else value[0]
    bare = URL.create(
        parsed.drivername,
        parsed.username,
        None,  # URL.set(password=None) would keep the password
        parsed.host,
        parsed.port,
        parsed.database,
        parsed.query,
    ).difference_update_query(in_query)
    return bare.render_as_string(hide_password=False), str(password)


def with_password(url: str, password: str) -> str:
    try:
        return make_url(url).set(password=password).render_as_string(hide_password=False)
    except Exception:  # noqa: BLE001 - an fsspec URL: put it back into the userinfo
        scheme, _, rest = url.partition("://")
        user, _, host = rest.partition("@")
        return f"{scheme}://{user}:{quote(password, safe='')}@{host}"


def _holds_secret(text: str, password: str | None) -> bool:
    forms = {password, quote(password, safe=""), quote_plus(password)} if password else set()
    return any(form in text for form in forms if form) or secrets.scrub(text) != text


@dataclass(frozen=True)
class Endpoint:
    """A source or target as a worker receives it: no password, only where to find one."""

    role: str
    """``source`` or ``target``: which ``ETLRUN_<ROLE>_PASSWORD`` the worker reads."""
    url: str
    """The URL without its password."""
    has_password: bool = False
    """Whether the driver's URL had one, so the worker must find it."""
    template: str | None = None
    """The spec's own text for this URL, ``${VAR}`` unexpanded; None when it holds a secret."""

    @classmethod
    def of(cls, role: str, url: str, template: str | None = None) -> Endpoint:
        bare, password = split_password(url)
        if template is not None and (
            password is None or "${" not in template or _holds_secret(template, password)
        ):
            template = None  # nothing to look up, or it would carry a secret
        return cls(role, _absolute_file(bare), password is not None, template)

    def variables(self) -> list[str]:
        """The worker-side variables that can provide the password, in the order tried."""
        names = [PASSWORD_ENV[self.role]]
        if self.template:
            names += [m.group(1) for m in re.finditer(r"\$\{([A-Za-z_]\w*)", self.template)]
        return list(dict.fromkeys(names))

    def resolve(self, env: Mapping[str, str]) -> str:
        """The URL with its password, taken from ``env`` (the worker's environment)."""
        if not self.has_password:
            return self.url
        password = env.get(PASSWORD_ENV[self.role]) or None
        if password is None and self.template:
            from runner.spec._interpolate import interpolate

            expanded = interpolate(self.template, env.get, "the worker's environment").text
            password = split_password(expanded)[1] or None
        if password is None:
            raise ConnectError(
                f"no {self.role} password on this worker for {secrets.mask_url(self.url)}: "
                f"set {' or '.join(self.variables())} in the environment of every Dask worker"
            )
        secrets.register(password)  # so the worker's own error messages scrub it
        return with_password(self.url, password)


def _absolute_file(url: str) -> str:
    """A relative ``sqlite:///x.db`` made absolute: a worker does not share the driver's cwd."""
    if not url.startswith("sqlite:///") or url.startswith("sqlite:////"):
        return url
    parsed = make_url(url)
    if not parsed.database or parsed.database == ":memory:":
        return url
    return parsed.set(database=os.path.abspath(parsed.database)).render_as_string(False)


def spec_templates(path: str | os.PathLike[str] | None) -> dict[str, str]:
    """The ``source:`` / ``target:`` text of the spec at ``path``, ``${VAR}`` unexpanded."""
    if path is None:
        return {}
    from runner.spec._yaml import parse

    try:
        data = parse(Path(path).read_text(encoding="utf-8-sig")).data
    except (OSError, UnicodeDecodeError):
        return {}
    if not isinstance(data, dict):
        return {}
    from runner.connections import template

    found = {k: data[k] for k in ("source", "target") if isinstance(data.get(k), str)}
    # a named connection: its text in connections.yaml is what the worker expands
    return {k: template(path, v) or v for k, v in found.items()}


def process_bound(connector: Connector) -> bool:
    """True for a database only one process can open: its chunks must run in the driver."""
    declared = getattr(connector.capabilities, "multi_process", None)
    if declared is not None:
        return not declared
    if connector.dialect == "duckdb":  # one read-write process per DuckDB file
        return True
    path = getattr(connector, "path", "")
    return path is None or path == ":memory:"
