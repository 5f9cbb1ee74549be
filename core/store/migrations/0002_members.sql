-- Kameng local database, version 2: members, stored value, points, automatic issuing,
-- settlement split, and the rollups the analytics read.

-- Personal data is sealed (AES-GCM, AD = member id) and found through keyed hashes.
CREATE TABLE member (
  id            TEXT PRIMARY KEY,
  merchant_id   TEXT NOT NULL,
  phone         BLOB,                         -- sealed; NULL once anonymised
  phone_ix      BLOB UNIQUE,                  -- HMAC of the normalised phone; NULL once merged or anonymised
  name          BLOB,                         -- sealed
  name_ix       BLOB,                         -- HMAC of the normalised name, for exact search
  birthday      BLOB,                         -- sealed "YYYY-MM-DD" or "--MM-DD"
  birth_month   INTEGER NOT NULL DEFAULT 0,   -- 1..12 for the birthday coupon; 0 unknown
  tags          TEXT NOT NULL DEFAULT '',     -- ",vip,staff," (leading and trailing commas for LIKE)
  consent       INTEGER NOT NULL DEFAULT 0,   -- marketing consent (个人信息保护法)
  consent_ms    INTEGER NOT NULL DEFAULT 0,   -- when it was given or withdrawn
  tier_id       TEXT NOT NULL DEFAULT '',
  status        TEXT NOT NULL DEFAULT 'active' CHECK (status IN ('active','merged','anonymised')),
  merged_into   TEXT NOT NULL DEFAULT '',
  store_id      TEXT NOT NULL,                -- where they signed up
  wallet        INTEGER NOT NULL DEFAULT 0,   -- cache of sum(wallet_entry.amount)
  points        INTEGER NOT NULL DEFAULT 0,   -- cache of sum(points_entry.points)
  spend         INTEGER NOT NULL DEFAULT 0,   -- lifetime purchases recorded, fen
  visits        INTEGER NOT NULL DEFAULT 0,   -- days with a purchase
  last_visit_ms INTEGER NOT NULL DEFAULT 0,
  created_ms    INTEGER NOT NULL,
  updated_ms    INTEGER NOT NULL
);
CREATE INDEX member_name ON member (name_ix) WHERE name_ix IS NOT NULL;
CREATE INDEX member_birth_month ON member (birth_month) WHERE birth_month > 0;

CREATE TABLE tier (
  id            TEXT PRIMARY KEY,
  name          TEXT NOT NULL UNIQUE,
  min_spend     INTEGER NOT NULL DEFAULT 0,     -- qualifying spend (fen) over the tier window
  min_points    INTEGER NOT NULL DEFAULT 0,     -- or points balance, by the loyalty settings
  multiplier_bp INTEGER NOT NULL DEFAULT 10000, -- points multiplier, 10000 = ×1
  created_ms    INTEGER NOT NULL
);

-- Stored value: the balance is the sum of these entries; member.wallet caches it.
CREATE TABLE wallet_entry (
  id          TEXT PRIMARY KEY,
  member_id   TEXT NOT NULL,
  kind        TEXT NOT NULL CHECK (kind IN ('topup','bonus','pay','refund','merge_in','merge_out')),
  amount      INTEGER NOT NULL,               -- signed fen
  ref         TEXT NOT NULL DEFAULT '',       -- till order or payment reference
  related_id  TEXT NOT NULL DEFAULT '',       -- refund → pay; bonus → topup; merge → other member
  store_id    TEXT NOT NULL,
  operator_id TEXT NOT NULL,
  device_id   TEXT NOT NULL,
  idem_key    TEXT,
  created_ms  INTEGER NOT NULL
) WITHOUT ROWID; -- ids are time-ordered: the table is its own id index, appended to
CREATE INDEX wallet_entry_member ON wallet_entry (member_id, created_ms);
CREATE INDEX wallet_entry_related ON wallet_entry (related_id) WHERE related_id <> '';
CREATE UNIQUE INDEX wallet_entry_idem ON wallet_entry (idem_key) WHERE idem_key IS NOT NULL;

