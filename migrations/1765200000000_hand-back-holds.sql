-- Up Migration
-- A region that owns another home region writes that region's supplies directly: a claim it makes on one of them
-- (for an order of a home region it keeps) reserves the funds in its own transaction, with no hold; the same for a
-- claim on a supply it keeps by an order of the home region it owns for now. When it hands that home region back,
-- the supply and the order of such a claim end up written by two regions, and whichever ends the claim no longer
-- writes the supply: it counts on a hold in the supply's region, which did not exist, so the funds stayed reserved
-- (the postgres drill of 2026-12-06, docs/multi-region.md). The hand-back now turns each such reservation into a
-- hold, in the transaction that gives the home region up, as the supply's owner: the hold row, and a SupplyReserved
-- event naming the claim (payload `adopted`: the funds were reserved already, by the claim's own transaction), so
-- every region keeps the hold and the supply's owner ends it exactly once when the claim's end arrives (or at its
-- next sweep, end_finished_holds). p_home: the home region handed back; p_region: this region.
CREATE FUNCTION hold_direct_reservations(p_home text, p_region text) RETURNS integer
LANGUAGE plpgsql SET enable_seqscan = off AS $$
DECLARE
  r record; s supplies; c claims; w ownership; n integer := 0;
BEGIN
  FOR r IN
    SELECT c0.id AS claim_id, c0.supply_id, o.home_region AS order_home
      FROM claims c0 JOIN supplies s0 ON s0.id = c0.supply_id JOIN orders o ON o.id = c0.order_id
     WHERE c0.status = 'active' AND (s0.home_region = p_home) <> (o.home_region = p_home)
       AND NOT EXISTS (SELECT 1 FROM holds h WHERE h.claim_id = c0.id)
     ORDER BY c0.supply_id
  LOOP
    -- The supply's lock first (as the claim path takes it), then the claim as it is now: one that ended meanwhile
    -- moved the funds in its own transaction.
    SELECT * INTO s FROM supplies WHERE id = r.supply_id FOR UPDATE;
    SELECT * INTO c FROM claims WHERE id = r.claim_id;
    CONTINUE WHEN c.status <> 'active' OR EXISTS (SELECT 1 FROM holds h WHERE h.claim_id = c.id);
    -- Written as the supply's owner (it always is here: the home region handed back, or one this region keeps).
    SELECT * INTO w FROM ownership WHERE home_region = s.home_region AND owner = p_region;
    CONTINUE WHEN NOT FOUND;
    INSERT INTO holds (claim_id, supply_id, order_id, claimer_id, amount, order_region, status)
    VALUES (c.id, s.id, c.order_id, c.claimer_id, c.amount, r.order_home, 'confirmed');
    UPDATE supplies SET version = version + 1, updated_at = now() WHERE id = s.id RETURNING * INTO s;
    PERFORM emit('supply', s.id, s.version, 'SupplyReserved', p_region, s.home_region, w.epoch,
                 api_supply(s) || jsonb_build_object('claimId', c.id, 'holdAmount', trim_scale(c.amount)::text,
                   'orderId', c.order_id, 'claimerId', c.claimer_id, 'orderRegion', r.order_home, 'adopted', true));
    n := n + 1;
  END LOOP;
  RETURN n;
END $$;

-- Down Migration
DROP FUNCTION hold_direct_reservations(text, text);
