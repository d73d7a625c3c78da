"""The standard ``events`` table: its columns, and server-side generation in PostgreSQL and MariaDB.

Every value is derived from the row number ``i`` with integer hashing (``(i * M + A) mod p``),
never random(): the same N gives the same rows on every run and in both servers. The SQL is
written per dialect but computes the same integers, text, timestamps and JSON text in both.
"""

from __future__ import annotations

import psycopg
import pymysql

PG = "postgresql://postgres@127.0.0.1:5432"
PG_SRC, PG_DST = "etlrun_bench_src", "etlrun_bench_dst"
MY_DB = "etlrun_bench"
MY = dict(host="127.0.0.1", port=3306, user="root", password="", autocommit=True)
VERSION = 1  # bump when the generated data changes: --keep then regenerates
_PRIME = 4294967291  # largest prime below 2^32; i * M stays far below 2^63 for i < 10^9
_MULT = (2654435761, 2246822519, 3266489917, 668265263, 374761393, 1664525, 22695477,
         1103515245, 134775813, 214013, 69069, 1566083941, 1812433253, 3636507997)  # fmt: skip


def _h(k: int, i: str) -> str:
    """The k-th integer hash of the row number, in 0 .. 2^32-6 (same SQL in both dialects)."""
    return f"(({i} * {_MULT[k]} + {k * 7919}) % {_PRIME})"


def _hex(expr: str, dialect: str) -> str:
    return f"to_hex({expr})" if dialect == "pg" else f"LOWER(HEX({expr}))"


def _columns(dialect: str, i: str) -> list[tuple[str, str, str]]:
    """(name, column type, generating expression) for ``dialect`` 'pg' or 'my'."""
    pg = dialect == "pg"
    h = lambda k: _h(k, i)  # noqa: E731
    micros = f"({h(11)} % 4000000000) * 39447"  # up to ~5 years, microsecond steps
    if pg:
        created = f"TIMESTAMP '2020-01-01 00:00:00' + ({micros}) * INTERVAL '1 microsecond'"
        updated = (
            f"TIMESTAMPTZ '2020-01-01 00:00:00+00' + ({micros} + {h(12)} % 86400000000)"
            " * INTERVAL '1 microsecond'"
        )
        event_date = f"DATE '2020-01-01' + ({h(10)} % 2000)::int"
        amount = f"(({h(2)} % 100000000)::numeric / 100)::numeric(12,2)"
        score = f"(({h(3)} % 2000001) - 1000000)::float8 / 1024"
        payload = "::json"
    else:
        created = f"TIMESTAMP'2020-01-01 00:00:00' + INTERVAL ({micros}) MICROSECOND"
        updated = (
            f"TIMESTAMP'2020-01-01 00:00:00' + INTERVAL ({micros} + {h(12)} % 86400000000)"
            " MICROSECOND"
        )
        event_date = f"DATE'2020-01-01' + INTERVAL ({h(10)} % 2000) DAY"
        amount = f"CAST(({h(2)} % 100000000) / 100 AS DECIMAL(12,2))"
        score = f"CAST(({h(3)} % 2000001) - 1000000 AS DOUBLE) / 1024"
        payload = ""
    note = (
        f"CASE WHEN {h(7)} % 10 = 0 THEN NULL ELSE "
        f"CONCAT('note ', {i}, ': ', REPEAT(CONCAT({_hex(h(8), dialect)}, ' '), 10)) END"
    )
    json = (
        f'CONCAT(\'{{"k": \', {h(13)} % 1000, \', "tag": "\', {_hex(h(6), dialect)}, '
        f"'\", \"ok\": ', CASE WHEN {h(4)} % 3 = 0 THEN 'false' ELSE 'true' END, '}}')"
    )
    return [
        ("id", "BIGINT", i),
        ("user_id", "INTEGER" if pg else "INT", f"{h(0)} % 1000000"),
        ("big_value", "BIGINT", f"{h(1)} * 1000003"),
        ("amount", "NUMERIC(12,2)" if pg else "DECIMAL(12,2)", amount),
        ("score", "DOUBLE PRECISION" if pg else "DOUBLE", score),
        ("is_active", "BOOLEAN", f"{h(4)} % 3 <> 0"),
        (
            "label",
            "TEXT" if pg else "VARCHAR(64)",
            f"CONCAT('user ', {_hex(h(5), dialect)}, '-', {_hex(h(6), dialect)})",
        ),
        ("note", "TEXT", note),
        (
            "email",
            "TEXT" if pg else "VARCHAR(255)",
            f"CONCAT('user', {h(0)} % 1000000, '@example', {h(9)} % 100, '.com')",
        ),
        ("event_date", "DATE", event_date),
        ("created_at", "TIMESTAMP(6)" if pg else "DATETIME(6)", created),
        ("updated_at", "TIMESTAMPTZ(6)" if pg else "TIMESTAMP(6) NULL DEFAULT NULL", updated),
        ("payload", "JSON", f"{json}{payload}"),
    ]


