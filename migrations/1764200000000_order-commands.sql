-- Up Migration
-- The order actor's commands as server-side functions: a whole batch of claims, releases, completions and
-- cancellations in one round trip and one transaction, one outcome per command. The decisions mirror the pure
-- decision code in src/domain (the specification, unit-tested; test/integration/commands-spec.test.ts checks
-- that the two agree). An outcome is {"ok": true, ...rows} or {"error": CODE, "details": {...}}; src/store/commands.ts
-- turns codes into the API's errors.
--
-- Locks: every batch locks its orders first (sorted by id), then the supplies it may touch (sorted by id), so
-- batches never deadlock each other; the sweeper skips what is locked. Claims change only under their order's
-- lock. A claim locks only the caller's own supply row (user_id in the lock's WHERE).
-- Fencing: a write runs only where the ownership row of the entity's home region names this region under the
-- epoch the caller believes; otherwise NOT_OWNER (a retryable 503), so a region that lost ownership stops writing.

-- API shapes, also the outbox payloads: camelCase, amounts as exact decimal strings, times as ISO-8601 in ms.
CREATE FUNCTION api_time(t timestamptz) RETURNS text LANGUAGE sql STABLE AS
$$ SELECT to_char(t AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"') $$;

CREATE FUNCTION api_supply(s supplies) RETURNS jsonb LANGUAGE sql STABLE AS $$
  SELECT jsonb_build_object('id', s.id, 'userId', s.user_id, 'asset', s.asset,
    'amount', trim_scale(s.amount)::text, 'reserved', trim_scale(s.reserved)::text, 'spent', trim_scale(s.spent)::text,
    'available', trim_scale(s.amount - s.reserved - s.spent)::text, 'status', s.status, 'homeRegion', s.home_region,
    'version', s.version, 'createdAt', api_time(s.created_at), 'updatedAt', api_time(s.updated_at))
$$;

CREATE FUNCTION api_order(o orders) RETURNS jsonb LANGUAGE sql STABLE AS $$
  SELECT jsonb_build_object('id', o.id, 'userId', o.user_id, 'asset', o.asset, 'items', o.items,
    'amount', trim_scale(o.amount)::text, 'status', o.status, 'claimId', o.claim_id, 'claimerId', o.claimer_id,
    'homeRegion', o.home_region, 'version', o.version, 'expiresAt', api_time(o.expires_at),
    'createdAt', api_time(o.created_at), 'updatedAt', api_time(o.updated_at))
$$;

CREATE FUNCTION api_claim(c claims) RETURNS jsonb LANGUAGE sql STABLE AS $$
  SELECT jsonb_build_object('id', c.id, 'orderId', c.order_id, 'claimerId', c.claimer_id, 'supplyId', c.supply_id,
    'amount', trim_scale(c.amount)::text, 'status', c.status, 'idempotencyKey', c.idempotency_key, 'region', c.region,
    'epoch', c.epoch, 'version', c.version, 'expiresAt', api_time(c.expires_at), 'createdAt', api_time(c.created_at),
    'settledAt', api_time(c.settled_at), 'releasedAt', api_time(c.released_at))
$$;

CREATE FUNCTION refuse(code text, details jsonb DEFAULT NULL) RETURNS jsonb LANGUAGE sql IMMUTABLE AS
$$ SELECT jsonb_strip_nulls(jsonb_build_object('error', code, 'details', details)) $$;

-- Is this region the writer of home region `home` under epoch `ep`?
CREATE FUNCTION owns(home text, writer text, ep bigint) RETURNS boolean LANGUAGE sql STABLE AS
$$ SELECT EXISTS (SELECT 1 FROM ownership w WHERE w.home_region = $1 AND w.owner = $2 AND w.epoch = $3) $$;

-- The status an order shows to a user who may not see it is none at all (404), as for a missing order.
CREATE FUNCTION order_visible(o orders, viewer text, is_admin boolean) RETURNS boolean LANGUAGE sql IMMUTABLE AS
$$ SELECT $1.status = 'open' OR $1.user_id = $2 OR $1.claimer_id IS NOT DISTINCT FROM $2 OR $3 $$;

-- 409 for an order in the wrong state; an expired order says so whatever was asked.
CREATE FUNCTION order_not_in(o orders, expected text) RETURNS jsonb LANGUAGE sql IMMUTABLE AS $$
  SELECT refuse(CASE WHEN o.status = 'expired' THEN 'ORDER_EXPIRED' ELSE 'ORDER_NOT_' || upper(expected) END,
                jsonb_build_object('id', o.id, 'status', o.status, 'action', CASE expected WHEN 'open' THEN 'claim' ELSE 'complete' END))
$$;

CREATE FUNCTION emit(agg text, agg_id uuid, ver integer, etype text, region text, home text, ep bigint, payload jsonb)
RETURNS void LANGUAGE sql AS $$
  INSERT INTO outbox (event_id, aggregate_type, aggregate_id, aggregate_version, event_type, region, home_region, epoch, payload)
  VALUES (gen_random_uuid(), $1, $2, $3, $4, $5, $6, $7, $8)
$$;

-- The result of a claim that exists already under this (claimer, key): the first result, or a refusal if the
-- key was used for another order or supply.
CREATE FUNCTION claim_replay(k claims, p_order uuid, p_supply uuid) RETURNS jsonb LANGUAGE plpgsql STABLE AS $$
DECLARE o orders; s supplies;
BEGIN
  IF k.order_id <> p_order OR k.supply_id <> p_supply THEN
    RETURN refuse('IDEMPOTENCY_KEY_REUSED', jsonb_build_object('claimId', k.id));
  END IF;
  SELECT * INTO o FROM orders WHERE id = k.order_id;
  SELECT * INTO s FROM supplies WHERE id = k.supply_id;
  RETURN jsonb_build_object('ok', true, 'replayed', true, 'claim', api_claim(k), 'order', api_order(o), 'supply', api_supply(s));
END $$;

CREATE FUNCTION cmd_claim(cmd jsonb, p_region text, p_epochs jsonb, p_hold integer) RETURNS jsonb LANGUAGE plpgsql AS $$
DECLARE
  v_user text := cmd->>'userId';
  v_order uuid := (cmd->>'orderId')::uuid;
  v_supply uuid := (cmd->>'supplyId')::uuid;
  o orders; s supplies; c claims; k claims;
BEGIN
  -- The key is looked up after the order's lock: a first attempt still running holds that lock, so a retry
  -- waits for it and then finds its claim, whichever node it runs on.
  SELECT * INTO k FROM claims WHERE claimer_id = v_user AND idempotency_key = cmd->>'key';
  IF FOUND THEN RETURN claim_replay(k, v_order, v_supply); END IF;
  SELECT * INTO o FROM orders WHERE id = v_order;
  IF NOT FOUND THEN RETURN refuse('ORDER_NOT_FOUND'); END IF;
  IF NOT owns(o.home_region, p_region, (p_epochs->>o.home_region)::bigint) THEN RETURN refuse('NOT_OWNER', jsonb_build_object('homeRegion', o.home_region)); END IF;
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
  IF s.asset <> o.asset THEN
    RETURN refuse('ASSET_MISMATCH', jsonb_build_object('supplyAsset', s.asset, 'orderAsset', o.asset));
  END IF;
  IF s.status <> 'active' THEN RETURN refuse('SUPPLY_NOT_ACTIVE', jsonb_build_object('id', s.id, 'status', s.status)); END IF;
  IF s.amount - s.reserved - s.spent < o.amount THEN
    RETURN refuse('INSUFFICIENT_SUPPLY', jsonb_build_object('id', s.id,
      'available', trim_scale(s.amount - s.reserved - s.spent)::text, 'required', trim_scale(o.amount)::text));
  END IF;

  INSERT INTO claims (id, order_id, claimer_id, supply_id, amount, idempotency_key, region, epoch, expires_at)
  VALUES (gen_random_uuid(), o.id, v_user, s.id, o.amount, cmd->>'key', p_region, (p_epochs->>o.home_region)::bigint, now() + make_interval(secs => p_hold))
  RETURNING * INTO c;
  UPDATE supplies SET reserved = reserved + o.amount, version = version + 1, updated_at = now() WHERE id = s.id RETURNING * INTO s;
  UPDATE orders SET status = 'claimed', claim_id = c.id, claimer_id = v_user, version = version + 1, updated_at = now()
   WHERE id = o.id RETURNING * INTO o;
  PERFORM emit('claim', c.id, c.version, 'ClaimCreated', p_region, o.home_region, (p_epochs->>o.home_region)::bigint, api_claim(c));
  PERFORM emit('order', o.id, o.version, 'OrderClaimed', p_region, o.home_region, (p_epochs->>o.home_region)::bigint, api_order(o));
  PERFORM emit('supply', s.id, s.version, 'SupplyReserved', p_region, s.home_region, (p_epochs->>o.home_region)::bigint, api_supply(s));
  RETURN jsonb_build_object('ok', true, 'replayed', false, 'claim', api_claim(c), 'order', api_order(o), 'supply', api_supply(s));
END $$;

-- Releases an active claim: by its claimer (userId), by an admin (admin: true), or because its hold ran out
-- (reason 'expired', no user).
CREATE FUNCTION cmd_release(cmd jsonb, p_region text, p_epochs jsonb) RETURNS jsonb LANGUAGE plpgsql AS $$
DECLARE
  v_user text := cmd->>'userId';
  v_admin boolean := coalesce((cmd->>'admin')::boolean, false);
  v_reason text := coalesce(cmd->>'reason', CASE WHEN v_admin THEN 'admin' ELSE 'claimer' END);
  o orders; o2 orders; s supplies; c claims;
  v_reopened boolean;
BEGIN
  SELECT * INTO o FROM orders WHERE id = (cmd->>'orderId')::uuid;
  IF NOT FOUND THEN RETURN refuse('CLAIM_NOT_FOUND'); END IF;
  SELECT * INTO c FROM claims WHERE id = (cmd->>'claimId')::uuid AND order_id = o.id;
  IF NOT FOUND OR (v_reason <> 'expired' AND NOT v_admin AND c.claimer_id IS DISTINCT FROM v_user) THEN
    RETURN refuse('CLAIM_NOT_FOUND');
  END IF;
  IF NOT owns(o.home_region, p_region, (p_epochs->>o.home_region)::bigint) THEN RETURN refuse('NOT_OWNER', jsonb_build_object('homeRegion', o.home_region)); END IF;
  IF c.status <> 'active' THEN RETURN refuse('CLAIM_NOT_ACTIVE', jsonb_build_object('id', c.id, 'status', c.status)); END IF;
  IF v_reason = 'expired' AND c.expires_at > now() THEN RETURN refuse('CLAIM_NOT_EXPIRED', jsonb_build_object('id', c.id)); END IF;

  UPDATE claims SET status = 'released', released_at = now(), version = version + 1 WHERE id = c.id RETURNING * INTO c;
  UPDATE supplies SET reserved = reserved - c.amount, version = version + 1, updated_at = now() WHERE id = c.supply_id RETURNING * INTO s;
  UPDATE orders SET status = 'open', claim_id = NULL, claimer_id = NULL, version = version + 1, updated_at = now()
   WHERE id = o.id AND claim_id = c.id RETURNING * INTO o2;
  -- An order that no longer points at this claim stays as it is, and says nothing.
  v_reopened := FOUND;
  IF v_reopened THEN o := o2; END IF;
  PERFORM emit('claim', c.id, c.version, 'ClaimReleased', p_region, o.home_region, (p_epochs->>o.home_region)::bigint, api_claim(c) || jsonb_build_object('reason', v_reason));
  IF v_reopened THEN PERFORM emit('order', o.id, o.version, 'OrderReopened', p_region, o.home_region, (p_epochs->>o.home_region)::bigint, api_order(o)); END IF;
  PERFORM emit('supply', s.id, s.version, 'SupplyReleased', p_region, s.home_region, (p_epochs->>o.home_region)::bigint, api_supply(s));
  RETURN jsonb_build_object('ok', true, 'claim', api_claim(c), 'order', api_order(o), 'supply', api_supply(s));
END $$;

CREATE FUNCTION cmd_complete(cmd jsonb, p_region text, p_epochs jsonb) RETURNS jsonb LANGUAGE plpgsql AS $$
DECLARE
  v_user text := cmd->>'userId';
  o orders; s supplies; c claims;
BEGIN
  SELECT * INTO o FROM orders WHERE id = (cmd->>'orderId')::uuid;
  IF NOT FOUND OR NOT order_visible(o, v_user, coalesce((cmd->>'admin')::boolean, false)) THEN RETURN refuse('ORDER_NOT_FOUND'); END IF;
  IF o.user_id <> v_user THEN RETURN refuse('NOT_BUYER', jsonb_build_object('action', 'complete')); END IF;
  IF NOT owns(o.home_region, p_region, (p_epochs->>o.home_region)::bigint) THEN RETURN refuse('NOT_OWNER', jsonb_build_object('homeRegion', o.home_region)); END IF;
  IF o.status <> 'claimed' THEN RETURN order_not_in(o, 'claimed'); END IF;
  SELECT * INTO c FROM claims WHERE id = o.claim_id;
  IF NOT FOUND OR c.status <> 'active' THEN
    RETURN refuse('CLAIM_NOT_ACTIVE', jsonb_build_object('id', o.claim_id, 'status', c.status));
  END IF;

  UPDATE claims SET status = 'settled', settled_at = now(), version = version + 1 WHERE id = c.id RETURNING * INTO c;
  UPDATE supplies SET reserved = reserved - c.amount, spent = spent + c.amount, version = version + 1, updated_at = now()
   WHERE id = c.supply_id RETURNING * INTO s;
  UPDATE orders SET status = 'completed', version = version + 1, updated_at = now() WHERE id = o.id RETURNING * INTO o;
  PERFORM emit('claim', c.id, c.version, 'ClaimSettled', p_region, o.home_region, (p_epochs->>o.home_region)::bigint, api_claim(c));
  PERFORM emit('order', o.id, o.version, 'OrderCompleted', p_region, o.home_region, (p_epochs->>o.home_region)::bigint, api_order(o));
  PERFORM emit('supply', s.id, s.version, 'SupplySpent', p_region, s.home_region, (p_epochs->>o.home_region)::bigint, api_supply(s));
  RETURN jsonb_build_object('ok', true, 'claim', api_claim(c), 'order', api_order(o), 'supply', api_supply(s));
END $$;

CREATE FUNCTION cmd_cancel(cmd jsonb, p_region text, p_epochs jsonb) RETURNS jsonb LANGUAGE plpgsql AS $$
DECLARE
  v_user text := cmd->>'userId';
  o orders;
BEGIN
  SELECT * INTO o FROM orders WHERE id = (cmd->>'orderId')::uuid;
  IF NOT FOUND OR NOT order_visible(o, v_user, coalesce((cmd->>'admin')::boolean, false)) THEN RETURN refuse('ORDER_NOT_FOUND'); END IF;
  IF o.user_id <> v_user THEN RETURN refuse('NOT_BUYER', jsonb_build_object('action', 'cancel')); END IF;
  IF NOT owns(o.home_region, p_region, (p_epochs->>o.home_region)::bigint) THEN RETURN refuse('NOT_OWNER', jsonb_build_object('homeRegion', o.home_region)); END IF;
  IF o.status <> 'open' THEN
    RETURN refuse(CASE WHEN o.status = 'expired' THEN 'ORDER_EXPIRED' ELSE 'ORDER_NOT_OPEN' END,
                  jsonb_build_object('id', o.id, 'status', o.status, 'action', 'cancel'));
  END IF;
  UPDATE orders SET status = 'cancelled', version = version + 1, updated_at = now() WHERE id = o.id RETURNING * INTO o;
  PERFORM emit('order', o.id, o.version, 'OrderCancelled', p_region, o.home_region, (p_epochs->>o.home_region)::bigint, api_order(o));
  RETURN jsonb_build_object('ok', true, 'order', api_order(o));
END $$;

-- A batch of order commands: p = {region, epochs: {homeRegion: epoch}, holdSec, cmds: [{op, orderId, userId, admin?, supplyId?, claimId?,
-- key?, reason?}]} -> one outcome per command, in order. One command's failure never fails the others: each
-- runs in its own subtransaction, and an unexpected error becomes that command's outcome.
CREATE FUNCTION order_commands(p jsonb) RETURNS jsonb LANGUAGE plpgsql AS $$
DECLARE
  p_region text := p->>'region';
  p_epochs jsonb := p->'epochs';
  v_hold integer := coalesce((p->>'holdSec')::integer, 300);
  cmd jsonb;
  r jsonb;
  k claims;
  results jsonb := '[]'::jsonb;
  err_state text;
  err_constraint text;
BEGIN
  -- Locks in one global order: orders by id, then supplies by id.
  PERFORM 1 FROM orders WHERE id IN (SELECT (e->>'orderId')::uuid FROM jsonb_array_elements(p->'cmds') e)
    ORDER BY id FOR UPDATE;
  PERFORM 1 FROM supplies WHERE id IN (
      SELECT (e->>'supplyId')::uuid FROM jsonb_array_elements(p->'cmds') e JOIN supplies s
        ON s.id = (e->>'supplyId')::uuid AND s.user_id = e->>'userId' WHERE e->>'op' = 'claim'
      UNION SELECT c.supply_id FROM jsonb_array_elements(p->'cmds') e JOIN claims c
        ON c.id = (e->>'claimId')::uuid WHERE e->>'op' = 'release'
      UNION SELECT c.supply_id FROM jsonb_array_elements(p->'cmds') e JOIN orders o ON o.id = (e->>'orderId')::uuid
        JOIN claims c ON c.id = o.claim_id WHERE e->>'op' = 'complete')
    ORDER BY id FOR UPDATE;

  FOR cmd IN SELECT e FROM jsonb_array_elements(p->'cmds') e LOOP
    BEGIN
      r := CASE cmd->>'op'
        WHEN 'claim' THEN cmd_claim(cmd, p_region, p_epochs, v_hold)
        WHEN 'release' THEN cmd_release(cmd, p_region, p_epochs)
        WHEN 'complete' THEN cmd_complete(cmd, p_region, p_epochs)
        WHEN 'cancel' THEN cmd_cancel(cmd, p_region, p_epochs)
        ELSE refuse('UNKNOWN_COMMAND') END;
    EXCEPTION
      WHEN unique_violation THEN
        GET STACKED DIAGNOSTICS err_constraint = CONSTRAINT_NAME;
        -- The same key's first use (for another order) committed while this one waited on the index.
        SELECT * INTO k FROM claims WHERE claimer_id = cmd->>'userId' AND idempotency_key = cmd->>'key';
        IF err_constraint = 'claims_idempotency' AND FOUND THEN
          r := claim_replay(k, (cmd->>'orderId')::uuid, (cmd->>'supplyId')::uuid);
        ELSE
          r := refuse('ORDER_NOT_OPEN', jsonb_build_object('id', cmd->>'orderId', 'status', 'claimed', 'action', 'claim'));
        END IF;
      WHEN OTHERS THEN
        GET STACKED DIAGNOSTICS err_state = RETURNED_SQLSTATE;
        r := refuse('COMMAND_FAILED', jsonb_build_object('sqlstate', err_state, 'message', SQLERRM));
    END;
    results := results || jsonb_build_array(r);
  END LOOP;
  RETURN results;
END $$;

-- The sweeper: releases claims whose v_hold ran out and expires open orders past their time, for the home regions
-- this region owns. Rows another node holds are skipped (SKIP LOCKED), so any number of nodes can sweep; each
-- item runs in its own subtransaction, so a failing row is reported and skipped, never stops the sweep.
-- p = {region, limit} -> {released: [{claimId, orderId, supplyId, claimerId, buyerId}], expired: [{id, buyerId}],
--   failed: [{id, kind, sqlstate, message}]}
CREATE FUNCTION sweep(p jsonb) RETURNS jsonb LANGUAGE plpgsql AS $$
DECLARE
  p_region text := p->>'region';
  v_limit integer := coalesce((p->>'limit')::integer, 1000);
  due record;
  r jsonb;
  released jsonb := '[]'::jsonb;
  expired jsonb := '[]'::jsonb;
  failed jsonb := '[]'::jsonb;
  err_state text;
BEGIN
  FOR due IN
    SELECT c.id AS claim_id, o.id AS order_id, c.supply_id, c.claimer_id, o.user_id AS buyer_id, w.home_region, w.epoch
      FROM claims c JOIN orders o ON o.id = c.order_id
      JOIN ownership w ON w.home_region = o.home_region AND w.owner = p_region
     WHERE c.status = 'active' AND c.expires_at <= now()
     ORDER BY c.expires_at LIMIT v_limit
       FOR UPDATE OF o SKIP LOCKED
  LOOP
    BEGIN
      r := cmd_release(jsonb_build_object('orderId', due.order_id, 'claimId', due.claim_id, 'reason', 'expired'), p_region, jsonb_build_object(due.home_region, due.epoch));
      IF r ? 'ok' THEN
        released := released || jsonb_build_array(jsonb_build_object('claimId', due.claim_id, 'orderId', due.order_id,
          'supplyId', due.supply_id, 'claimerId', due.claimer_id, 'buyerId', due.buyer_id));
      END IF;
    EXCEPTION WHEN OTHERS THEN
      GET STACKED DIAGNOSTICS err_state = RETURNED_SQLSTATE;
      failed := failed || jsonb_build_array(jsonb_build_object('id', due.claim_id, 'kind', 'claim', 'sqlstate', err_state, 'message', SQLERRM));
    END;
  END LOOP;

  FOR due IN
    SELECT o.id, o.user_id, w.epoch FROM orders o JOIN ownership w ON w.home_region = o.home_region AND w.owner = p_region
     WHERE o.status = 'open' AND o.expires_at <= now()
     ORDER BY o.expires_at LIMIT v_limit
       FOR UPDATE OF o SKIP LOCKED
  LOOP
    DECLARE o orders;
    BEGIN
      UPDATE orders SET status = 'expired', version = version + 1, updated_at = now() WHERE id = due.id RETURNING * INTO o;
      PERFORM emit('order', o.id, o.version, 'OrderExpired', p_region, o.home_region, due.epoch, api_order(o));
      expired := expired || jsonb_build_array(jsonb_build_object('id', o.id, 'buyerId', o.user_id));
    EXCEPTION WHEN OTHERS THEN
      GET STACKED DIAGNOSTICS err_state = RETURNED_SQLSTATE;
      failed := failed || jsonb_build_array(jsonb_build_object('id', due.id, 'kind', 'order', 'sqlstate', err_state, 'message', SQLERRM));
    END;
  END LOOP;
  RETURN jsonb_build_object('released', released, 'expired', expired, 'failed', failed);
END $$;

-- Down Migration
DROP FUNCTION sweep(jsonb);
DROP FUNCTION order_commands(jsonb);
DROP FUNCTION cmd_cancel(jsonb, text, jsonb);
DROP FUNCTION cmd_complete(jsonb, text, jsonb);
DROP FUNCTION cmd_release(jsonb, text, jsonb);
DROP FUNCTION cmd_claim(jsonb, text, jsonb, integer);
DROP FUNCTION claim_replay(claims, uuid, uuid);
DROP FUNCTION emit(text, uuid, integer, text, text, text, bigint, jsonb);
DROP FUNCTION order_not_in(orders, text);
DROP FUNCTION order_visible(orders, text, boolean);
DROP FUNCTION owns(text, text, bigint);
DROP FUNCTION refuse(text, jsonb);
DROP FUNCTION api_claim(claims);
DROP FUNCTION api_order(orders);
DROP FUNCTION api_supply(supplies);
DROP FUNCTION api_time(timestamptz);
