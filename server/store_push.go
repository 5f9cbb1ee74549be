package server

import (
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/kameng/kameng/core"
	"github.com/kameng/kameng/core/wire"
)

// Server-originated log entries.
const (
	mCaseOpen          = "case.open@1"
	mCaseResolve       = "case.resolve@1"
	mRedemptionReverse = "redemption.reverse@1"
	mAccountFreeze     = "account.freeze@1"
)

// Reasons in results and cases.
const (
	reasonBadArgs         = "bad_args"
	reasonBadName         = "bad_name"
	reasonServerOnly      = "server_only"
	reasonNotFound        = "not_found"
	reasonAlreadyRedeemed = "already_redeemed"
	reasonVoided          = "voided"
	reasonOverdraft       = "overdraft"
	reasonLateOffline     = "late_offline"
	reasonCampaignEdit    = "campaign_edit_conflict"
	reasonAlreadyResolved = "already_resolved"
)

const (
	clockSkewLimit  = 5 * time.Minute
	lateOfflineDflt = 24 * time.Hour
)

// logRow is one log entry of a write transaction. The rows are written together
// when the transaction ends (flushLog): one statement for a whole push instead of
// one round trip per mutation. Nothing reads a transaction's own new log rows
// before it commits (a push reads only the stored results of earlier pushes).
type logRow struct {
	seq                             int64
	device                          string
	mid                             int64 // 0 for the server's own entries
	uuid, name, args                string
	hlc, wallMS                     int64
	status, reason, caseID, message string
}

func (t *tx) addLog(r logRow) {
	t.logRows = append(t.logRows, r)
	t.logAdded++
}

const insertLog = `INSERT INTO log(merchant_id, seq, device_id, mid, uuid, name, args, hlc, wall_ms, status, reason, case_id, message, received_ms)
	VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)`

// insertLogPG writes any number of log rows in one statement whose text does not
// depend on the count, so PostgreSQL prepares it once per connection.
const insertLogPG = `INSERT INTO log(merchant_id, seq, device_id, mid, uuid, name, args, hlc, wall_ms, status, reason, case_id, message, received_ms)
	SELECT ?, u.seq, u.device_id, u.mid, u.uuid, u.name, u.args, u.hlc, u.wall_ms, u.status, u.reason, u.case_id, u.message, ?
	FROM unnest(?::bigint[], ?::text[], ?::bigint[], ?::text[], ?::text[], ?::text[], ?::bigint[], ?::bigint[], ?::text[], ?::text[], ?::text[], ?::text[])
		AS u(seq, device_id, mid, uuid, name, args, hlc, wall_ms, status, reason, case_id, message)`

// The SQLite multi-row insert: 100 rows × 14 = 1,400 parameters (the limit is 32,766).
const sqliteLogChunk = 100

var insertLogChunk = insertLog + strings.Repeat(",(?,?,?,?,?,?,?,?,?,?,?,?,?,?)", sqliteLogChunk-1)

// flushLog writes the transaction's pending log rows, in seq order.
func (t *tx) flushLog() error {
	rows := t.logRows
	t.logRows = nil
	if len(rows) == 0 {
		return nil
	}
	if !t.s.pg {
		// SQLite has no round trip to save, but one statement per 100 rows still
		// takes about 8% off a push of 100,000 mutations. The statement text is
		// fixed, so it is prepared once; the rest go one by one.
		for len(rows) >= sqliteLogChunk {
			args := make([]any, 0, 14*sqliteLogChunk)
			for _, r := range rows[:sqliteLogChunk] {
				args = append(args, t.merchant, r.seq, r.device, r.mid, r.uuid, r.name, r.args, r.hlc, r.wallMS,
					r.status, r.reason, r.caseID, r.message, t.now)
			}
			if _, err := t.exec(insertLogChunk, args...); err != nil {
				return err
			}
			rows = rows[sqliteLogChunk:]
		}
		for _, r := range rows {
			if _, err := t.exec(insertLog, t.merchant, r.seq, r.device, r.mid, r.uuid, r.name, r.args, r.hlc, r.wallMS,
				r.status, r.reason, r.caseID, r.message, t.now); err != nil {
				return err
			}
		}
		return nil
	}
	n := len(rows)
	seq, mid, hlc, wall := make([]int64, n), make([]int64, n), make([]int64, n), make([]int64, n)
	device, uuid, name, args := make([]string, n), make([]string, n), make([]string, n), make([]string, n)
	status, reason, caseID, message := make([]string, n), make([]string, n), make([]string, n), make([]string, n)
	for i, r := range rows {
		seq[i], device[i], mid[i], uuid[i], name[i], args[i] = r.seq, r.device, r.mid, r.uuid, r.name, r.args
		hlc[i], wall[i], status[i], reason[i], caseID[i], message[i] = r.hlc, r.wallMS, r.status, r.reason, r.caseID, r.message
	}
	_, err := t.exec(insertLogPG, t.merchant, t.now, seq, device, mid, uuid, name, args, hlc, wall, status, reason, caseID, message)
	return err
}

