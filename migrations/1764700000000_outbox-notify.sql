-- Up Migration
-- The relay waits for this instead of polling (src/replication/relay.ts): every statement that writes outbox rows
-- notifies at its commit (PostgreSQL folds a transaction's repeats into one). A relay polled every 20 ms before,
-- four round trips a poll, most of a quiet region's queries; now it sleeps until there is something to publish.
CREATE FUNCTION outbox_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  PERFORM pg_notify('wallet_outbox', '');
  RETURN NULL;
END $$;
CREATE TRIGGER outbox_notify AFTER INSERT ON outbox FOR EACH STATEMENT EXECUTE FUNCTION outbox_notify();

-- Down Migration
DROP TRIGGER outbox_notify ON outbox;
DROP FUNCTION outbox_notify();
