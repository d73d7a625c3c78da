"""Every backend copied into every backend through the real CLI, checked value by value by key.

The source is the common-types table created *natively* (the backend's own DDL and driver, see
``tests/cases.py``); ``etlrun run`` copies it in several chunks; the target is read back with the
target's own driver and compared row by row by primary key with what went into the source. The
only normalisation is the one the plan declares lossy (MariaDB has no time zone type: an instant
lands as its UTC wall clock; SQLite keeps 15 significant digits of a decimal), and the test pins
exactly which columns the plan flags, per target, so a new loss cannot slip in unnoticed.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
import yaml
from cases import (
    BACKENDS,
    NATIVE_TYPES,
    backend_of,
    common_types_table,
    create_native,
    execute_native,
    native_tables,
    read_native,
)
from conftest import run_cli

from runner.cli import main
from runner.connectors import connect
from runner.plan.compiler import compile
from runner.plan.plan import TablePlan
from runner.plan.types import arrow_from_str, source_type
from runner.spec.load import load
from runner.testing.helpers import assert_same_kind, same_value, utc_wall_clock

SOURCE, TARGET = "common_types", "copied"
ROWS, CHUNK_ROWS = 60, 16  # 4 chunks

SERVER_MARKS = {"postgres": pytest.mark.postgres, "mariadb": pytest.mark.mariadb}

LOSSY = {
    "sqlite": {"dec38": "15 significant digits", "f64": "NaN is rejected"},
    "duckdb": {},
    "postgres": {"txt": "U+0000"},  # from a source whose text can hold U+0000
    "mariadb": {"tstz": "time zone dropped", "f64": "NaN"},
}
"""Per target: the columns of the common-types table the plan must flag, and how."""

RERUN = {
    ("duckdb", "sqlite"),
    ("postgres", "duckdb"),
    ("mariadb", "postgres"),
    ("sqlite", "mariadb"),
}
"""One pair per target is run a second time over its own output (replace an existing table)."""

RING = [(s, BACKENDS[(i + 1) % len(BACKENDS)]) for i, s in enumerate(BACKENDS)]
"""sqlite->duckdb->postgres->mariadb->sqlite: every backend once as source and once as target."""


def pair(source: str, target: str, *marks: Any) -> Any:
    server = [SERVER_MARKS[b] for b in dict.fromkeys((source, target)) if b in SERVER_MARKS]
    return pytest.param(source, target, marks=[*server, *marks], id=f"{source}->{target}")


@pytest.fixture
def database(request: pytest.FixtureRequest, tmp_path: Path) -> Callable[[str, str], str]:
    """``database(backend, role)``: a URL for an empty database of ``backend``. Server backends
    give one fresh database per test (source and target share it when both are the same)."""

    def make(backend: str, role: str) -> str:
        if backend == "sqlite":
            return f"sqlite:///{tmp_path}/{role}.db"
        if backend == "duckdb":
            return f"duckdb:///{tmp_path}/{role}.duckdb"
        return str(
            request.getfixturevalue({"postgres": "pg_url", "mariadb": "mariadb_url"}[backend])
        )

    return make


def write_spec(tmp_path: Path, source: str, target: str, **table: Any) -> Path:
    spec = {
        "version": 1,
        "job": "matrix",
        "source": source,
        "target": target,
        "workers": 2,
        "defaults": {"chunk_rows": CHUNK_ROWS},
        "tables": [{"name": SOURCE, "to": TARGET, **table}],
    }
    path = tmp_path / "matrix.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False, allow_unicode=True))
    return path


def plan_of(spec: Path) -> TablePlan:
    """What `etlrun plan` would show for the table (compiled in-process: it writes nothing)."""
    job = load(spec)
    source, target = connect(job.source), connect(job.target)
    try:
        return compile(job, source, target).tables[0]
    finally:
        source.close()
        target.close()


def run(spec: Path) -> None:
    """`etlrun run SPEC` in a subprocess, as a user runs it."""
    result = run_cli("run", spec, cwd=spec.parent)
    assert result.returncode == 0, f"exit {result.returncode}\n{result.stderr}\n{result.stdout}"
    # parallel chunks must not deadlock each other (retried, but slow, and finite)
    assert "Deadlock" not in result.stderr, result.stderr


def run_here(spec: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The same command in this process: the weak-spot tests below are many and small."""
    code = main(["run", str(spec)])
    out = capsys.readouterr()
    assert code == 0, f"exit {code}\n{out.err}\n{out.out}"
    assert "Deadlock" not in out.err, out.err


