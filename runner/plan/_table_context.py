"""One table worked out for its mode, as a :class:`TableContext`: the columns chosen, their types
mapped source -> Arrow -> target, the key, ``where:``, the sanitize rules, the row count and the
chunk bounds. Reads the source's catalog and whether the target table exists; writes nothing."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa
from sqlglot import exp
from sqlglot.optimizer.normalize_identifiers import normalize_identifiers

from runner.connectors.base import Connector, TableInfo
from runner.errors import SpecError
from runner.plan.catalog import Catalog, table_expr
from runner.plan.plan import ColumnPlan
from runner.plan.types import arrow_from_str, override_type, source_type, target_type
from runner.sanitize import _plan as sanitize_plan
from runner.spec.models import Job, TableSpec
from runner.spec.validators import did_you_mean, parse_condition


@dataclass
class TableContext:
    """Everything a mode needs to compile one table, worked out once by the compiler."""

    job: Job
    spec: TableSpec
    index: int
    info: TableInfo
    source_name: str
    target_name: str
    columns: list[ColumnPlan]
    read_as_text: set[str]
    key: str | None
    key_is_integer: bool
    where: exp.Expression | None
    source: Connector
    target: Connector
    catalog: Catalog
    target_exists: bool
    rows: int = 0
    bytes: int = 0
    bounds: list[Any] = field(default_factory=list)
    read_columns: list[ColumnPlan] | None = None
    """The source columns read, when sanitize rules make them differ from ``columns`` (written)."""
    sanitize: sanitize_plan.TableSanitize | None = None
    state: Any = None
    """The state store (read only at plan time: watermarks), or None when planning without one."""

    @property
    def source_dialect(self) -> str:
        return self.source.dialect

    @property
    def target_dialect(self) -> str:
        return self.target.dialect

    @property
    def schema(self) -> pa.Schema:
        return pa.schema([(c.name, arrow_from_str(c.arrow_type)) for c in self.columns])

    @property
    def read_schema(self) -> pa.Schema:
        columns = self.columns if self.read_columns is None else self.read_columns
        return pa.schema([(c.name, arrow_from_str(c.arrow_type)) for c in columns])

    def select(self) -> exp.Select:
        """SELECT of the columns read, with the spec's ``where:``, in the source dialect."""
        projections: list[exp.Expression] = []
        for c in self.columns if self.read_columns is None else self.read_columns:
            column = self.source.read_expression(
                c.name, arrow_from_str(c.arrow_type), c.name in self.read_as_text
            )
            projections.append(column)
        query = exp.select(*projections).from_(table_expr(self.source_name))
        return query.where(self.where.copy()) if self.where is not None else query

    def raw_select(self) -> exp.Select | None:
        """SELECT of the source's columns as they are stored (no cast to what Arrow reads), with
        the spec's ``where:``: what a same-database pipe copies. None when sanitize rules read
        other columns than those written."""
        if self.read_columns is not None:
            return None
        names = [exp.column(c.name, quoted=True) for c in self.columns]
        query = exp.select(*names).from_(table_expr(self.source_name))
        return query.where(self.where.copy()) if self.where is not None else query

    def issue(self, message: str) -> SpecError:
        return SpecError(f"tables[{self.index}] ({self.source_name}): {message}")


