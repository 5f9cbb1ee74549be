-- The server's schema (PostgreSQL). Every table is scoped by merchant_id; times are UTC
-- milliseconds, money is fen.

CREATE TABLE merchant (
	id         TEXT PRIMARY KEY,
	name       TEXT NOT NULL,
	epoch      BIGINT NOT NULL DEFAULT 1,
	seq        BIGINT NOT NULL DEFAULT 0, -- the one counter every stream's seq comes from
	log_count  BIGINT NOT NULL DEFAULT 0,
	code_count BIGINT NOT NULL DEFAULT 0,
	created_ms BIGINT NOT NULL
);

CREATE TABLE enrol_token (
	hash        TEXT PRIMARY KEY, -- sha256 of the token, hex
	merchant_id TEXT REFERENCES merchant(id), -- NULL: founds a merchant
	label       TEXT NOT NULL,
	expires_ms  BIGINT NOT NULL,
	created_ms  BIGINT NOT NULL
);

CREATE TABLE device (
	id            TEXT PRIMARY KEY,
	merchant_id   TEXT NOT NULL REFERENCES merchant(id),
	name          TEXT NOT NULL,
	store_id      TEXT NOT NULL DEFAULT '',
	token_hash    TEXT NOT NULL UNIQUE,
	last_mid      BIGINT NOT NULL DEFAULT 0,
	registered_ms BIGINT NOT NULL,
	last_seen_ms  BIGINT NOT NULL
);
CREATE INDEX device_merchant ON device(merchant_id);

CREATE TABLE log (
	merchant_id TEXT NOT NULL,
	seq         BIGINT NOT NULL,
	device_id   TEXT NOT NULL,
	mid         BIGINT NOT NULL, -- 0 for the server's own entries
	uuid        TEXT NOT NULL,
	name        TEXT NOT NULL,
	args        TEXT NOT NULL,
	hlc         BIGINT NOT NULL,
	wall_ms     BIGINT NOT NULL,
	status      TEXT NOT NULL,
	reason      TEXT NOT NULL DEFAULT '',
	case_id     TEXT NOT NULL DEFAULT '',
	message     TEXT NOT NULL DEFAULT '',
	received_ms BIGINT NOT NULL,
	PRIMARY KEY (merchant_id, seq)
);
CREATE UNIQUE INDEX log_device_mid ON log(device_id, mid) WHERE device_id <> 'server';

CREATE TABLE code (
	merchant_id   TEXT NOT NULL,
	code          TEXT NOT NULL,
	campaign_id   TEXT NOT NULL,
	batch_id      TEXT NOT NULL DEFAULT '',
	max_uses      BIGINT NOT NULL, -- 0: unlimited (gift cards: limited by balance)
	uses          BIGINT NOT NULL DEFAULT 0,
	balance       BIGINT NOT NULL DEFAULT 0,
	issued        BIGINT NOT NULL DEFAULT 0, -- a gift card's opening value
	status        TEXT NOT NULL DEFAULT 'active', -- active | voided | frozen
	valid_from_ms BIGINT NOT NULL DEFAULT 0,
	valid_to_ms   BIGINT NOT NULL DEFAULT 0,
	created_ms    BIGINT NOT NULL,
	seq           BIGINT NOT NULL,
	PRIMARY KEY (merchant_id, code)
) WITH (fillfactor = 80); -- room on the page for the online redemption's in-place (HOT) updates
CREATE INDEX code_seq ON code(merchant_id, seq);

CREATE TABLE redemption (
	merchant_id   TEXT NOT NULL,
	id            TEXT NOT NULL,
	code          TEXT NOT NULL,
	campaign_id   TEXT NOT NULL DEFAULT '',
	device_id     TEXT NOT NULL,
	operator_id   TEXT NOT NULL DEFAULT '',
	store_id      TEXT NOT NULL DEFAULT '',
	idem_key      TEXT, -- NULL when none was given
	order_ref     TEXT NOT NULL DEFAULT '',
	order_amount  BIGINT NOT NULL DEFAULT 0,
	value         BIGINT NOT NULL DEFAULT 0,
	status        TEXT NOT NULL, -- standing | reversed | rolled_back | claim | expired (a claim released after ClaimTTL)
	uses_after    BIGINT NOT NULL DEFAULT 0, -- a claim's answer, repeated for its idempotency key
	balance_after BIGINT NOT NULL DEFAULT 0,
	created_ms    BIGINT NOT NULL,
	PRIMARY KEY (merchant_id, id)
);
CREATE UNIQUE INDEX redemption_idem ON redemption(merchant_id, code, idem_key);
-- Online claims still waiting for their device's redemption (released after ClaimTTL).
CREATE INDEX redemption_claim ON redemption(merchant_id, created_ms) WHERE status = 'claim';

CREATE TABLE campaign (
	merchant_id TEXT NOT NULL,
	id          TEXT NOT NULL,
	body        TEXT NOT NULL, -- core.Campaign as JSON
	clock       TEXT NOT NULL, -- per field: the HLC and device of its last change
	PRIMARY KEY (merchant_id, id)
);

CREATE TABLE account (
	merchant_id TEXT NOT NULL,
	kind        TEXT NOT NULL, -- wallet | gift_card | points
	id          TEXT NOT NULL,
	balance     BIGINT NOT NULL DEFAULT 0,
	frozen      BIGINT NOT NULL DEFAULT 0,
	PRIMARY KEY (merchant_id, kind, id)
);

CREATE TABLE entry (
	merchant_id TEXT NOT NULL,
	id          TEXT NOT NULL,
	kind        TEXT NOT NULL,
	account_id  TEXT NOT NULL,
	amount      BIGINT NOT NULL,
	device_id   TEXT NOT NULL,
	created_ms  BIGINT NOT NULL,
	PRIMARY KEY (merchant_id, id)
);
CREATE INDEX entry_account ON entry(merchant_id, kind, account_id);

CREATE TABLE allowance (
	merchant_id TEXT NOT NULL,
	device_id   TEXT NOT NULL,
	kind        TEXT NOT NULL,
	account_id  TEXT NOT NULL,
	granted     BIGINT NOT NULL,
	spent       BIGINT NOT NULL DEFAULT 0,
	expires_ms  BIGINT NOT NULL,
	PRIMARY KEY (merchant_id, device_id, kind, account_id)
);
CREATE INDEX allowance_account ON allowance(merchant_id, kind, account_id);

CREATE TABLE sync_case (
	id          TEXT PRIMARY KEY,
	merchant_id TEXT NOT NULL,
	kind        TEXT NOT NULL,
	status      TEXT NOT NULL, -- open | resolved
	subject     TEXT NOT NULL,
	detail      TEXT NOT NULL,
	created_ms  BIGINT NOT NULL,
	resolved_ms BIGINT NOT NULL DEFAULT 0,
	action      TEXT NOT NULL DEFAULT '',
	resolved_by TEXT NOT NULL DEFAULT '',
	note        TEXT NOT NULL DEFAULT ''
);
CREATE INDEX sync_case_open ON sync_case(merchant_id, status, kind, subject);
