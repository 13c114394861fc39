-- Up Migration
-- The status counts learn of inserted rows once a statement instead of once a row. count_status ran for every row
-- a statement inserted and appended a delta row for it, which the gauge sampler deleted again: a batch of creations,
-- or a run of another region's events applied set-based, wrote two rows and ran a trigger function for every entity.
-- A statement-level trigger reads the statement's inserted rows (its transition table) and appends one delta a
-- status. On the local cluster at 1,000 writes/s, entity_count_deltas took as many inserts as orders and supplies
-- together, and as many deletes (docs/multi-region.md, "Replication lag"). Status changes are still counted a row at a
-- time: a trigger with a transition table cannot be limited to `UPDATE OF status`, and would capture every update.

CREATE FUNCTION count_inserted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO entity_count_deltas SELECT TG_ARGV[0], status, count(*) FROM inserted GROUP BY status;
  RETURN NULL;
END $$;

-- count_status now counts status changes only: its insert branch would be dead.
CREATE OR REPLACE FUNCTION count_status() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF NEW.status IS DISTINCT FROM OLD.status THEN
    INSERT INTO entity_count_deltas VALUES (TG_ARGV[0], NEW.status, 1), (TG_ARGV[0], OLD.status, -1);
  END IF;
  RETURN NULL;
END $$;

DROP TRIGGER orders_count ON orders;
DROP TRIGGER supplies_count ON supplies;
DROP TRIGGER claims_count ON claims;
CREATE TRIGGER orders_count AFTER UPDATE OF status ON orders FOR EACH ROW EXECUTE FUNCTION count_status('order');
CREATE TRIGGER supplies_count AFTER UPDATE OF status ON supplies FOR EACH ROW EXECUTE FUNCTION count_status('supply');
CREATE TRIGGER claims_count AFTER UPDATE OF status ON claims FOR EACH ROW EXECUTE FUNCTION count_status('claim');
CREATE TRIGGER orders_count_inserted AFTER INSERT ON orders REFERENCING NEW TABLE AS inserted
  FOR EACH STATEMENT EXECUTE FUNCTION count_inserted('order');
CREATE TRIGGER supplies_count_inserted AFTER INSERT ON supplies REFERENCING NEW TABLE AS inserted
  FOR EACH STATEMENT EXECUTE FUNCTION count_inserted('supply');
CREATE TRIGGER claims_count_inserted AFTER INSERT ON claims REFERENCING NEW TABLE AS inserted
  FOR EACH STATEMENT EXECUTE FUNCTION count_inserted('claim');

-- Down Migration
DROP TRIGGER claims_count_inserted ON claims;
DROP TRIGGER supplies_count_inserted ON supplies;
DROP TRIGGER orders_count_inserted ON orders;
DROP TRIGGER claims_count ON claims;
DROP TRIGGER supplies_count ON supplies;
DROP TRIGGER orders_count ON orders;
CREATE TRIGGER orders_count AFTER INSERT OR UPDATE OF status ON orders FOR EACH ROW EXECUTE FUNCTION count_status('order');
CREATE TRIGGER supplies_count AFTER INSERT OR UPDATE OF status ON supplies FOR EACH ROW EXECUTE FUNCTION count_status('supply');
CREATE TRIGGER claims_count AFTER INSERT OR UPDATE OF status ON claims FOR EACH ROW EXECUTE FUNCTION count_status('claim');
DROP FUNCTION count_inserted();
CREATE OR REPLACE FUNCTION count_status() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP = 'INSERT' THEN
    INSERT INTO entity_count_deltas VALUES (TG_ARGV[0], NEW.status, 1);
  ELSIF NEW.status IS DISTINCT FROM OLD.status THEN
    INSERT INTO entity_count_deltas VALUES (TG_ARGV[0], NEW.status, 1), (TG_ARGV[0], OLD.status, -1);
  END IF;
  RETURN NULL;
END $$;