func (s *sqlStore) Push(d *Device, req wire.PushRequest, now time.Time) (*wire.PushResponse, error) {
	if len(req.Mutations) > wire.MaxPushMutations {
		return nil, errorf(wire.ErrTooLarge, fmt.Sprintf("at most %d mutations per push", wire.MaxPushMutations))
	}
	size := 0
	for i, m := range req.Mutations {
		if size += len(m.Args) + len(m.Name) + len(m.UUID); size > wire.MaxPushBytes {
			return nil, errorf(wire.ErrTooLarge, fmt.Sprintf("at most %d bytes of mutations per push", wire.MaxPushBytes))
		}
		if m.MID < 1 {
			return nil, errorf(wire.ErrBadRequest, "mids start at 1")
		}
		if i > 0 && m.MID != req.Mutations[i-1].MID+1 {
			return nil, errorf(wire.ErrBadRequest, "mutations must be in mid order without gaps")
		}
	}
	var resp *wire.PushResponse
	err := s.write(d.MerchantID, d.ID, now, func(t *tx) error {
		resp = &wire.PushResponse{ServerMS: t.now, Results: make([]wire.Result, 0, len(req.Mutations))}
		// The device row is locked first, then the merchant's: every writer takes
		// them in this order.
		var last int64
		err := t.queryRow(`UPDATE device SET last_seen_ms = ? WHERE id = ? AND merchant_id = ? RETURNING last_mid`,
			t.now, d.ID, d.MerchantID).Scan(&last)
		if errors.Is(err, sql.ErrNoRows) {
			return errorf(wire.ErrUnauthorized, "unknown device")
		}
		if err != nil {
			return err
		}
		if err := t.lockMerchant(); err != nil {
			return err
		}
		if req.Epoch != t.epoch {
			return errorf(wire.ErrEpoch, fmt.Sprintf("the server's epoch is %d: pull again from the start", t.epoch))
		}
		if len(req.Mutations) > 0 && req.Mutations[0].MID > last+1 {
			return &Error{Code: wire.ErrMIDGap, Message: fmt.Sprintf("expected mid %d", last+1), ExpectedMID: last + 1}
		}
		if req.ClientMS != 0 {
			if err := t.clockSkew(req.ClientMS); err != nil {
				return err
			}
		}
		start := last
		for i := range req.Mutations {
			m := &req.Mutations[i]
			if m.MID <= last {
				r, err := t.storedResult(m.MID)
				if err != nil {
					return err
				}
				resp.Results = append(resp.Results, r)
				continue
			}
			r, err := t.apply(m)
			if err != nil {
				return fmt.Errorf("mid %d (%s): %w", m.MID, m.Name, err)
			}
			last = m.MID
			resp.Results = append(resp.Results, r)
		}
		if last != start {
			n, err := t.affected(`UPDATE device SET last_mid = ? WHERE id = ? AND last_mid = ?`, last, d.ID, start)
			if err != nil {
				return err
			}
			if n != 1 {
				return errorf(wire.ErrConflict, "another push of this device ran at the same time; push again")
			}
		}
		resp.LastMID = last
		_, err = t.releaseExpiredClaims()
		return err
	})
	if err != nil {
		return nil, err
	}
	return resp, nil
}

// storedResult is the answer recorded for a mutation the server already has.
func (t *tx) storedResult(mid int64) (wire.Result, error) {
	r := wire.Result{MID: mid}
	err := t.queryRow(`SELECT status, reason, case_id, message FROM log WHERE device_id = ? AND mid = ? AND device_id <> 'server' AND merchant_id = ?`,
		t.device, mid, t.merchant).Scan(&r.Status, &r.Reason, &r.CaseID, &r.Message)
	if errors.Is(err, sql.ErrNoRows) {
		// Acknowledged before a restore that lost the row: it is still acknowledged.
		return wire.Result{MID: mid, Status: wire.Applied, Message: "acknowledged earlier"}, nil
	}
	return r, err
}

