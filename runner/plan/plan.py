"""The plan: a DAG of plain-data tasks, and how it is shown (text, JSON, mermaid).

Everything in a plan is JSON data, so the same plan can be printed, saved, compared byte for byte,
pickled to a Dask worker and resumed. Nothing in it holds a secret or a timestamp.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(frozen=True)
class Task:
    id: str
    """Unique in the plan: ``<table>:prepare``, ``<table>:chunk:0003``, ``<table>:finalize``."""
    kind: str
    table: str
    """The target table this task works on (the key of its :class:`TablePlan`)."""
    mode: str
    deps: tuple[str, ...] = ()
    params: dict[str, Any] = field(default_factory=dict)
    """Everything the task body needs, as plain data (SQL text, key range, column types)."""
    rows: int = 0
    """Estimated rows this task moves (0 for prepare/finalize)."""


@dataclass(frozen=True)
class ColumnPlan:
    name: str
    source_type: str
    arrow_type: str
    target_type: str
    lossy: str | None = None
    """What this mapping can lose, shown by `etlrun plan` before anything runs."""


@dataclass(frozen=True)
class TablePlan:
    source: str
    target: str
    mode: str
    key: str | None
    rows: int
    bytes: int
    columns: tuple[ColumnPlan, ...]
    chunks: tuple[tuple[Any, Any], ...]
    """Key ranges (lo, hi]: a row belongs to the chunk whose lo < key <= hi; None is open."""
    options: dict[str, Any] = field(default_factory=dict)
    sql: dict[str, tuple[str, ...]] = field(default_factory=dict)
    """Statements by step (prepare, read, write, finalize), each in the dialect it runs in."""
    target_exists: bool = False


@dataclass(frozen=True)
class Plan:
    job: str
    spec_hash: str
    source: str
    target: str
    source_dialect: str
    target_dialect: str
    tables: tuple[TablePlan, ...]
    tasks: tuple[Task, ...]
    workers: int = 4

    # --- structure ------------------------------------------------------------------------
    def task(self, task_id: str) -> Task:
        return self._by_id[task_id]

    @property
    def _by_id(self) -> dict[str, Task]:
        return {t.id: t for t in self.tasks}

    def table(self, target: str) -> TablePlan:
        return next(t for t in self.tables if t.target == target)

    @property
    def has_changes(self) -> bool:
        return any(t.kind == "chunk" for t in self.tasks)

    # --- serialisation ----------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True, default=str) + "\n"

    @property
    def fingerprint(self) -> str:
        return hashlib.sha256(self.to_json().encode()).hexdigest()[:16]

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Plan:
        tables = tuple(
            TablePlan(
                **{
                    **t,
                    "columns": tuple(ColumnPlan(**c) for c in t["columns"]),
                    "chunks": tuple(tuple(c) for c in t["chunks"]),
                    "sql": {k: tuple(v) for k, v in t["sql"].items()},
                }
            )
            for t in data["tables"]
        )
        tasks = tuple(Task(**{**t, "deps": tuple(t["deps"])}) for t in data["tasks"])
        return cls(**{**data, "tables": tables, "tasks": tasks})

    @classmethod
    def from_json(cls, text: str) -> Plan:
        return cls.from_dict(json.loads(text))
