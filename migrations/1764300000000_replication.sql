-- Up Migration
-- Replication between regions (docs/multi-region.md): other regions' events are applied to the same tables, as
-- replicas of rows whose home is elsewhere. Events carry the entity's whole state, so applying one is an upsert
-- that only a newer version wins: idempotent, and a gap (a version never seen) never stalls anything.

-- A replica receives a claim before its order or supply when they come from different partitions or
-- regions: the claim path checks both itself (under the order's lock), so the references become checks of
-- the writer, not constraints of every copy.
ALTER TABLE claims DROP CONSTRAINT claims_order_id_fkey;
ALTER TABLE claims DROP CONSTRAINT claims_supply_id_fkey;
-- A key is unique per claimer in the region that wrote the claim: each region checks its own writes, and two
-- regions' claims under one key (a key reused for orders of different home regions) must not stop a replica.
DROP INDEX claims_idempotency;
CREATE UNIQUE INDEX claims_idempotency ON claims (claimer_id, idempotency_key, region);

-- What this region has applied from each other region: for GET /regions and the lag gauges.
-- One row per source and lane (the log's partition): lanes are applied side by side and must not queue on one row.
CREATE TABLE replication_progress (
  source          text NOT NULL,
  lane            integer NOT NULL DEFAULT 0,
  applied         bigint NOT NULL DEFAULT 0,
  skipped         bigint NOT NULL DEFAULT 0,
  last_event_at   timestamptz,
  last_applied_at timestamptz,
  last_lag_ms     bigint,
  PRIMARY KEY (source, lane)
);

CREATE FUNCTION ts(v jsonb) RETURNS timestamptz LANGUAGE sql IMMUTABLE AS
$$ SELECT CASE WHEN v IS NULL OR v = 'null'::jsonb THEN NULL ELSE (v #>> '{}')::timestamptz END $$;

-- Applies one event's state; true when it changed the copy (a newer version), false for an old or repeated one.
CREATE FUNCTION apply_event(e jsonb) RETURNS boolean LANGUAGE plpgsql AS $$
DECLARE
  p jsonb := e->'payload';
  v integer := (e->>'version')::integer;
  n integer;
  rival claims;
BEGIN
  CASE e->>'aggregateType'
  WHEN 'supply' THEN
    INSERT INTO supplies AS s (id, user_id, asset, amount, reserved, spent, status, home_region, version, created_at, updated_at)
    VALUES ((p->>'id')::uuid, p->>'userId', p->>'asset', (p->>'amount')::numeric, (p->>'reserved')::numeric,
            (p->>'spent')::numeric, p->>'status', p->>'homeRegion', v, ts(p->'createdAt'), ts(p->'updatedAt'))
    ON CONFLICT (id) DO UPDATE SET amount = EXCLUDED.amount, reserved = EXCLUDED.reserved, spent = EXCLUDED.spent,
      status = EXCLUDED.status, version = EXCLUDED.version, updated_at = EXCLUDED.updated_at
     WHERE s.version < EXCLUDED.version;
  WHEN 'order' THEN
    INSERT INTO orders AS o (id, user_id, asset, items, amount, status, claim_id, claimer_id, home_region, version, expires_at, created_at, updated_at)
    VALUES ((p->>'id')::uuid, p->>'userId', p->>'asset', p->'items', (p->>'amount')::numeric, p->>'status',
            (p->>'claimId')::uuid, p->>'claimerId', p->>'homeRegion', v, ts(p->'expiresAt'), ts(p->'createdAt'), ts(p->'updatedAt'))
    ON CONFLICT (id) DO UPDATE SET status = EXCLUDED.status, claim_id = EXCLUDED.claim_id, claimer_id = EXCLUDED.claimer_id,
      version = EXCLUDED.version, expires_at = EXCLUDED.expires_at, updated_at = EXCLUDED.updated_at
     WHERE o.version < EXCLUDED.version;
  WHEN 'claim' THEN
    -- One live claim per order holds in every copy. The home region never has two at once (its order lock),
    -- so if this copy would, one of them has a release it has not seen yet: the later claim (by epoch, then
    -- creation) is the live one, and the earlier is kept as released under its own version, so its real
    -- release event, newer, still applies over it.
    IF p->>'status' <> 'released' THEN
      SELECT * INTO rival FROM claims WHERE order_id = (p->>'orderId')::uuid AND status <> 'released' AND id <> (p->>'id')::uuid FOR UPDATE;
      IF FOUND THEN
        IF (rival.epoch, rival.created_at, rival.id) < ((p->>'epoch')::bigint, ts(p->'createdAt'), (p->>'id')::uuid) THEN
          UPDATE claims SET status = 'released', released_at = coalesce(released_at, ts(p->'createdAt')) WHERE id = rival.id;
        ELSE
          p := jsonb_set(p, '{status}', '"released"');
          p := jsonb_set(p, '{releasedAt}', to_jsonb(rival.created_at));
        END IF;
      END IF;
    END IF;
    INSERT INTO claims AS c (id, order_id, claimer_id, supply_id, amount, status, idempotency_key, region, epoch, version,
                             expires_at, created_at, settled_at, released_at)
    VALUES ((p->>'id')::uuid, (p->>'orderId')::uuid, p->>'claimerId', (p->>'supplyId')::uuid, (p->>'amount')::numeric,
            p->>'status', p->>'idempotencyKey', p->>'region', (p->>'epoch')::bigint, v, ts(p->'expiresAt'),
            ts(p->'createdAt'), ts(p->'settledAt'), ts(p->'releasedAt'))
    ON CONFLICT (id) DO UPDATE SET status = EXCLUDED.status, version = EXCLUDED.version, expires_at = EXCLUDED.expires_at,
      settled_at = EXCLUDED.settled_at, released_at = EXCLUDED.released_at
     WHERE c.version < EXCLUDED.version;
  ELSE
    RAISE EXCEPTION 'unknown aggregate type %', e->>'aggregateType' USING ERRCODE = '22023';
  END CASE;
  GET DIAGNOSTICS n = ROW_COUNT;
  RETURN n > 0;
END $$;

-- Applies a batch of one source region's events in log order, in the caller's transaction (one round trip).
-- p = {source, events: [...]} -> {applied, skipped, changed: [{aggregateType, id, userId, ...}]}: `changed`
-- names what a cache must forget.
CREATE FUNCTION apply_events(p jsonb) RETURNS jsonb LANGUAGE plpgsql AS $$
DECLARE
  e jsonb;
  applied integer := 0;
  skipped integer := 0;
  changed jsonb := '[]'::jsonb;
  newest timestamptz;
BEGIN
  FOR e IN SELECT x FROM jsonb_array_elements(p->'events') x LOOP
    IF apply_event(e) THEN
      applied := applied + 1;
      changed := changed || jsonb_build_array(jsonb_build_object('aggregateType', e->>'aggregateType', 'id', e->'payload'->'id',
        'userId', e->'payload'->'userId', 'claimerId', e->'payload'->'claimerId', 'orderId', e->'payload'->'orderId'));
    ELSE
      skipped := skipped + 1;
    END IF;
    newest := greatest(newest, ts(e->'createdAt'));
  END LOOP;
  INSERT INTO replication_progress AS r (source, lane, applied, skipped, last_event_at, last_applied_at, last_lag_ms)
  VALUES (p->>'source', coalesce((p->>'lane')::integer, 0), applied, skipped, newest, clock_timestamp(),
          (extract(epoch FROM clock_timestamp() - newest) * 1000)::bigint)
  ON CONFLICT (source, lane) DO UPDATE SET applied = r.applied + EXCLUDED.applied, skipped = r.skipped + EXCLUDED.skipped,
    last_event_at = greatest(r.last_event_at, EXCLUDED.last_event_at), last_applied_at = EXCLUDED.last_applied_at,
    last_lag_ms = EXCLUDED.last_lag_ms;
  RETURN jsonb_build_object('applied', applied, 'skipped', skipped, 'changed', changed);
END $$;

-- Down Migration
DROP FUNCTION apply_events(jsonb);
DROP FUNCTION apply_event(jsonb);
DROP FUNCTION ts(jsonb);
DROP TABLE replication_progress;
DROP INDEX claims_idempotency;
CREATE UNIQUE INDEX claims_idempotency ON claims (claimer_id, idempotency_key);
ALTER TABLE claims ADD CONSTRAINT claims_order_id_fkey FOREIGN KEY (order_id) REFERENCES orders (id);
ALTER TABLE claims ADD CONSTRAINT claims_supply_id_fkey FOREIGN KEY (supply_id) REFERENCES supplies (id);
