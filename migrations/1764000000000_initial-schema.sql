-- Up Migration
-- Money is NUMERIC(38,18); every row carries its home region and a version for cross-region replication.

CREATE TABLE supplies (
  id           uuid PRIMARY KEY,
  user_id      text NOT NULL,
  asset        text NOT NULL,
  amount       numeric(38,18) NOT NULL,
  reserved     numeric(38,18) NOT NULL DEFAULT 0,
  spent        numeric(38,18) NOT NULL DEFAULT 0,
  status       text NOT NULL DEFAULT 'active' CHECK (status IN ('active','paused','closed')),
  home_region  text NOT NULL,
  version      integer NOT NULL DEFAULT 1,
  created_at   timestamptz NOT NULL DEFAULT now(),
  updated_at   timestamptz NOT NULL DEFAULT now(),
  -- the final guard of invariant 2: available = amount - reserved - spent never goes negative
  CONSTRAINT supplies_balances_check CHECK (amount > 0 AND reserved >= 0 AND spent >= 0 AND amount - reserved - spent >= 0),
  CONSTRAINT supplies_close_check CHECK (status <> 'closed' OR reserved = 0)
);
CREATE INDEX supplies_user_idx ON supplies (user_id, created_at DESC);

CREATE TABLE orders (
  id           uuid PRIMARY KEY,
  user_id      text NOT NULL,
  asset        text NOT NULL,
  items        jsonb NOT NULL,
  amount       numeric(38,18) NOT NULL CHECK (amount > 0),
  status       text NOT NULL DEFAULT 'open' CHECK (status IN ('open','claimed','completed','cancelled','expired')),
  claim_id     uuid,
  claimer_id   text,
  home_region  text NOT NULL,
  version      integer NOT NULL DEFAULT 1,
  expires_at   timestamptz NOT NULL,
  created_at   timestamptz NOT NULL DEFAULT now(),
  updated_at   timestamptz NOT NULL DEFAULT now(),
  CONSTRAINT orders_claim_check CHECK ((status IN ('claimed','completed')) = (claim_id IS NOT NULL))
);
CREATE INDEX orders_status_idx ON orders (status, asset, created_at DESC);
CREATE INDEX orders_user_idx ON orders (user_id, created_at DESC);
CREATE INDEX orders_claimer_idx ON orders (claimer_id, created_at DESC) WHERE claimer_id IS NOT NULL;
CREATE INDEX orders_open_expiry_idx ON orders (expires_at) WHERE status = 'open';

CREATE TABLE claims (
  id               uuid PRIMARY KEY,
  order_id         uuid NOT NULL REFERENCES orders (id),
  claimer_id       text NOT NULL,
  supply_id        uuid NOT NULL REFERENCES supplies (id),
  amount           numeric(38,18) NOT NULL CHECK (amount > 0),
  status           text NOT NULL DEFAULT 'active' CHECK (status IN ('active','settled','released')),
  idempotency_key  text NOT NULL,
  region           text NOT NULL,
  epoch            bigint NOT NULL DEFAULT 0,
  expires_at       timestamptz NOT NULL,
  created_at       timestamptz NOT NULL DEFAULT now(),
  settled_at       timestamptz,
  released_at      timestamptz
);
-- invariant 1: at most one non-released claim per order
CREATE UNIQUE INDEX claims_one_live_per_order ON claims (order_id) WHERE status <> 'released';
-- invariant 4: one claim per (claimer, Idempotency-Key)
CREATE UNIQUE INDEX claims_idempotency ON claims (claimer_id, idempotency_key);
CREATE INDEX claims_claimer_idx ON claims (claimer_id, created_at DESC);
CREATE INDEX claims_supply_idx ON claims (supply_id, status);
CREATE INDEX claims_hold_idx ON claims (expires_at) WHERE status = 'active';

-- Transactional outbox: written in the same transaction as the change it describes.
CREATE TABLE outbox (
  id                 bigserial PRIMARY KEY,
  event_id           uuid NOT NULL UNIQUE,
  aggregate_type     text NOT NULL,
  aggregate_id       uuid NOT NULL,
  aggregate_version  integer NOT NULL,
  event_type         text NOT NULL,
  region             text NOT NULL,
  payload            jsonb NOT NULL,
  created_at         timestamptz NOT NULL DEFAULT now(),
  published_at       timestamptz
);
CREATE INDEX outbox_unpublished_idx ON outbox (id) WHERE published_at IS NULL;

-- Down Migration
DROP TABLE outbox;
DROP TABLE claims;
DROP TABLE orders;
DROP TABLE supplies;
