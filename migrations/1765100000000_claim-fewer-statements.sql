-- Up Migration
-- The same-region claim in fewer statements (PostgreSQL sets up each statement's execution anew every time): its
-- three events in one INSERT (and one notification for the relay instead of three), each entity's JSON built once
-- (for the event and the answer), and one ownership check when the supply has the order's home region (the usual
-- case). Outcomes and events are unchanged: test/integration/commands-spec.test.ts holds the function to src/domain.
-- SET enable_seqscan = off as 1764900000000 set it (a CREATE OR REPLACE drops what ALTER FUNCTION set).
CREATE OR REPLACE FUNCTION cmd_claim(cmd jsonb, p_region text, p_epochs jsonb, p_hold integer) RETURNS jsonb LANGUAGE plpgsql SET enable_seqscan = off AS $$
DECLARE
  v_user text := cmd->>'userId';
  v_order uuid := (cmd->>'orderId')::uuid;
  v_supply uuid := (cmd->>'supplyId')::uuid;
  v_epoch bigint;
  v_outcome text;
  o orders; s supplies; c claims; k claims;
  j_claim jsonb; j_order jsonb; j_supply jsonb;
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

  -- Usually the supply has the order's home region, whose ownership was checked above.
  IF s.home_region <> o.home_region AND NOT owns(s.home_region, p_region, (p_epochs->>s.home_region)::bigint) THEN
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
  j_claim := api_claim(c); j_order := api_order(o); j_supply := api_supply(s);
  -- The three events in one statement, in emit()'s order.
  INSERT INTO outbox (event_id, aggregate_type, aggregate_id, aggregate_version, event_type, region, home_region, epoch, payload)
  VALUES (gen_random_uuid(), 'claim', c.id, c.version, 'ClaimCreated', p_region, o.home_region, v_epoch, j_claim),
         (gen_random_uuid(), 'order', o.id, o.version, 'OrderClaimed', p_region, o.home_region, v_epoch, j_order),
         (gen_random_uuid(), 'supply', s.id, s.version, 'SupplyReserved', p_region, s.home_region, (p_epochs->>s.home_region)::bigint, j_supply);
  RETURN jsonb_build_object('ok', true, 'replayed', false, 'claim', j_claim, 'order', j_order, 'supply', j_supply);
END $$;

-- Down Migration
CREATE OR REPLACE FUNCTION cmd_claim(cmd jsonb, p_region text, p_epochs jsonb, p_hold integer) RETURNS jsonb LANGUAGE plpgsql SET enable_seqscan = off AS $$
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
