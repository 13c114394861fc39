-- Up Migration
-- Another region's supplies and orders applied a run at a time. apply_unfenced_events applied every event with a
-- statement of its own (apply_event): an upsert's executor start, its constraints read again, its trigger and index
-- work, once per event. `npm run bench:sql -- --claims 2000 --creates 8000 --apply --apply-batch 30`: supplies'
-- creation events 108-116 µs of PostgreSQL CPU an event that way, 91-92 µs with their runs applied here
-- (docs/multi-region.md, "Replication lag").
--
-- A run is a stretch of consecutive events whose only effect is their row: orders, and supplies that name no claim (a
-- supply event naming a claim also moves that claim's hold, and claims have the one-live-claim rule: those are applied
-- one by one, as before, in their place). A run of four or more is applied set-based, with exactly the outcome of
-- applying it event by event: each entity ends at its newest version (the upsert still only moves a row forward), an
-- event counts as applied if it is newer than the row before the run and than every earlier event of its entity in the
-- run, and the changed list names those, in order. A shorter run costs less one by one (a claim's order and supply
-- events make a run of two).

CREATE FUNCTION apply_plain(evs jsonb) RETURNS jsonb LANGUAGE plpgsql SET enable_seqscan = off AS $$
DECLARE
  r jsonb;
BEGIN
  -- One statement: all its parts see the rows as they were before it, so what event-by-event application would apply
  -- (k) is read from the rows the upserts then move.
  WITH x AS (
    SELECT o, e->>'aggregateType' AS t, (e->'payload'->>'id')::uuid AS id, e->'payload' AS p, (e->>'version')::integer AS v
      FROM jsonb_array_elements(evs) WITH ORDINALITY q(e, o)
  ), k AS (
    SELECT x.*, max(v) OVER (PARTITION BY t, id ORDER BY o ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING) AS earlier,
           CASE t WHEN 'supply' THEN (SELECT s.version FROM supplies s WHERE s.id = x.id)
                  ELSE (SELECT d.version FROM orders d WHERE d.id = x.id) END AS row_version
      FROM x
  ),
  -- One row per entity (ON CONFLICT may not touch a row twice in one statement): what its newest event says of what
  -- an apply changes, and what the first one says of the rest (a row the run creates is inserted by its first event).
  s AS (
    INSERT INTO supplies AS s (id, user_id, asset, amount, reserved, spent, status, home_region, version, created_at, updated_at)
    SELECT DISTINCT ON (id) id, first_value(p->>'userId') OVER w, first_value(p->>'asset') OVER w, (p->>'amount')::numeric,
           (p->>'reserved')::numeric, (p->>'spent')::numeric, p->>'status', first_value(p->>'homeRegion') OVER w, v,
           ts(first_value(p->'createdAt') OVER w), ts(p->'updatedAt')
      FROM x WHERE t = 'supply'
    WINDOW w AS (PARTITION BY id ORDER BY o)
     ORDER BY id, v DESC, o
    ON CONFLICT (id) DO UPDATE SET amount = EXCLUDED.amount, reserved = EXCLUDED.reserved, spent = EXCLUDED.spent,
      status = EXCLUDED.status, version = EXCLUDED.version, updated_at = EXCLUDED.updated_at
     WHERE s.version < EXCLUDED.version
  ), d AS (
    INSERT INTO orders AS d (id, user_id, asset, items, amount, status, claim_id, claimer_id, home_region, version, expires_at, created_at, updated_at)
    SELECT DISTINCT ON (id) id, first_value(p->>'userId') OVER w, first_value(p->>'asset') OVER w, first_value(p->'items') OVER w,
           first_value((p->>'amount')::numeric) OVER w, p->>'status', (p->>'claimId')::uuid, p->>'claimerId',
           first_value(p->>'homeRegion') OVER w, v, ts(p->'expiresAt'), ts(first_value(p->'createdAt') OVER w), ts(p->'updatedAt')
      FROM x WHERE t = 'order'
    WINDOW w AS (PARTITION BY id ORDER BY o)
     ORDER BY id, v DESC, o
    ON CONFLICT (id) DO UPDATE SET status = EXCLUDED.status, claim_id = EXCLUDED.claim_id, claimer_id = EXCLUDED.claimer_id,
      version = EXCLUDED.version, expires_at = EXCLUDED.expires_at, updated_at = EXCLUDED.updated_at
     WHERE d.version < EXCLUDED.version
  )
  SELECT jsonb_build_object(
           'applied', count(*) FILTER (WHERE v > greatest(coalesce(row_version, 0), coalesce(earlier, 0))),
           'changed', coalesce(jsonb_agg(jsonb_build_object('aggregateType', t, 'id', p->'id', 'userId', p->'userId',
               'claimerId', p->'claimerId', 'orderId', p->'orderId') ORDER BY o)
             FILTER (WHERE v > greatest(coalesce(row_version, 0), coalesce(earlier, 0))), '[]'::jsonb))
    INTO r FROM k;
  RETURN r;
END $$;

CREATE OR REPLACE FUNCTION apply_unfenced_events(p jsonb) RETURNS jsonb LANGUAGE plpgsql SET enable_seqscan = off AS $$
DECLARE
  evs jsonb := p->'events';
  e jsonb;
  x jsonb;
  applied integer := 0;
  skipped integer := 0;
  changed jsonb[] := '{}';
  run jsonb[] := '{}';
  one_by_one jsonb[];
  set_based boolean;
  r jsonb;
  newest timestamptz;
  st text;
  sup jsonb;
