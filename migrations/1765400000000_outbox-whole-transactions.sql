-- Up Migration
-- The relay publishes whole transactions (src/replication/relay.ts): a batch that ends inside a transaction is
-- extended to that transaction's last row, found by its tx_id among the rows not yet published. Without it a relay
-- that died between two batches left part of a transaction in the log, and a successor that takes over from the end
-- of the log applied that part alone.
CREATE INDEX outbox_unpublished_tx_idx ON outbox (tx_id) WHERE published_at IS NULL;

-- Down Migration
DROP INDEX outbox_unpublished_tx_idx;