-- Points: the balance is the sum of these entries; member.points caches it. Positive
-- entries are lots: remaining is what is left to spend or expire, first to expire first.
CREATE TABLE points_entry (
  id           TEXT PRIMARY KEY,
  member_id    TEXT NOT NULL,
  kind         TEXT NOT NULL CHECK (kind IN ('earn','spend','expire','adjust','reverse','merge_in','merge_out')),
  points       INTEGER NOT NULL,              -- signed
  remaining    INTEGER NOT NULL DEFAULT 0,
  expires_ms   INTEGER NOT NULL DEFAULT 0,    -- lots: 0 never
  order_amount INTEGER NOT NULL DEFAULT 0,    -- earn: the purchase it came from
  ref          TEXT NOT NULL DEFAULT '',
  related_id   TEXT NOT NULL DEFAULT '',      -- reverse → earn; spend → issued code; merge → other member
  campaign_id  TEXT NOT NULL DEFAULT '',
  reason       TEXT NOT NULL DEFAULT '',
  store_id     TEXT NOT NULL,
  operator_id  TEXT NOT NULL,
  device_id    TEXT NOT NULL,
  created_ms   INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX points_entry_member ON points_entry (member_id, created_ms);
CREATE INDEX points_lot ON points_entry (member_id, expires_ms) WHERE remaining > 0;
CREATE INDEX points_expiry ON points_entry (expires_ms) WHERE remaining > 0 AND expires_ms > 0;

-- Loyalty settings, top-up bonuses and rewards live in meta as JSON (key 'loyalty').

-- Automatic issuing: 新人券 (welcome), 复购券 (spend threshold, idle days), birthday month.
CREATE TABLE issue_rule (
  id          TEXT PRIMARY KEY,
  kind        TEXT NOT NULL CHECK (kind IN ('welcome','spend','idle','birthday')),
  campaign_id TEXT NOT NULL REFERENCES campaign(id),
  threshold   INTEGER NOT NULL DEFAULT 0,     -- spend: fen; idle: days without a visit
  active      INTEGER NOT NULL DEFAULT 1,
  created_ms  INTEGER NOT NULL
);

-- One row per rule, member and period: the unique key is what makes a rule fire once.
CREATE TABLE issued (
  rule_id    TEXT NOT NULL,
  member_id  TEXT NOT NULL,
  period     TEXT NOT NULL,                   -- '' once ever; birthday: the year; idle: the last visit day
  code       TEXT NOT NULL,
  created_ms INTEGER NOT NULL,
  PRIMARY KEY (rule_id, member_id, period)
) WITHOUT ROWID;

-- Who received a code, by member (a code can also go to a phone that is no member).
ALTER TABLE code ADD COLUMN member_id TEXT;
CREATE INDEX code_member ON code (member_id) WHERE member_id IS NOT NULL;

-- Redemptions gain the member and the settlement shares; the idempotency key is indexed
-- only where given, so a redemption without one writes one index page fewer.
CREATE TABLE redemption_v2 (
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
  idem_key          TEXT,
  member_id         TEXT,
  split             TEXT NOT NULL DEFAULT ''      -- shares as split when redeemed: {"party": fen, …}
);
INSERT INTO redemption_v2 (id, code, campaign_id, store_id, device_id, operator_id, order_ref, order_amount, discount, value,
  member_ix, status, created_ms, rolled_back_ms, rollback_reason, rollback_operator, idem_key)
  SELECT id, code, campaign_id, store_id, device_id, operator_id, order_ref, order_amount, discount, value,
  member_ix, status, created_ms, rolled_back_ms, rollback_reason, rollback_operator, idem_key FROM redemption;
DROP TABLE redemption;
ALTER TABLE redemption_v2 RENAME TO redemption;
CREATE UNIQUE INDEX redemption_idem ON redemption (idem_key) WHERE idem_key IS NOT NULL;
CREATE INDEX redemption_code ON redemption (code);
CREATE INDEX redemption_member ON redemption (campaign_id, member_ix) WHERE member_ix IS NOT NULL;
CREATE INDEX redemption_created ON redemption (created_ms);
CREATE INDEX redemption_member_id ON redemption (member_id) WHERE member_id IS NOT NULL;

-- The outbox's uuid needs no index: mutations are identified by (device, mid), and an
-- index would cost a page write on every change.
CREATE TABLE outbox_v2 (
  mid       INTEGER PRIMARY KEY,
  uuid      TEXT NOT NULL,
  device_id TEXT NOT NULL,
  name      TEXT NOT NULL,
  args      TEXT NOT NULL,
  hlc       INTEGER NOT NULL,
  wall_ms   INTEGER NOT NULL,
  pushed_ms INTEGER NOT NULL DEFAULT 0
);
INSERT INTO outbox_v2 SELECT mid, uuid, device_id, name, args, hlc, wall_ms, pushed_ms FROM outbox;
DROP TABLE outbox;
ALTER TABLE outbox_v2 RENAME TO outbox;

-- Settlement (分账): parties and percentages per campaign, per store, or by default.
CREATE TABLE split_rule (
  id         TEXT PRIMARY KEY,
  scope      TEXT NOT NULL CHECK (scope IN ('campaign','store','default')),
  scope_id   TEXT NOT NULL DEFAULT '',
  parties    TEXT NOT NULL,                   -- JSON [{"party":"brand","percent_bp":6000}, …]
  remainder  TEXT NOT NULL,                   -- the party that takes the fen left by rounding
  created_ms INTEGER NOT NULL,
  updated_ms INTEGER NOT NULL,
  UNIQUE (scope, scope_id)
);

-- Per party × day × store × campaign, so a statement never scans redemptions.
CREATE TABLE settle_rollup (
  party       TEXT NOT NULL,
  day         TEXT NOT NULL,
  store_id    TEXT NOT NULL,
  campaign_id TEXT NOT NULL,
  redeemed    INTEGER NOT NULL DEFAULT 0,
  rolled_back INTEGER NOT NULL DEFAULT 0,
  gross       INTEGER NOT NULL DEFAULT 0,     -- shares of redemptions
  reversed    INTEGER NOT NULL DEFAULT 0,     -- shares taken back by rollbacks (positive)
  PRIMARY KEY (party, day, store_id, campaign_id)
) WITHOUT ROWID;

-- Redemptions per day × hour × store (the hour-of-week heatmap).
CREATE TABLE rollup_hour (
  day       TEXT NOT NULL,
  hour      INTEGER NOT NULL,
  store_id  TEXT NOT NULL,
  redeemed  INTEGER NOT NULL DEFAULT 0,
  PRIMARY KEY (day, hour, store_id)
) WITHOUT ROWID;

-- Member purchases per day × store (repeat-purchase rate, visits).
CREATE TABLE member_visit (
  day       TEXT NOT NULL,
  member_id TEXT NOT NULL,
  store_id  TEXT NOT NULL,
  orders    INTEGER NOT NULL DEFAULT 0,
  amount    INTEGER NOT NULL DEFAULT 0,
  PRIMARY KEY (day, member_id, store_id)
) WITHOUT ROWID;
CREATE INDEX member_visit_member ON member_visit (member_id, day);
