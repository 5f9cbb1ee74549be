package store

import (
	"database/sql"
	"encoding/json"
	"errors"
	"strings"
	"sync"
	"time"
	"unicode"

	"github.com/kameng/kameng/core"
	"github.com/kameng/kameng/core/wire"
)

// Throttling: this many failed checks by one operator on one device within the window
// make every further check answer "throttled" until the window has passed.
const (
	ThrottleFailures = 10
	ThrottleWindow   = 5 * time.Minute
)

// formatCache keeps the code formats in use so a typo is caught by its check character
// before any lookup. Refreshed every second; local campaign edits refresh it at once.
type formatCache struct {
	mu      sync.Mutex
	formats []core.CodeFormat
	loaded  time.Time
}

// forgetFormats makes the next check reload the formats in use.
func (db *DB) forgetFormats() {
	fc := &db.formatCache
	fc.mu.Lock()
	fc.formats = nil
	fc.mu.Unlock()
}

func (db *DB) formats() []core.CodeFormat {
	fc := &db.formatCache
	fc.mu.Lock()
	defer fc.mu.Unlock()
	if time.Since(fc.loaded) < time.Second && fc.formats != nil {
		return fc.formats
	}
	rows, err := db.r.Query(`SELECT DISTINCT format FROM campaign WHERE issued > 0`)
	if err != nil {
		return fc.formats
	}
	defer rows.Close()
	var out []core.CodeFormat
	for rows.Next() {
		var s string
		var f core.CodeFormat
		if rows.Scan(&s) == nil && json.Unmarshal([]byte(s), &f) == nil && f.Check {
			out = append(out, f)
		}
	}
	fc.formats, fc.loaded = out, time.Now()
	return out
}

// NormalizeInput turns what was typed or scanned into the forms a code may be stored
// under: the check-character-verified form for each code format in use, then the plain
// form (upper case, no spaces or hyphens) that imported codes are stored under.
// badCheck reports that some format recognised the shape but its check character failed.
func (db *DB) NormalizeInput(raw string) (candidates []string, badCheck bool) {
	for _, f := range db.formats() {
		n := f.Normalize(raw)
		err := f.Verify(n)
		if err == nil {
			candidates = appendNew(candidates, n)
		} else if core.ErrorCode(err) == core.ReasonBadCheckChar {
			badCheck = true
		}
	}
	return appendNew(candidates, PlainCode(raw)), badCheck
}

func appendNew(s []string, v string) []string {
	for _, x := range s {
		if x == v {
			return s
		}
	}
	return append(s, v)
}

// PlainCode is the normalisation for codes of unknown format: trimmed, upper case,
// without spaces, hyphens or full-width forms.
func PlainCode(raw string) string {
	var b strings.Builder
	b.Grow(len(raw))
	for _, r := range raw {
		if r >= 0xFF01 && r <= 0xFF5E {
			r -= 0xFEE0
		}
		if r == '-' || r == '_' || unicode.IsSpace(r) || r == 0x3000 {
			continue
		}
		b.WriteRune(unicode.ToUpper(r))
	}
	return b.String()
}

// checkCols reads a code with its campaign's changing counters in one lookup.
const checkCols = `k.code, k.campaign_id, k.batch_id, k.status, k.uses, k.balance, k.secret IS NOT NULL, k.distributed_ms,
	k.valid_from_ms, k.valid_to_ms, k.created_ms, c.updated_ms, c.status, c.issued, c.redeemed, c.spent`

type campaignMeta struct {
	updated, issued, redeemed int64
	spent                     core.Amount
	status                    core.CampaignStatus
}

type checkState struct {
	code     *core.Code
	campaign *core.Campaign
	verdict  core.Verdict
	splitRev string // meta 'split_rules' as read with the code: which split rules are current
}

