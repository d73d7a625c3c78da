-- etlrun plan --emit-sql: job tidy, table events -> events, mode purge
-- runs on the source [sqlite]; plan a236fedd4ce0dcb5; key ranges (lo, hi] by id
-- where: kind = 'old' AND at < '2020-01-20'; backup: s3://archive/purged/; guard: max_delete 5000

-- audit_table: true: the audit tables, created when missing
CREATE TABLE IF NOT EXISTS etlrun_purge_requests ( run_id VARCHAR(64) NOT NULL, table_name VARCHAR(255) NOT NULL, job VARCHAR(255) NOT NULL, where_sql TEXT NOT NULL, rows_planned BIGINT, rows_deleted BIGINT, status VARCHAR(16) NOT NULL, started_at DATETIME NOT NULL, finished_at DATETIME, PRIMARY KEY (run_id, table_name) );
CREATE INDEX IF NOT EXISTS ix_etlrun_purge_requests_job ON etlrun_purge_requests (job);
CREATE TABLE IF NOT EXISTS etlrun_purge_details ( backup_file VARCHAR(1024) NOT NULL, run_id VARCHAR(64) NOT NULL, table_name VARCHAR(255) NOT NULL, chunk INTEGER NOT NULL, key_lo TEXT, key_hi TEXT, rows_backed_up BIGINT NOT NULL, rows_deleted BIGINT, sha256 VARCHAR(64) NOT NULL, status VARCHAR(16) NOT NULL, backed_up_at DATETIME NOT NULL, deleted_at DATETIME, PRIMARY KEY (backup_file) );
CREATE INDEX IF NOT EXISTS ix_etlrun_purge_details_run_id ON etlrun_purge_details (run_id);
CREATE TABLE IF NOT EXISTS etlrun_purge_log ( id INTEGER NOT NULL, run_id VARCHAR(64) NOT NULL, table_name VARCHAR(255) NOT NULL, at DATETIME NOT NULL, step VARCHAR(32) NOT NULL, message TEXT, PRIMARY KEY (id) );
CREATE INDEX IF NOT EXISTS ix_etlrun_purge_log_run_id ON etlrun_purge_log (run_id);

-- guard: rows matching, rows in the table
SELECT COUNT(*) FROM "events" WHERE "kind" = 'old' AND "at" < '2020-01-20';
SELECT COUNT(*) FROM "events";

-- chunk 1 of 2: key in (-inf, 597]
-- read; written to the backup, read back and verified before:
SELECT "id", "kind", "at" FROM "events" WHERE ("kind" = 'old' AND "at" < '2020-01-20') AND (("id" <= 597) OR "id" IS NULL);
-- in one transaction, with the chunk's audit row:
DELETE FROM "events" WHERE (("id" <= 597) OR "id" IS NULL) AND ("kind" = 'old' AND "at" < '2020-01-20') /* AND "id" IN (the keys read back from the chunk's verified backup) */;

-- chunk 2 of 2: key in (597, +inf]
-- read; written to the backup, read back and verified before:
SELECT "id", "kind", "at" FROM "events" WHERE ("kind" = 'old' AND "at" < '2020-01-20') AND "id" > 597;
-- in one transaction, with the chunk's audit row:
DELETE FROM "events" WHERE ("id" > 597) AND ("kind" = 'old' AND "at" < '2020-01-20') /* AND "id" IN (the keys read back from the chunk's verified backup) */;
