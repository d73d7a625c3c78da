"""``on_error``: rows a target cannot hold stop the run (default) or go to a reject file.

DuckDB sources hold what the SQLite target cannot (NaN, integers above 2^63-1); no server needed.
The PostgreSQL and MariaDB cases (U+0000 in text, NaN) run in the fidelity matrix.
"""

from __future__ import annotations

import json
import sqlite3
from contextlib import closing
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pytest
import yaml

from runner import rejects

KEY = "rejects-test-key-0123456789abcdef"


def make_source(path: Path, sql: str) -> str:
    with closing(duckdb.connect(str(path))) as conn:
        conn.execute(sql)
    return f"duckdb:///{path}"


def spec(tmp_path: Path, source: str, on_error: str | None, **extra: Any) -> Path:
    table: dict[str, Any] = {"name": "t", "to": "t_copy", **extra.pop("table", {})}
    document: dict[str, Any] = {
        "version": 1,
        "job": "rej",
        "source": source,
        "target": f"sqlite:///{tmp_path / 'target.db'}",
        "defaults": {"chunk_rows": 4, **({"on_error": on_error} if on_error else {})},
        "tables": [table],
        **extra,
    }
    path = tmp_path / "rej.yaml"
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    return path


def target_rows(tmp_path: Path, sql: str = "SELECT * FROM t_copy ORDER BY 1") -> list[Any]:
    with closing(sqlite3.connect(tmp_path / "target.db")) as conn:
        return conn.execute(sql).fetchall()


def target_tables(tmp_path: Path) -> set[str]:
    if not (tmp_path / "target.db").exists():
        return set()
    rows = target_rows(tmp_path, "SELECT name FROM sqlite_master WHERE type = 'table'")
    return {r[0] for r in rows}


def reject_file(tmp_path: Path) -> tuple[Path, list[dict[str, Any]]]:
    (path,) = (tmp_path / ".etlrun" / "rejects" / "rej").glob("*/t_copy.jsonl")
    return path, [json.loads(line) for line in path.read_text().splitlines()]


NAN_TABLE = (
    "CREATE TABLE t (id BIGINT PRIMARY KEY, x DOUBLE, s VARCHAR);"
    "INSERT INTO t SELECT i, CASE WHEN i IN (3, 7) THEN 'nan'::DOUBLE ELSE i / 2 END, 's' || i "
    "FROM range(1, 11) r(i)"
)


def test_stop_is_the_default_and_leaves_nothing_visible(tmp_path: Path, run_cli: Any) -> None:
    source = make_source(tmp_path / "src.duckdb", NAN_TABLE)
    path = spec(tmp_path, source, None)
    plan = run_cli("plan", path, cwd=tmp_path)
    assert plan.returncode == 0, plan.stderr
    assert "NaN is rejected" in plan.stdout  # flagged before anything runs
    result = run_cli("run", path, cwd=tmp_path)
    assert result.returncode == 1, result.stderr
    assert "id=3: column x: NaN" in result.stderr
    assert "t_copy" not in target_tables(tmp_path)  # the target never appeared
    assert not (tmp_path / ".etlrun" / "rejects").exists()


def test_reject_writes_key_column_reason_and_commits_the_rest(tmp_path: Path, run_cli: Any) -> None:
    source = make_source(tmp_path / "src.duckdb", NAN_TABLE)
    result = run_cli("run", spec(tmp_path, source, "reject"), cwd=tmp_path)
    assert result.returncode == 3, result.stderr
    assert "2 row(s) rejected" in result.stderr
    assert [r[0] for r in target_rows(tmp_path)] == [1, 2, 4, 5, 6, 8, 9, 10]
    path, records = reject_file(tmp_path)
    records.sort(key=lambda r: r["key"]["id"])  # chunks run in parallel
    assert records == [
        {"key": {"id": 3}, "column": "x", "reason": "NaN: SQLite would store it as NULL"},
        {"key": {"id": 7}, "column": "x", "reason": "NaN: SQLite would store it as NULL"},
    ]
    run_id = path.parent.name
    shown = run_cli("show", run_id, "--format", "json", cwd=tmp_path)
    record = json.loads(shown.stdout)
    assert record["rejected"] == 2 and record["exit_code"] == 3, record
    assert "rejected 2" in run_cli("show", run_id, cwd=tmp_path).stdout