def fifteen_digits(value: Any) -> Any:
    return value if value is None else Decimal(f"{value:.15g}")


NORMALIZE = {"time zone dropped": utc_wall_clock, "15 significant digits": fifteen_digits}


def normalizers(table: TablePlan) -> dict[str, Callable[[Any], Any]]:
    """Only for columns the plan flags lossy, and only in the way the flag says."""
    found = {}
    for column in table.columns:
        for flag, normalize in NORMALIZE.items():
            if column.lossy and flag in column.lossy:
                found[column.name] = normalize
    return found


def assert_flags(table: TablePlan, target: str, source: str = "") -> None:
    flagged = {c.name: c.lossy for c in table.columns if c.lossy}
    expected = dict(LOSSY[target])
    if source == target == "postgres":
        expected.pop("txt")  # PostgreSQL text holds no U+0000 to begin with
    assert set(flagged) == set(expected), f"lossy columns: {flagged}"
    for name, words in expected.items():
        assert words in (flagged[name] or ""), flagged[name]


def assert_target(url: str, expected: pa.Table, table: TablePlan, key: str | None = "id") -> None:
    """The target, read with its own driver, holds exactly ``expected``, value by value."""
    normalize = normalizers(table)
    got = read_native(url, TARGET, expected.schema, key="id")
    want = {row["id"]: row for row in expected.to_pylist()}
    assert sorted(got) == sorted(want), "different keys in the target"
    problems = []
    for k, row in want.items():
        for column, value in row.items():
            value = normalize.get(column, lambda v: v)(value)
            if not same_value(value, got[k][column]):
                problems.append(f"id={k} {column}: expected {value!r}, got {got[k][column]!r}")
    assert not problems, f"{len(problems)} values differ:\n" + "\n".join(problems[:40])
    # no silent type change: each target column reads back as the type the plan carried
    target = connect(url)
    try:
        info = target.describe(TARGET)
    finally:
        target.close()
    assert [c.name for c in info.columns] == [c.name for c in table.columns]
    assert info.primary_key == ((key,) if key else ())
    for planned, column in zip(table.columns, info.columns, strict=True):
        landed = source_type(column.type_sql, target.dialect)
        assert not landed.read_as_text, f"{column.name}: {column.type_sql} {landed.note}"
        where = f"{column.name}: {planned.target_type} -> {column.type_sql}"
        assert_same_kind(arrow_from_str(planned.arrow_type), landed.arrow, planned.lossy, where)
    leftovers = {t for t in native_tables(url) if "__etlrun_" in t}
    assert not leftovers, f"staging tables left behind: {leftovers}"


def change_source(url: str, expected: pa.Table) -> pa.Table:
    """Delete one row, change a value and add a row in the source; the new expected table."""
    backend = backend_of(url)
    p = "%s" if backend in ("postgres", "mariadb") else "?"
    q = "`" if backend == "mariadb" else '"'
    ids = expected.column("id").to_pylist()
    gone, changed = ids[5], ids[7]
    execute_native(url, f"DELETE FROM {q}{SOURCE}{q} WHERE {q}id{q} = {p}", (gone,))
    execute_native(
        url,
        f"UPDATE {q}{SOURCE}{q} SET {q}txt{q} = {p} WHERE {q}id{q} = {p}",
        ("changed ✓", changed),
    )
    added = {name: None for name in expected.column_names} | {"id": 10**6, "txt": "added"}
    execute_native(
        url, f"INSERT INTO {q}{SOURCE}{q} ({q}id{q}, {q}txt{q}) VALUES ({p}, {p})", (10**6, "added")
    )
    rows = [
        {**row, "txt": "changed ✓"} if row["id"] == changed else row
        for row in expected.to_pylist()
        if row["id"] != gone
    ]
    return pa.Table.from_pylist([*rows, added], schema=expected.schema)


