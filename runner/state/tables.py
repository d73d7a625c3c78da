"""The state store's tables (SQLAlchemy Core), one metadata, and the clock their timestamps use."""

from __future__ import annotations

from datetime import UTC, datetime

import sqlalchemy as sa

metadata = sa.MetaData()
runs = sa.Table(
    "etlrun_runs",
    metadata,
    sa.Column("run_id", sa.String(64), primary_key=True),
    sa.Column("job", sa.String(255), nullable=False, index=True),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("spec_hash", sa.String(64), nullable=False),
    sa.Column("plan_key", sa.String(64), nullable=False),
    sa.Column("plan_json", sa.Text, nullable=False),
    sa.Column("started_at", sa.DateTime, nullable=False),
    sa.Column("finished_at", sa.DateTime),
    sa.Column("attempts", sa.Integer, nullable=False, default=1),
    sa.Column("rows", sa.BigInteger, default=0),
    sa.Column("bytes", sa.BigInteger, default=0),
    sa.Column("rejected", sa.BigInteger, default=0),
    sa.Column("exit_code", sa.Integer),
    sa.Column("error", sa.Text),
    sa.Column("host", sa.String(255)),
    sa.Column("pid", sa.Integer),
    # JSON {table: [{column, class, rule}]}: what each column's sanitize rule was, never values
    sa.Column("sanitize", sa.Text),
)
tasks = sa.Table(
    "etlrun_tasks",
    metadata,
    sa.Column("run_id", sa.String(64), primary_key=True),
    sa.Column("task_id", sa.String(512), primary_key=True),
    sa.Column("table_name", sa.String(255), nullable=False),
    sa.Column("kind", sa.String(32), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("rows", sa.BigInteger, default=0),
    sa.Column("bytes", sa.BigInteger, default=0),
    sa.Column("seconds", sa.Float, default=0.0),
    sa.Column("rejected", sa.BigInteger, default=0),
    sa.Column("attempts", sa.Integer, default=0),
    sa.Column("run_attempt", sa.Integer, default=1),
    sa.Column("error", sa.Text),
    sa.Column("checksum", sa.String(128)),
    sa.Column("started_at", sa.DateTime),
    sa.Column("finished_at", sa.DateTime),
)
locks = sa.Table(
    "etlrun_locks",
    metadata,
    sa.Column("job", sa.String(255), primary_key=True),
    sa.Column("run_id", sa.String(64), nullable=False),
    sa.Column("pid", sa.Integer, nullable=False),
    sa.Column("host", sa.String(255), nullable=False),
    sa.Column("started_at", sa.DateTime, nullable=False),
)
watermarks = sa.Table(
    "etlrun_watermarks",
    metadata,
    sa.Column("job", sa.String(255), primary_key=True),
    sa.Column("table_name", sa.String(255), primary_key=True),
    sa.Column("value", sa.Text),
    sa.Column("value_type", sa.String(64)),
    sa.Column("run_id", sa.String(64)),
    sa.Column("updated_at", sa.DateTime),
)
# incremental strategy checksum: each chunk's checksum of the target as of the last run
chunk_checksums = sa.Table(
    "etlrun_chunk_checksums",
    metadata,
    sa.Column("job", sa.String(255), primary_key=True),
    sa.Column("table_name", sa.String(255), primary_key=True),
    sa.Column("chunk", sa.Integer, primary_key=True),
    sa.Column("signature", sa.String(64), nullable=False),
    sa.Column("lo", sa.Text),  # JSON key bounds: the chunk is lo < key <= hi (None: open)
    sa.Column("hi", sa.Text),
    sa.Column("rows", sa.BigInteger, nullable=False),
    sa.Column("sum1", sa.Text, nullable=False),  # text: the sums outgrow 64 bits
    sa.Column("sum2", sa.Text, nullable=False),
    sa.Column("run_id", sa.String(64)),
    sa.Column("updated_at", sa.DateTime),
    # a PostgreSQL source's row versions in the chunk when it last matched the target (see
    # runner/tokens.py): "<cluster>:<hash sum>", and the snapshot xmin it holds from; NULL: none
    sa.Column("token", sa.Text),
    sa.Column("token_xid", sa.BigInteger),
    # JSON [[rows, sum1, sum2], ...]: the checksums of the chunk's even sub-ranges, stored where
    # it last matched the target (see runner/segparts.py); NULL: none
    sa.Column("parts", sa.Text),
)
# the purge audit (the seed's PURGE_REQUEST / PURGE_REQUEST_DETAILS / PURGE_MODULE_INPUT)
purge_requests = sa.Table(
    "etlrun_purge_requests",
    metadata,
    sa.Column("run_id", sa.String(64), primary_key=True),
    sa.Column("table_name", sa.String(255), primary_key=True),
    sa.Column("job", sa.String(255), nullable=False, index=True),
    sa.Column("where_sql", sa.Text, nullable=False),
    sa.Column("rows_planned", sa.BigInteger),
    sa.Column("rows_deleted", sa.BigInteger, default=0),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("started_at", sa.DateTime, nullable=False),
    sa.Column("finished_at", sa.DateTime),
)
purge_details = sa.Table(
    "etlrun_purge_details",
    metadata,
    sa.Column("backup_file", sa.String(1024), primary_key=True),
    sa.Column("run_id", sa.String(64), nullable=False, index=True),
    sa.Column("table_name", sa.String(255), nullable=False),
    sa.Column("chunk", sa.Integer, nullable=False),
    sa.Column("key_lo", sa.Text),
    sa.Column("key_hi", sa.Text),
    sa.Column("rows_backed_up", sa.BigInteger, nullable=False),
    sa.Column("rows_deleted", sa.BigInteger),
    sa.Column("sha256", sa.String(64), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("backed_up_at", sa.DateTime, nullable=False),
    sa.Column("deleted_at", sa.DateTime),
)
purge_log = sa.Table(
    "etlrun_purge_log",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("run_id", sa.String(64), nullable=False, index=True),
    sa.Column("table_name", sa.String(255), nullable=False),
    sa.Column("at", sa.DateTime, nullable=False),
    sa.Column("step", sa.String(32), nullable=False),
    sa.Column("message", sa.Text),
)
# the per-file state of file jobs (oeleo's `filelist`); read and written by runner.files.state
files = sa.Table(
    "etlrun_files",
    metadata,
    sa.Column("job", sa.String(255), primary_key=True),
    sa.Column("path", sa.String(1024), primary_key=True),  # under the source URL, '/'-separated
    sa.Column("size", sa.BigInteger),  # the source file's size and mtime when last copied/checked
    sa.Column("mtime", sa.Float),
    sa.Column("algo", sa.String(16)),  # sha256, md5, or size_mtime (no checksum)
    sa.Column("checksum", sa.String(128)),
    sa.Column("remote_path", sa.String(2048)),  # where it is on the target (no credentials)
    sa.Column("target_size", sa.BigInteger),
    sa.Column("copied_at", sa.DateTime),
    sa.Column("run_id", sa.String(64)),
    sa.Column("code", sa.Integer, nullable=False),  # 0 copy, 1 copy if changed, 2 locked
    sa.Column("updated_at", sa.DateTime),
    sa.Column("etag", sa.String(128)),  # the source's version tag when copied (S3 ETag)
)


def now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)
