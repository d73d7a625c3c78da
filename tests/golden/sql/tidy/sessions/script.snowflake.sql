-- etlrun plan --emit-sql: job tidy, purge of sessions as a script for snowflake
-- rendered by sqlglot from the plan (live: sqlite, plan a236fedd4ce0dcb5); key ranges (lo, hi] by id
-- where: ended IS NOT NULL AND note LIKE '%test%'; backup: false (no backup); guard: none

-- guard: rows matching, rows in the table
SELECT COUNT(*) FROM "sessions" WHERE NOT "ended" IS NULL AND "note" LIKE '%test%';
SELECT COUNT(*) FROM "sessions";

-- chunk 1 of 1: key in (-inf, +inf]
BEGIN;
DELETE FROM "sessions" WHERE NOT "ended" IS NULL AND "note" LIKE '%test%';
COMMIT;
