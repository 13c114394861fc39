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
  RETURN r || jsonb_build_object('fenced', n);
END $$;

-- Down Migration
DROP FUNCTION apply_events(jsonb);
ALTER FUNCTION apply_unfenced_events(jsonb) RENAME TO apply_events;
DROP TABLE log_fences;