BEGIN
  -- One pass past the last event (e IS NULL there), to apply the run the batch ends with.
  FOR i IN 0 .. jsonb_array_length(evs) LOOP
    e := evs->i;
    IF e IS NOT NULL AND (e->>'aggregateType' = 'order' OR (e->>'aggregateType' = 'supply' AND NOT e->'payload' ? 'claimId')) THEN
      run := array_append(run, e);
      CONTINUE;
    END IF;
    -- A short run costs less one by one (apply_plain is one statement, but a heavier one); the event that ended the
    -- run is always applied alone.
    set_based := cardinality(run) >= 4;
    one_by_one := CASE WHEN set_based THEN '{}' ELSE run END || CASE WHEN e IS NULL THEN '{}' ELSE ARRAY[e] END;
    IF set_based THEN
      r := apply_plain(to_jsonb(run));
      applied := applied + (r->>'applied')::integer;
      skipped := skipped + cardinality(run) - (r->>'applied')::integer;
      changed := changed || ARRAY(SELECT jsonb_array_elements(r->'changed'));
      FOREACH x IN ARRAY run LOOP
        newest := greatest(newest, ts(x->'createdAt'));
      END LOOP;
    END IF;
    run := '{}';
    FOREACH x IN ARRAY one_by_one LOOP
      IF apply_event(x) THEN
        applied := applied + 1;
        changed := array_append(changed, jsonb_build_object('aggregateType', x->>'aggregateType', 'id', x->'payload'->'id',
          'userId', x->'payload'->'userId', 'claimerId', x->'payload'->'claimerId', 'orderId', x->'payload'->'orderId'));
      ELSE
        skipped := skipped + 1;
      END IF;
      -- A hold's life travels with its supply's events (they name the claim): every region keeps every hold, so a
      -- region that takes a supply's home region over ends the holds it finds there exactly once.
      IF x->>'aggregateType' = 'supply' AND x->'payload' ? 'claimId' THEN
        IF x->>'type' = 'SupplyReserved' AND x->'payload' ? 'orderId' THEN
          INSERT INTO holds (claim_id, supply_id, order_id, claimer_id, amount, order_region, status)
          VALUES ((x->'payload'->>'claimId')::uuid, (x->'payload'->>'id')::uuid, (x->'payload'->>'orderId')::uuid,
                  x->'payload'->>'claimerId', (x->'payload'->>'holdAmount')::numeric, x->'payload'->>'orderRegion', 'held')
          ON CONFLICT (claim_id) DO NOTHING;
        ELSIF x->>'type' IN ('SupplySpent', 'SupplyReleased') THEN
          UPDATE holds SET status = CASE WHEN x->>'type' = 'SupplySpent' THEN 'settled' ELSE 'released' END, updated_at = now()
           WHERE claim_id = (x->'payload'->>'claimId')::uuid AND status IN ('held', 'confirmed');
        END IF;
      END IF;
      IF x->>'aggregateType' = 'claim' AND p ? 'region' THEN
        st := x->'payload'->>'status';
        IF st = 'active' THEN
          UPDATE holds SET status = 'confirmed', updated_at = now() WHERE claim_id = (x->'payload'->>'id')::uuid AND status = 'held';
        ELSIF st IN ('settled', 'released') THEN
          sup := end_hold((x->'payload'->>'id')::uuid, st, p->>'region');
          IF sup IS NOT NULL THEN
            changed := array_append(changed, jsonb_build_object('aggregateType', 'supply', 'id', sup->'id', 'userId', sup->'userId'));
          END IF;
        END IF;
      END IF;
      newest := greatest(newest, ts(x->'createdAt'));
    END LOOP;
  END LOOP;
  INSERT INTO replication_progress AS r (source, lane, applied, skipped, last_event_at, last_applied_at, last_lag_ms)
  VALUES (p->>'source', coalesce((p->>'lane')::integer, 0), applied, skipped, newest, clock_timestamp(),
          (extract(epoch FROM clock_timestamp() - newest) * 1000)::bigint)
  ON CONFLICT (source, lane) DO UPDATE SET applied = r.applied + EXCLUDED.applied, skipped = r.skipped + EXCLUDED.skipped,
    last_event_at = greatest(r.last_event_at, EXCLUDED.last_event_at), last_applied_at = EXCLUDED.last_applied_at,
    last_lag_ms = EXCLUDED.last_lag_ms;
  RETURN jsonb_build_object('applied', applied, 'skipped', skipped, 'changed', to_jsonb(changed));
END $$;

-- Down Migration
CREATE OR REPLACE FUNCTION apply_unfenced_events(p jsonb) RETURNS jsonb LANGUAGE plpgsql SET enable_seqscan = off AS $$
DECLARE
  e jsonb;
  applied integer := 0;
  skipped integer := 0;
  changed jsonb[] := '{}';
  newest timestamptz;
  st text;
  sup jsonb;
BEGIN
  FOR e IN SELECT x FROM jsonb_array_elements(p->'events') x LOOP
    IF apply_event(e) THEN
      applied := applied + 1;
      changed := array_append(changed, jsonb_build_object('aggregateType', e->>'aggregateType', 'id', e->'payload'->'id',
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
          changed := array_append(changed, jsonb_build_object('aggregateType', 'supply', 'id', sup->'id', 'userId', sup->'userId'));
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
  RETURN jsonb_build_object('applied', applied, 'skipped', skipped, 'changed', to_jsonb(changed));
END $$;

DROP FUNCTION apply_plain(jsonb);
