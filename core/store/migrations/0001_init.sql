-- Kameng local database, version 1.
CREATE TABLE meta (
  key   TEXT PRIMARY KEY,
  value BLOB
) WITHOUT ROWID;

CREATE TABLE merchant (
  id         TEXT PRIMARY KEY,
  name       TEXT NOT NULL,
  created_ms INTEGER NOT NULL
);

CREATE TABLE store (
  id          TEXT PRIMARY KEY,
  merchant_id TEXT NOT NULL REFERENCES merchant(id),
  name        TEXT NOT NULL,
  time_zone   TEXT NOT NULL,
  created_ms  INTEGER NOT NULL,
  UNIQUE (merchant_id, name)
);

CREATE TABLE device (
  id          TEXT PRIMARY KEY,
  merchant_id TEXT NOT NULL REFERENCES merchant(id),
  store_id    TEXT NOT NULL REFERENCES store(id),
  name        TEXT NOT NULL,
  created_ms  INTEGER NOT NULL
);

CREATE TABLE operator (
  id            TEXT PRIMARY KEY,
  merchant_id   TEXT NOT NULL REFERENCES merchant(id),
  name          TEXT NOT NULL,
  role          TEXT NOT NULL CHECK (role IN ('owner','manager','cashier','technician')),
  store_id      TEXT REFERENCES store(id),
  password_hash TEXT NOT NULL,
  disabled      INTEGER NOT NULL DEFAULT 0,
  created_ms    INTEGER NOT NULL,
  UNIQUE (merchant_id, name)
);

CREATE TABLE campaign (
  id           TEXT PRIMARY KEY,
  merchant_id  TEXT NOT NULL REFERENCES merchant(id),
  name         TEXT NOT NULL,
  description  TEXT NOT NULL DEFAULT '',
  kind         TEXT NOT NULL CHECK (kind IN ('amount_off','percent_off','gift_card','card_key')),
  status       TEXT NOT NULL CHECK (status IN ('active','paused','archived')),
  currency     TEXT NOT NULL DEFAULT 'CNY',
  amount_off   INTEGER NOT NULL DEFAULT 0,
  percent_off  INTEGER NOT NULL DEFAULT 0,
  max_discount INTEGER NOT NULL DEFAULT 0,
  min_spend    INTEGER NOT NULL DEFAULT 0,
  face_value   INTEGER NOT NULL DEFAULT 0,
  rules        TEXT NOT NULL,
  format       TEXT NOT NULL,
  issued       INTEGER NOT NULL DEFAULT 0,
  redeemed     INTEGER NOT NULL DEFAULT 0,
  spent        INTEGER NOT NULL DEFAULT 0,
  created_ms   INTEGER NOT NULL,
  updated_ms   INTEGER NOT NULL,
  UNIQUE (merchant_id, name)
);

CREATE TABLE batch (
  id          TEXT PRIMARY KEY,
  campaign_id TEXT NOT NULL REFERENCES campaign(id),
  source      TEXT NOT NULL CHECK (source IN ('generate','import')),
  count       INTEGER NOT NULL,
  operator_id TEXT NOT NULL,
  created_ms  INTEGER NOT NULL
);

-- A code's identity is its normalised text; the rowid keeps inserts appending.
CREATE TABLE code (
  id             INTEGER PRIMARY KEY,
  code           TEXT NOT NULL UNIQUE,
  campaign_id    TEXT NOT NULL,
  batch_id       TEXT NOT NULL,
  status         TEXT NOT NULL DEFAULT 'active',
  uses           INTEGER NOT NULL DEFAULT 0,
  balance        INTEGER NOT NULL DEFAULT 0,
  secret         BLOB,
  phone          BLOB,
  phone_ix       BLOB,
  distributed_ms INTEGER NOT NULL DEFAULT 0,
  valid_from_ms  INTEGER NOT NULL DEFAULT 0,
  valid_to_ms    INTEGER NOT NULL DEFAULT 0,
  created_ms     INTEGER NOT NULL
);
CREATE INDEX code_campaign ON code (campaign_id);
CREATE INDEX code_phone ON code (phone_ix) WHERE phone_ix IS NOT NULL;

