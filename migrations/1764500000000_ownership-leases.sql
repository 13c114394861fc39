-- Up Migration
-- Failover (docs/multi-region.md, "Failover"): the owner of a home region writes its entities only under a lease,
-- granted by a majority of regions and renewed every WATCH_INTERVAL_MS (services/regions.service.ts). The rows
-- move to ownership_leases, with the lease's end; `ownership` becomes the rows in force: a row whose lease is
-- over is not there, so every write fenced by `ownership` (owns(), the supply writes, creates, holds, the sweep)
-- is refused as NOT_OWNER the moment the lease ends, by the database's clock, in the write's own transaction.
-- lease_until NULL: no lease needed (FAILOVER=off, or a row naming another region, which this one never writes).
ALTER TABLE ownership RENAME TO ownership_leases;
ALTER TABLE ownership_leases ADD COLUMN lease_until timestamptz;

CREATE VIEW ownership AS
  SELECT home_region, owner, epoch, updated_at, lease_until
    FROM ownership_leases
   WHERE lease_until IS NULL OR lease_until > clock_timestamp();

-- A supply's event carries the epoch under which its home region is owned, not the order's: the two differ
-- in a claim whose order and supply have different home regions written by one region (a successor owning both).
CREATE OR REPLACE FUNCTION cmd_claim(cmd jsonb, p_region text, p_epochs jsonb, p_hold integer) RETURNS jsonb LANGUAGE plpgsql AS $$
DECLARE
  v_user text := cmd->>'userId';
  v_order uuid := (cmd->>'orderId')::uuid;
  v_supply uuid := (cmd->>'supplyId')::uuid;
  v_epoch bigint;
  v_outcome text;
  o orders; s supplies; c claims; k claims;
BEGIN
  -- The key is looked up after the order's lock: a first attempt still running holds that lock, so a retry
  -- waits for it and then finds its claim, whichever node it runs on.
  SELECT * INTO k FROM claims WHERE claimer_id = v_user AND idempotency_key = cmd->>'key';
  IF FOUND THEN RETURN claim_replay(k, v_order, v_supply); END IF;
  SELECT * INTO o FROM orders WHERE id = v_order;
  IF NOT FOUND THEN RETURN refuse('ORDER_NOT_FOUND'); END IF;
  v_epoch := (p_epochs->>o.home_region)::bigint;
  IF NOT owns(o.home_region, p_region, v_epoch) THEN RETURN refuse('NOT_OWNER', jsonb_build_object('homeRegion', o.home_region)); END IF;
  IF o.user_id = v_user THEN RETURN refuse('OWN_ORDER'); END IF;
  IF o.status = 'open' AND o.expires_at <= now() THEN
    RETURN refuse('ORDER_EXPIRED', jsonb_build_object('id', o.id, 'status', 'expired'));
  END IF;
  IF o.status <> 'open' THEN
    IF NOT order_visible(o, v_user, false) THEN RETURN refuse('ORDER_NOT_FOUND'); END IF;
    RETURN order_not_in(o, 'open');
  END IF;
  SELECT * INTO s FROM supplies WHERE id = v_supply AND user_id = v_user;
  IF NOT FOUND THEN RETURN refuse('SUPPLY_NOT_FOUND'); END IF;

  IF NOT owns(s.home_region, p_region, (p_epochs->>s.home_region)::bigint) THEN
    -- Another region writes this supply: its funds are held there first (the actor does it, then comes back
    -- with held = true). Asset, status and balance are that region's to check, on its own row.
    IF NOT coalesce((cmd->>'held')::boolean, false) THEN
      RETURN refuse('HOLD_NEEDED', jsonb_build_object('homeRegion', s.home_region, 'amount', trim_scale(o.amount)::text, 'asset', o.asset));
    END IF;
    INSERT INTO claim_ids (id, outcome) VALUES ((cmd->>'claimId')::uuid, 'claimed') ON CONFLICT (id) DO NOTHING;
    SELECT outcome INTO v_outcome FROM claim_ids WHERE id = (cmd->>'claimId')::uuid;
    IF v_outcome = 'void' THEN RETURN refuse('HOLD_VOIDED', jsonb_build_object('claimId', cmd->>'claimId')); END IF;
    INSERT INTO claims (id, order_id, claimer_id, supply_id, amount, idempotency_key, region, epoch, expires_at)
    VALUES ((cmd->>'claimId')::uuid, o.id, v_user, s.id, o.amount, cmd->>'key', p_region, v_epoch, now() + make_interval(secs => p_hold))
    RETURNING * INTO c;
    UPDATE orders SET status = 'claimed', claim_id = c.id, claimer_id = v_user, version = version + 1, updated_at = now()
     WHERE id = o.id RETURNING * INTO o;
    PERFORM emit('claim', c.id, c.version, 'ClaimCreated', p_region, o.home_region, v_epoch, api_claim(c));
    PERFORM emit('order', o.id, o.version, 'OrderClaimed', p_region, o.home_region, v_epoch, api_order(o));
    RETURN jsonb_build_object('ok', true, 'replayed', false, 'claim', api_claim(c), 'order', api_order(o));
  END IF;

  IF s.asset <> o.asset THEN
    RETURN refuse('ASSET_MISMATCH', jsonb_build_object('supplyAsset', s.asset, 'orderAsset', o.asset));
  END IF;
  IF s.status <> 'active' THEN RETURN refuse('SUPPLY_NOT_ACTIVE', jsonb_build_object('id', s.id, 'status', s.status)); END IF;
  IF s.amount - s.reserved - s.spent < o.amount THEN
    RETURN refuse('INSUFFICIENT_SUPPLY', jsonb_build_object('id', s.id,
      'available', trim_scale(s.amount - s.reserved - s.spent)::text, 'required', trim_scale(o.amount)::text));
  END IF;

  INSERT INTO claims (id, order_id, claimer_id, supply_id, amount, idempotency_key, region, epoch, expires_at)
  VALUES (gen_random_uuid(), o.id, v_user, s.id, o.amount, cmd->>'key', p_region, v_epoch, now() + make_interval(secs => p_hold))
  RETURNING * INTO c;
  UPDATE supplies SET reserved = reserved + o.amount, version = version + 1, updated_at = now() WHERE id = s.id RETURNING * INTO s;
  UPDATE orders SET status = 'claimed', claim_id = c.id, claimer_id = v_user, version = version + 1, updated_at = now()
   WHERE id = o.id RETURNING * INTO o;
  PERFORM emit('claim', c.id, c.version, 'ClaimCreated', p_region, o.home_region, v_epoch, api_claim(c));
  PERFORM emit('order', o.id, o.version, 'OrderClaimed', p_region, o.home_region, v_epoch, api_order(o));
  PERFORM emit('supply', s.id, s.version, 'SupplyReserved', p_region, s.home_region, (p_epochs->>s.home_region)::bigint, api_supply(s));
  RETURN jsonb_build_object('ok', true, 'replayed', false, 'claim', api_claim(c), 'order', api_order(o), 'supply', api_supply(s));
