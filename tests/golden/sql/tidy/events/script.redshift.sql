-- etlrun plan --emit-sql: job tidy, purge of events as a script for redshift
-- rendered by sqlglot from the plan (live: sqlite, plan a236fedd4ce0dcb5); key ranges (lo, hi] by id
-- where: kind = 'old' AND at < '2020-01-20'; backup: s3://archive/purged/; guard: max_delete 5000

-- guard: rows matching, rows in the table
SELECT COUNT(*) FROM "events" WHERE "kind" = 'old' AND "at" < '2020-01-20';
SELECT COUNT(*) FROM "events";

-- chunk 1 of 2: key in (-inf, 597]
-- back these rows up, and verify the copy, before the delete:
SELECT "id", "kind", "at" FROM "events" WHERE (("id" <= 597) OR "id" IS NULL) AND ("kind" = 'old' AND "at" < '2020-01-20');
BEGIN;
DELETE FROM "events" WHERE (("id" <= 597) OR "id" IS NULL) AND ("kind" = 'old' AND "at" < '2020-01-20');
COMMIT;

-- chunk 2 of 2: key in (597, +inf]
-- back these rows up, and verify the copy, before the delete:
SELECT "id", "kind", "at" FROM "events" WHERE ("id" > 597) AND ("kind" = 'old' AND "at" < '2020-01-20');
BEGIN;
DELETE FROM "events" WHERE ("id" > 597) AND ("kind" = 'old' AND "at" < '2020-01-20');
COMMIT;
