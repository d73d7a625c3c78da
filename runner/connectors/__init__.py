"""Where data lives: one connector class per backend, found by the URL's scheme.

Built-in backends are imported lazily (a missing driver costs nothing until it is used);
third-party connectors register under the ``etlrun.connectors`` entry-point group.
"""

from __future__ import annotations

import importlib
from importlib.metadata import entry_points
from typing import TYPE_CHECKING

from runner.errors import SpecError

if TYPE_CHECKING:
    from runner.connectors.base import Connector

BUILTIN = {
    "sqlite": "sqlite",
    "postgresql": "postgres",
    "postgres": "postgres",
    "mariadb": "mariadb",
    "mysql": "mariadb",
    "duckdb": "duckdb",
    "file": "fs",
    "sftp": "fs",
    "s3": "fs",
}
DIALECTS = {"sqlite": "sqlite", "postgres": "postgres", "mariadb": "mysql", "duckdb": "duckdb"}
"""sqlglot dialect of each built-in module, known without importing its driver."""
ENTRY_POINT_GROUP = "etlrun.connectors"
REGISTRY: dict[str, type[Connector]] = {}
"""scheme -> connector class, filled as connector modules are imported."""


def scheme_of(url: str) -> str:
    return url.split(":", 1)[0].split("+", 1)[0].lower()


def dialect_for_url(url: str) -> str | None:
    """The sqlglot dialect of ``url``'s backend, or None when etlrun does not know the scheme.

    Example:
        >>> dialect_for_url("mariadb://root@127.0.0.1/shop")
        'mysql'
    """
    module = BUILTIN.get(scheme_of(url))
    return DIALECTS.get(module) if module else None


def connector_for(url: str) -> type[Connector]:
    """The connector class for ``url``.

    Example:
        >>> connector_for("sqlite:///demo/clinic.db").__name__
        'SqliteConnector'
    """
    scheme = scheme_of(url)
    if scheme in REGISTRY:
        return REGISTRY[scheme]
    if scheme in BUILTIN:
        importlib.import_module(f"runner.connectors.{BUILTIN[scheme]}")
        return REGISTRY[scheme]
    for entry in entry_points(group=ENTRY_POINT_GROUP):
        if entry.name == scheme:
            cls: type[Connector] = entry.load()
            REGISTRY.setdefault(scheme, cls)
            return cls
    known = sorted(set(BUILTIN) | {e.name for e in entry_points(group=ENTRY_POINT_GROUP)})
    raise SpecError(f"no connector for URL scheme '{scheme}' (known: {', '.join(known)})")


def connect(url: str) -> Connector:
    return connector_for(url)(url)
