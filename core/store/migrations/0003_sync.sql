-- Kameng local database, version 3: the device side of sync. Registration, the
-- acknowledged mid, the last sync and its error live in meta (keys 'sync_*'); the
-- device token is sealed with the data key there.

-- Position in each pulled stream: the last seq applied (committed with the page).
CREATE TABLE sync_cursor (
  stream TEXT PRIMARY KEY,
  seq    INTEGER NOT NULL
) WITHOUT ROWID;

-- Remote mutations applied here, by uuid: a page applied twice changes nothing.
CREATE TABLE sync_applied (
  uuid TEXT PRIMARY KEY,
  seq  INTEGER NOT NULL
) WITHOUT ROWID;

-- Remote mutations this version cannot apply, kept so a newer version can.
CREATE TABLE sync_skipped (
  seq       INTEGER PRIMARY KEY,
  uuid      TEXT NOT NULL,
  device_id TEXT NOT NULL,
  name      TEXT NOT NULL,
  args      TEXT NOT NULL,
  status    TEXT NOT NULL,
  why       TEXT NOT NULL
);

-- The server's answer to our own mutations that it rejected or flagged.
CREATE TABLE sync_result (
  mid     INTEGER PRIMARY KEY,
  status  TEXT NOT NULL,
  reason  TEXT NOT NULL DEFAULT '',
  case_id TEXT NOT NULL DEFAULT '',
  message TEXT NOT NULL DEFAULT '',
  ts_ms   INTEGER NOT NULL
);

-- Exceptions (异常) as replicated from the server's log.
CREATE TABLE sync_case (
  id          TEXT PRIMARY KEY,
  kind        TEXT NOT NULL,
  status      TEXT NOT NULL CHECK (status IN ('open','resolved')),
  subject     TEXT NOT NULL DEFAULT '',
  detail      TEXT NOT NULL DEFAULT '{}',
  created_ms  INTEGER NOT NULL,
  resolved_ms INTEGER NOT NULL DEFAULT 0,
  action      TEXT NOT NULL DEFAULT '',
  resolved_by TEXT NOT NULL DEFAULT '',
  note        TEXT NOT NULL DEFAULT ''
);
CREATE INDEX sync_case_status ON sync_case (status, created_ms);

-- What the server lets this device spend offline, per account (escrow) ...
CREATE TABLE sync_allowance (
  kind       TEXT NOT NULL,
  account_id TEXT NOT NULL,
  granted    INTEGER NOT NULL,
  spent      INTEGER NOT NULL,            -- as the server counted it
  expires_ms INTEGER NOT NULL,
  PRIMARY KEY (kind, account_id)
) WITHOUT ROWID;

-- ... and what was spent offline since: rows up to the acknowledged mid are in the
-- server's count by the next refresh.
CREATE TABLE sync_spend (
  mid        INTEGER PRIMARY KEY,
  kind       TEXT NOT NULL,
  account_id TEXT NOT NULL,
  amount     INTEGER NOT NULL
);

-- Effects on codes whose row has not arrived yet (the log can overtake the codes
-- stream): applied when the code comes.
CREATE TABLE sync_pending_code (
  id     INTEGER PRIMARY KEY,
  code   TEXT NOT NULL,
  effect TEXT NOT NULL
);
CREATE INDEX sync_pending_code_code ON sync_pending_code (code);

-- Per-field clocks of last-writer-wins fields (campaign fields and rules, loyalty
-- settings): the HLC of the change that set the value held now, and the device that
-- made it, which orders changes with equal HLCs as the server does.
CREATE TABLE field_clock (
  entity TEXT NOT NULL,
  id     TEXT NOT NULL,
  field  TEXT NOT NULL,
  hlc    INTEGER NOT NULL,
  device TEXT NOT NULL DEFAULT '',
  PRIMARY KEY (entity, id, field)
) WITHOUT ROWID;

-- Accounts frozen after an overdraft: a member's wallet, a gift card.
ALTER TABLE member ADD COLUMN frozen INTEGER NOT NULL DEFAULT 0;
ALTER TABLE code ADD COLUMN frozen INTEGER NOT NULL DEFAULT 0;