// clockSkew opens one CLOCK_SKEW case per device while one is open.
func (t *tx) clockSkew(clientMS int64) error {
	diff := clientMS - t.now
	if diff < 0 {
		diff = -diff
	}
	if diff <= clockSkewLimit.Milliseconds() {
		return nil
	}
	open, err := t.openCaseID(wire.CaseClockSkew, t.device)
	if err != nil || open != "" {
		return err
	}
	_, err = t.openCase(wire.CaseClockSkew, t.device, map[string]any{
		"device_id": t.device, "client_ms": clientMS, "server_ms": t.now, "skew_ms": clientMS - t.now})
	return err
}

// apply re-executes one new mutation and records it with its result. A mutation the
// server refuses is decided before anything is written, so it is recorded as
// rejected alone and the queue moves on.
func (t *tx) apply(m *wire.Mutation) (wire.Result, error) {
	seq := t.nextSeq() // before any server entry the mutation causes
	res := wire.Result{MID: m.MID, Status: wire.Applied}
	args := string(m.Args)
	if len(m.Args) == 0 || !json.Valid(m.Args) {
		args = "null"
		reject(&res, reasonBadArgs, "the arguments are not JSON")
	} else if err := t.effect(m, &res); err != nil {
		return res, err
	}
	t.addLog(logRow{seq: seq, device: t.device, mid: m.MID, uuid: m.UUID, name: m.Name, args: args, hlc: m.HLC, wallMS: m.WallMS,
		status: res.Status, reason: res.Reason, caseID: res.CaseID, message: res.Message})
	return res, nil
}

func reject(res *wire.Result, reason, msg string) {
	res.Status, res.Reason, res.Message = wire.Rejected, reason, msg
}

func flag(res *wire.Result, reason, caseID string) {
	res.Status, res.Reason, res.CaseID = wire.Flagged, reason, caseID
}

// effect applies the authoritative effect of the mutations the server decides;
// everything else is recorded as applied.
func (t *tx) effect(m *wire.Mutation, res *wire.Result) error {
	switch m.Name {
	case "code.redeem@1":
		return t.applyRedeem(m, res)
	case "code.rollback@1":
		return t.applyRollback(m, res)
	case "codes.void@1":
		return t.applyVoid(m, res)
	case "wallet.topup@1", "wallet.pay@1", "wallet.refund@1":
		return t.applyWallet(m, res)
	case "points.earn@1", "points.spend@1", "points.adjust@1", "points.reverse@1":
		return t.applyPoints(m, res)
	case "points.expire@1":
		return t.applyPointsExpire(m, res)
	case "member.merge@1":
		return t.applyMerge(m, res)
	case "campaign.create@1":
		return t.applyCampaignCreate(m, res)
	case "campaign.edit@1":
		return t.applyCampaignEdit(m, res)
	case "campaign.status@1":
		return t.applyCampaignStatus(m, res)
	case mCaseResolve:
		return t.applyCaseResolve(m, res)
	case mCaseOpen, mRedemptionReverse, mAccountFreeze:
		reject(res, reasonServerOnly, m.Name+" is written by the server only")
		return nil
	}
	if i := strings.LastIndexByte(m.Name, '@'); i <= 0 || i == len(m.Name)-1 {
		reject(res, reasonBadName, "a mutation is named name@version")
	}
	return nil
}

// serverLog appends one of the server's own entries to the merchant's log.
func (t *tx) serverLog(name string, args any) error {
	b, err := json.Marshal(args)
	if err != nil {
		return err
	}
	seq := t.nextSeq()
	t.addLog(logRow{seq: seq, device: wire.ServerDevice, uuid: core.NewID(), name: name, args: string(b),
		hlc: t.now<<16 | (seq & 0xffff), wallMS: t.now, status: wire.Applied})
	return nil
}

// openCaseID returns the open case of a kind about a subject, if any.
func (t *tx) openCaseID(kind, subject string) (string, error) {
	var id string
	err := t.queryRow(`SELECT id FROM sync_case WHERE merchant_id = ? AND status = 'open' AND kind = ? AND subject = ? LIMIT 1`,
		t.merchant, kind, subject).Scan(&id)
	if errors.Is(err, sql.ErrNoRows) {
		return "", nil
	}
	return id, err
}

