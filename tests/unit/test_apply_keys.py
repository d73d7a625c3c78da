"""The key conditions that delete and re-read the rows a checksum comparison named."""

from __future__ import annotations

import sqlite3

from runner.modes._apply_keys import KEYS_PER_STATEMENT, RUN_KEYS, key_condition


def test_long_runs_of_integers_are_ranges_and_the_rest_in_lists() -> None:
    keys = [*range(1000, 1000 + RUN_KEYS), 5, 7, *range(3000, 3000 + RUN_KEYS + 5)]
    sql = key_condition(keys, "id", "int64", "postgres")
    assert sql == (
        f'("id" BETWEEN 3000 AND {3000 + RUN_KEYS + 4}) OR '
        f'("id" BETWEEN 1000 AND {1000 + RUN_KEYS - 1}) OR ("id" IN (5, 7))'
    )


def test_every_key_selects_its_row_and_no_other() -> None:
    db = sqlite3.connect(":memory:")
    db.execute('CREATE TABLE t ("my id" TEXT PRIMARY KEY)')
    keys = ["a", "it's", "é", "x\\y", *(f"k{i}" for i in range(KEYS_PER_STATEMENT + 10))]
    db.executemany("INSERT INTO t VALUES (?)", [(k,) for k in [*keys, "other", "a "]])
    sql = key_condition(keys, "my id", "string", "sqlite")
    assert sql.count(" IN (") == 2  # one list per KEYS_PER_STATEMENT keys
    found = {r[0] for r in db.execute(f"SELECT * FROM t WHERE {sql}")}
    assert found == set(keys)


def test_integer_keys_in_mariadb_quoting() -> None:
    assert key_condition([3, 1, 2], "id", "int32", "mysql") == "`id` IN (1, 2, 3)"
