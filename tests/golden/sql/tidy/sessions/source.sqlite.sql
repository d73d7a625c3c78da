-- etlrun plan --emit-sql: job tidy, table sessions -> sessions, mode purge
-- runs on the source [sqlite]; plan a236fedd4ce0dcb5; key ranges (lo, hi] by id
-- where: ended IS NOT NULL AND note LIKE '%test%'; backup: false (no backup); guard: none

-- guard: rows matching, rows in the table
SELECT COUNT(*) FROM "sessions" WHERE NOT "ended" IS NULL AND "note" LIKE '%test%';
SELECT COUNT(*) FROM "sessions";

-- chunk 1 of 1: key in (-inf, +inf]
DELETE FROM "sessions" WHERE (NOT "ended" IS NULL AND "note" LIKE '%test%');