// openCase records an exception for a person to settle and logs it for the devices.
func (t *tx) openCase(kind, subject string, detail any) (*wire.Case, error) {
	b, err := json.Marshal(detail)
	if err != nil {
		return nil, err
	}
	c := &wire.Case{ID: core.NewID(), Kind: kind, Status: "open", Subject: subject, Detail: b, CreatedMS: t.now}
	if _, err := t.exec(`INSERT INTO sync_case(id, merchant_id, kind, status, subject, detail, created_ms) VALUES (?,?,?,?,?,?,?)`,
		c.ID, t.merchant, c.Kind, c.Status, c.Subject, string(c.Detail), c.CreatedMS); err != nil {
		return nil, err
	}
	return c, t.serverLog(mCaseOpen, c)
}

// ---- codes and redemptions ----

type redeemArgs struct {
	Redemption *core.Redemption `json:"redemption"`
}

// side is one redemption as a case shows it.
type side struct {
	RedemptionID string `json:"redemption_id"`
	DeviceID     string `json:"device_id"`
	OperatorID   string `json:"operator_id"`
	StoreID      string `json:"store_id,omitempty"`
	OrderRef     string `json:"order_ref,omitempty"`
	OrderAmount  int64  `json:"order_amount"`
	Value        int64  `json:"value,omitempty"`
	CreatedMS    int64  `json:"created_ms"`
	Status       string `json:"status,omitempty"`
}

func nullable(s string) any {
	if s == "" {
		return nil
	}
	return s
}

// maxUses is what a campaign allows per code: coupons uses_per_code (at least 1),
// card keys 1, gift cards unlimited (their balance limits them).
func maxUses(c *core.Campaign) int64 {
	switch c.Kind {
	case core.KindGiftCard:
		return 0
	case core.KindCardKey:
		return 1
	}
	return int64(max(c.Rules.UsesPerCode, 1))
}

func (t *tx) applyRedeem(m *wire.Mutation, res *wire.Result) error {
	var a redeemArgs
	if err := json.Unmarshal(m.Args, &a); err != nil || a.Redemption == nil || a.Redemption.ID == "" || a.Redemption.Code == "" {
		reject(res, reasonBadArgs, "code.redeem@1 needs a redemption with an id and a code")
		return nil
	}
	r := a.Redemption
	camp, err := t.campaign(r.CampaignID)
	if err != nil {
		return err
	}
	gift := camp != nil && camp.c.Kind == core.KindGiftCard
	value := int64(r.Value)
	if !gift {
		value = 0
	}
	// Redeemed online first: the claim under the same idempotency key is this
	// redemption, already counted.
	if r.IdemKey != "" {
		n, err := t.affected(`UPDATE redemption SET id = ?, status = 'standing', device_id = ?, operator_id = ?, store_id = ?,
				order_ref = ?, order_amount = ?, created_ms = ?
			WHERE merchant_id = ? AND code = ? AND idem_key = ? AND status = 'claim'`,
			r.ID, t.device, r.OperatorID, r.StoreID, r.OrderRef, int64(r.OrderAmount), r.Created, t.merchant, r.Code, r.IdemKey)
		if err != nil {
			return err
		}
		if n == 1 {
			// Republish the code row: its uses changed with the claim.
			_, err := t.exec(`UPDATE code SET seq = ? WHERE merchant_id = ? AND code = ?`, t.nextSeq(), t.merchant, r.Code)
			res.Message = "matched the online claim"
			return err
		}
	}
	// The code row's next seq, handed back when the redemption is a replay.
	seq := t.nextSeq()
	inserted, used, err := t.recordRedemption(r, gift, value, seq)
	if err != nil {
		return err
	}
	if !inserted {
		t.seq--
		res.Message = "the redemption is already recorded"
		return nil
	}
	if !used {
		var status string
		err = t.queryRow(`SELECT status FROM code WHERE merchant_id = ? AND code = ?`, t.merchant, r.Code).Scan(&status)
		switch {
		case errors.Is(err, sql.ErrNoRows):
			// Not uploaded (yet): the row starts from this redemption, so it stands
			// and a second one is a double.
			mu, face := int64(1), int64(0)
			if camp != nil {
				mu = maxUses(&camp.c)
				if gift {
					face = int64(camp.c.FaceValue)
				}
			}
			if _, err := t.exec(`INSERT INTO code(merchant_id, code, campaign_id, batch_id, max_uses, uses, balance, issued, status, created_ms, seq)
				VALUES (?,?,?,'',?,1,?,?,'active',?,?)`, t.merchant, r.Code, r.CampaignID, mu, face-value, face, t.now, seq); err != nil {
				return err
			}
			t.codesAdded++
		case err != nil:
			return err
		case status == core.CodeVoided:
			return t.loses(r, res, reasonVoided, "")
		default:
			return t.double(r, res)
		}
	}
	if gift {
		if err := t.post(wire.AccountGiftCard, r.Code, r.ID, -value, res); err != nil {
			return err
		}
	}
	if res.Status == wire.Applied {
		return t.lateOffline(m, r, camp, res)
	}
	return nil
}