def test_a_row_the_database_refuses_is_found_by_bisecting(tmp_path: Path, run_cli: Any) -> None:
    """2^64-1 passes the Arrow checks but SQLite's driver refuses it: the chunk is read again
    and written in halves until that row stands alone."""
    source = make_source(
        tmp_path / "src.duckdb",
        "CREATE TABLE t (id BIGINT PRIMARY KEY, u UBIGINT);"
        "INSERT INTO t SELECT i, CASE WHEN i = 6 THEN 18446744073709551615 ELSE i END "
        "FROM range(1, 11) r(i)",
    )
    result = run_cli("run", spec(tmp_path, source, "reject"), cwd=tmp_path)
    assert result.returncode == 3, result.stderr
    assert [r[0] for r in target_rows(tmp_path)] == [1, 2, 3, 4, 5, 7, 8, 9, 10]
    _, records = reject_file(tmp_path)
    assert [r["key"] for r in records] == [{"id": 6}]
    assert records[0]["column"] is None and "too large" in records[0]["reason"]


def test_a_sanitized_key_never_reaches_the_reject_file(tmp_path: Path, run_cli: Any) -> None:
    source = make_source(
        tmp_path / "src.duckdb",
        "CREATE TABLE t (ssn VARCHAR PRIMARY KEY, x DOUBLE);"
        "INSERT INTO t VALUES ('123-45-6789', 'nan'::DOUBLE), ('987-65-4321', 1.5)",
    )
    path = spec(
        tmp_path,
        source,
        "reject",
        table={"sanitize": {"ssn": "hash"}},
        sanitize={"key": KEY},
    )
    result = run_cli("run", path, cwd=tmp_path)
    assert result.returncode == 3, result.stderr
    text = "".join(p.read_text() for p in (tmp_path / ".etlrun" / "rejects").rglob("*.jsonl"))
    assert "123-45-6789" not in text and "nan" not in text.lower().replace("nan:", "")
    _, records = reject_file(tmp_path)
    assert len(records) == 1 and records[0]["column"] == "x"
    assert "123-45-6789" not in result.stderr + result.stdout


# --- the Arrow checks, without a run ------------------------------------------------------------
@pytest.mark.parametrize(
    ("dialect", "array", "bad"),
    [
        ("mysql", pa.array([1.0, float("nan"), float("inf"), -float("inf"), None]), [1, 2, 3]),
        ("sqlite", pa.array([1.0, float("nan"), float("inf")]), [1]),
        ("postgres", pa.array(["a", "a\x00b", None, ""]), [1]),
        ("duckdb", pa.array([float("nan")]), []),
        (
            "sqlite",
            pa.array(
                [1, 10**20, 123456789012345, 1234567890123456, -(10**16) - 1], pa.decimal128(38, 10)
            ),
            [3, 4],
        ),
    ],
)
def test_check(dialect: str, array: pa.Array, bad: list[int]) -> None:
    batch = pa.RecordBatch.from_arrays([array], names=["c"])
    keep, found = rejects.check(batch, dialect)
    assert [row for row, _column, _reason in found] == bad
    if bad:
        assert keep is not None and keep.to_pylist().count(False) == len(bad)


def test_nanoseconds_fail_loudly_never_round(tmp_path: Path, run_cli: Any) -> None:
    """DuckDB TIMESTAMP_NS travels as microseconds; a value with nanoseconds stops the run."""
    source = make_source(
        tmp_path / "src.duckdb",
        "CREATE TABLE t (id BIGINT PRIMARY KEY, ts TIMESTAMP_NS);"
        "INSERT INTO t VALUES (1, '2021-01-01 00:00:00.123456'::TIMESTAMP_NS),"
        " (2, '2021-01-01 00:00:00.123456789'::TIMESTAMP_NS)",
    )
    result = run_cli("run", spec(tmp_path, source, "reject"), cwd=tmp_path)
    assert result.returncode == 1, result.stderr
    assert "would lose data" in result.stderr
    assert "t_copy" not in target_tables(tmp_path)
