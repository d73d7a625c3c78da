"""W2's physical baseline: MariaDB ``events`` -> a SQLite file, as plain as Python gets.

A streaming (unbuffered) cursor — mysqlclient's ``MySQLdb.cursors.SSCursor`` when importable,
else PyMySQL's ``SSCursor`` — and sqlite3 ``executemany`` in one transaction. Decimals, dates and
timestamps stay the text MariaDB sends (no Python conversion per value); the session runs in UTC.

usage: baseline_w2.py SQLITE_PATH   (prints ``driver: ...`` first, for the report)
"""

from __future__ import annotations

import sqlite3
import sys

COLUMNS = (
    "id", "user_id", "big_value", "amount", "score", "is_active", "label", "note", "email",
    "event_date", "created_at", "updated_at", "payload",
)  # fmt: skip
# the DDL etlrun maps these columns to in SQLite, so both write the same table
DDL = """CREATE TABLE events (
  id INTEGER NOT NULL PRIMARY KEY, user_id INTEGER, big_value INTEGER, amount DECIMAL(12,2),
  score REAL, is_active BOOLEAN, label TEXT, note TEXT, email TEXT, event_date DATE,
  created_at TIMESTAMP, updated_at TIMESTAMPTZ, payload TEXT
)"""
BATCH = 10_000


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def connect():  # -> (DB-API connection, streaming cursor class, driver label)
    params = dict(host="127.0.0.1", port=3306, user="root", database="etlrun_bench")
    try:
        import MySQLdb
        import MySQLdb.cursors
        from MySQLdb.constants import FIELD_TYPE
        from MySQLdb.converters import conversions

        # decimals, dates and timestamps: the server's text, not Decimal/datetime objects
        conv = {k: v for k, v in conversions.items() if isinstance(k, int)}
        for t in (FIELD_TYPE.DECIMAL, FIELD_TYPE.NEWDECIMAL, FIELD_TYPE.DATE,
                  FIELD_TYPE.DATETIME, FIELD_TYPE.TIMESTAMP):  # fmt: skip
            conv[t] = _text
        params["db"] = params.pop("database")
        conn = MySQLdb.connect(**params, conv=conv, charset="utf8mb4")
        version = ".".join(map(str, MySQLdb.version_info[:3]))
        return conn, MySQLdb.cursors.SSCursor, f"mysqlclient {version} SSCursor"
    except ImportError:
        import pymysql
        import pymysql.cursors
        from pymysql.constants import FIELD_TYPE
        from pymysql.converters import conversions

        conv = dict(conversions)
        for t in (FIELD_TYPE.DECIMAL, FIELD_TYPE.NEWDECIMAL, FIELD_TYPE.DATE,
                  FIELD_TYPE.DATETIME, FIELD_TYPE.TIMESTAMP, FIELD_TYPE.JSON):  # fmt: skip
            conv.pop(t, None)
        conn = pymysql.connect(**params, conv=conv, charset="utf8mb4")
        return conn, pymysql.cursors.SSCursor, f"PyMySQL {pymysql.__version__} SSCursor"


def main(path: str) -> None:
    source, cursor_class, driver = connect()
    print(f"driver: {driver}", flush=True)
    cursor = source.cursor(cursor_class)
    cursor.execute("SET time_zone = '+00:00'")
    cursor.execute(f"SELECT {', '.join(COLUMNS)} FROM events")
    target = sqlite3.connect(path, isolation_level=None)
    target.execute(DDL)
    target.execute("BEGIN")
    insert = f"INSERT INTO events VALUES ({', '.join('?' * len(COLUMNS))})"
    rows = 0
    while batch := cursor.fetchmany(BATCH):
        target.executemany(insert, batch)
        rows += len(batch)
    target.execute("COMMIT")
    target.close()
    cursor.close()
    source.close()
    print(f"rows: {rows}")


if __name__ == "__main__":
    main(sys.argv[1])
