-- Up Migration
-- void_claim answered from claim_ids alone, which only cross-region claims write. A hold a hand-back adopted
-- (1765200000000) is for a claim written directly, with no claim_ids row: the supply's region, resolving that hold,
-- asked the order's region, which voided the id and answered 'void', and the hold was released while its claim was
-- live (the CI kill drill's "other violations" after the hand-back fix). A claim that exists is claimed.
CREATE OR REPLACE FUNCTION void_claim(v_claim uuid) RETURNS text LANGUAGE plpgsql SET enable_seqscan = off AS $$
DECLARE v_outcome text;
BEGIN
  IF EXISTS (SELECT 1 FROM claims WHERE id = v_claim) THEN RETURN 'claimed'; END IF;
  INSERT INTO claim_ids (id, outcome) VALUES (v_claim, 'void') ON CONFLICT (id) DO NOTHING;
  -- A statement of its own: it sees a claim that committed while the insert waited on the key.
  SELECT outcome INTO v_outcome FROM claim_ids WHERE id = v_claim;
  RETURN v_outcome;
END $$;

-- Down Migration
CREATE OR REPLACE FUNCTION void_claim(v_claim uuid) RETURNS text LANGUAGE plpgsql SET enable_seqscan = off AS $$
DECLARE v_outcome text;
BEGIN
  INSERT INTO claim_ids (id, outcome) VALUES (v_claim, 'void') ON CONFLICT (id) DO NOTHING;
  -- A statement of its own: it sees a claim that committed while the insert waited on the key.
  SELECT outcome INTO v_outcome FROM claim_ids WHERE id = v_claim;
  RETURN v_outcome;
END $$;