END $$;

CREATE OR REPLACE FUNCTION cmd_release(cmd jsonb, p_region text, p_epochs jsonb) RETURNS jsonb LANGUAGE plpgsql AS $$
DECLARE
  v_user text := cmd->>'userId';
  v_admin boolean := coalesce((cmd->>'admin')::boolean, false);
  v_reason text := coalesce(cmd->>'reason', CASE WHEN v_admin THEN 'admin' ELSE 'claimer' END);
  o orders; o2 orders; s supplies; c claims;
  v_reopened boolean;
  v_local boolean;
  v_epoch bigint;
  v_held boolean := false;
BEGIN
  SELECT * INTO o FROM orders WHERE id = (cmd->>'orderId')::uuid;
  IF NOT FOUND THEN RETURN refuse('CLAIM_NOT_FOUND'); END IF;
  SELECT * INTO c FROM claims WHERE id = (cmd->>'claimId')::uuid AND order_id = o.id;
  IF NOT FOUND OR (v_reason <> 'expired' AND NOT v_admin AND c.claimer_id IS DISTINCT FROM v_user) THEN
    RETURN refuse('CLAIM_NOT_FOUND');
  END IF;
  v_epoch := (p_epochs->>o.home_region)::bigint;
  IF NOT owns(o.home_region, p_region, v_epoch) THEN RETURN refuse('NOT_OWNER', jsonb_build_object('homeRegion', o.home_region)); END IF;
  IF c.status <> 'active' THEN RETURN refuse('CLAIM_NOT_ACTIVE', jsonb_build_object('id', c.id, 'status', c.status)); END IF;
  IF v_reason = 'expired' AND c.expires_at > now() THEN RETURN refuse('CLAIM_NOT_EXPIRED', jsonb_build_object('id', c.id)); END IF;

  UPDATE claims SET status = 'released', released_at = now(), version = version + 1 WHERE id = c.id RETURNING * INTO c;
  SELECT * INTO s FROM supplies WHERE id = c.supply_id;
  v_local := FOUND AND owns(s.home_region, p_region, (p_epochs->>s.home_region)::bigint);
  IF v_local THEN
    -- Funds held for this claim (a claim across regions from before this region owned the supply's home
    -- region): ending the hold moves them, once, and its event names the claim for every region.
    v_held := end_hold(c.id, 'released', p_region) IS NOT NULL;
    IF NOT v_held THEN
      UPDATE supplies SET reserved = reserved - c.amount, version = version + 1, updated_at = now() WHERE id = c.supply_id RETURNING * INTO s;
    ELSE
      SELECT * INTO s FROM supplies WHERE id = c.supply_id;
    END IF;
  END IF;
  UPDATE orders SET status = 'open', claim_id = NULL, claimer_id = NULL, version = version + 1, updated_at = now()
   WHERE id = o.id AND claim_id = c.id RETURNING * INTO o2;
  -- An order that no longer points at this claim stays as it is, and says nothing.
  v_reopened := FOUND;
  IF v_reopened THEN o := o2; END IF;
  PERFORM emit('claim', c.id, c.version, 'ClaimReleased', p_region, o.home_region, v_epoch, api_claim(c) || jsonb_build_object('reason', v_reason));
  IF v_reopened THEN PERFORM emit('order', o.id, o.version, 'OrderReopened', p_region, o.home_region, v_epoch, api_order(o)); END IF;
  IF v_local AND NOT v_held THEN PERFORM emit('supply', s.id, s.version, 'SupplyReleased', p_region, s.home_region, (p_epochs->>s.home_region)::bigint, api_supply(s)); END IF;
  RETURN jsonb_build_object('ok', true, 'claim', api_claim(c), 'order', api_order(o))
    || CASE WHEN v_local THEN jsonb_build_object('supply', api_supply(s)) ELSE '{}'::jsonb END;