COLUMNS = [name for name, _, _ in _columns("pg", "i")]


def pg_ddl(table: str = "events", primary_key: bool = True) -> str:
    cols = [f"{n} {t}" for n, t, _ in _columns("pg", "i")]
    cols += ["PRIMARY KEY (id)"] if primary_key else []
    return f"CREATE TABLE {table} (\n  " + ",\n  ".join(cols) + "\n)"


def my_ddl(table: str = "events") -> str:
    cols = ",\n  ".join(f"{n} {t}" for n, t, _ in _columns("my", "i"))
    return f"CREATE TABLE {table} (\n  {cols},\n  PRIMARY KEY (id)\n) ENGINE=InnoDB"


def _marker(rows: int) -> str:
    return f"etlrun-bench v{VERSION} rows={rows}"


def pg_connect(db: str) -> psycopg.Connection:
    return psycopg.connect(f"{PG}/{db}", autocommit=True)


def pg_ensure_db(db: str) -> None:
    with pg_connect("postgres") as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [db]).fetchone():
            conn.execute(f"CREATE DATABASE {db}")


def pg_drop_db(db: str) -> None:
    with pg_connect("postgres") as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {db} WITH (FORCE)")


def my_connect(db: str | None = None) -> pymysql.Connection:
    return pymysql.connect(**MY, database=db, init_command="SET time_zone = '+00:00'")


def pg_generate(rows: int, keep: bool) -> bool:
    """Create ``events`` with ``rows`` rows in PostgreSQL; False if --keep found it there."""
    pg_ensure_db(PG_SRC)
    pg_ensure_db(PG_DST)
    with pg_connect(PG_SRC) as conn:
        found = conn.execute("SELECT obj_description(to_regclass('events'), 'pg_class')")
        if keep and found.fetchone()[0] == _marker(rows):
            return False
        conn.execute("DROP TABLE IF EXISTS events")
        conn.execute(pg_ddl(primary_key=False))
        exprs = ",\n  ".join(e for _, _, e in _columns("pg", "i"))
        # a bigint series: i * M must not overflow integer
        conn.execute(
            f"INSERT INTO events SELECT\n  {exprs}\nFROM generate_series(1::bigint, {rows}) i"
        )
        conn.execute("ALTER TABLE events ADD PRIMARY KEY (id)")
        conn.execute("VACUUM (FREEZE, ANALYZE) events")  # hint bits set now, not in a run
        conn.execute(f"COMMENT ON TABLE events IS '{_marker(rows)}'")
    return True


def my_generate(rows: int, keep: bool) -> bool:
    """Create ``events`` with ``rows`` rows in MariaDB (the SEQUENCE engine's seq_1_to_N)."""
    conn = my_connect()
    try:
        cur = conn.cursor()
        cur.execute(f"CREATE DATABASE IF NOT EXISTS {MY_DB}")
        cur.execute(f"USE {MY_DB}")
        cur.execute(
            "SELECT table_comment FROM information_schema.tables "
            "WHERE table_schema = %s AND table_name = 'events'",
            [MY_DB],
        )
        found = cur.fetchone()
        if keep and found and found[0] == _marker(rows):
            return False
        cur.execute("DROP TABLE IF EXISTS events")
        cur.execute(my_ddl())
        exprs = ",\n  ".join(e for _, _, e in _columns("my", "i"))
        cur.execute(
            f"INSERT INTO events SELECT\n  {exprs}\n"
            f"FROM (SELECT CAST(seq AS SIGNED) AS i FROM seq_1_to_{rows}) s"
        )
        cur.execute(f"ALTER TABLE events COMMENT = '{_marker(rows)}'")
        cur.execute("ANALYZE TABLE events")
        cur.fetchall()
    finally:
        conn.close()
    return True


def my_drop_db() -> None:
    conn = my_connect()
    try:
        conn.cursor().execute(f"DROP DATABASE IF EXISTS {MY_DB}")
    finally:
        conn.close()


def expected(rows: int) -> tuple[int, int]:
    """(count, sum of ids) every copy of the table must have."""
    return rows, rows * (rows + 1) // 2
