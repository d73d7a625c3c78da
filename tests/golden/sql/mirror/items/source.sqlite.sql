-- etlrun plan --emit-sql: job mirror, table items -> items, mode copy
-- runs on the source [sqlite]; plan e4d42ec35dbc7b11; key ranges (lo, hi] by id

-- chunk 1 of 3: key in (-inf, 336]
SELECT "id", "name", "price", "seen", "data" FROM "items" WHERE "price" > 1 AND (("id" <= 336) OR "id" IS NULL);

-- chunk 2 of 3: key in (336, 668]
SELECT "id", "name", "price", "seen", "data" FROM "items" WHERE "price" > 1 AND ("id" > 336 AND "id" <= 668);

-- chunk 3 of 3: key in (668, +inf]
SELECT "id", "name", "price", "seen", "data" FROM "items" WHERE "price" > 1 AND "id" > 668;