# --- the matrix ---------------------------------------------------------------------------------
@pytest.mark.parametrize(("source", "target"), [pair(s, t) for s in BACKENDS for t in BACKENDS])
def test_copy(
    source: str, target: str, database: Callable[[str, str], str], tmp_path: Path
) -> None:
    src, tgt = database(source, "source"), database(target, "target")
    expected = create_native(src, SOURCE, common_types_table(ROWS))
    spec = write_spec(tmp_path, src, tgt)
    table = plan_of(spec)
    assert len(table.chunks) >= 3, table.chunks
    assert_flags(table, target, source)

    run(spec)
    assert_target(tgt, expected, table)

    if (source, target) in RERUN:  # replace over the table the first run made
        expected = change_source(src, expected)
        table = plan_of(spec)
        assert table.target_exists
        run(spec)
        assert_target(tgt, expected, table)


# --- weak spots, each backend once as source and once as target ---------------------------------
@pytest.mark.parametrize(("source", "target"), [pair(s, t) for s, t in RING])
def test_empty_table(
    source: str,
    target: str,
    database: Callable[[str, str], str],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """0 rows: the plan still creates the target table, with its columns and key."""
    src, tgt = database(source, "source"), database(target, "target")
    expected = create_native(src, SOURCE, common_types_table(0))
    spec = write_spec(tmp_path, src, tgt)
    table = plan_of(spec)
    assert table.rows == 0
    run_here(spec, capsys)
    assert TARGET in native_tables(tgt)
    assert_target(tgt, expected, table)


@pytest.mark.parametrize(("source", "target"), [pair(s, t) for s, t in RING])
def test_table_without_primary_key(
    source: str,
    target: str,
    database: Callable[[str, str], str],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """No key to split on: one chunk, every row (ids are still unique, so rows compare by id)."""
    src, tgt = database(source, "source"), database(target, "target")
    expected = create_native(src, SOURCE, common_types_table(ROWS), primary_key=False)
    spec = write_spec(tmp_path, src, tgt)
    table = plan_of(spec)
    assert table.key is None and len(table.chunks) == 1
    run_here(spec, capsys)
    assert_target(tgt, expected, table, key=None)


BINARY_KEY = {
    "sqlite": "BLOB PRIMARY KEY",
    "duckdb": "BLOB PRIMARY KEY",
    "postgres": "bytea PRIMARY KEY",
    "mariadb": "VARBINARY(16) PRIMARY KEY",
}


def keyed_table(column: str) -> pa.Table:
    """The common-types table with unique, non-NULL values in ``column``, the key to chunk on."""
    table = common_types_table(ROWS)
    values = {
        "tstz": [
            dt.datetime(2021, 3, 28, tzinfo=dt.UTC) + dt.timedelta(hours=7 * i, microseconds=i)
            for i in range(ROWS)
        ],
        # mixed case and accents: backends whose collations order these differently must
        # still agree on which chunk a key belongs to
        "txt": [
            f"{'kK'[i % 2]}{(i * 7) % 61:02d} {['Zoë', 'zoe', '李'][i % 3]}" for i in range(ROWS)
        ],
        "d": [dt.date(1999, 12, 31) + dt.timedelta(days=41 * i) for i in range(ROWS)],
        "b": [bytes([(i * 37) % 256, i, 0]) for i in range(ROWS)],
    }[column]
    index = table.schema.get_field_index(column)
    return table.set_column(index, column, pa.array(values, table.schema.field(column).type))


def keyed_types(backend: str, column: str) -> dict[str, str]:
    types = {k: v.replace(" PRIMARY KEY", "") for k, v in NATIVE_TYPES[backend].items()}
    types["id"] += " NOT NULL"
    if column == "b":
        types["b"] = BINARY_KEY[backend]
    elif column == "txt" and backend == "mariadb":
        types["txt"] = "VARCHAR(40) PRIMARY KEY"
    else:
        types[column] = types[column].replace(" NULL", "") + " PRIMARY KEY"
    return types


def keyed(source: str, target: str, column: str, *marks: Any) -> Any:
    p = pair(source, target, *marks)
    return pytest.param(source, target, column, marks=p.marks, id=f"{p.id}-{column}")


@pytest.mark.parametrize(
    ("source", "target", "column"),
    [
        *[keyed(s, t, c) for s, t in RING for c in ("tstz", "txt", "d")],
        keyed("duckdb", "sqlite", "b"),
        keyed("postgres", "duckdb", "b"),
        # MariaDB's default collation is case-insensitive: bounds must be cut in code point order
        keyed("mariadb", "sqlite", "txt"),
        keyed("mariadb", "postgres", "txt"),
    ],
)
def test_chunked_on_a_non_integer_key(
    source: str,
    target: str,
    column: str,
    database: Callable[[str, str], str],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Chunk bounds that are instants, text or dates (NTILE over the key) partition the rows the
    same way in the source's SELECTs and in the target's range DELETEs."""
    src, tgt = database(source, "source"), database(target, "target")
    expected = create_native(src, SOURCE, keyed_table(column), types=keyed_types(source, column))
    spec = write_spec(tmp_path, src, tgt)
    table = plan_of(spec)
    # bytes keys have no order every backend shares: such a table is one chunk
    assert table.key == column and len(table.chunks) >= (1 if column == "b" else 3), table.chunks
    if column == "b":
        assert len(table.chunks) == 1, table.chunks
    run_here(spec, capsys)
    assert_target(tgt, expected, table, key=column)


ODD_TABLE = 'Odd "Table" 100% Zoë select'
ODD_COLUMNS = ("my key", 'quote"d', "it's", "MixedCase", "select", "Zoë 李", "100% sure", "a.b")


@pytest.mark.parametrize(("source", "target"), [pair(s, t) for s, t in RING])
def test_odd_identifiers(
    source: str,
    target: str,
    database: Callable[[str, str], str],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Quotes, spaces, %, dots, mixed case, a reserved word and unicode in the table's and the
    columns' names, through chunked reads, staging, the swap and a second run over the first."""
    key, *rest = ODD_COLUMNS
    schema = pa.schema([(key, pa.int64()), *[(c, pa.string()) for c in rest]])
    data = pa.table(
        {key: [i * 5 for i in range(40)], **{c: [f"{c} {i}" for i in range(40)] for c in rest}},
        schema=schema,
    )
    src, tgt = database(source, "source"), database(target, "target")
    text = "VARCHAR(60)" if source == "mariadb" else "TEXT"
    types = {c: text for c in rest} | {key: "BIGINT PRIMARY KEY"}
    create_native(src, ODD_TABLE, data, types=types)
    spec = tmp_path / "odd.yaml"
    spec.write_text(
        yaml.safe_dump(
            {
                "source": src,
                "target": tgt,
                "defaults": {"chunk_rows": 10},
                "tables": [ODD_TABLE],
            },
            allow_unicode=True,
        )
    )
    for _ in range(2):
        run_here(spec, capsys)
        got = read_native(tgt, ODD_TABLE, schema, key=key)
        assert got == {row[key]: row for row in data.to_pylist()}
    assert {t for t in native_tables(tgt) if "__etlrun_" in t} == set()