END $$;

CREATE OR REPLACE FUNCTION cmd_complete(cmd jsonb, p_region text, p_epochs jsonb) RETURNS jsonb LANGUAGE plpgsql AS $$
DECLARE
  v_user text := cmd->>'userId';
  v_epoch bigint;
  v_local boolean;
  v_held boolean := false;
  o orders; s supplies; c claims;
BEGIN
  SELECT * INTO o FROM orders WHERE id = (cmd->>'orderId')::uuid;
  IF NOT FOUND OR NOT order_visible(o, v_user, coalesce((cmd->>'admin')::boolean, false)) THEN RETURN refuse('ORDER_NOT_FOUND'); END IF;
  IF o.user_id <> v_user THEN RETURN refuse('NOT_BUYER', jsonb_build_object('action', 'complete')); END IF;
  v_epoch := (p_epochs->>o.home_region)::bigint;
  IF NOT owns(o.home_region, p_region, v_epoch) THEN RETURN refuse('NOT_OWNER', jsonb_build_object('homeRegion', o.home_region)); END IF;
  IF o.status <> 'claimed' THEN RETURN order_not_in(o, 'claimed'); END IF;
  SELECT * INTO c FROM claims WHERE id = o.claim_id;
  IF NOT FOUND OR c.status <> 'active' THEN
    RETURN refuse('CLAIM_NOT_ACTIVE', jsonb_build_object('id', o.claim_id, 'status', c.status));
  END IF;

  UPDATE claims SET status = 'settled', settled_at = now(), version = version + 1 WHERE id = c.id RETURNING * INTO c;
  SELECT * INTO s FROM supplies WHERE id = c.supply_id;
  v_local := FOUND AND owns(s.home_region, p_region, (p_epochs->>s.home_region)::bigint);
  IF v_local THEN
    -- As in cmd_release: a standing hold for this claim is what moves the funds.
    v_held := end_hold(c.id, 'settled', p_region) IS NOT NULL;
    IF NOT v_held THEN
      UPDATE supplies SET reserved = reserved - c.amount, spent = spent + c.amount, version = version + 1, updated_at = now()
       WHERE id = c.supply_id RETURNING * INTO s;
    ELSE
      SELECT * INTO s FROM supplies WHERE id = c.supply_id;
    END IF;
  END IF;
  UPDATE orders SET status = 'completed', version = version + 1, updated_at = now() WHERE id = o.id RETURNING * INTO o;
  PERFORM emit('claim', c.id, c.version, 'ClaimSettled', p_region, o.home_region, v_epoch, api_claim(c));
  PERFORM emit('order', o.id, o.version, 'OrderCompleted', p_region, o.home_region, v_epoch, api_order(o));
  IF v_local AND NOT v_held THEN PERFORM emit('supply', s.id, s.version, 'SupplySpent', p_region, s.home_region, (p_epochs->>s.home_region)::bigint, api_supply(s)); END IF;
  RETURN jsonb_build_object('ok', true, 'claim', api_claim(c), 'order', api_order(o))
    || CASE WHEN v_local THEN jsonb_build_object('supply', api_supply(s)) ELSE '{}'::jsonb END;
END $$;

-- A hold event names its order, claimer and order region too, so that every region can keep the hold.
CREATE OR REPLACE FUNCTION supply_hold(p jsonb) RETURNS jsonb LANGUAGE plpgsql AS $$
DECLARE
  v_claim uuid := (p->>'claimId')::uuid;
  v_amount numeric := (p->>'amount')::numeric;
  h holds; s supplies; w ownership;