// lookupSQL reads a code with its campaign's counters, and in the same statement the
// actor's recent failed checks (throttling) and the split rules' revision.
const lookupSQL = `SELECT (SELECT count(*) FROM check_failure WHERE actor = ? AND ts_ms > ?),
	COALESCE((SELECT CAST(value AS TEXT) FROM meta WHERE key = 'split_rules'), ''), ` + checkCols + `, k.frozen
	FROM code k JOIN campaign c ON c.id = k.campaign_id WHERE k.code = ?`

type queryer interface {
	QueryRow(string, ...any) *sql.Row
}

func throttleKey(a *Actor) string { return a.Device.ID + "/" + a.Operator.ID }

// evaluate runs the whole check against q (the read pool, or the write transaction).
func (db *DB) evaluate(q queryer, a *Actor, raw string, order core.Order, now time.Time) (*checkState, error) {
	st := &checkState{}
	actor, since := throttleKey(a), now.Add(-ThrottleWindow).UnixMilli()
	failures := -1
	cands, badCheck := db.NormalizeInput(raw)
	var meta campaignMeta
	frozen := false
	for _, c := range cands {
		var k core.Code
		err := q.QueryRow(lookupSQL, actor, since, c).Scan(&failures, &st.splitRev, &k.Code, &k.CampaignID, &k.BatchID, &k.Status,
			&k.Uses, &k.Balance, &k.HasSecret, &k.Distributed, &k.ValidFrom, &k.ValidTo, &k.Created,
			&meta.updated, &meta.status, &meta.issued, &meta.redeemed, &meta.spent, &frozen)
		if errors.Is(err, sql.ErrNoRows) {
			continue
		}
		if err != nil {
			return nil, err
		}
		st.code = &k
		break
	}
	if failures < 0 { // no code found: the failures still decide between throttled and not found
		if err := q.QueryRow(`SELECT count(*) FROM check_failure WHERE actor = ? AND ts_ms > ?`, actor, since).Scan(&failures); err != nil {
			return nil, err
		}
	}
	v := core.Verdict{Code: PlainCode(raw)}
	if failures >= ThrottleFailures {
		v.Reason = core.ReasonThrottled
		st.code, st.verdict = nil, v
		return st, nil
	}
	if st.code == nil {
		v.Reason = core.ReasonNotFound
		if badCheck {
			v.Reason = core.ReasonBadCheckChar
		}
		st.verdict = v
		return st, nil
	}
	c, err := db.campaignFor(q, st.code.CampaignID, &meta)
	if err != nil {
		return nil, err
	}
	st.campaign = c
	if c.Kind == core.KindPercentOff && order.Amount == 0 {
		return nil, core.Invalid("order", "--order 128.00", "", "a percent-off coupon needs the order amount")
	}
	in := core.CheckInput{Code: st.code, Campaign: c, Store: &a.Store, Now: now, Order: order}
	if order.Member != "" && (c.Rules.PerMemberLimit > 0 || len(c.Rules.Tiers) > 0) {
		sealer, err := db.sealer()
		if err != nil {
			return nil, err
		}
		ix := sealer.Index(order.Member)
		// The member the phone names, following a merge: their redemptions count under
		// either record, and the surviving record's tier applies.
		memberID, err := db.memberRef(q, order.Member)
		if err != nil && core.ErrorCode(err) != core.ErrNotFound && core.ErrorCode(err) != core.ErrConflict {
			return nil, err
		}
		if c.Rules.PerMemberLimit > 0 {
			if err := q.QueryRow(`SELECT count(*) FROM redemption WHERE campaign_id = ? AND status = 'done' AND (member_ix = ? OR member_id = ?)`,
				c.ID, ix, memberID).Scan(&in.MemberUses); err != nil {
				return nil, err
			}
		}
		// A tier-only campaign asks the member's tier; a phone that is no member has none.
		if len(c.Rules.Tiers) > 0 && memberID != "" {
			if err := q.QueryRow(`SELECT tier_id FROM member WHERE id = ?`, memberID).Scan(&in.MemberTier); err != nil {
				return nil, err
			}
		}
	}
	st.verdict = core.Evaluate(in)
	if frozen {
		// Frozen after an overdraft found at sync: nothing is taken until a person
		// settles the case.
		v := &st.verdict
		v.OK, v.Reason, v.Discount, v.Value, v.Payable = false, ReasonFrozen, 0, 0, 0
	}
	return st, nil
}