// Statements of recordRedemption. The conditional update is the decision: a
// coupon or card key is used while it is active and has uses left; a gift card
// until it is voided (its balance may go below zero: an overdraft case follows).
const (
	insertRedemption = `INSERT INTO redemption(merchant_id, id, code, campaign_id, device_id, operator_id, store_id, idem_key,
			order_ref, order_amount, value, status, created_ms)
		VALUES (?,?,?,?,?,?,?,?,?,?,?,'standing',?) ON CONFLICT DO NOTHING`
	useCode = `UPDATE code SET uses = uses + 1, seq = ?
		WHERE merchant_id = ? AND code = ? AND status = 'active' AND (max_uses = 0 OR uses < max_uses)`
	useGiftCard = `UPDATE code SET uses = uses + 1, balance = balance - ?, seq = ?
		WHERE merchant_id = ? AND code = ? AND status <> 'voided'`
	// On PostgreSQL both in one statement, one round trip: the update runs only
	// when the insert added the row (a replayed redemption id changes nothing).
	recordRedemptionPG = `WITH r AS (` + insertRedemption + ` RETURNING 1),
		c AS (%s AND EXISTS (SELECT 1 FROM r) RETURNING 1)
		SELECT EXISTS (SELECT 1 FROM r), EXISTS (SELECT 1 FROM c)`
)

var (
	recordRedemptionCodePG = fmt.Sprintf(recordRedemptionPG, useCode)
	recordRedemptionGiftPG = fmt.Sprintf(recordRedemptionPG, useGiftCard)
)

// recordRedemption inserts a pushed redemption, unless its id is already known
// (inserted false), and then tries the conditional update on its code row with seq
// (used false when the code is unknown, voided, or used up). The first redemption to
// reach the server stands.
func (t *tx) recordRedemption(r *core.Redemption, gift bool, value, seq int64) (inserted, used bool, err error) {
	args := []any{t.merchant, r.ID, r.Code, r.CampaignID, t.device, r.OperatorID, r.StoreID, nullable(r.IdemKey),
		r.OrderRef, int64(r.OrderAmount), value, r.Created}
	use := []any{seq, t.merchant, r.Code}
	if gift {
		use = append([]any{value}, use...)
	}
	if t.s.pg {
		q := recordRedemptionCodePG
		if gift {
			q = recordRedemptionGiftPG
		}
		err = t.queryRow(q, append(args, use...)...).Scan(&inserted, &used)
		return inserted, used, err
	}
	n, err := t.affected(insertRedemption, args...)
	if err != nil || n == 0 {
		return false, false, err
	}
	q := useCode
	if gift {
		q = useGiftCard
	}
	n, err = t.affected(q, use...)
	return true, n == 1, err
}

// loses reverses a redemption the server does not let stand, on the server and
// (through the log) on the device that made it.
func (t *tx) loses(r *core.Redemption, res *wire.Result, reason, caseID string) error {
	if _, err := t.exec(`UPDATE redemption SET status = 'reversed' WHERE merchant_id = ? AND id = ?`, t.merchant, r.ID); err != nil {
		return err
	}
	if err := t.serverLog(mRedemptionReverse, map[string]any{"redemption_id": r.ID, "code": r.Code, "reason": reason, "case_id": caseID}); err != nil {
		return err
	}
	if caseID == "" {
		reject(res, reason, "code "+r.Code+" is "+reason)
	} else {
		flag(res, reason, caseID)
	}
	return nil
}

