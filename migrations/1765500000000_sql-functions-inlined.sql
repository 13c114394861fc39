-- Up Migration
-- SQL functions declared IMMUTABLE whose body is only STABLE were never inlined: PostgreSQL inlines a function only
-- when its body is no more volatile than it is declared. ts() casts text to timestamptz, which reads TimeZone;
-- refuse() and order_not_in() build jsonb, whose output functions are STABLE. Each call then went through the SQL
-- function executor, which before PostgreSQL 18 parses and plans the body at every call: ts() took ~8-30 µs a
-- call, and an applied event calls it two to four times (test/integration/apply-events.test.ts and commands.test.ts
-- list the SQL functions a statement calls: none). Declared STABLE, as they are, they are inlined.
ALTER FUNCTION ts(jsonb) STABLE;
ALTER FUNCTION refuse(text, jsonb) STABLE;
ALTER FUNCTION order_not_in(orders, text) STABLE;

-- Down Migration
ALTER FUNCTION order_not_in(orders, text) IMMUTABLE;
ALTER FUNCTION refuse(text, jsonb) IMMUTABLE;
ALTER FUNCTION ts(jsonb) IMMUTABLE;