BEGIN
  SELECT * INTO s FROM supplies WHERE id = (p->>'supplyId')::uuid AND user_id = p->>'claimerId' FOR UPDATE;
  IF NOT FOUND THEN RETURN refuse('SUPPLY_NOT_FOUND'); END IF;
  SELECT * INTO w FROM ownership WHERE home_region = s.home_region AND owner = p->>'region';
  IF NOT FOUND THEN RETURN refuse('NOT_OWNER', jsonb_build_object('homeRegion', s.home_region)); END IF;
  SELECT * INTO h FROM holds WHERE claim_id = v_claim;
  IF FOUND THEN
    -- A retry of the same claim: the first answer, as long as the hold still stands.
    IF h.order_id <> (p->>'orderId')::uuid OR h.supply_id <> s.id THEN
      RETURN refuse('IDEMPOTENCY_KEY_REUSED', jsonb_build_object('claimId', v_claim));
    END IF;
    IF h.status = 'released' THEN RETURN refuse('HOLD_RELEASED', jsonb_build_object('claimId', v_claim)); END IF;
    RETURN jsonb_build_object('ok', true, 'replayed', true, 'supply', api_supply(s));
  END IF;
  IF s.asset <> p->>'asset' THEN
    RETURN refuse('ASSET_MISMATCH', jsonb_build_object('supplyAsset', s.asset, 'orderAsset', p->>'asset'));
  END IF;
  IF s.status <> 'active' THEN RETURN refuse('SUPPLY_NOT_ACTIVE', jsonb_build_object('id', s.id, 'status', s.status)); END IF;
  IF s.amount - s.reserved - s.spent < v_amount THEN
    RETURN refuse('INSUFFICIENT_SUPPLY', jsonb_build_object('id', s.id,
      'available', trim_scale(s.amount - s.reserved - s.spent)::text, 'required', trim_scale(v_amount)::text));
  END IF;
  INSERT INTO holds (claim_id, supply_id, order_id, claimer_id, amount, order_region)
  VALUES (v_claim, s.id, (p->>'orderId')::uuid, p->>'claimerId', v_amount, p->>'orderRegion');
  UPDATE supplies SET reserved = reserved + v_amount, version = version + 1, updated_at = now() WHERE id = s.id RETURNING * INTO s;
  PERFORM emit('supply', s.id, s.version, 'SupplyReserved', p->>'region', s.home_region, w.epoch,
               api_supply(s) || jsonb_build_object('claimId', v_claim, 'holdAmount', trim_scale(v_amount)::text,
                 'orderId', p->>'orderId', 'claimerId', p->>'claimerId', 'orderRegion', p->>'orderRegion'));
  RETURN jsonb_build_object('ok', true, 'replayed', false, 'supply', api_supply(s));
END $$;

CREATE OR REPLACE FUNCTION apply_events(p jsonb) RETURNS jsonb LANGUAGE plpgsql AS $$
DECLARE
  e jsonb;
  applied integer := 0;
  skipped integer := 0;
  changed jsonb := '[]'::jsonb;
  newest timestamptz;
  st text;
  sup jsonb;
BEGIN
  FOR e IN SELECT x FROM jsonb_array_elements(p->'events') x LOOP
    IF apply_event(e) THEN
      applied := applied + 1;
      changed := changed || jsonb_build_array(jsonb_build_object('aggregateType', e->>'aggregateType', 'id', e->'payload'->'id',
        'userId', e->'payload'->'userId', 'claimerId', e->'payload'->'claimerId', 'orderId', e->'payload'->'orderId'));
    ELSE
      skipped := skipped + 1;
    END IF;
    -- A hold's life travels with its supply's events (they name the claim): every region keeps every hold, so a
    -- region that takes a supply's home region over ends the holds it finds there exactly once.
    IF e->>'aggregateType' = 'supply' AND e->'payload' ? 'claimId' THEN
      IF e->>'type' = 'SupplyReserved' AND e->'payload' ? 'orderId' THEN
        INSERT INTO holds (claim_id, supply_id, order_id, claimer_id, amount, order_region, status)
        VALUES ((e->'payload'->>'claimId')::uuid, (e->'payload'->>'id')::uuid, (e->'payload'->>'orderId')::uuid,
                e->'payload'->>'claimerId', (e->'payload'->>'holdAmount')::numeric, e->'payload'->>'orderRegion', 'held')
        ON CONFLICT (claim_id) DO NOTHING;
      ELSIF e->>'type' IN ('SupplySpent', 'SupplyReleased') THEN
        UPDATE holds SET status = CASE WHEN e->>'type' = 'SupplySpent' THEN 'settled' ELSE 'released' END, updated_at = now()
         WHERE claim_id = (e->'payload'->>'claimId')::uuid AND status IN ('held', 'confirmed');
      END IF;
    END IF;
    IF e->>'aggregateType' = 'claim' AND p ? 'region' THEN
      st := e->'payload'->>'status';
      IF st = 'active' THEN
        UPDATE holds SET status = 'confirmed', updated_at = now() WHERE claim_id = (e->'payload'->>'id')::uuid AND status = 'held';
      ELSIF st IN ('settled', 'released') THEN
        sup := end_hold((e->'payload'->>'id')::uuid, st, p->>'region');
        IF sup IS NOT NULL THEN
          changed := changed || jsonb_build_array(jsonb_build_object('aggregateType', 'supply', 'id', sup->'id', 'userId', sup->'userId'));
        END IF;
      END IF;
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

