-- Up Migration
-- Fencing the event log (docs/multi-region.md, "Failover"). A region's relay may have events in flight when it is
-- cut off; the log can take them after another region took its home region over (and caught up with the log's end).
-- Those events must count for no one: the new owner never saw them, and the old one supersedes them on its return.
-- So whoever takes a home region over writes a marker (OwnershipFenced: home region, new epoch) into every partition
-- of the old owner's log before its first write, and catches up to the markers. Partitions are read in order by
-- every region, so all agree on the cut: what comes before a marker is applied, and an event after it of that home
-- region under an older epoch is skipped. log_fences keeps the cut per source and lane (partition).
CREATE TABLE log_fences (
  source      text NOT NULL,
  lane        integer NOT NULL,
  home_region text NOT NULL,
  -- Events of home_region under an epoch below this one, read after the marker, are skipped.
  epoch       bigint NOT NULL,
  owner       text NOT NULL,
  fenced_at   timestamptz NOT NULL DEFAULT now(),
  -- Events skipped by this fence: what the old owner wrote that no one else will apply (it supersedes them).
  skipped     bigint NOT NULL DEFAULT 0,
  PRIMARY KEY (source, lane, home_region)
);

-- Which events this region applied, by id, for a while: a region that returns from a lost epoch asks its successor
-- which of its events the log delivered before the cut (services/regions.service.ts repairLost). Its relay may
-- have published a batch and failed to mark it (its database went away, its lease ran out): those events were
-- applied everywhere and must not be superseded at home; the others were never seen and must be.
-- Kept for a minute (what a relay can have in flight when its region is lost is younger), and for a week for an
-- epoch that has ended here (the successor's record of what it saw of the old owner: a minute of one region's
-- events per ownership change).
CREATE TABLE applied_events (
  event_id    uuid PRIMARY KEY,
  home_region text NOT NULL,
  epoch       bigint NOT NULL,
  applied_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX applied_events_age_idx ON applied_events (applied_at);

ALTER FUNCTION apply_events(jsonb) RENAME TO apply_unfenced_events;

-- p = {source, lane, region, events} -> {applied, skipped, fenced, changed}: markers recorded, fenced events
-- dropped, the rest applied in order by apply_unfenced_events (in this transaction).
CREATE FUNCTION apply_events(p jsonb) RETURNS jsonb LANGUAGE plpgsql AS $$
DECLARE
  v_lane integer := coalesce((p->>'lane')::integer, 0);
  fences jsonb;
  e jsonb;
  kept jsonb := '[]'::jsonb;
  fenced jsonb := '{}'::jsonb;
  n integer := 0;
  home text;
  r jsonb;
BEGIN
  SELECT coalesce(jsonb_object_agg(home_region, epoch), '{}'::jsonb) INTO fences
    FROM log_fences WHERE source = p->>'source' AND lane = v_lane;
  FOR e IN SELECT x FROM jsonb_array_elements(p->'events') x LOOP
    home := e->>'homeRegion';
    IF e->>'type' = 'OwnershipFenced' THEN
      INSERT INTO log_fences AS f (source, lane, home_region, epoch, owner)
      VALUES (p->>'source', v_lane, home, (e->>'epoch')::bigint, e->'payload'->>'owner')
      ON CONFLICT (source, lane, home_region) DO UPDATE SET epoch = EXCLUDED.epoch, owner = EXCLUDED.owner, fenced_at = now()
       WHERE f.epoch < EXCLUDED.epoch;
      IF NOT fences ? home OR (fences->>home)::bigint < (e->>'epoch')::bigint THEN
        fences := fences || jsonb_build_object(home, (e->>'epoch')::bigint);
      END IF;
    ELSIF fences ? home AND (e->>'epoch')::bigint < (fences->>home)::bigint THEN
      fenced := fenced || jsonb_build_object(home, coalesce((fenced->>home)::integer, 0) + 1);
      n := n + 1;
    ELSE
      kept := kept || jsonb_build_array(e);
    END IF;
  END LOOP;
  FOR home IN SELECT jsonb_object_keys(fenced) LOOP
    UPDATE log_fences SET skipped = skipped + (fenced->>home)::integer
     WHERE source = p->>'source' AND lane = v_lane AND home_region = home;
  END LOOP;
  r := apply_unfenced_events(jsonb_set(p, '{events}', kept));
  INSERT INTO applied_events (event_id, home_region, epoch)
  SELECT (x->>'eventId')::uuid, x->>'homeRegion', (x->>'epoch')::bigint FROM jsonb_array_elements(kept) x
  ON CONFLICT (event_id) DO NOTHING;
  RETURN r || jsonb_build_object('fenced', n);
END $$;

-- Forgets applied event ids older than p_keep, but those of an epoch that has ended here (for p_keep_ended); at
-- most p_limit.
CREATE FUNCTION prune_applied_events(p_keep interval, p_keep_ended interval, p_limit integer) RETURNS integer LANGUAGE sql AS $$
  WITH old AS (
    SELECT a.event_id FROM applied_events a
     WHERE a.applied_at < now() - p_keep
       AND (a.applied_at < now() - p_keep_ended
            OR NOT EXISTS (SELECT 1 FROM ownership_leases w WHERE w.home_region = a.home_region AND w.epoch > a.epoch))
     LIMIT p_limit
  ), gone AS (DELETE FROM applied_events a USING old WHERE a.event_id = old.event_id RETURNING 1)
  SELECT count(*)::integer FROM gone
$$;

-- Down Migration
DROP FUNCTION prune_applied_events(interval, interval, integer);
DROP FUNCTION apply_events(jsonb);
ALTER FUNCTION apply_unfenced_events(jsonb) RENAME TO apply_events;
DROP TABLE applied_events;
DROP TABLE log_fences;
