-- etlrun plan --emit-sql: job mirror, copy of items as a script for sqlite
-- rendered by sqlglot from the plan (live: sqlite, plan e4d42ec35dbc7b11); key ranges (lo, hi] by id
-- source and target tables in one database (or the source reachable by name)

-- prepare: a fresh staging table
DROP TABLE IF EXISTS "items__etlrun_stage";
CREATE TABLE "items__etlrun_stage" ("id" INTEGER NOT NULL PRIMARY KEY, "name" TEXT, "price" REAL(10, 2), "seen" TIMESTAMP, "data" BLOB);

-- chunk 1 of 3: key in (-inf, 336]
BEGIN TRANSACTION;
DELETE FROM "items__etlrun_stage" WHERE ("id" <= 336) OR "id" IS NULL;
INSERT INTO "items__etlrun_stage" ("id", "name", "price", "seen", "data") SELECT "id", "name", "price", "seen", "data" FROM "items" WHERE (("id" <= 336) OR "id" IS NULL) AND ("price" > 1);
COMMIT;

-- chunk 2 of 3: key in (336, 668]
BEGIN TRANSACTION;
DELETE FROM "items__etlrun_stage" WHERE "id" > 336 AND "id" <= 668;
INSERT INTO "items__etlrun_stage" ("id", "name", "price", "seen", "data") SELECT "id", "name", "price", "seen", "data" FROM "items" WHERE ("id" > 336 AND "id" <= 668) AND ("price" > 1);
COMMIT;

-- chunk 3 of 3: key in (668, +inf]
BEGIN TRANSACTION;
DELETE FROM "items__etlrun_stage" WHERE "id" > 668;
INSERT INTO "items__etlrun_stage" ("id", "name", "price", "seen", "data") SELECT "id", "name", "price", "seen", "data" FROM "items" WHERE ("id" > 668) AND ("price" > 1);
COMMIT;

-- finalize: the staging table replaces the target
BEGIN TRANSACTION;
ALTER TABLE "items__etlrun_stage" RENAME TO "items";
COMMIT;
