"""``etlrun check JOB.yaml``: are source and target equal, table by table, and where not?

Each table is cut into a few coarse key-range segments whose checksums (count and an
order-independent hash sum of the rows, plan/segments.py) are computed in one grouped scan per
side, both sides at once. Equal tables cost exactly that. A segment that differs is bisected
(segdiff.py) down to small key ranges whose rows' keys and hashes are compared: those ranges
are listed with their row counts and how many rows differ. No row values leave the databases.

Between two databases of one kind (PostgreSQL -> PostgreSQL, DuckDB -> DuckDB) the database's
own fast hash is used, floats included; otherwise the portable md5 text hash, which leaves
floating-point columns out. Columns with a sanitize rule other than keep are compared by count
only (their target values are sanitized on purpose).
"""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from typing import Any

from sqlglot import exp
from sqlglot.optimizer.normalize_identifiers import normalize_identifiers

from runner.connectors.base import Connector
from runner.plan.catalog import Catalog
from runner.plan.checksum import checksum_sql, hashable, range_condition
from runner.plan.plan import TablePlan
from runner.plan.segments import flavor_for, hashed_columns
from runner.segdiff import LEAF, Differ, HashSide, json_normalize
from runner.spec.validators import parse_condition

PASS_THROUGH = (None, "keep", "allow")


@dataclass
class Difference:
    lo: Any
    hi: Any
    source_rows: int
    target_rows: int
    inserted: int | None = None
    """Rows only the source has (None: not counted, e.g. a missing target)."""
    updated: int | None = None
    deleted: int | None = None


@dataclass
class TableCheck:
    source: str
    target: str
    key: str | None
    source_rows: int = 0
    target_rows: int = 0
    equal: bool = True
    segments: int = 0
    target_missing: bool = False
    count_only: list[str] = field(default_factory=list)
    """Columns left out of the checksums (sanitized or floating point)."""
    differences: list[Difference] = field(default_factory=list)


class Side:
    """One database's half of a table comparison."""

    def __init__(self, connector: Connector, table: str, where: exp.Expression | None) -> None:
        self.connector, self.table, self.where = connector, table, where
        self.catalog = Catalog(connector)

    def nullable(self, key: str | None, lo: Any, hi: Any) -> bool:
        """Whether the range ``(lo, hi]`` must also look for NULL keys: a first range with an
        upper end, of a key column the catalog says may hold NULL (a primary key's may not)."""
        if key is None or lo is not None or hi is None:
            return True
        return self.catalog.key_nullable(self.table, key)

    def condition(self, key: str | None, key_type: str | None, lo: Any, hi: Any) -> Any:
        ranged = range_condition(
            key, key_type, lo, hi, self.connector.dialect, self.nullable(key, lo, hi)
        )
        parts = [c for c in (self.where, ranged) if c is not None]
        if not parts:
            return None
        return parts[0] if len(parts) == 1 else exp.and_(*(exp.paren(p.copy()) for p in parts))

    def checksum(
        self,
        columns: list[tuple[str, str]],
        key: str | None,
        key_type: str | None,
        lo: Any,
        hi: Any,
    ) -> tuple[int, int, int]:
        where = self.condition(key, key_type, lo, hi)
        sql = checksum_sql(self.table, columns, self.connector.dialect, where)
        row = self.connector.rows(sql)[0]
        return int(row[0] or 0), int(row[1] or 0), int(row[2] or 0)


def compare_table(
    table: TablePlan,
    source: Connector,
    target: Connector,
    pool: ThreadPoolExecutor,
    segments: int = 8,
    threshold: int = LEAF,
) -> TableCheck:
    report = TableCheck(table.source, table.target, table.key)
    sanitized = {
        e["column"]
        for e in ((table.options.get("sanitize") or {}).get("columns") or [])
        if e.get("rule") not in PASS_THROUGH
    }
    flavor = flavor_for(source.dialect, target.dialect)
    kept = [(c.name, c.arrow_type) for c in table.columns if c.name not in sanitized]
    columns = hashed_columns(kept, flavor)
    report.count_only = sorted(sanitized | ({n for n, _ in kept} - {n for n, _ in columns}))
    key_type = next((c.arrow_type for c in table.columns if c.name == table.key), None)
    key = table.key if key_type not in ("binary", "large_binary") else None
    where = None
    if table.options.get("where"):
        where = normalize_identifiers(
            parse_condition(table.options["where"], source.dialect), dialect=source.dialect
        )
    src = Side(source, table.source, where)
    if not target.table_exists(table.target):
        report.target_missing, report.equal = True, False
        report.source_rows = src.catalog.count(table.source, where)
        report.differences.append(Difference(None, None, report.source_rows, 0))
        return report
    if key is None:  # no key to cut ranges by: one checksum of everything on each side
        tgt = Side(target, table.target, None)
        plain_columns = [(n, t) for n, t in kept if hashable(t)]
        a = pool.submit(src.checksum, plain_columns, None, None, None, None)
        b = pool.submit(tgt.checksum, plain_columns, None, None, None, None)
        s, t = a.result(), b.result()
        report.source_rows, report.target_rows, report.segments = s[0], t[0], 1
        if s != t:
            report.differences.append(Difference(None, None, s[0], t[0]))
        report.equal = not report.differences
        return report
    as_jsonb = json_normalize(table.columns)
    differ = Differ(
        HashSide(source, table.source, columns, key, key_type, flavor, where, as_jsonb),
        HashSide(target, table.target, columns, key, key_type, flavor, None, as_jsonb),
        pool,
        leaf=threshold,
    )
    # coarse segments first, computed on both sides at once (one grouped scan each); only
    # the segments that differ are bisected further. The rows only cut the segments (the
    # report's counts come from the scans): a big table's estimate spares a COUNT(*) that
    # read the whole source before the scans began (5M rows: ~0.3 s)
    rows = src.catalog.count(table.source, where, estimate=True)
    bounds = differ.source.split(None, None, rows, segments) if rows > threshold else []
    edges = [None, *bounds, None]
    ranges = list(zip(edges[:-1], edges[1:], strict=True))
    report.segments = len(ranges)
    ss, tt = differ.both(None, None, bounds)
    for (lo, hi), s, t in zip(ranges, ss, tt, strict=True):
        report.source_rows += s[0]
        report.target_rows += t[0]
        for leaf in differ.diff(lo, hi, s, t):
            report.differences.append(
                Difference(leaf.lo, leaf.hi, leaf.source_rows, leaf.target_rows,
                           len(leaf.inserts), len(leaf.updates), len(leaf.deletes))
            )  # fmt: skip
    report.equal = not report.differences
    return report