-- A region that learns another took its entities over (it was lost, not handing back) records the epoch it lost:
-- its events of that epoch still unpublished were never seen by the successor, which may have written the same
-- versions since. They are never published: marked superseded (and published, so nothing waits for them), and
-- counted; the region then takes the successor's rows for what they touched (services/regions.service.ts).
CREATE TABLE lost_epochs (
  home_region text NOT NULL,
  epoch       bigint NOT NULL,
  at          timestamptz NOT NULL DEFAULT now(),
  -- When this region took the successor's rows for what the superseded events touched.
  repaired_at timestamptz,
  PRIMARY KEY (home_region, epoch)
);
ALTER TABLE outbox ADD COLUMN superseded_at timestamptz;

-- The successor's row for an aggregate, in place of this region's (whatever the versions say).
CREATE FUNCTION take_row(e jsonb) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
  -- The status counts learn of a row gone (count_status counts inserts and changes only).
  CASE e->>'aggregateType'
  WHEN 'supply' THEN
    WITH gone AS (DELETE FROM supplies WHERE id = (e->>'aggregateId')::uuid RETURNING status)
    INSERT INTO entity_count_deltas SELECT 'supply', status, -1 FROM gone;
  WHEN 'order' THEN
    WITH gone AS (DELETE FROM orders WHERE id = (e->>'aggregateId')::uuid RETURNING status)
    INSERT INTO entity_count_deltas SELECT 'order', status, -1 FROM gone;
  WHEN 'claim' THEN
    WITH gone AS (DELETE FROM claims WHERE id = (e->>'aggregateId')::uuid RETURNING status)
    INSERT INTO entity_count_deltas SELECT 'claim', status, -1 FROM gone;
  ELSE RAISE EXCEPTION 'unknown aggregate type %', e->>'aggregateType' USING ERRCODE = '22023';
  END CASE;
  -- No payload: the successor has no such row (it was written here only), so none stays here either.
  IF e ? 'payload' THEN PERFORM apply_event(e); END IF;
END $$;

-- Standing holds whose claim has ended here: ended by the region that writes the supply. A claim settled or
-- released while no region could end its hold (its supply's region lost, its successor not yet in place, or
-- the region back but not yet owning) would otherwise keep its funds reserved for ever. Run by every sweep.
CREATE INDEX holds_standing_idx ON holds (claim_id) WHERE status IN ('held', 'confirmed');
CREATE FUNCTION end_finished_holds(p_region text, p_limit integer) RETURNS integer LANGUAGE plpgsql AS $$
DECLARE r record; n integer := 0;
BEGIN
  FOR r IN SELECT h.claim_id, c.status FROM holds h JOIN claims c ON c.id = h.claim_id
            WHERE h.status IN ('held', 'confirmed') AND c.status IN ('settled', 'released') LIMIT p_limit LOOP
    IF end_hold(r.claim_id, r.status, p_region) IS NOT NULL THEN n := n + 1; END IF;
  END LOOP;
  RETURN n;
END $$;


-- Down Migration
DROP FUNCTION end_finished_holds(text, integer);
DROP INDEX holds_standing_idx;
DROP FUNCTION take_row(jsonb);
ALTER TABLE outbox DROP COLUMN superseded_at;
DROP TABLE lost_epochs;
CREATE OR REPLACE FUNCTION supply_hold(p jsonb) RETURNS jsonb LANGUAGE plpgsql AS $$
DECLARE
  v_claim uuid := (p->>'claimId')::uuid;
  v_amount numeric := (p->>'amount')::numeric;
  h holds; s supplies; w ownership;
BEGIN
  SELECT * INTO s FROM supplies WHERE id = (p->>'supplyId')::uuid AND user_id = p->>'claimerId' FOR UPDATE;
  IF NOT FOUND THEN RETURN refuse('SUPPLY_NOT_FOUND'); END IF;
  SELECT * INTO w FROM ownership WHERE home_region = s.home_region AND owner = p->>'region';
  IF NOT FOUND THEN RETURN refuse('NOT_OWNER', jsonb_build_object('homeRegion', s.home_region)); END IF;
  SELECT * INTO h FROM holds WHERE claim_id = v_claim;
  IF FOUND THEN
    -- A retry of the same claim: the first answer, as long as the hold still stands.
    IF h.order_id <> (p->>'orderId')::uuid OR h.supply_id <> s.id THEN
      RETURN refuse('IDEMPOTENCY_KEY_REUSED', jsonb_build_object('claimId', v_claim));
    END IF;
    IF h.status = 'released' THEN RETURN refuse('HOLD_RELEASED', jsonb_build_object('claimId', v_claim)); END IF;
    RETURN jsonb_build_object('ok', true, 'replayed', true, 'supply', api_supply(s));
  END IF;
  IF s.asset <> p->>'asset' THEN
    RETURN refuse('ASSET_MISMATCH', jsonb_build_object('supplyAsset', s.asset, 'orderAsset', p->>'asset'));
  END IF;
  IF s.status <> 'active' THEN RETURN refuse('SUPPLY_NOT_ACTIVE', jsonb_build_object('id', s.id, 'status', s.status)); END IF;
  IF s.amount - s.reserved - s.spent < v_amount THEN
    RETURN refuse('INSUFFICIENT_SUPPLY', jsonb_build_object('id', s.id,
      'available', trim_scale(s.amount - s.reserved - s.spent)::text, 'required', trim_scale(v_amount)::text));
  END IF;
  INSERT INTO holds (claim_id, supply_id, order_id, claimer_id, amount, order_region)
  VALUES (v_claim, s.id, (p->>'orderId')::uuid, p->>'claimerId', v_amount, p->>'orderRegion');
  UPDATE supplies SET reserved = reserved + v_amount, version = version + 1, updated_at = now() WHERE id = s.id RETURNING * INTO s;
  PERFORM emit('supply', s.id, s.version, 'SupplyReserved', p->>'region', s.home_region, w.epoch,
               api_supply(s) || jsonb_build_object('claimId', v_claim, 'holdAmount', trim_scale(v_amount)::text));
  RETURN jsonb_build_object('ok', true, 'replayed', false, 'supply', api_supply(s));
