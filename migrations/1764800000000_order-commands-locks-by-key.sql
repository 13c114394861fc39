-- Up Migration
-- order_commands took its locks with joins of the batch against orders and supplies, which the planner ran as hash
-- joins over a scan of the whole table (it cannot tell how many commands a jsonb array holds): every batch read
-- every order, so a claim cost more the more orders there were (16,000 orders: 1.3 ms of PostgreSQL CPU a claim).
-- The locks are now taken by primary key. Nothing else changes.
CREATE OR REPLACE FUNCTION order_commands(p jsonb) RETURNS jsonb LANGUAGE plpgsql AS $$
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
  -- Locks in one global order: orders by id, then supplies by id. Each id comes from a lookup by primary key (a
  -- scalar subquery, never turned into a join), so the lock costs the same however many rows the tables hold.
  PERFORM 1 FROM orders WHERE id = ANY (ARRAY(SELECT (e->>'orderId')::uuid FROM jsonb_array_elements(p->'cmds') e))
    ORDER BY id FOR UPDATE;
  PERFORM 1 FROM supplies WHERE id = ANY (ARRAY(
      SELECT CASE e->>'op'
        WHEN 'claim' THEN (SELECT s.id FROM supplies s WHERE s.id = (e->>'supplyId')::uuid AND s.user_id = e->>'userId')
        WHEN 'release' THEN (SELECT c.supply_id FROM claims c WHERE c.id = (e->>'claimId')::uuid)
        WHEN 'complete' THEN (SELECT c.supply_id FROM orders o JOIN claims c ON c.id = o.claim_id WHERE o.id = (e->>'orderId')::uuid)
      END
      FROM jsonb_array_elements(p->'cmds') e))
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

-- Down Migration
CREATE OR REPLACE FUNCTION order_commands(p jsonb) RETURNS jsonb LANGUAGE plpgsql AS $$
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
