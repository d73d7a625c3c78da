"""dlt on one workload, with the fast settings PEERS.md lists: the pyarrow backend of
``sql_database``, the csv loader for PostgreSQL, parquet for files. Run by the peers' dlt venv.

usage: peer_dlt.py W1|W2|W3 TARGET PIPELINES_DIR
  W1: TARGET is a PostgreSQL URL (dataset bench_dlt); W2: a SQLite path (dataset main);
  W3: a folder (parquet files under bench_dlt/events/)
"""

from __future__ import annotations

import sys

import dlt
from dlt.sources.sql_database import sql_table

PG_SRC = "postgresql+psycopg2://postgres@127.0.0.1:5432/etlrun_bench_src"
MY_SRC = "mysql+pymysql://root@127.0.0.1:3306/etlrun_bench"


def main(workload: str, target: str, pipelines_dir: str) -> None:
    source, dataset = PG_SRC, "bench_dlt"
    if workload == "W1":
        destination, file_format = dlt.destinations.postgres(target), "csv"
    elif workload == "W2":
        source, dataset = MY_SRC, "main"
        destination, file_format = dlt.destinations.sqlalchemy(f"sqlite:///{target}"), None
    else:
        destination, file_format = dlt.destinations.filesystem(f"file://{target}"), "parquet"
    table = sql_table(credentials=source, table="events", backend="pyarrow", chunk_size=100_000)
    pipeline = dlt.pipeline(
        pipeline_name=f"bench_{workload.lower()}", destination=destination,
        dataset_name=dataset, pipelines_dir=pipelines_dir,
    )  # fmt: skip
    info = pipeline.run(table, write_disposition="replace", loader_file_format=file_format)
    print(info)


if __name__ == "__main__":
    main(*sys.argv[1:4])