END $$;

CREATE OR REPLACE FUNCTION apply_events(p jsonb) RETURNS jsonb LANGUAGE plpgsql AS $$
DECLARE
  e jsonb;
  applied integer := 0;
  skipped integer := 0;
  changed jsonb := '[]'::jsonb;
  newest timestamptz;
  st text;
  sup jsonb;
BEGIN
  FOR e IN SELECT x FROM jsonb_array_elements(p->'events') x LOOP
    IF apply_event(e) THEN
      applied := applied + 1;
      changed := changed || jsonb_build_array(jsonb_build_object('aggregateType', e->>'aggregateType', 'id', e->'payload'->'id',
        'userId', e->'payload'->'userId', 'claimerId', e->'payload'->'claimerId', 'orderId', e->'payload'->'orderId'));
    ELSE
      skipped := skipped + 1;
    END IF;
    IF e->>'aggregateType' = 'claim' AND p ? 'region' THEN
      st := e->'payload'->>'status';
      IF st = 'active' THEN
        UPDATE holds SET status = 'confirmed', updated_at = now() WHERE claim_id = (e->'payload'->>'id')::uuid AND status = 'held';
      ELSIF st IN ('settled', 'released') THEN
        sup := end_hold((e->'payload'->>'id')::uuid, st, p->>'region');
        IF sup IS NOT NULL THEN
          changed := changed || jsonb_build_array(jsonb_build_object('aggregateType', 'supply', 'id', sup->'id', 'userId', sup->'userId'));
        END IF;
      END IF;
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

CREATE OR REPLACE FUNCTION cmd_claim(cmd jsonb, p_region text, p_epochs jsonb, p_hold integer) RETURNS jsonb LANGUAGE plpgsql AS $$
DECLARE
  v_user text := cmd->>'userId';
  v_order uuid := (cmd->>'orderId')::uuid;
  v_supply uuid := (cmd->>'supplyId')::uuid;
  v_epoch bigint;
  v_outcome text;
  o orders; s supplies; c claims; k claims;