def check(
    plan_tables: list[TablePlan], source: Connector, target: Connector, workers: int = 4
) -> list[TableCheck]:
    # segment queries and the bisection both submit here; one table at a time keeps the
    # nesting shallow (a bisection step waits on its own queries only)
    with ThreadPoolExecutor(max(2, workers * 2)) as pool:
        return [compare_table(t, source, target, pool, segments=workers * 2) for t in plan_tables]


def _range(d: Difference, key: str | None) -> str:
    if d.lo is None and d.hi is None:
        return "all rows"
    lo = "-inf" if d.lo is None else d.lo
    hi = "+inf" if d.hi is None else d.hi
    return f"{key} in ({lo}, {hi}]"


def render_text(results: list[TableCheck]) -> str:
    lines = []
    for r in results:
        head = f"table {r.source} -> {r.target}: "
        if r.target_missing:
            lines.append(head + f"DIFFERENT: the target table is missing ({r.source_rows:,} rows)")
            continue
        counts = f"source {r.source_rows:,} rows, target {r.target_rows:,} rows"
        if r.equal:
            lines.append(head + f"equal ({counts}, {r.segments} segments)")
        else:
            lines.append(head + f"DIFFERENT ({counts})")
            for d in r.differences:
                rows = [f"{n} {what}" for n, what in
                        ((d.inserted, "only in the source"), (d.updated, "differing"),
                         (d.deleted, "only in the target")) if n]  # fmt: skip
                lines.append(
                    f"  {_range(d, r.key)}: source {d.source_rows:,} rows, "
                    f"target {d.target_rows:,} rows" + (f" ({', '.join(rows)})" if rows else "")
                )
        if r.count_only:
            lines.append(f"  compared by count only: {', '.join(r.count_only)}")
    different = sum(1 for r in results if not r.equal)
    lines.append(
        f"{len(results)} table(s) compared: "
        + ("all equal." if not different else f"{different} different.")
    )
    return "\n".join(lines) + "\n"


def render_json(results: list[TableCheck]) -> str:
    data = {"equal": all(r.equal for r in results), "tables": [asdict(r) for r in results]}
    return json.dumps(data, indent=2, default=str) + "\n"


def render_github(results: list[TableCheck], spec_path: str) -> str:
    """The text report, after one GitHub Actions ``::error`` per table that differs, placed on
    the spec line of its ``tables:`` entry (the entry whose name or glob matches)."""
    from runner._github import annotation

    lines = []
    for r in results:
        if r.equal:
            continue
        if r.target_missing:
            what = f"the target table {r.target} is missing ({r.source_rows:,} source rows)"
        else:
            ranges = "; ".join(
                f"{_range(d, r.key)}: source {d.source_rows:,}, target {d.target_rows:,}"
                for d in r.differences[:5]
            )
            more = f" and {len(r.differences) - 5} more" if len(r.differences) > 5 else ""
            what = f"source {r.source_rows:,} rows, target {r.target_rows:,} rows" + (
                f"; differing key ranges: {ranges}{more}" if ranges else ""
            )
        line = _spec_line(spec_path, r.source)
        message = f"etlrun check: table {r.source} -> {r.target} differs: {what}"
        lines.append(annotation("error", spec_path, line, None, message))
    return "\n".join(lines) + ("\n" if lines else "") + render_text(results)


def _spec_line(spec_path: str, source_table: str) -> int:
    """The line of the ``tables:`` entry that names ``source_table`` (1 if none is found)."""
    from fnmatch import fnmatchcase
    from pathlib import Path

    from runner.spec._yaml import parse

    try:
        doc = parse(Path(spec_path).read_text(encoding="utf-8-sig"))
    except (OSError, UnicodeDecodeError):
        return 1
    tables = doc.data.get("tables") if isinstance(doc.data, dict) else None
    if not isinstance(tables, list):
        return 1
    bare = source_table.rsplit(".", 1)[-1]
    for i, entry in enumerate(tables):
        name = entry.get("name") if isinstance(entry, dict) else entry
        if isinstance(name, str) and (
            name in (source_table, bare) or fnmatchcase(source_table, name)
        ):
            return doc.positions.value(("tables", i)).line
    return doc.positions.key(("tables",)).line