def table_context(
    job: Job,
    spec: TableSpec,
    index: int,
    name: str,
    catalog: Catalog,
    target_catalog: Catalog,
    source: Connector,
    target: Connector,
    sizes: bool = True,
) -> TableContext:
    info = catalog.describe(name)
    available = [c.name for c in info.columns]

    def check_columns(names: list[str], key: str) -> None:
        for column in names:
            if column not in available:
                raise SpecError(
                    f"tables[{index}].{key}: column '{column}' does not exist in {name}"
                    f"{did_you_mean(column, available)} (columns: {', '.join(available)})"
                )

    check_columns(spec.columns or [], "columns")
    check_columns(spec.exclude or [], "exclude")
    check_columns(list(spec.types or {}), "types")
    check_columns(spec.primary_key or [], "primary_key")
    chosen = [c for c in info.columns if (spec.columns is None or c.name in spec.columns)]
    chosen = [c for c in chosen if c.name not in (spec.exclude or [])]
    if not chosen:
        raise SpecError(f"tables[{index}]: no columns left to copy from {name}")

    key_columns = list(spec.primary_key or info.primary_key)
    key_columns = [k for k in key_columns if any(c.name == k for c in chosen)]
    columns, as_text = [], set()
    key_integer = False
    for column in chosen:
        mapped = source_type(column.type_sql, source.dialect)
        arrow = mapped.arrow
        override = (spec.types or {}).get(column.name)
        is_key = column.name in key_columns
        if override:
            arrow, ddl = override_type(override, target.dialect)
            lossy = mapped.note
        else:
            tt = target_type(
                arrow,
                target.dialect,
                length=mapped.length,
                is_key=is_key,
                source_dialect=source.dialect,
                source_sql=column.type_sql,
            )
            ddl = tt.ddl
            lossy = "; ".join(n for n in (mapped.note, tt.lossy) if n) or None
        if mapped.read_as_text:
            as_text.add(column.name)
        if is_key and column.name == key_columns[0]:
            key_integer = pa.types.is_integer(arrow)
        columns.append(ColumnPlan(column.name, column.type_sql, str(arrow), ddl, lossy))

    def helper(name_: str) -> ColumnPlan:  # a column a sanitize rule reads but that is not copied
        column = next(c for c in info.columns if c.name == name_)
        mapped = source_type(column.type_sql, source.dialect)
        if mapped.read_as_text:
            as_text.add(column.name)
        ddl = target_type(mapped.arrow, target.dialect, length=mapped.length).ddl
        return ColumnPlan(column.name, column.type_sql, str(mapped.arrow), ddl, None)

    read_columns = None
    sanitized = sanitize_plan.plan_table(
        job, job.tables[index], index, name, info, columns, key_columns, source.dialect,
        target.dialect, helper, sanitize_plan.sampler_for(source, name, as_text),
        spec.to or info.name,
    )  # fmt: skip
    if sanitized is not None and sanitized.params is not None:
        read_columns, columns = sanitized.read, sanitized.columns
        info = dataclasses.replace(
            info,
            columns=tuple(
                dataclasses.replace(c, nullable=True) if c.name in sanitized.nullable else c
                for c in info.columns
            ),
        )

    where = None
    if spec.where:
        try:
            where = parse_condition(spec.where, source.dialect)
        except ValueError as exc:
            raise SpecError(f"tables[{index}].where: {exc}") from None
        where = normalize_identifiers(where, dialect=source.dialect)
    target_name = spec.to or info.name
    target_exists = target.table_exists(target_name)
    if target_exists:
        columns = _existing_json_types(target_catalog, target_name, columns)
    ctx = TableContext(
        job=job,
        spec=spec,
        index=index,
        info=info,
        source_name=name,
        target_name=target_name,
        columns=columns,
        read_as_text=as_text,
        key=key_columns[0] if key_columns else None,
        key_is_integer=key_integer,
        where=where,
        source=source,
        target=target,
        catalog=catalog,
        target_exists=target_exists,
        read_columns=read_columns,
        sanitize=sanitized,
    )
    # copy and bulk read every row anyway, and incremental counts its own window: for them a big
    # table's size may be estimated
    estimate = (spec.mode or "copy") in ("copy", "bulk", "incremental")
    ctx.rows = catalog.count(name, where, estimate=estimate)
    # a sanitized key's values change on the way: chunk k could not find its rows in staging by
    # key range (and the ranges would put raw key values into the plan), so it is one chunk
    if ctx.key and not (sanitized is not None and sanitized.key_sanitized):
        chunk_rows = spec.chunk_rows or 100_000
        key_arrow = next((c.arrow_type for c in columns if c.name == ctx.key), None)
        if key_arrow not in ("binary", "large_binary"):  # bytes keys have no portable order
            ctx.bounds = catalog.key_bounds(
                name, ctx.key, where, ctx.rows, chunk_rows, key_integer, text=key_arrow == "string"
            )
    if sizes:  # a query for sample rows and decoding them, for a figure only `plan` shows
        ctx.bytes = int(catalog.sample_row_bytes(ctx.select(), ctx.read_schema) * ctx.rows)
    return ctx


def _existing_json_types(target: Catalog, name: str, columns: list[ColumnPlan]) -> list[ColumnPlan]:
    """A PostgreSQL json column planned as json that the existing target holds as jsonb (made by
    an earlier etlrun, or by hand) stays jsonb: staging then matches the target, and checksums
    know to compare the two as jsonb."""
    if not any(c.target_type == "JSON" for c in columns) or target.dialect != "postgres":
        return columns
    try:
        existing = {c.name: c.type_sql.upper() for c in target.describe(name).columns}
    except Exception:  # noqa: BLE001 - a target we cannot describe keeps the planned types
        return columns
    return [
        dataclasses.replace(c, target_type="JSONB")
        if c.target_type == "JSON" and existing.get(c.name) == "JSONB"
        else c
        for c in columns
    ]
