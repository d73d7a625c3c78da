-- etlrun plan --emit-sql: job mirror, table items -> items, mode copy
-- runs on the target [sqlite]; plan e4d42ec35dbc7b11; key ranges (lo, hi] by id

-- prepare: a fresh staging table
DROP TABLE IF EXISTS "items__etlrun_stage";
CREATE TABLE "items__etlrun_stage" (
  "id" INTEGER NOT NULL,
  "name" TEXT NOT NULL,
  "price" DECIMAL(10,2),
  "seen" TIMESTAMP,
  "data" BLOB,
  PRIMARY KEY ("id")
);

-- chunk 1: key in (-inf, 336], one transaction
DELETE FROM "items__etlrun_stage" WHERE ("id" <= 336) OR "id" IS NULL;
-- + the rows read (source.sqlite.sql) loaded into "items__etlrun_stage"

-- chunk 2: key in (336, 668], one transaction
DELETE FROM "items__etlrun_stage" WHERE "id" > 336 AND "id" <= 668;
-- + the rows read (source.sqlite.sql) loaded into "items__etlrun_stage"

-- chunk 3: key in (668, +inf], one transaction
DELETE FROM "items__etlrun_stage" WHERE "id" > 668;
-- + the rows read (source.sqlite.sql) loaded into "items__etlrun_stage"

-- finalize (new)
-- transaction 1
ALTER TABLE "items__etlrun_stage" RENAME TO "items";
