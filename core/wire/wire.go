// Package wire holds the JSON bodies of the hosted sync API (/v1). The server and the
// sync client both import it, so the two sides cannot drift; server/openapi.yaml
// describes the same shapes and the server's tests check real responses against it.
package wire

import "encoding/json"

// Limits shared by both sides.
const (
	MaxPushMutations = 500     // per push request
	MaxPushBytes     = 1 << 20 // encoded mutations per push request
	MaxBodyBytes     = 4 << 20 // any request body; the server refuses more
	MaxPullLimit     = 5000    // changes per stream page
	MaxCodesUpload   = 10000   // codes per upload request
	ServerDevice     = "server"
)

// Error is the body of every non-2xx answer. Code is stable and machine-readable;
// Message is English for logs.
type Error struct {
	Code        string `json:"code"`
	Message     string `json:"message"`
	ExpectedMID int64  `json:"expected_mid,omitempty"` // code mid_gap: the next mid the server expects
	RetryAfter  int64  `json:"retry_after_ms,omitempty"`
}

// Error codes.
const (
	ErrBadRequest   = "bad_request"
	ErrUnauthorized = "unauthorized"
	ErrForbidden    = "forbidden"
	ErrNotFound     = "not_found"
	ErrConflict     = "conflict"
	ErrMIDGap       = "mid_gap"
	ErrEpoch        = "epoch_changed"
	ErrTooLarge     = "too_large"
	ErrRateLimited  = "rate_limited"
	ErrInternal     = "internal"
)

// Health is GET /v1/health.
type Health struct {
	Status   string `json:"status"` // ok
	Store    string `json:"store"`  // sqlite | postgres
	ServerMS int64  `json:"server_ms"`
	Version  string `json:"version"`
}

// RegisterRequest is POST /v1/devices: a device joins a merchant with an enrolment
// token. A device that already holds a merchant (MerchantID set) may found the
// server's copy of that merchant with a fresh token; an empty device joins the
// token's merchant and bootstraps by pulling.
type RegisterRequest struct {
	Token        string `json:"token"`
	DeviceID     string `json:"device_id"`
	DeviceName   string `json:"device_name"`
	MerchantID   string `json:"merchant_id,omitempty"`
	MerchantName string `json:"merchant_name,omitempty"`
	StoreID      string `json:"store_id,omitempty"`
}

// RegisterResponse carries the device's bearer token: shown once, stored hashed.
type RegisterResponse struct {
	DeviceToken string `json:"device_token"`
	MerchantID  string `json:"merchant_id"`
	Epoch       int64  `json:"epoch"`
	LastMID     int64  `json:"last_mid"` // mutations of this device the server already has
	ServerMS    int64  `json:"server_ms"`
}

// Mutation is one change a person made on a device, replayed by the server.
type Mutation struct {
	MID    int64           `json:"mid"` // per-device sequence, from 1, no gaps
	UUID   string          `json:"uuid"`
	Name   string          `json:"name"` // name@version, e.g. code.redeem@1
	Args   json.RawMessage `json:"args"`
	HLC    int64           `json:"hlc"`
	WallMS int64           `json:"wall_ms"`
}

// PushRequest is POST /v1/sync/push: mutations in mid order, the first one being the
// server's last_mid + 1 (or one it already has).
type PushRequest struct {
	Epoch     int64      `json:"epoch"`
	ClientMS  int64      `json:"client_ms"` // the device's wall clock when sending (skew check)
	Mutations []Mutation `json:"mutations"`
}

// Result statuses.
const (
	Applied  = "applied"  // took effect
	Rejected = "rejected" // permanently refused; recorded so the queue moves on
	Flagged  = "flagged"  // took effect or was held back, and a case was opened
)

// Result is the server's outcome for one mutation; a repeated mid returns the stored one.
type Result struct {
	MID     int64  `json:"mid"`
	Status  string `json:"status"`
	Reason  string `json:"reason,omitempty"` // machine-readable, e.g. already_redeemed
	CaseID  string `json:"case_id,omitempty"`
	Message string `json:"message,omitempty"`
}

// PushResponse acknowledges every mutation up to LastMID.
type PushResponse struct {
	LastMID  int64    `json:"last_mid"`
	Results  []Result `json:"results"`
	ServerMS int64    `json:"server_ms"`
}

// Stream names. The log carries every mutation of the merchant (including the
// server's own: cases, reversals, freezes) in the order the server applied them;
// codes carries code rows in bulk (a first pull of a large merchant).
const (
	StreamLog   = "log"
	StreamCodes = "codes"
)

// Cursor is a position in one stream: changes after Seq.
type Cursor struct {
	Stream string `json:"stream"`
	Seq    int64  `json:"seq"`
}

// PullRequest is POST /v1/sync/pull. Epoch 0 means "first pull".
type PullRequest struct {
	Epoch   int64    `json:"epoch"`
	Cursors []Cursor `json:"cursors"`
	Limit   int      `json:"limit,omitempty"`
}

// Change is one entry of a stream: a mutation (log) or a code row (codes).
type Change struct {
	Seq      int64     `json:"seq"`
	DeviceID string    `json:"device_id,omitempty"` // log: who made it (server for the server's own)
	Status   string    `json:"status,omitempty"`    // log: applied | rejected | flagged
	Reason   string    `json:"reason,omitempty"`    // log: the result's reason; already_redeemed did not stand, late_offline stands
	Mutation *Mutation `json:"mutation,omitempty"`
	Code     *Code     `json:"code,omitempty"`
}