type cachedCampaign struct {
	updated int64
	c       core.Campaign
}

// campaignFor returns a code's campaign, reusing the decoded rules while the row is
// unchanged (updated_ms) and taking the counters from the lookup just made.
func (db *DB) campaignFor(q queryer, id string, m *campaignMeta) (*core.Campaign, error) {
	if v, ok := db.campaigns.Load(id); ok {
		cc := v.(*cachedCampaign)
		if cc.updated == m.updated {
			c := cc.c
			c.Status, c.Issued, c.Redeemed, c.Spent = m.status, m.issued, m.redeemed, m.spent
			return &c, nil
		}
	}
	c, err := scanCampaign(q.QueryRow(`SELECT `+campaignCols+` FROM campaign WHERE id = ?`, id))
	if err != nil {
		return nil, err
	}
	db.campaigns.Store(id, &cachedCampaign{updated: c.Updated, c: *c})
	return c, nil
}

func failed(reason string) bool {
	return reason == core.ReasonNotFound || reason == core.ReasonBadCheckChar
}

// recordFailure counts a failed check towards throttling. Failures older than the
// window no longer count, so they are dropped in the same transaction.
func (t *tx) recordFailure() error {
	if _, err := t.Exec(`INSERT INTO check_failure(actor, ts_ms) VALUES (?, ?)`, throttleKey(t.actor), t.now); err != nil {
		return err
	}
	_, err := t.Exec(`DELETE FROM check_failure WHERE ts_ms < ?`, t.now-2*ThrottleWindow.Milliseconds())
	return err
}

// Check answers whether a code can be redeemed now and what the order would get.
// It writes nothing unless the code is unknown (which counts towards throttling).
func (db *DB) Check(a *Actor, raw string, order core.Order) (core.Verdict, error) {
	now := db.Clock.Now()
	st, err := db.evaluate(reader{db}, a, raw, order, now)
	if err != nil {
		return core.Verdict{}, err
	}
	if failed(st.verdict.Reason) {
		if err := db.write(a, func(t *tx) error { return t.recordFailure() }); err != nil {
			return core.Verdict{}, err
		}
	}
	return st.verdict, nil
}

// RedeemResult is what a redemption attempt produced.
type RedeemResult struct {
	Verdict    core.Verdict       `json:"verdict"`
	Redemption *core.Redemption   `json:"redemption,omitempty"`
	MemberID   string             `json:"member_id,omitempty"` // the member whose phone came with the order
	Points     int64              `json:"points,omitempty"`    // points the member earned with the order
	Split      []core.PartyAmount `json:"split,omitempty"`     // the value's shares by the split rule that applied
	Replayed   bool               `json:"replayed"`            // an earlier request with the same idempotency key
}

