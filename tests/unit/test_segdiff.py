"""Checksum bisection (runner/segdiff.py) between two SQLite files: every change is named, and a
contiguous block of changes is row-diffed in one piece instead of being scanned level by level."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import closing
from pathlib import Path

import pytest

from runner import segdiff
from runner.check import Side
from runner.connectors import connect
from runner.segdiff import Differ, HashSide

ROWS = 40_000  # split 16 ways: sub-ranges of 2,500 rows, more than a leaf's 2,000


def _table(path: Path) -> None:
    with closing(sqlite3.connect(path)) as db:
        db.execute("CREATE TABLE ev (id INTEGER NOT NULL PRIMARY KEY, v TEXT)")
        db.execute(
            "WITH RECURSIVE g(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM g WHERE i < ?) "
            "INSERT INTO ev SELECT i, 'v' || i FROM g",
            [ROWS],
        )
        db.commit()


@pytest.fixture
def sides(tmp_path: Path) -> Iterator[tuple[HashSide, HashSide, Path]]:
    for name in ("src.db", "tgt.db"):
        _table(tmp_path / name)
    source, target = (
        connect(f"sqlite:///{tmp_path / 'src.db'}"),
        connect(f"sqlite:///{tmp_path / 'tgt.db'}"),
    )
    columns = [("id", "int64"), ("v", "string")]
    try:
        yield (
            HashSide(source, "ev", columns, "id", "int64", "portable-sqlite"),
            HashSide(target, "ev", columns, "id", "int64", "portable-sqlite"),
            tmp_path / "src.db",
        )
    finally:
        source.close()
        target.close()


def _change(path: Path, *statements: str) -> None:
    with closing(sqlite3.connect(path)) as db:
        for statement in statements:
            db.execute(statement)
        db.commit()


def _diff(source: HashSide, target: HashSide) -> tuple[Differ, list[segdiff.Leaf]]:
    with ThreadPoolExecutor(2) as pool:
        differ = Differ(source, target, pool)
        s, t = source.buckets(None, None, [])[0], target.buckets(None, None, [])[0]
        return differ, differ.diff(None, None, s, t)


def _named(leaves: list[segdiff.Leaf]) -> tuple[set[int], set[int], set[int]]:
    return (
        {k for leaf in leaves for k in leaf.inserts},
        {k for leaf in leaves for k in leaf.updates},
        {k for leaf in leaves for k in leaf.deletes},
    )


@pytest.mark.parametrize("run_rows", [segdiff.RUN_ROWS, 0], ids=["runs", "level-by-level"])
def test_a_contiguous_block_is_row_diffed_at_once(
    sides: tuple[HashSide, HashSide, Path], run_rows: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """8,000 updated ids in a row and a delete inside them differ in four adjacent sub-ranges,
    an insert above the largest key in the last one: one level of sub-range checksums, then one
    row diff of the four, and one level more for the insert's alone (without runs: a level more
    for each of the five). The same keys are named either way."""
    monkeypatch.setattr(segdiff, "RUN_ROWS", run_rows)
    source, target, path = sides
    _change(
        path,
        "UPDATE ev SET v = 'w' WHERE id BETWEEN 16001 AND 24000",
        "DELETE FROM ev WHERE id = 20000",
        "INSERT INTO ev VALUES (40001, 'new')",
    )
    differ, leaves = _diff(source, target)
    inserts, updates, deletes = _named(leaves)
    assert inserts == {40001}
    assert updates == set(range(16001, 24001)) - {20000}
    assert deletes == {20000}
    assert differ.scans == (4 if run_rows else 12)


def test_isolated_changes_are_still_bisected(sides: tuple[HashSide, HashSide, Path]) -> None:
    """Changes in sub-ranges that are not adjacent narrow down level by level, as before."""
    source, target, path = sides
    _change(path, "UPDATE ev SET v = 'w' WHERE id IN (10, 20000, 39000)")
    differ, leaves = _diff(source, target)
    assert _named(leaves) == (set(), {10, 20000, 39000}, set())
    assert differ.scans == 2 + 3 * 2  # the top level, then one more level in each of three
    assert max(leaf.source_rows for leaf in leaves) <= segdiff.LEAF


def test_runs_of() -> None:
    assert segdiff.runs_of([]) == []
    assert segdiff.runs_of([1, 2, 3, 7, 9, 10]) == [(1, 3), (7, 7), (9, 10)]


def test_the_first_range_looks_for_null_keys_only_where_the_key_may_hold_them(
    sides: tuple[HashSide, HashSide, Path], tmp_path: Path
) -> None:
    """A primary key cannot be NULL: the first range is ``key <= hi`` alone, which an index reads
    as a range. A key column that may be NULL keeps ``OR key IS NULL``, and its NULL-key rows
    are in the first range."""
    source, _, _ = sides
    source.buckets(None, None, [10])
    assert "nullable" not in vars(source)  # a whole-table statement asks the catalog nothing
    assert source.nullable is False
    assert "NULL" not in source.condition(None, 10).sql()
    loose = tmp_path / "loose.db"
    with closing(sqlite3.connect(loose)) as db:
        db.execute("CREATE TABLE ev (id INTEGER, v TEXT)")
        db.execute("INSERT INTO ev VALUES (NULL, 'n'), (1, 'a'), (20, 'b')")
        db.commit()
    conn = connect(f"sqlite:///{loose}")
    try:
        side = HashSide(conn, "ev", [("id", "int64"), ("v", "string")], "id", "int64",
                        "portable-sqlite")  # fmt: skip
        assert side.nullable is True
        assert "IS NULL" in side.condition(None, 10).sql()
        # the same for `etlrun check` and `mode: sync`, which cut ranges through check.Side
        assert "IS NULL" in Side(conn, "ev", None).condition("id", "int64", None, 10).sql()
        assert (
            "IS NULL"
            not in Side(source.connector, "ev", None).condition("id", "int64", None, 10).sql()
        )
        assert sorted(side.row_hashes(None, 10)["etlrun_k"].to_pylist(), key=str) == [1, None]
        assert [s[0] for s in side.buckets(None, None, [10])] == [2, 1]
    finally:
        conn.close()


@pytest.mark.postgres
def test_a_postgresql_primary_key_is_not_nullable(pg_url: str) -> None:
    import servers

    with servers.postgres_connect(pg_url) as conn:
        conn.execute("CREATE TABLE keyed (id BIGINT PRIMARY KEY, v TEXT)")
        conn.execute("CREATE TABLE loose (id BIGINT, v TEXT)")
    conn = connect(pg_url)
    columns = [("id", "int64"), ("v", "string")]
    try:
        keyed = HashSide(conn, "keyed", columns, "id", "int64", "native-postgres")
        loose = HashSide(conn, "loose", columns, "id", "int64", "native-postgres")
        assert (keyed.nullable, loose.nullable) == (False, True)
        assert "IS NULL" not in keyed.condition(None, 10).sql()
    finally:
        conn.close()


def test_parts_cut_a_run_of_chunks_and_add_up_to_its_chunks() -> None:
    """runner/segparts.py: one statement's bounds over chunks cut into their parts, and its
    ranges' sums regrouped per chunk (an open-ended chunk has no parts)."""
    from runner.segparts import fine_bounds, per_chunk, usable

    ranges = [(None, 100), (100, 200), (200, 232), (232, None)]
    bounds, sizes = fine_bounds(ranges, 0, 3)
    assert bounds == sorted(set(bounds)) and {100, 200, 232} <= set(bounds)
    assert sizes[0] == sizes[3] == 1 and sizes[1] > 1 and sizes[2] == 16
    assert len(bounds) + 1 == sum(sizes)
    sums = [(1, i, 2 * i) for i in range(sum(sizes))]
    chunks = per_chunk(sums, [1] * len(sums), sizes)
    assert [c[0][0] for c in chunks] == sizes and [c[1] for c in chunks] == sizes
    assert chunks[0][2] is None and chunks[2][2] == sums[sizes[0] + sizes[1] : -1]
    s = chunks[2][0]
    assert usable(200, 232, chunks[2][2], chunks[2][2], s, s)
    assert not usable(200, 232, chunks[2][2], chunks[2][2][:-1], s, s)  # cut otherwise
    assert not usable(200, 232, chunks[2][2], chunks[2][2], s, (0, 0, 0))  # not adding up
    assert not usable(None, 100, None, None, (0, 0, 0), (0, 0, 0))