// double records a second redemption of a used-up code: a DOUBLE_REDEMPTION case
// with both sides, and the later one reversed.
func (t *tx) double(r *core.Redemption, res *wire.Result) error {
	var w side
	err := t.queryRow(`SELECT id, device_id, operator_id, store_id, order_ref, order_amount, value, created_ms, status FROM redemption
		WHERE merchant_id = ? AND code = ? AND status IN ('standing', 'claim') AND id <> ? ORDER BY created_ms, id LIMIT 1`,
		t.merchant, r.Code, r.ID).Scan(&w.RedemptionID, &w.DeviceID, &w.OperatorID, &w.StoreID, &w.OrderRef, &w.OrderAmount, &w.Value, &w.CreatedMS, &w.Status)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return err
	}
	l := side{RedemptionID: r.ID, DeviceID: t.device, OperatorID: r.OperatorID, StoreID: r.StoreID, OrderRef: r.OrderRef,
		OrderAmount: int64(r.OrderAmount), Value: int64(r.Value), CreatedMS: r.Created}
	c, err := t.openCase(wire.CaseDoubleRedemption, r.Code, map[string]any{
		"code": r.Code, "campaign_id": r.CampaignID, "winner": w, "loser": l, "loser_redemption_id": r.ID, "received_ms": t.now})
	if err != nil {
		return err
	}
	return t.loses(r, res, reasonAlreadyRedeemed, c.ID)
}

// lateOffline flags a redemption that reaches the server long after it was made.
func (t *tx) lateOffline(m *wire.Mutation, r *core.Redemption, camp *campaignRow, res *wire.Result) error {
	limit := lateOfflineDflt
	if camp != nil && camp.c.Rules.Offline.MaxAgeMins > 0 {
		limit = time.Duration(camp.c.Rules.Offline.MaxAgeMins) * time.Minute
	}
	age := t.now - m.WallMS
	if m.WallMS <= 0 || age <= limit.Milliseconds() {
		return nil
	}
	c, err := t.openCase(wire.CaseLateOffline, r.Code, map[string]any{
		"code": r.Code, "redemption_id": r.ID, "device_id": t.device, "operator_id": r.OperatorID, "order_ref": r.OrderRef,
		"order_amount": r.OrderAmount, "wall_ms": m.WallMS, "received_ms": t.now, "age_ms": age, "max_age_ms": limit.Milliseconds()})
	if err != nil {
		return err
	}
	flag(res, reasonLateOffline, c.ID)
	return nil
}

func (t *tx) applyRollback(m *wire.Mutation, res *wire.Result) error {
	var a struct {
		RedemptionID string `json:"redemption_id"`
	}
	if err := json.Unmarshal(m.Args, &a); err != nil || a.RedemptionID == "" {
		reject(res, reasonBadArgs, "code.rollback@1 needs a redemption_id")
		return nil
	}
	var code, campaignID, status string
	var value int64
	err := t.queryRow(`SELECT code, campaign_id, status, value FROM redemption WHERE merchant_id = ? AND id = ?`+t.s.forUpdate,
		t.merchant, a.RedemptionID).Scan(&code, &campaignID, &status, &value)
	if errors.Is(err, sql.ErrNoRows) {
		reject(res, reasonNotFound, "no redemption "+a.RedemptionID)
		return nil
	}
	if err != nil {
		return err
	}
	if status != "standing" {
		res.Message = "the redemption is already " + status
		return nil
	}
	if _, err := t.exec(`UPDATE redemption SET status = 'rolled_back' WHERE merchant_id = ? AND id = ?`, t.merchant, a.RedemptionID); err != nil {
		return err
	}
	if _, err := t.exec(`UPDATE code SET uses = uses - 1, balance = balance + ?, seq = ? WHERE merchant_id = ? AND code = ? AND uses > 0`,
		value, t.nextSeq(), t.merchant, code); err != nil {
		return err
	}
	if value != 0 {
		return t.post(wire.AccountGiftCard, code, "rollback:"+a.RedemptionID, value, res)
	}
	return nil
}

func (t *tx) applyVoid(m *wire.Mutation, res *wire.Result) error {
	var a struct {
		Code string `json:"code"`
	}
	if err := json.Unmarshal(m.Args, &a); err != nil || a.Code == "" {
		reject(res, reasonBadArgs, "codes.void@1 needs a code")
		return nil
	}
	n, err := t.affected(`UPDATE code SET status = 'voided', seq = ? WHERE merchant_id = ? AND code = ? AND status <> 'voided'`,
		t.nextSeq(), t.merchant, a.Code)
	if err != nil || n == 1 {
		return err
	}
	var one int
	err = t.queryRow(`SELECT 1 FROM code WHERE merchant_id = ? AND code = ?`, t.merchant, a.Code).Scan(&one)
	if errors.Is(err, sql.ErrNoRows) {
		reject(res, reasonNotFound, "no code "+a.Code)
		return nil
	}
	return err
}