BEGIN
  -- The key is looked up after the order's lock: a first attempt still running holds that lock, so a retry
  -- waits for it and then finds its claim, whichever node it runs on.
  SELECT * INTO k FROM claims WHERE claimer_id = v_user AND idempotency_key = cmd->>'key';
  IF FOUND THEN RETURN claim_replay(k, v_order, v_supply); END IF;
  SELECT * INTO o FROM orders WHERE id = v_order;
  IF NOT FOUND THEN RETURN refuse('ORDER_NOT_FOUND'); END IF;
  v_epoch := (p_epochs->>o.home_region)::bigint;
  IF NOT owns(o.home_region, p_region, v_epoch) THEN RETURN refuse('NOT_OWNER', jsonb_build_object('homeRegion', o.home_region)); END IF;
  IF o.user_id = v_user THEN RETURN refuse('OWN_ORDER'); END IF;
  IF o.status = 'open' AND o.expires_at <= now() THEN
    RETURN refuse('ORDER_EXPIRED', jsonb_build_object('id', o.id, 'status', 'expired'));
  END IF;
  IF o.status <> 'open' THEN
    IF NOT order_visible(o, v_user, false) THEN RETURN refuse('ORDER_NOT_FOUND'); END IF;
    RETURN order_not_in(o, 'open');
  END IF;
  SELECT * INTO s FROM supplies WHERE id = v_supply AND user_id = v_user;
  IF NOT FOUND THEN RETURN refuse('SUPPLY_NOT_FOUND'); END IF;

  IF NOT owns(s.home_region, p_region, (p_epochs->>s.home_region)::bigint) THEN
    -- Another region writes this supply: its funds are held there first (the actor does it, then comes back
    -- with held = true). Asset, status and balance are that region's to check, on its own row.
    IF NOT coalesce((cmd->>'held')::boolean, false) THEN
      RETURN refuse('HOLD_NEEDED', jsonb_build_object('homeRegion', s.home_region, 'amount', trim_scale(o.amount)::text, 'asset', o.asset));
    END IF;
    INSERT INTO claim_ids (id, outcome) VALUES ((cmd->>'claimId')::uuid, 'claimed') ON CONFLICT (id) DO NOTHING;
    SELECT outcome INTO v_outcome FROM claim_ids WHERE id = (cmd->>'claimId')::uuid;
    IF v_outcome = 'void' THEN RETURN refuse('HOLD_VOIDED', jsonb_build_object('claimId', cmd->>'claimId')); END IF;
    INSERT INTO claims (id, order_id, claimer_id, supply_id, amount, idempotency_key, region, epoch, expires_at)
    VALUES ((cmd->>'claimId')::uuid, o.id, v_user, s.id, o.amount, cmd->>'key', p_region, v_epoch, now() + make_interval(secs => p_hold))
    RETURNING * INTO c;
    UPDATE orders SET status = 'claimed', claim_id = c.id, claimer_id = v_user, version = version + 1, updated_at = now()
     WHERE id = o.id RETURNING * INTO o;
    PERFORM emit('claim', c.id, c.version, 'ClaimCreated', p_region, o.home_region, v_epoch, api_claim(c));
    PERFORM emit('order', o.id, o.version, 'OrderClaimed', p_region, o.home_region, v_epoch, api_order(o));
    RETURN jsonb_build_object('ok', true, 'replayed', false, 'claim', api_claim(c), 'order', api_order(o));
  END IF;

  IF s.asset <> o.asset THEN
    RETURN refuse('ASSET_MISMATCH', jsonb_build_object('supplyAsset', s.asset, 'orderAsset', o.asset));
  END IF;
  IF s.status <> 'active' THEN RETURN refuse('SUPPLY_NOT_ACTIVE', jsonb_build_object('id', s.id, 'status', s.status)); END IF;
  IF s.amount - s.reserved - s.spent < o.amount THEN
    RETURN refuse('INSUFFICIENT_SUPPLY', jsonb_build_object('id', s.id,
      'available', trim_scale(s.amount - s.reserved - s.spent)::text, 'required', trim_scale(o.amount)::text));
  END IF;

  INSERT INTO claims (id, order_id, claimer_id, supply_id, amount, idempotency_key, region, epoch, expires_at)
  VALUES (gen_random_uuid(), o.id, v_user, s.id, o.amount, cmd->>'key', p_region, v_epoch, now() + make_interval(secs => p_hold))
  RETURNING * INTO c;
  UPDATE supplies SET reserved = reserved + o.amount, version = version + 1, updated_at = now() WHERE id = s.id RETURNING * INTO s;
  UPDATE orders SET status = 'claimed', claim_id = c.id, claimer_id = v_user, version = version + 1, updated_at = now()
   WHERE id = o.id RETURNING * INTO o;
  PERFORM emit('claim', c.id, c.version, 'ClaimCreated', p_region, o.home_region, v_epoch, api_claim(c));
  PERFORM emit('order', o.id, o.version, 'OrderClaimed', p_region, o.home_region, v_epoch, api_order(o));
  PERFORM emit('supply', s.id, s.version, 'SupplyReserved', p_region, s.home_region, v_epoch, api_supply(s));
  RETURN jsonb_build_object('ok', true, 'replayed', false, 'claim', api_claim(c), 'order', api_order(o), 'supply', api_supply(s));
END $$;

CREATE OR REPLACE FUNCTION cmd_release(cmd jsonb, p_region text, p_epochs jsonb) RETURNS jsonb LANGUAGE plpgsql AS $$
DECLARE
  v_user text := cmd->>'userId';
  v_admin boolean := coalesce((cmd->>'admin')::boolean, false);
  v_reason text := coalesce(cmd->>'reason', CASE WHEN v_admin THEN 'admin' ELSE 'claimer' END);
  o orders; o2 orders; s supplies; c claims;
  v_reopened boolean;
  v_local boolean;
  v_epoch bigint;