// Redeem re-runs the check inside the write transaction and commits exactly one
// redemption, or changes nothing. A repeated idempotency key returns the first result.
func (db *DB) Redeem(a *Actor, raw string, order core.Order, idemKey string) (*RedeemResult, error) {
	if idemKey != "" {
		if r, err := db.redemptionByKey(reader{db}, idemKey); err == nil {
			if err := db.sameCode(raw, r, idemKey); err != nil {
				return nil, err
			}
			return db.replay(db.r, r)
		} else if core.ErrorCode(err) != core.ErrNotFound {
			return nil, err
		}
	}
	var memberIx []byte
	if order.Member != "" {
		sealer, err := db.sealer()
		if err != nil {
			return nil, err
		}
		memberIx = sealer.Index(order.Member)
	}
	res := &RedeemResult{}
	err := db.write(a, func(t *tx) error {
		if idemKey != "" {
			if r, err := db.redemptionByKey(t, idemKey); err == nil {
				if err := db.sameCode(raw, r, idemKey); err != nil {
					return err
				}
				rep, err := db.replay(t, r)
				if err == nil {
					*res = *rep
				}
				return err
			}
		}
		st, err := db.evaluate(t, a, raw, order, time.UnixMilli(t.now))
		if err != nil {
			return err
		}
		res.Verdict = st.verdict
		if !st.verdict.OK {
			if failed(st.verdict.Reason) {
				return t.recordFailure()
			}
			return nil
		}
		k, c, v := st.code, st.campaign, st.verdict
		var memberID any // NULL unless the order's phone is a member's
		if memberIx != nil {
			// Following a merge: the old phone's purchases belong to the surviving record.
			id, err := db.memberRef(t, order.Member)
			if c := core.ErrorCode(err); err != nil && c != core.ErrNotFound && c != core.ErrConflict {
				return err
			}
			if id != "" {
				memberID, res.MemberID = id, id
			}
		}
		rule, err := t.splitRule(st.splitRev, c.ID, a.Store.ID)
		if err != nil {
			return err
		}
		split := ""
		if rule != nil {
			res.Split = rule.Split(v.Discount + v.Value)
			split = encodeShares(res.Split)
		}
		r := &core.Redemption{ID: core.NewID(), Code: k.Code, CampaignID: c.ID, StoreID: a.Store.ID, DeviceID: a.Device.ID,
			OperatorID: a.Operator.ID, OrderRef: order.Ref, OrderAmount: order.Amount, Discount: v.Discount, Value: v.Value,
			Status: core.RedemptionDone, Created: t.now, IdemKey: idemKey}
		var key any
		if idemKey != "" {
			key = idemKey
		}
		if a.Offline {
			// Without the server: the campaign's offline policy and, for a gift card,
			// this device's allowance decide, inside the same transaction.
			if err := t.offlineRedeemCheck(c, k, v.Value); err != nil {
				return err
			}
		}
		// The conditional update is what makes a single-use code single-use under
		// concurrency: a second writer finds nothing left to take.
		var upd sql.Result
		if c.Kind == core.KindGiftCard {
			upd, err = t.Exec(`UPDATE code SET uses = uses + 1, balance = balance - ? WHERE code = ? AND balance >= ? AND status = 'active'`, v.Value, k.Code, v.Value)
		} else {
			upd, err = t.Exec(`UPDATE code SET uses = uses + 1 WHERE code = ? AND uses < ? AND status = 'active'`, k.Code, max(c.Rules.UsesPerCode, 1))
		}
		if err != nil {
			return err
		}
		if n, _ := upd.RowsAffected(); n != 1 {
			res.Verdict.OK, res.Verdict.Reason = false, core.ReasonAlreadyRedeemed
			return nil
		}
		if _, err := t.Exec(`INSERT INTO redemption(id, code, campaign_id, store_id, device_id, operator_id, order_ref, order_amount,
			discount, value, member_ix, member_id, split, status, created_ms, idem_key) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)`,
			r.ID, r.Code, r.CampaignID, r.StoreID, r.DeviceID, r.OperatorID, r.OrderRef, r.OrderAmount, r.Discount, r.Value,
			memberIx, memberID, split, r.Status, r.Created, key); err != nil {
			return err
		}
		if c.Kind == core.KindGiftCard {
			if _, err := t.Exec(`INSERT INTO ledger(id, code, campaign_id, kind, amount, redemption_id, created_ms) VALUES (?,?,?,'debit',?,?,?)`,
				core.NewID(), k.Code, c.ID, -v.Value, r.ID, t.now); err != nil {
				return err
			}
		}
		if _, err := t.Exec(`UPDATE campaign SET redeemed = redeemed + 1, spent = spent + ? WHERE id = ?`, v.Discount+v.Value, c.ID); err != nil {
			return err
		}
		if err := t.rollup(c.ID, Rollup{Redeemed: 1, Discount: v.Discount, OrderAmount: order.Amount, Value: v.Value}); err != nil {
			return err
		}
		if err := t.redeemedAt(r, a.Store.Location(), 1, res.Split); err != nil {
			return err
		}
		if res.MemberID != "" {
			// The member's purchase: a visit, and the points it earns when the order
			// amount is known (消费即积分), with the campaign's bonus.
			if order.Amount > 0 {
				e, _, err := t.earn(res.MemberID, order.Amount, c.ID, order.Ref)
				if err != nil {
					return err
				}
				res.Points = e.Points
			} else if err := t.visit(res.MemberID, 0); err != nil {
				return err
			}
			if err := t.afterPurchase(res.MemberID); err != nil {
				return err
			}
		}
		res.Redemption = r
		args := map[string]any{"redemption": r, "member_ix": memberIx}
		if memberID != nil {
			args["member_id"] = memberID
		}
		if res.Split != nil {
			args["split"] = res.Split
		}
		if err := t.journal("redeem", "redemption", r.ID, map[string]any{"code": r.Code, "campaign_id": c.ID, "discount": r.Discount, "value": r.Value, "order": r.OrderAmount},
			"code.redeem@1", args); err != nil {
			return err
		}
		if a.Offline && c.Kind == core.KindGiftCard {
			return t.spentOffline(wire.AccountGiftCard, k.Code, v.Value)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return res, nil
}

// sameCode refuses an idempotency key reused for another code: that is a caller's
// bug, and replaying the other redemption would hide it.
func (db *DB) sameCode(raw string, r *core.Redemption, key string) error {
	cands, _ := db.NormalizeInput(raw)
	for _, c := range cands {
		if c == r.Code {
			return nil
		}
	}
	e := core.Errorf(core.ErrConflict, "idempotency key %q was used for code %s, not this one", key, r.Code)
	e.Field = "key"
	return e
}

// replay rebuilds the first answer to a request from the redemption it produced.
func (db *DB) replay(q queryer, r *core.Redemption) (*RedeemResult, error) {
	c, err := scanCampaign(q.QueryRow(`SELECT `+campaignCols+` FROM campaign WHERE id = ?`, r.CampaignID))
	if err != nil {
		return nil, err
	}
	v := core.Verdict{OK: true, Reason: core.ReasonOK, Code: r.Code, Campaign: c.ID, Name: c.Name, Kind: c.Kind,
		Discount: r.Discount, Value: r.Value}
	if r.OrderAmount > 0 {
		v.Payable = max(r.OrderAmount-r.Discount-r.Value, 0)
		if c.Kind == core.KindCardKey {
			v.Payable = r.OrderAmount
		}
	}
	if c.Kind == core.KindGiftCard {
		v.Balance = r.Value // at least what was taken; the balance before is in the ledger
		var before core.Amount
		if err := q.QueryRow(`SELECT COALESCE(sum(amount), 0) FROM ledger WHERE code = ? AND created_ms < ?`, r.Code, r.Created).Scan(&before); err == nil {
			v.Balance = before
		}
	}
	res := &RedeemResult{Verdict: v, Redemption: r, Replayed: true}
	var member sql.NullString
	var split string
	if err := q.QueryRow(`SELECT member_id, split FROM redemption WHERE id = ?`, r.ID).Scan(&member, &split); err != nil {
		return nil, err
	}
	res.MemberID = member.String
	if res.Split, err = decodeShares(split); err != nil {
		return nil, err
	}
	return res, nil
}

const redemptionCols = `id, code, campaign_id, store_id, device_id, operator_id, order_ref, order_amount, discount, value, status,
	created_ms, rolled_back_ms, rollback_reason, COALESCE(idem_key, '')`

func scanRedemption(row scanner) (*core.Redemption, error) {
	var r core.Redemption
	err := row.Scan(&r.ID, &r.Code, &r.CampaignID, &r.StoreID, &r.DeviceID, &r.OperatorID, &r.OrderRef, &r.OrderAmount,
		&r.Discount, &r.Value, &r.Status, &r.Created, &r.RolledBack, &r.Reason, &r.IdemKey)
	return &r, err
}

func (db *DB) redemptionByKey(q queryer, key string) (*core.Redemption, error) {
	r, err := scanRedemption(q.QueryRow(`SELECT `+redemptionCols+` FROM redemption WHERE idem_key = ?`, key))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, core.NotFound("idempotency_key", key)
	}
	return r, err
}

// RedemptionByKey finds the redemption made under an idempotency key.
func (db *DB) RedemptionByKey(key string) (*core.Redemption, error) {
	return db.redemptionByKey(db.r, key)
}

// Redemption finds one redemption by id.
func (db *DB) Redemption(id string) (*core.Redemption, error) {
	r, err := scanRedemption(db.r.QueryRow(`SELECT `+redemptionCols+` FROM redemption WHERE id = ?`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, core.NotFound("redemption", id)
	}
	return r, err
}

// RedemptionFilter narrows a redemption list.
type RedemptionFilter struct {
	Code     string
	Campaign string
	From, To int64
	Limit    int
}

// Redemptions lists redemptions, newest first.
func (db *DB) Redemptions(f RedemptionFilter) ([]*core.Redemption, error) {
	q := `SELECT ` + redemptionCols + ` FROM redemption WHERE 1=1`
	var args []any
	if f.Code != "" {
		q += ` AND code = ?`
		args = append(args, f.Code)
	}
	if f.Campaign != "" {
		q += ` AND campaign_id = ?`
		args = append(args, f.Campaign)
	}
	if f.From > 0 {
		q += ` AND created_ms >= ?`
		args = append(args, f.From)
	}
	if f.To > 0 {
		q += ` AND created_ms < ?`
		args = append(args, f.To)
	}
	q += ` ORDER BY created_ms DESC, id DESC`
	if f.Limit <= 0 {
		f.Limit = 100
	}
	q += ` LIMIT ?`
	args = append(args, f.Limit)
	rows, err := db.r.Query(q, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []*core.Redemption
	for rows.Next() {
		r, err := scanRedemption(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	return out, rows.Err()
}

// Rollback undoes a redemption within the campaign's rollback window: the use and any
// balance come back, the rollup and budget are reduced, and the audit says why.
// Role rules are the caller's (app); ownOnly limits a cashier to their own redemptions
// and maxAge to a short window.
func (db *DB) Rollback(a *Actor, redemptionID, reason string, ownOnly bool, maxAge time.Duration) (*core.Redemption, error) {
	if strings.TrimSpace(reason) == "" {
		return nil, core.Invalid("reason", "why the redemption is undone", "", "a rollback needs a reason")
	}
	var out *core.Redemption
	err := db.write(a, func(t *tx) error {
		r, err := scanRedemption(t.QueryRow(`SELECT `+redemptionCols+` FROM redemption WHERE id = ?`, redemptionID))
		if errors.Is(err, sql.ErrNoRows) {
			return core.NotFound("redemption", redemptionID)
		}
		if err != nil {
			return err
		}
		if r.Status == core.RedemptionRolledBack {
			return core.Errorf(core.ErrConflict, "redemption %s was already rolled back", r.ID)
		}
		c, err := t.campaign(r.CampaignID)
		if err != nil {
			return err
		}
		age := time.Duration(t.now-r.Created) * time.Millisecond
		if c.Rules.RollbackHours == 0 || age > time.Duration(c.Rules.RollbackHours)*time.Hour {
			e := core.Errorf(core.ErrForbidden, "campaign %q allows rollback within %d hours; this redemption is %s old", c.Name, c.Rules.RollbackHours, age.Round(time.Minute))
			e.Field = "redemption"
			return e
		}
		if ownOnly && r.OperatorID != a.Operator.ID {
			return core.Forbidden("roll back another operator's redemption", string(a.Operator.Role))
		}
		if maxAge > 0 && age > maxAge {
			e := core.Forbidden("roll back a redemption older than "+maxAge.String(), string(a.Operator.Role))
			return e
		}
		if err := t.undoRedemption(r, c, reason, a.Operator.ID); err != nil {
			return err
		}
		out = r
		return t.journal("rollback", "redemption", r.ID, map[string]any{"code": r.Code, "reason": reason},
			"code.rollback@1", map[string]any{"redemption_id": r.ID, "reason": reason})
	})
	return out, err
}

// undoRedemption restores what a redemption took: the use and any balance come back,
// the budget and the rollups of the store that redeemed are reduced, settlement takes
// back the shares stored with it, and it is marked rolled back. Rollback adds the
// policy and role checks and the journal; sync reuses it for rollbacks and reversals
// made elsewhere.
func (t *tx) undoRedemption(r *core.Redemption, c *core.Campaign, reason, operatorID string) error {
	use := codeEffect{Op: effectUse, Uses: -1}
	if c.Kind == core.KindGiftCard {
		use.Balance = int64(r.Value)
		if _, err := t.Exec(`INSERT INTO ledger(id, code, campaign_id, kind, amount, redemption_id, created_ms) VALUES (?,?,?,'credit',?,?,?)`,
			core.NewID(), r.Code, c.ID, r.Value, r.ID, t.now); err != nil {
			return err
		}
	}
	if err := t.codeEffect(r.Code, use); err != nil {
		return err
	}
	if _, err := t.Exec(`UPDATE redemption SET status = 'rolled_back', rolled_back_ms = ?, rollback_reason = ?, rollback_operator = ? WHERE id = ?`,
		t.now, reason, operatorID, r.ID); err != nil {
		return err
	}
	if _, err := t.Exec(`UPDATE campaign SET redeemed = redeemed - 1, spent = spent - ? WHERE id = ?`, r.Discount+r.Value, c.ID); err != nil {
		return err
	}
	// The rollback counts against the store that redeemed, whoever undoes it.
	if err := t.rollupAt(r.StoreID, c.ID, Rollup{RolledBack: 1, Discount: -r.Discount, OrderAmount: -r.OrderAmount, Value: -r.Value}); err != nil {
		return err
	}
	// Settlement takes back exactly the shares stored with the redemption.
	var split string
	if err := t.QueryRow(`SELECT split FROM redemption WHERE id = ?`, r.ID).Scan(&split); err != nil {
		return err
	}
	shares, err := decodeShares(split)
	if err != nil {
		return err
	}
	if err := t.redeemedAt(r, t.storeLocation(r.StoreID), -1, shares); err != nil {
		return err
	}
	r.Status, r.RolledBack, r.Reason = core.RedemptionRolledBack, t.now, reason
	return nil
}

// LedgerBalance sums a code's ledger entries (the balance is defined as this sum).
func (db *DB) LedgerBalance(code string) (core.Amount, error) {
	var s core.Amount
	err := db.r.QueryRow(`SELECT COALESCE(sum(amount), 0) FROM ledger WHERE code = ?`, code).Scan(&s)
	return s, err
}

// FindCode looks a code up by what was typed, without evaluating rules. The phone is
// masked unless reveal is set.
func (db *DB) FindCode(raw string, reveal bool) (*core.Code, error) {
	cands, _ := db.NormalizeInput(raw)
	for _, c := range cands {
		k, phone, err := scanCode(db.r.QueryRow(`SELECT `+codeCols+` FROM code WHERE code = ?`, c))
		if errors.Is(err, sql.ErrNoRows) {
			continue
		}
		if err != nil {
			return nil, err
		}
		if k.Phone, err = db.showPhone(k.Code, phone, reveal); err != nil {
			return nil, err
		}
		return k, nil
	}
	return nil, core.NotFound("code", PlainCode(raw))
}
