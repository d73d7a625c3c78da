"""W3's physical baseline: PostgreSQL ``events`` -> one Parquet file through ADBC and pyarrow.

Each stream is one ADBC connection reading ``SELECT * FROM events`` over a range of ids with
``fetch_record_batch`` (binary COPY into Arrow, in C); a single ``pyarrow.parquet.ParquetWriter``
(snappy, pyarrow's default) writes every batch. ADBC hands numeric over as text in an opaque
extension type and json as Arrow's JSON extension: both are written as their string storage.
PEERS.md measured two streams (4.1 s at 2M rows) against one (4.8 s); two is the default.

usage: baseline_w3.py PARQUET_PATH [STREAMS]
"""

from __future__ import annotations

import sys
import threading

import adbc_driver_postgresql.dbapi as adbc
import pyarrow as pa
import pyarrow.parquet as pq

URL = "postgresql://postgres@127.0.0.1:5432/etlrun_bench_src"


def plain(batch: pa.RecordBatch) -> pa.RecordBatch:
    """Extension columns -> their storage, so the file holds plain strings."""
    if not any(isinstance(c.type, pa.BaseExtensionType) for c in batch.columns):
        return batch
    columns = [c.storage if isinstance(c.type, pa.BaseExtensionType) else c for c in batch.columns]
    return pa.RecordBatch.from_arrays(columns, names=batch.schema.names)


def ranges(streams: int) -> list[str]:
    with adbc.connect(URL) as conn, conn.cursor() as cur:
        cur.execute("SELECT min(id), max(id) FROM events")
        low, high = cur.fetchone()
    step = (high - low) // streams + 1
    return [f"id >= {low + k * step} AND id < {low + (k + 1) * step}" for k in range(streams)]


def main(path: str, streams: int) -> None:
    writer: pq.ParquetWriter | None = None
    lock = threading.Lock()
    errors: list[BaseException] = []

    def stream(where: str) -> None:
        nonlocal writer
        try:
            with adbc.connect(URL) as conn, conn.cursor() as cur:
                cur.execute(f"SELECT * FROM events WHERE {where}")
                for batch in cur.fetch_record_batch():
                    batch = plain(batch)
                    with lock:
                        if writer is None:
                            writer = pq.ParquetWriter(path, batch.schema)
                        writer.write_batch(batch)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=stream, args=(w,)) for w in ranges(streams)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]
    if writer is not None:
        writer.close()
    print(f"streams: {streams}, rows: {pq.ParquetFile(path).metadata.num_rows}")


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 2)