CREATE TABLE redemption (
  id                TEXT PRIMARY KEY,
  code              TEXT NOT NULL,
  campaign_id       TEXT NOT NULL REFERENCES campaign(id),
  store_id          TEXT NOT NULL,
  device_id         TEXT NOT NULL,
  operator_id       TEXT NOT NULL,
  order_ref         TEXT NOT NULL DEFAULT '',
  order_amount      INTEGER NOT NULL DEFAULT 0,
  discount          INTEGER NOT NULL DEFAULT 0,
  value             INTEGER NOT NULL DEFAULT 0,
  member_ix         BLOB,
  status            TEXT NOT NULL CHECK (status IN ('done','rolled_back')),
  created_ms        INTEGER NOT NULL,
  rolled_back_ms    INTEGER NOT NULL DEFAULT 0,
  rollback_reason   TEXT NOT NULL DEFAULT '',
  rollback_operator TEXT NOT NULL DEFAULT '',
  idem_key          TEXT UNIQUE
);
CREATE INDEX redemption_code ON redemption (code);
CREATE INDEX redemption_member ON redemption (campaign_id, member_ix) WHERE member_ix IS NOT NULL;
CREATE INDEX redemption_created ON redemption (created_ms);

-- Gift-card balances are sums of these entries; code.balance caches the sum.
CREATE TABLE ledger (
  id            TEXT PRIMARY KEY,
  code          TEXT NOT NULL,
  campaign_id   TEXT NOT NULL,
  kind          TEXT NOT NULL CHECK (kind IN ('issue','debit','credit')),
  amount        INTEGER NOT NULL,
  redemption_id TEXT,
  created_ms    INTEGER NOT NULL
);
CREATE INDEX ledger_code ON ledger (code);

CREATE TABLE audit (
  seq         INTEGER PRIMARY KEY,
  id          TEXT NOT NULL,
  ts_ms       INTEGER NOT NULL,
  operator_id TEXT NOT NULL,
  device_id   TEXT NOT NULL,
  action      TEXT NOT NULL,
  entity      TEXT NOT NULL,
  entity_id   TEXT NOT NULL,
  detail      TEXT NOT NULL,
  prev_hash   TEXT NOT NULL,
  hash        TEXT NOT NULL
);

-- Per day (in the store's zone) × store × campaign, so reports never scan redemptions.
CREATE TABLE rollup (
  day          TEXT NOT NULL,
  store_id     TEXT NOT NULL,
  campaign_id  TEXT NOT NULL,
  generated    INTEGER NOT NULL DEFAULT 0,
  distributed  INTEGER NOT NULL DEFAULT 0,
  redeemed     INTEGER NOT NULL DEFAULT 0,
  rolled_back  INTEGER NOT NULL DEFAULT 0,
  discount     INTEGER NOT NULL DEFAULT 0,
  order_amount INTEGER NOT NULL DEFAULT 0,
  value        INTEGER NOT NULL DEFAULT 0,
  PRIMARY KEY (day, store_id, campaign_id)
) WITHOUT ROWID;

CREATE TABLE outbox (
  mid       INTEGER PRIMARY KEY,
  uuid      TEXT NOT NULL UNIQUE,
  device_id TEXT NOT NULL,
  name      TEXT NOT NULL,
  args      TEXT NOT NULL,
  hlc       INTEGER NOT NULL,
  wall_ms   INTEGER NOT NULL,
  pushed_ms INTEGER NOT NULL DEFAULT 0
);

CREATE TABLE check_failure (
  id    INTEGER PRIMARY KEY,
  actor TEXT NOT NULL,
  ts_ms INTEGER NOT NULL
);
CREATE INDEX check_failure_actor ON check_failure (actor, ts_ms);
