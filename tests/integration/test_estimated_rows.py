"""Big tables in copy and bulk are sized from the database's estimate instead of a COUNT(*)
(runner/plan/catalog.py): the estimate is the database's own, small tables and filtered reads are
still counted exactly, and a copy planned on an estimate still moves every row."""

from __future__ import annotations

from pathlib import Path

import pytest
import servers

from runner.cli import main
from runner.connectors import connect
from runner.plan import catalog as catalog_module
from runner.plan.catalog import Catalog
from runner.spec.validators import parse_condition

ROWS = 6000


def fill_postgres(url: str) -> None:
    with servers.postgres_connect(url) as conn:
        conn.execute("CREATE TABLE big (id bigint PRIMARY KEY, v text)")
        conn.execute(f"INSERT INTO big SELECT i, md5(i::text) FROM generate_series(1, {ROWS}) i")
        conn.execute("DELETE FROM big WHERE id % 10 = 0")  # dead rows: the estimate is off
        conn.execute("ANALYZE big")


def fill_mariadb(url: str) -> None:
    with servers.mariadb_connect(url) as conn:
        cur = conn.cursor()
        cur.execute("CREATE TABLE big (id bigint PRIMARY KEY, v text)")
        cur.execute(
            f"INSERT INTO big SELECT seq, md5(seq) FROM seq_1_to_{ROWS} WHERE seq % 10 <> 0"
        )
        cur.execute("ANALYZE TABLE big")
        cur.fetchall()


@pytest.fixture(params=["postgres", "mariadb"])
def source(request: pytest.FixtureRequest) -> str:
    request.applymarker(getattr(pytest.mark, request.param))
    url = request.getfixturevalue("pg_url" if request.param == "postgres" else "mariadb_url")
    (fill_postgres if request.param == "postgres" else fill_mariadb)(url)
    return url


def test_estimate_is_the_databases_and_only_for_big_unfiltered_tables(
    source: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    connector = connect(source)
    try:
        exact = ROWS - ROWS // 10
        guess = connector.estimated_rows("big")
        assert guess is not None and guess > 0
        assert connector.estimated_rows("no_such_table") is None
        catalog = Catalog(connector)
        where = parse_condition("id > 100", connector.dialect)
        monkeypatch.setattr(catalog_module, "ESTIMATE_FROM", 1000)
        assert catalog.count("big", None, estimate=True) == guess
        assert catalog.count("big", None) == exact
        assert catalog.count("big", where, estimate=True) == exact - 90
        monkeypatch.setattr(catalog_module, "ESTIMATE_FROM", guess + 1)
        assert catalog.count("big", None, estimate=True) == exact
    finally:
        connector.close()


def test_a_copy_planned_on_an_estimate_moves_every_row(
    source: str, tmp_path: Path, clean_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(catalog_module, "ESTIMATE_FROM", 1000)
    target = tmp_path / "copy.db"
    spec = tmp_path / "job.yaml"
    spec.write_text(
        f"version: 1\njob: estimated\nsource: {source}\ntarget: sqlite:///{target}\n"
        "defaults:\n  chunk_rows: 700\ntables: [big]\n"
    )
    assert main(["run", str(spec)]) == 0
    import sqlite3

    with sqlite3.connect(target) as conn:
        count, total = conn.execute("SELECT count(*), sum(id) FROM big").fetchone()
    ids = [i for i in range(1, ROWS + 1) if i % 10]
    assert (count, total) == (len(ids), sum(ids))