// ---- ledgers: wallets, gift cards, points ----

// post adds one entry to an account's ledger and its balance; an entry id seen
// before changes nothing. A debit counts against the device's allowance, and one
// that takes the balance below zero opens an OVERDRAFT case and freezes the account.
// Gift cards keep their balance on the code row (moved by the caller).
func (t *tx) post(kind, account, entryID string, amount int64, res *wire.Result) error {
	n, err := t.affected(`INSERT INTO entry(merchant_id, id, kind, account_id, amount, device_id, created_ms) VALUES (?,?,?,?,?,?,?) ON CONFLICT DO NOTHING`,
		t.merchant, entryID, kind, account, amount, t.device, t.now)
	if err != nil || n == 0 {
		return err
	}
	var balance int64
	if kind == wire.AccountGiftCard {
		err = t.queryRow(`SELECT balance FROM code WHERE merchant_id = ? AND code = ?`, t.merchant, account).Scan(&balance)
	} else {
		err = t.queryRow(`INSERT INTO account(merchant_id, kind, id, balance) VALUES (?,?,?,?)
			ON CONFLICT (merchant_id, kind, id) DO UPDATE SET balance = account.balance + excluded.balance RETURNING balance`,
			t.merchant, kind, account, amount).Scan(&balance)
	}
	if err != nil {
		return err
	}
	if amount >= 0 {
		return nil
	}
	if _, err := t.exec(`UPDATE allowance SET spent = spent + ? WHERE merchant_id = ? AND device_id = ? AND kind = ? AND account_id = ? AND expires_ms > ?`,
		-amount, t.merchant, t.device, kind, account, t.now); err != nil {
		return err
	}
	if balance >= 0 {
		return nil
	}
	return t.overdraft(kind, account, entryID, amount, balance, res)
}

func (t *tx) overdraft(kind, account, entryID string, amount, balance int64, res *wire.Result) error {
	open, err := t.openCaseID(wire.CaseOverdraft, account)
	if err != nil {
		return err
	}
	if open != "" {
		flag(res, reasonOverdraft, open)
		return nil
	}
	c, err := t.openCase(wire.CaseOverdraft, account, map[string]any{
		"kind": kind, "account_id": account, "balance": balance, "entry_id": entryID, "amount": amount, "device_id": t.device})
	if err != nil {
		return err
	}
	flag(res, reasonOverdraft, c.ID)
	if kind == wire.AccountPoints {
		return nil // points are not spent at a till: the case is enough
	}
	return t.freeze(kind, account, c.ID)
}

// freeze stops an account: online redemption of a frozen gift card is refused and
// allowances for it are nil.
func (t *tx) freeze(kind, account, caseID string) error {
	if _, err := t.exec(`INSERT INTO account(merchant_id, kind, id, frozen) VALUES (?,?,?,1)
		ON CONFLICT (merchant_id, kind, id) DO UPDATE SET frozen = 1`, t.merchant, kind, account); err != nil {
		return err
	}
	if kind == wire.AccountGiftCard {
		if _, err := t.exec(`UPDATE code SET status = 'frozen', seq = ? WHERE merchant_id = ? AND code = ? AND status = 'active'`,
			t.nextSeq(), t.merchant, account); err != nil {
			return err
		}
	}
	return t.serverLog(mAccountFreeze, map[string]any{"kind": kind, "account_id": account, "case_id": caseID})
}

func (t *tx) applyWallet(m *wire.Mutation, res *wire.Result) error {
	// wallet.pay@1 carries the entry itself; topup and refund wrap it.
	var wrapped struct {
		Entry *core.WalletEntry `json:"entry"`
		Bonus *core.WalletEntry `json:"bonus"`
	}
	var entries []*core.WalletEntry
	if err := json.Unmarshal(m.Args, &wrapped); err == nil && wrapped.Entry != nil {
		entries = append(entries, wrapped.Entry)
		if wrapped.Bonus != nil {
			entries = append(entries, wrapped.Bonus)
		}
	} else {
		var e core.WalletEntry
		if err := json.Unmarshal(m.Args, &e); err == nil {
			entries = append(entries, &e)
		}
	}
	for _, e := range entries {
		if e.ID == "" || e.MemberID == "" {
			reject(res, reasonBadArgs, m.Name+" needs an entry with an id and a member")
			return nil
		}
	}
	if len(entries) == 0 {
		reject(res, reasonBadArgs, m.Name+" needs an entry")
		return nil
	}
	for _, e := range entries {
		if err := t.post(wire.AccountWallet, e.MemberID, e.ID, int64(e.Amount), res); err != nil {
			return err
		}
	}
	return nil
}