// Page is one stream's changes; a client applies a page in one transaction and
// stores Next as its cursor.
type Page struct {
	Stream  string   `json:"stream"`
	Changes []Change `json:"changes"`
	Next    int64    `json:"next"`
	More    bool     `json:"more"`
	Total   int64    `json:"total"` // changes in the stream up to now (for progress)
}

// PullResponse answers a pull. Reset means the server's epoch changed (a restore):
// the client drops its cursors and pulls from the start, keeping its outbox.
type PullResponse struct {
	Epoch    int64  `json:"epoch"`
	Reset    bool   `json:"reset,omitempty"`
	ServerMS int64  `json:"server_ms"`
	Pages    []Page `json:"pages"`
}

// Code is a code row as the server holds it. Secrets (card-key PINs) and phones stay
// on the device that holds them.
type Code struct {
	Code        string `json:"code"`
	CampaignID  string `json:"campaign_id"`
	BatchID     string `json:"batch_id"`
	MaxUses     int64  `json:"max_uses"` // 0: unlimited
	Uses        int64  `json:"uses"`
	Balance     int64  `json:"balance"` // gift cards, fen
	Status      string `json:"status"`  // active | voided
	ValidFromMS int64  `json:"valid_from_ms,omitempty"`
	ValidToMS   int64  `json:"valid_to_ms,omitempty"`
	CreatedMS   int64  `json:"created_ms"`
	// Issued is a gift card's value when it was issued (its opening ledger entry), fen.
	// Devices rebuild a code's uses and balance by replaying the log on top of it, so
	// a row whose Balance already reflects redemptions is not debited twice. Uploads
	// carry it; a server that keeps and returns it makes that exact (when it is 0 a
	// device falls back to Balance for an unused code, else the campaign's face value).
	Issued int64 `json:"issued,omitempty"`
}

// CodesUpload is POST /v1/codes/upload: the rows of a generated or imported batch,
// sent before the batch's mutation; repeated rows are ignored.
type CodesUpload struct {
	BatchID string `json:"batch_id"`
	Codes   []Code `json:"codes"`
}

// CodesUploaded answers an upload.
type CodesUploaded struct {
	Inserted int64 `json:"inserted"`
}

// RedeemRequest is POST /v1/codes/check and /v1/codes/redeem: the server decides a
// single-use code centrally while the device is online. The device then commits its
// own redemption with the same idempotency key and pushes it; the server matches the
// two by that key.
type RedeemRequest struct {
	Code        string `json:"code"`
	IdemKey     string `json:"idempotency_key"`
	StoreID     string `json:"store_id"`
	OperatorID  string `json:"operator_id"`
	OrderAmount int64  `json:"order_amount"`
	Amount      int64  `json:"amount,omitempty"` // gift cards: value to take
}

// RedeemResponse is the server's verdict.
type RedeemResponse struct {
	OK      bool   `json:"ok"`
	Reason  string `json:"reason"` // ok | not_found | already_redeemed | voided | insufficient_balance | frozen
	Uses    int64  `json:"uses"`
	Balance int64  `json:"balance"`
	ClaimID string `json:"claim_id,omitempty"`
}

// Account kinds for balances kept as ledgers.
const (
	AccountWallet   = "wallet"    // member stored value; id = member id
	AccountGiftCard = "gift_card" // id = code
	AccountPoints   = "points"    // id = member id
)

// AllowanceRequest is POST /v1/allowances: reserve part of a balance for this device
// to spend while offline (escrow).
type AllowanceRequest struct {
	Kind      string `json:"kind"`
	AccountID string `json:"account_id"`
	Amount    int64  `json:"amount"`
}

// Allowance is what a device may spend offline from one account until it expires.
type Allowance struct {
	Kind      string `json:"kind"`
	AccountID string `json:"account_id"`
	Granted   int64  `json:"granted"`
	Spent     int64  `json:"spent"`
	ExpiresMS int64  `json:"expires_ms"`
}

// Allowances lists a device's allowances (GET /v1/allowances).
type Allowances struct {
	Allowances []Allowance `json:"allowances"`
}

// Case kinds.
const (
	CaseDoubleRedemption = "DOUBLE_REDEMPTION"
	CaseOverdraft        = "OVERDRAFT"
	CaseCampaignEdit     = "CAMPAIGN_EDIT"
	CaseLateOffline      = "LATE_OFFLINE"
	CaseClockSkew        = "CLOCK_SKEW"
)

// Case actions.
const (
	ActionAccept   = "accept"
	ActionReverse  = "reverse" // undo the later redemption
	ActionFreeze   = "freeze"  // freeze the card or wallet
	ActionCharge   = "charge"  // the customer pays the difference
	ActionWriteOff = "write_off"
)

// Case is an exception for a person to settle.
type Case struct {
	ID         string          `json:"id"`
	Kind       string          `json:"kind"`
	Status     string          `json:"status"`  // open | resolved
	Subject    string          `json:"subject"` // the code, member or campaign concerned
	Detail     json.RawMessage `json:"detail"`  // both devices, cashiers, orders and times…
	CreatedMS  int64           `json:"created_ms"`
	ResolvedMS int64           `json:"resolved_ms,omitempty"`
	Action     string          `json:"action,omitempty"`
	ResolvedBy string          `json:"resolved_by,omitempty"`
	Note       string          `json:"note,omitempty"`
}

// Cases is GET /v1/cases.
type Cases struct {
	Cases []Case `json:"cases"`
}

// ResolveRequest is POST /v1/cases/{id}/resolve.
type ResolveRequest struct {
	Action     string `json:"action"`
	OperatorID string `json:"operator_id"`
	Note       string `json:"note,omitempty"`
}