BEGIN
  SELECT * INTO o FROM orders WHERE id = (cmd->>'orderId')::uuid;
  IF NOT FOUND THEN RETURN refuse('CLAIM_NOT_FOUND'); END IF;
  SELECT * INTO c FROM claims WHERE id = (cmd->>'claimId')::uuid AND order_id = o.id;
  IF NOT FOUND OR (v_reason <> 'expired' AND NOT v_admin AND c.claimer_id IS DISTINCT FROM v_user) THEN
    RETURN refuse('CLAIM_NOT_FOUND');
  END IF;
  v_epoch := (p_epochs->>o.home_region)::bigint;
  IF NOT owns(o.home_region, p_region, v_epoch) THEN RETURN refuse('NOT_OWNER', jsonb_build_object('homeRegion', o.home_region)); END IF;
  IF c.status <> 'active' THEN RETURN refuse('CLAIM_NOT_ACTIVE', jsonb_build_object('id', c.id, 'status', c.status)); END IF;
  IF v_reason = 'expired' AND c.expires_at > now() THEN RETURN refuse('CLAIM_NOT_EXPIRED', jsonb_build_object('id', c.id)); END IF;

  UPDATE claims SET status = 'released', released_at = now(), version = version + 1 WHERE id = c.id RETURNING * INTO c;
  SELECT * INTO s FROM supplies WHERE id = c.supply_id;
  v_local := FOUND AND owns(s.home_region, p_region, (p_epochs->>s.home_region)::bigint);
  IF v_local THEN
    UPDATE supplies SET reserved = reserved - c.amount, version = version + 1, updated_at = now() WHERE id = c.supply_id RETURNING * INTO s;
  END IF;
  UPDATE orders SET status = 'open', claim_id = NULL, claimer_id = NULL, version = version + 1, updated_at = now()
   WHERE id = o.id AND claim_id = c.id RETURNING * INTO o2;
  -- An order that no longer points at this claim stays as it is, and says nothing.
  v_reopened := FOUND;
  IF v_reopened THEN o := o2; END IF;
  PERFORM emit('claim', c.id, c.version, 'ClaimReleased', p_region, o.home_region, v_epoch, api_claim(c) || jsonb_build_object('reason', v_reason));
  IF v_reopened THEN PERFORM emit('order', o.id, o.version, 'OrderReopened', p_region, o.home_region, v_epoch, api_order(o)); END IF;
  IF v_local THEN PERFORM emit('supply', s.id, s.version, 'SupplyReleased', p_region, s.home_region, v_epoch, api_supply(s)); END IF;
  RETURN jsonb_build_object('ok', true, 'claim', api_claim(c), 'order', api_order(o))
    || CASE WHEN v_local THEN jsonb_build_object('supply', api_supply(s)) ELSE '{}'::jsonb END;
END $$;

CREATE OR REPLACE FUNCTION cmd_complete(cmd jsonb, p_region text, p_epochs jsonb) RETURNS jsonb LANGUAGE plpgsql AS $$
DECLARE
  v_user text := cmd->>'userId';
  v_epoch bigint;
  v_local boolean;
  o orders; s supplies; c claims;
BEGIN
  SELECT * INTO o FROM orders WHERE id = (cmd->>'orderId')::uuid;
  IF NOT FOUND OR NOT order_visible(o, v_user, coalesce((cmd->>'admin')::boolean, false)) THEN RETURN refuse('ORDER_NOT_FOUND'); END IF;
  IF o.user_id <> v_user THEN RETURN refuse('NOT_BUYER', jsonb_build_object('action', 'complete')); END IF;
  v_epoch := (p_epochs->>o.home_region)::bigint;
  IF NOT owns(o.home_region, p_region, v_epoch) THEN RETURN refuse('NOT_OWNER', jsonb_build_object('homeRegion', o.home_region)); END IF;
  IF o.status <> 'claimed' THEN RETURN order_not_in(o, 'claimed'); END IF;
  SELECT * INTO c FROM claims WHERE id = o.claim_id;
  IF NOT FOUND OR c.status <> 'active' THEN
    RETURN refuse('CLAIM_NOT_ACTIVE', jsonb_build_object('id', o.claim_id, 'status', c.status));
  END IF;

  UPDATE claims SET status = 'settled', settled_at = now(), version = version + 1 WHERE id = c.id RETURNING * INTO c;
  SELECT * INTO s FROM supplies WHERE id = c.supply_id;
  v_local := FOUND AND owns(s.home_region, p_region, (p_epochs->>s.home_region)::bigint);
  IF v_local THEN
    UPDATE supplies SET reserved = reserved - c.amount, spent = spent + c.amount, version = version + 1, updated_at = now()
     WHERE id = c.supply_id RETURNING * INTO s;
  END IF;
  UPDATE orders SET status = 'completed', version = version + 1, updated_at = now() WHERE id = o.id RETURNING * INTO o;
  PERFORM emit('claim', c.id, c.version, 'ClaimSettled', p_region, o.home_region, v_epoch, api_claim(c));
  PERFORM emit('order', o.id, o.version, 'OrderCompleted', p_region, o.home_region, v_epoch, api_order(o));
  IF v_local THEN PERFORM emit('supply', s.id, s.version, 'SupplySpent', p_region, s.home_region, v_epoch, api_supply(s)); END IF;
  RETURN jsonb_build_object('ok', true, 'claim', api_claim(c), 'order', api_order(o))
    || CASE WHEN v_local THEN jsonb_build_object('supply', api_supply(s)) ELSE '{}'::jsonb END;
END $$;

DROP VIEW ownership;
ALTER TABLE ownership_leases DROP COLUMN lease_until;
ALTER TABLE ownership_leases RENAME TO ownership;
