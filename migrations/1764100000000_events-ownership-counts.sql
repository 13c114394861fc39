-- Up Migration
-- What replication and failover need from every event, settled once so the claim transaction has its final shape:
-- * outbox rows carry the epoch they were written under, the transaction they belong to (a change and its
--   events share one tx_id), the entity's home region and a schema version;
-- * claims have a version of their own (events of one aggregate are numbered 1, 2, 3 without gaps);
-- * ownership: which region writes each home region's entities, under which epoch (a fencing token). With one
--   region it is fixed (every home region owned by itself at epoch 1); failover will move it.
-- * entity_counts: O(1) gauges. Triggers append deltas; the sampler folds them into the totals it reads, so no
--   counter row is ever a point where concurrent transactions queue.

ALTER TABLE outbox
  ADD COLUMN home_region text,
  ADD COLUMN epoch bigint NOT NULL DEFAULT 0,
  ADD COLUMN tx_id bigint NOT NULL DEFAULT (pg_current_xact_id()::text::bigint),
  ADD COLUMN schema_version smallint NOT NULL DEFAULT 1;
UPDATE outbox SET home_region = region WHERE home_region IS NULL;
ALTER TABLE outbox ALTER COLUMN home_region SET NOT NULL;
CREATE INDEX outbox_aggregate_idx ON outbox (aggregate_id, aggregate_version);
CREATE INDEX outbox_published_idx ON outbox (published_at) WHERE published_at IS NOT NULL;

ALTER TABLE claims ADD COLUMN version integer NOT NULL DEFAULT 1;
UPDATE claims SET version = 2 WHERE status <> 'active';

CREATE TABLE ownership (
  home_region  text PRIMARY KEY,
  owner        text NOT NULL,
  epoch        bigint NOT NULL CHECK (epoch > 0),
  updated_at   timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE entity_counts (
  kind    text NOT NULL,
  status  text NOT NULL,
  n       bigint NOT NULL DEFAULT 0,
  PRIMARY KEY (kind, status)
);
INSERT INTO entity_counts (kind, status)
  SELECT k.kind, k.status FROM (VALUES
    ('order','open'),('order','claimed'),('order','completed'),('order','cancelled'),('order','expired'),
    ('supply','active'),('supply','paused'),('supply','closed'),
    ('claim','active'),('claim','settled'),('claim','released')) AS k(kind, status);
UPDATE entity_counts e SET n = x.n FROM (SELECT 'order' AS kind, status, count(*) AS n FROM orders GROUP BY status
  UNION ALL SELECT 'supply', status, count(*) FROM supplies GROUP BY status
  UNION ALL SELECT 'claim', status, count(*) FROM claims GROUP BY status) x
 WHERE e.kind = x.kind AND e.status = x.status;

-- Writers only append deltas (no index, no update): counting never makes a transaction wait for another, and
-- a transaction that changes many rows does not rewrite one counter row over and over.
CREATE TABLE entity_count_deltas (
  kind    text NOT NULL,
  status  text NOT NULL,
  d       integer NOT NULL
);

CREATE FUNCTION count_status() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP = 'INSERT' THEN
    INSERT INTO entity_count_deltas VALUES (TG_ARGV[0], NEW.status, 1);
  ELSIF NEW.status IS DISTINCT FROM OLD.status THEN
    INSERT INTO entity_count_deltas VALUES (TG_ARGV[0], NEW.status, 1), (TG_ARGV[0], OLD.status, -1);
  END IF;
  RETURN NULL;
END $$;

-- Folds the deltas into the totals (the gauge sampler runs it before each read, so a read sums a handful of rows).
CREATE FUNCTION fold_entity_counts() RETURNS void LANGUAGE sql AS $$
  WITH gone AS (DELETE FROM entity_count_deltas RETURNING kind, status, d)
  UPDATE entity_counts e SET n = e.n + x.s
    FROM (SELECT kind, status, sum(d) AS s FROM gone GROUP BY kind, status) x
   WHERE e.kind = x.kind AND e.status = x.status
$$;
CREATE TRIGGER orders_count AFTER INSERT OR UPDATE OF status ON orders FOR EACH ROW EXECUTE FUNCTION count_status('order');
CREATE TRIGGER supplies_count AFTER INSERT OR UPDATE OF status ON supplies FOR EACH ROW EXECUTE FUNCTION count_status('supply');
CREATE TRIGGER claims_count AFTER INSERT OR UPDATE OF status ON claims FOR EACH ROW EXECUTE FUNCTION count_status('claim');

-- Down Migration
DROP TRIGGER claims_count ON claims;
DROP TRIGGER supplies_count ON supplies;
DROP TRIGGER orders_count ON orders;
DROP FUNCTION fold_entity_counts();
DROP FUNCTION count_status();
DROP TABLE entity_count_deltas;
DROP TABLE entity_counts;
DROP TABLE ownership;
ALTER TABLE claims DROP COLUMN version;
DROP INDEX outbox_published_idx;
DROP INDEX outbox_aggregate_idx;
ALTER TABLE outbox DROP COLUMN schema_version, DROP COLUMN tx_id, DROP COLUMN epoch, DROP COLUMN home_region;