func (t *tx) applyPoints(m *wire.Mutation, res *wire.Result) error {
	var e core.PointsEntry
	if err := json.Unmarshal(m.Args, &e); err != nil || e.ID == "" || e.MemberID == "" {
		reject(res, reasonBadArgs, m.Name+" needs an entry with an id and a member")
		return nil
	}
	return t.post(wire.AccountPoints, e.MemberID, e.ID, e.Points, res)
}

func (t *tx) applyPointsExpire(m *wire.Mutation, res *wire.Result) error {
	var a struct {
		Lots []struct {
			Lot      string `json:"lot"`
			MemberID string `json:"member_id"`
			Points   int64  `json:"points"`
		} `json:"lots"`
	}
	if err := json.Unmarshal(m.Args, &a); err != nil {
		reject(res, reasonBadArgs, "points.expire@1 needs lots")
		return nil
	}
	for _, l := range a.Lots {
		if l.Lot == "" || l.MemberID == "" {
			reject(res, reasonBadArgs, "points.expire@1: a lot without an id or member")
			return nil
		}
	}
	for _, l := range a.Lots {
		if err := t.post(wire.AccountPoints, l.MemberID, "expire:"+l.Lot, -l.Points, res); err != nil {
			return err
		}
	}
	return nil
}

// applyMerge moves the balances of a merged member to the surviving record, so
// later entries of the survivor find them.
func (t *tx) applyMerge(m *wire.Mutation, res *wire.Result) error {
	var a struct {
		From string `json:"from"`
		Into string `json:"into"`
	}
	if err := json.Unmarshal(m.Args, &a); err != nil || a.From == "" || a.Into == "" || a.From == a.Into {
		reject(res, reasonBadArgs, "member.merge@1 needs from and into")
		return nil
	}
	key := m.UUID
	if key == "" {
		key = fmt.Sprintf("%s/%d", t.device, m.MID)
	}
	for _, kind := range []string{wire.AccountWallet, wire.AccountPoints} {
		var balance int64
		err := t.queryRow(`SELECT balance FROM account WHERE merchant_id = ? AND kind = ? AND id = ?`+t.s.forUpdate,
			t.merchant, kind, a.From).Scan(&balance)
		if errors.Is(err, sql.ErrNoRows) || (err == nil && balance == 0) {
			continue
		}
		if err != nil {
			return err
		}
		id := "merge:" + key + ":" + kind
		if err := t.post(kind, a.From, id+":out", -balance, res); err != nil {
			return err
		}
		if err := t.post(kind, a.Into, id+":in", balance, res); err != nil {
			return err
		}
	}
	return nil
}

// ---- cases resolved on a device ----

func (t *tx) applyCaseResolve(m *wire.Mutation, res *wire.Result) error {
	var a struct {
		ID         string `json:"id"`
		CaseID     string `json:"case_id"`
		Action     string `json:"action"`
		OperatorID string `json:"operator_id"`
		ResolvedBy string `json:"resolved_by"`
		Note       string `json:"note"`
	}
	if err := json.Unmarshal(m.Args, &a); err != nil {
		reject(res, reasonBadArgs, "case.resolve@1 needs a case id and an action")
		return nil
	}
	if a.ID == "" {
		a.ID = a.CaseID
	}
	if a.OperatorID == "" {
		a.OperatorID = a.ResolvedBy
	}
	_, err := t.resolve(a.ID, wire.ResolveRequest{Action: a.Action, OperatorID: a.OperatorID, Note: a.Note})
	var e *Error
	if errors.As(err, &e) {
		reason := reasonBadArgs
		switch e.Code {
		case wire.ErrNotFound:
			reason = reasonNotFound
		case wire.ErrConflict:
			reason = reasonAlreadyResolved
		}
		reject(res, reason, e.Message)
		return nil
	}
	return err
}
