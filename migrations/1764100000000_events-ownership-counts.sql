-- Up Migration
-- What replication and failover need from every event, settled once so the claim transaction has its final shape:
-- * outbox rows carry the epoch they were written under, the transaction they belong to (a change and its
--   events share one tx_id), the entity's home region and a schema version;
-- * claims have a version of their own (events of one aggregate are numbered 1, 2, 3 without gaps);
-- * ownership: which region writes each home region's entities, under which epoch (a fencing token). With one
--   region it is fixed (every home region owned by itself at epoch 1); failover will move it.
-- * entity_counts: O(1) gauges. Counts by status kept by triggers in rows per backend, so concurrent transactions
--   never queue on a counter row; a gauge sums at most (statuses x live connections) rows.

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
  -- the backend (pg_backend_pid) whose transactions wrote these deltas; 0 holds the folded total
  shard   integer NOT NULL,
  n       bigint NOT NULL DEFAULT 0,
  PRIMARY KEY (kind, status, shard)
);
INSERT INTO entity_counts (kind, status, shard)
  SELECT k.kind, k.status, 0 FROM (VALUES
    ('order','open'),('order','claimed'),('order','completed'),('order','cancelled'),('order','expired'),
    ('supply','active'),('supply','paused'),('supply','closed'),
    ('claim','active'),('claim','settled'),('claim','released')) AS k(kind, status);
UPDATE entity_counts e SET n = x.n FROM (SELECT 'order' AS kind, status, count(*) AS n FROM orders GROUP BY status
  UNION ALL SELECT 'supply', status, count(*) FROM supplies GROUP BY status
  UNION ALL SELECT 'claim', status, count(*) FROM claims GROUP BY status) x
 WHERE e.kind = x.kind AND e.status = x.status AND e.shard = 0;

-- Each backend counts in rows of its own: no two transactions running at once ever update the same row,
-- so counting adds no lock waits (one shared row per status would serialize every claim).
CREATE FUNCTION count_status() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
  k text := TG_ARGV[0];
  me integer := pg_backend_pid();
BEGIN
  IF TG_OP = 'INSERT' THEN
    INSERT INTO entity_counts AS e (kind, status, shard, n) VALUES (k, NEW.status, me, 1)
      ON CONFLICT (kind, status, shard) DO UPDATE SET n = e.n + 1;
  ELSIF NEW.status IS DISTINCT FROM OLD.status THEN
    INSERT INTO entity_counts AS e (kind, status, shard, n) VALUES (k, NEW.status, me, 1), (k, OLD.status, me, -1)
      ON CONFLICT (kind, status, shard) DO UPDATE SET n = e.n + excluded.n;
  END IF;
  RETURN NULL;
END $$;

-- Folds the rows of backends that are gone into the total, so the table stays as small as the set of live
-- connections. Run now and then by the gauge sampler.
CREATE FUNCTION fold_entity_counts() RETURNS void LANGUAGE sql AS $$
  WITH gone AS (
    DELETE FROM entity_counts WHERE shard <> 0 AND shard NOT IN (SELECT pid FROM pg_stat_activity WHERE pid IS NOT NULL)
    RETURNING kind, status, n)
  INSERT INTO entity_counts AS e (kind, status, shard, n) SELECT kind, status, 0, sum(n) FROM gone GROUP BY kind, status
  ON CONFLICT (kind, status, shard) DO UPDATE SET n = e.n + excluded.n
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
DROP TABLE entity_counts;
DROP TABLE ownership;
ALTER TABLE claims DROP COLUMN version;
DROP INDEX outbox_published_idx;
DROP INDEX outbox_aggregate_idx;
ALTER TABLE outbox DROP COLUMN schema_version, DROP COLUMN tx_id, DROP COLUMN epoch, DROP COLUMN home_region;
