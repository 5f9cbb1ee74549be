package store

import (
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/kameng/kameng/core"
	"github.com/kameng/kameng/core/wire"
)

// Applying what other devices (and the server) did. A pulled page is applied in one
// transaction together with its new cursor. Remote mutations write no outbox rows
// (they are not ours) but update the same rows, ledgers and rollups the local path
// does, with the time and store of the device that made them; the audit chain gets
// one entry per page and one per reversal, freeze or case.

// pull is the state of the page being applied.
type pull struct {
	local   *Actor // this device, as the sync bookkeeping acts
	realNow int64  // the time of the apply (t.now moves to each mutation's time)
	status  string // of the change being applied: applied | flagged
	reason  string // why the server flagged it (already_redeemed, late_offline…); "" from a server that does not say
	seq     int64
	maxHLC  int64
	counts  map[string]int64
	stores  map[string]core.Store // id → store
	devices map[string]string     // device → its store
	faces   map[string]core.Amount
}

func (p *pull) count(what string, n int64) { p.counts[what] += n }

// skipped stops the apply of one mutation without failing the page. keep files it
// among the mutations this version cannot apply (SyncState.Skipped); otherwise it
// was deliberately not applied (the losing redemption of a double, say).
type skipped struct {
	why  string
	keep bool
}

func (s *skipped) Error() string { return "skipped: " + s.why }

func cannot(why string) error     { return &skipped{why: why, keep: true} }
func notApplied(why string) error { return &skipped{why: why} }

// applier applies one remote mutation inside the page's transaction; deviceID is the
// device that made it ("server" for the server's own entries).
type applier func(t *tx, m wire.Mutation, deviceID string) error

// appliers are the mutations this version applies, by name@version. Others are
// counted as skipped and kept; the cursor moves on.
var appliers = map[string]applier{
	"merchant.init@1":       applyMerchantInit,
	"store.add@1":           applyStoreAdd,
	"device.add@1":          applyDeviceAdd,
	"operator.add@1":        applyOperatorAdd,
	"campaign.create@1":     applyCampaignCreate,
	"campaign.edit@1":       applyCampaignEdit,
	"campaign.status@1":     applyCampaignStatus,
	"codes.generate@1":      applyBatch,
	"codes.import@1":        applyBatch,
	"codes.distribute@1":    applyDistribute,
	"codes.void@1":          applyVoid,
	"code.redeem@1":         applyRedeem,
	"code.rollback@1":       applyRollback,
	"member.add@1":          applyMemberAdd,
	"member.edit@1":         applyMemberEdit,
	"member.anonymise@1":    applyMemberAnonymise,
	"member.merge@1":        applyMemberMerge,
	"member.tier@1":         applyMemberTier,
	"member.handout@1":      applyHandout,
	"wallet.topup@1":        applyWalletTopup,
	"wallet.pay@1":          applyWalletPay,
	"wallet.refund@1":       applyWalletRefund,
	"points.earn@1":         applyPointsEarn,
	"points.spend@1":        applyPointsTake,
	"points.adjust@1":       applyPointsTake,
	"points.reverse@1":      applyPointsReverse,
	"points.expire@1":       applyPointsExpire,
	"tier.set@1":            applyTierSet,
	"tier.remove@1":         applyTierRemove,
	"loyalty.set@1":         applyLoyaltySet,
	"settle.rules.set@1":    applySplitSet,
	"settle.rules.remove@1": applySplitRemove,
	"issue_rule.add@1":      applyIssueRuleAdd,
	"issue_rule.remove@1":   applyIssueRuleRemove,
	"case.open@1":           applyCaseOpen,
	"case.resolve@1":        applyCaseResolve,
	"redemption.reverse@1":  applyReverse,
	"account.freeze@1":      applyFreeze,
}

// ApplyPage applies one pulled page in one transaction with its new cursor: the log's
// mutations of other devices and the server, or the codes stream's rows. It observes
// the remote HLCs (the clock, meta 'hlc', stays ahead of them) and keeps the skew
// (serverMS − now). Changes at or below the cursor, and mutations applied before, are
// passed over, so a page applied twice changes nothing; a page that fails changes
// nothing either, and leaves the cursor.
func (db *DB) ApplyPage(epoch, serverMS int64, p *wire.Page) error {
	if p == nil {
		return core.Invalid("page", "a page", "", "no page to apply")
	}
	if p.Stream != wire.StreamLog && p.Stream != wire.StreamCodes {
		return core.Invalid("stream", "log|codes", p.Stream, "unknown stream %q", p.Stream)
	}
	local, err := db.syncActor()
	if err != nil {
		return err
	}
	return db.write(local, func(t *tx) error {
		stored, err := metaInt(t, "sync_epoch")
		if err != nil {
			return err
		}
		if stored != 0 && epoch != 0 && stored != epoch {
			e := core.Errorf(core.ErrConflict, "the server's epoch is %d, this device synced epoch %d: reset first", epoch, stored)
			e.Field, e.Params = "epoch", map[string]string{"why": wire.ErrEpoch}
			return e
		}
		var cursor int64
		if err := t.QueryRow(`SELECT COALESCE((SELECT seq FROM sync_cursor WHERE stream = ?), 0)`, p.Stream).Scan(&cursor); err != nil {
			return err
		}
		pl := &pull{local: local, realNow: t.now, counts: map[string]int64{}, stores: map[string]core.Store{},
			devices: map[string]string{}, faces: map[string]core.Amount{}}
		t.pull = pl
		defer func() { t.pull = nil }()
		var last int64
		if p.Stream == wire.StreamCodes {
			// A first pull of a large merchant inserts codes at random places of the
			// code index: a page cache that holds the index keeps that from reading
			// it back page by page. It is kept while more pages follow.
			size := 0
			if p.More {
				size = codesCacheKiB
			}
			if err := t.pageCache(size); err != nil {
				return err
			}
			last, err = t.applyCodes(p.Changes, cursor)
		} else {
			last, err = t.applyLog(p.Changes, cursor)
		}
		if err != nil {
			return err
		}
		next := max(cursor, p.Next, last)
		if _, err := t.Exec(`INSERT INTO sync_cursor(stream, seq) VALUES (?, ?) ON CONFLICT(stream) DO UPDATE SET seq = excluded.seq`,
			p.Stream, next); err != nil {
			return err
		}
		if stored == 0 && epoch != 0 {
			if err := setMeta(t.Tx, "sync_epoch", epoch); err != nil {
				return err
			}
		}
		if serverMS > 0 {
			if err := setMeta(t.Tx, "sync_skew_ms", serverMS-t.now); err != nil {
				return err
			}
		}
		if pl.maxHLC > 0 {
			var cur int64
			if err := t.QueryRow(lastHLC).Scan(&cur); err != nil {
				return err
			}
			if pl.maxHLC > cur {
				if err := setMeta(t.Tx, "hlc", pl.maxHLC); err != nil {
					return err
				}
			}
		}
		if len(pl.counts) == 0 {
			return nil
		}
		detail := map[string]any{"from": cursor, "to": next}
		for k, v := range pl.counts {
			detail[k] = v
		}
		return t.audit("sync.pull", "stream", p.Stream, detail)
	})
}

// codesCacheKiB is the write connection's page cache while codes pages follow one
// another.
const codesCacheKiB = 64 << 10

// applyLog applies the mutations of a log page in order; it returns the highest seq.
func (t *tx) applyLog(changes []wire.Change, cursor int64) (int64, error) {
	pl := t.pull
	own := pl.local.Device.ID
	var last int64
	for i := range changes {
		ch := &changes[i]
		last = max(last, ch.Seq)
		if ch.Seq <= cursor {
			continue
		}
		m := ch.Mutation
		if m == nil || m.Name == "" {
			return 0, core.Invalid("page", "a mutation in every log change", fmt.Sprint(ch.Seq), "log change %d carries no mutation", ch.Seq)
		}
		if ch.DeviceID == own {
			continue // ours: applied when it was made
		}
		if ch.Status == wire.Rejected {
			pl.count("rejected", 1)
			continue
		}
		key := m.UUID
		if key == "" {
			key = fmt.Sprintf("%s/%d/%d", ch.DeviceID, m.MID, ch.Seq)
		}
		res, err := t.Exec(`INSERT INTO sync_applied(uuid, seq) VALUES (?, ?) ON CONFLICT(uuid) DO NOTHING`, key, ch.Seq)
		if err != nil {
			return 0, err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			pl.count("repeated", 1)
			continue
		}
		pl.maxHLC = max(pl.maxHLC, m.HLC)
		fn := appliers[m.Name]
		if fn == nil {
			if err := t.skip(ch, "unknown mutation"); err != nil {
				return 0, err
			}
			continue
		}
		pl.status, pl.reason, pl.seq = ch.Status, ch.Reason, ch.Seq
		err = t.applyOne(fn, *m, ch.DeviceID)
		var sk *skipped
		if errors.As(err, &sk) {
			if sk.keep {
				if err := t.skip(ch, sk.why); err != nil {
					return 0, err
				}
			} else {
				pl.count("not_applied", 1)
			}
			continue
		}
		if err != nil {
			return 0, fmt.Errorf("apply %s (seq %d, device %s): %w", m.Name, ch.Seq, ch.DeviceID, err)
		}
		pl.count("applied", 1)
	}
	return last, nil
}

// skip keeps a mutation this version cannot apply.
func (t *tx) skip(ch *wire.Change, why string) error {
	m := ch.Mutation
	t.pull.count("skipped", 1)
	_, err := t.Exec(`INSERT INTO sync_skipped(seq, uuid, device_id, name, args, status, why) VALUES (?,?,?,?,?,?,?)
		ON CONFLICT(seq) DO NOTHING`, ch.Seq, m.UUID, ch.DeviceID, m.Name, string(m.Args), ch.Status, why)
	return err
}

// applyOne runs an applier as the device that made the mutation, at its time.
func (t *tx) applyOne(fn applier, m wire.Mutation, deviceID string) error {
	saved, savedNow := t.actor, t.now
	defer func() { t.actor, t.now = saved, savedNow }()
	t.actor = t.remoteActor(deviceID)
	if m.WallMS > 0 {
		t.now = m.WallMS
	}
	return fn(t, m, deviceID)
}

// remoteActor is the device that made a remote change, in its store as far as this
// database knows it (else this device's store).
func (t *tx) remoteActor(deviceID string) *Actor {
	pl := t.pull
	a := &Actor{Operator: core.Operator{ID: deviceID, MerchantID: pl.local.Operator.MerchantID}, Device: core.Device{ID: deviceID}}
	storeID, ok := pl.devices[deviceID]
	if !ok {
		t.QueryRow(`SELECT store_id FROM device WHERE id = ?`, deviceID).Scan(&storeID)
		pl.devices[deviceID] = storeID
	}
	a.Device.StoreID = storeID
	a.Store = t.storeByID(storeID)
	return a
}

// storeByID is a store as far as this database knows it.
func (t *tx) storeByID(id string) core.Store {
	pl := t.pull
	if id == "" {
		return pl.local.Store
	}
	if s, ok := pl.stores[id]; ok {
		return s
	}
	s := core.Store{ID: id, TimeZone: pl.local.Store.TimeZone}
	t.QueryRow(`SELECT merchant_id, name, time_zone, created_ms FROM store WHERE id = ?`, id).Scan(&s.MerchantID, &s.Name, &s.TimeZone, &s.Created)
	pl.stores[id] = s
	return s
}

// actAt moves the acting store and operator to those a mutation names.
func (t *tx) actAt(storeID, operatorID string) {
	if storeID != "" {
		t.actor.Store = t.storeByID(storeID)
	}
	if operatorID != "" {
		t.actor.Operator.ID = operatorID
	}
}

// localAudit writes an audit entry as this device at the time of the apply.
func (t *tx) localAudit(action, entity, id string, detail map[string]any) error {
	saved, savedNow := t.actor, t.now
	t.actor, t.now = t.pull.local, t.pull.realNow
	defer func() { t.actor, t.now = saved, savedNow }()
	return t.audit(action, entity, id, detail)
}

func decode(m wire.Mutation, v any) error {
	if err := json.Unmarshal(m.Args, v); err != nil {
		return core.Invalid("args", "the arguments of "+m.Name, string(firstBytes(m.Args, 60)), "bad arguments of %s: %v", m.Name, err)
	}
	return nil
}

func firstBytes(b []byte, n int) []byte {
	if len(b) > n {
		return b[:n]
	}
	return b
}

func required(m wire.Mutation, fields ...string) error {
	for i := 0; i+1 < len(fields); i += 2 {
		if fields[i+1] == "" {
			return core.Invalid("args", "the arguments of "+m.Name, string(firstBytes(m.Args, 60)), "%s without %s", m.Name, fields[i])
		}
	}
	return nil
}

// nullable is NULL for "".
func nullable(s string) any {
	if s == "" {
		return nil
	}
	return s
}

// insertRenamed runs insert with name and, when another row already has that name
// (two devices named things alike while apart), again with the name marked by the id.
func insertRenamed(insert func(name string) error, name, id string) error {
	err := insert(name)
	if isUnique(err) && strings.Contains(err.Error(), ".name") {
		suffix := id
		if len(suffix) > 6 {
			suffix = suffix[len(suffix)-6:]
		}
		return insert(name + " (" + suffix + ")")
	}
	return err
}

// ---------------------------------------------------------------------------
// Codes

// Effects on a code row; when the row has not arrived yet the effect waits in
// sync_pending_code and is applied when it comes.
const (
	effectUse        = "use"
	effectVoid       = "void"
	effectFreeze     = "freeze"
	effectDistribute = "distribute"
	// effectIssue marks a gift card whose opening value was a guess (it came used,
	// before its campaign): its batch's mutation sets it right.
	effectIssue = "issue"
)

// issueGuess is the stored form of an effectIssue marker.
const issueGuess = `{"op":"issue"}`

type codeEffect struct {
	Op       string `json:"op"`
	Uses     int64  `json:"uses,omitempty"`
	Balance  int64  `json:"balance,omitempty"`
	At       int64  `json:"at_ms,omitempty"`
	MemberID string `json:"member_id,omitempty"`
	TZ       string `json:"tz,omitempty"`
	StoreID  string `json:"store_id,omitempty"` // distribute: the store whose rollup counts it, once the code is here
}

func (t *tx) codeEffect(code string, e codeEffect) error {
	_, err := t.codeEffectOn(code, e)
	return err
}

// codeEffectOn applies an effect and returns the code's campaign ("" when the code is
// not here yet and the effect was kept for later).
func (t *tx) codeEffectOn(code string, e codeEffect) (string, error) {
	var q string
	var args []any
	switch e.Op {
	case effectUse:
		q, args = `UPDATE code SET uses = max(uses + ?, 0), balance = balance + ? WHERE code = ? RETURNING campaign_id`, []any{e.Uses, e.Balance, code}
	case effectVoid:
		q, args = `UPDATE code SET status = 'voided' WHERE code = ? RETURNING campaign_id`, []any{code}
	case effectFreeze:
		q, args = `UPDATE code SET frozen = 1 WHERE code = ? RETURNING campaign_id`, []any{code}
	case effectDistribute:
		q, args = `UPDATE code SET distributed_ms = ?, member_id = COALESCE(?, member_id) WHERE code = ? RETURNING campaign_id`,
			[]any{e.At, nullable(e.MemberID), code}
	default:
		return "", fmt.Errorf("unknown code effect %q", e.Op)
	}
	var campaignID string
	err := t.QueryRow(q, args...).Scan(&campaignID)
	if errors.Is(err, sql.ErrNoRows) {
		b, _ := json.Marshal(e)
		_, err = t.Exec(`INSERT INTO sync_pending_code(code, effect) VALUES (?, ?)`, code, string(b))
		if t.pull != nil {
			t.pull.count("pending_codes", 1)
		}
		return "", err
	}
	if err != nil {
		return "", err
	}
	if e.Op == effectDistribute {
		// A campaign valid N days from distribution: the window starts when the code
		// was handed out, in the zone of the store that handed it out.
		c, err := t.campaign(campaignID)
		if err != nil {
			return "", err
		}
		if c.Rules.ValidDays > 0 {
			to := time.UnixMilli(e.At).In(core.LoadLocation(e.TZ)).AddDate(0, 0, c.Rules.ValidDays).UnixMilli()
			if c.Rules.ValidTo > 0 && c.Rules.ValidTo < to {
				to = c.Rules.ValidTo
			}
			if _, err := t.Exec(`UPDATE code SET valid_from_ms = ?, valid_to_ms = ? WHERE code = ?`, e.At, to, code); err != nil {
				return "", err
			}
		}
	}
	return campaignID, nil
}

// applyCodes inserts the code rows of a codes page (prepared statement, one pass); it
// returns the highest seq. A row is taken as the code was issued (unused, active,
// with a gift card's opening value and ledger entry): the log replays what happened
// to it since, so nothing counts twice.
func (t *tx) applyCodes(changes []wire.Change, cursor int64) (int64, error) {
	ins, err := t.Prepare(`INSERT INTO code(code, campaign_id, batch_id, balance, valid_from_ms, valid_to_ms, created_ms)
		VALUES (?,?,?,?,?,?,?) ON CONFLICT(code) DO NOTHING`)
	if err != nil {
		return 0, err
	}
	defer ins.Close()
	var ledger *sql.Stmt
	defer func() {
		if ledger != nil {
			ledger.Close()
		}
	}()
	var pending bool
	if err := t.QueryRow(`SELECT EXISTS (SELECT 1 FROM sync_pending_code)`).Scan(&pending); err != nil {
		return 0, err
	}
	var last, inserted, known int64
	for i := range changes {
		ch := &changes[i]
		last = max(last, ch.Seq)
		if ch.Seq <= cursor {
			continue
		}
		k := ch.Code
		if k == nil || k.Code == "" || k.CampaignID == "" {
			return 0, core.Invalid("page", "a code in every codes change", fmt.Sprint(ch.Seq), "codes change %d carries no code", ch.Seq)
		}
		issued, guessed, err := t.issuedValue(k)
		if err != nil {
			return 0, err
		}
		res, err := ins.Exec(k.Code, k.CampaignID, k.BatchID, issued, k.ValidFromMS, k.ValidToMS, k.CreatedMS)
		if err != nil {
			return 0, err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			known++
			continue
		}
		inserted++
		if issued > 0 {
			if ledger == nil {
				if ledger, err = t.Prepare(`INSERT INTO ledger(id, code, campaign_id, kind, amount, created_ms) VALUES (?,?,?,'issue',?,?)`); err != nil {
					return 0, err
				}
			}
			if _, err := ledger.Exec(core.NewID(), k.Code, k.CampaignID, issued, k.CreatedMS); err != nil {
				return 0, err
			}
		}
		if pending {
			if err := t.applyPendingCode(k.Code); err != nil {
				return 0, err
			}
		}
		if guessed {
			if _, err := t.Exec(`INSERT INTO sync_pending_code(code, effect) VALUES (?, ?)`, k.Code, issueGuess); err != nil {
				return 0, err
			}
			pending = true
		}
	}
	if inserted > 0 {
		t.pull.count("codes", inserted)
	}
	if known > 0 {
		t.pull.count("codes_known", known)
	}
	return last, nil
}

// issuedValue is a code's value when issued: the row's Issued when the server gives
// it, else its balance while unused, else the campaign's face value (a gift card
// generated with it) when the campaign is here; else the balance, a guess that the
// batch's mutation corrects (guessed).
func (t *tx) issuedValue(k *wire.Code) (v core.Amount, guessed bool, err error) {
	if k.Issued > 0 {
		return core.Amount(k.Issued), false, nil
	}
	if k.Uses == 0 {
		return core.Amount(k.Balance), false, nil
	}
	face, ok := t.pull.faces[k.CampaignID]
	if !ok {
		face = -1
		var kind core.Kind
		var f core.Amount
		err := t.QueryRow(`SELECT kind, face_value FROM campaign WHERE id = ?`, k.CampaignID).Scan(&kind, &f)
		if err != nil && !errors.Is(err, sql.ErrNoRows) {
			return 0, false, err
		}
		if err == nil {
			face = 0
			if kind == core.KindGiftCard {
				face = f
			}
		}
		t.pull.faces[k.CampaignID] = face
	}
	if face >= 0 {
		return face, false, nil
	}
	return core.Amount(k.Balance), k.Balance > 0, nil
}

// pendingRow is a sync_pending_code row as read: its id and one text column.
type pendingRow struct {
	id   int64
	text string
}

// pendingRows reads every row before the caller writes: the transaction's one
// connection cannot run a statement while rows are open.
func (t *tx) pendingRows(query string, args ...any) ([]pendingRow, error) {
	rows, err := t.Query(query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []pendingRow
	for rows.Next() {
		var r pendingRow
		if err := rows.Scan(&r.id, &r.text); err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	return out, rows.Err()
}

// fixIssued sets the opening value of a new batch's gift cards that arrived used
// before their campaign, now that the campaign says what they were issued with.
func (t *tx) fixIssued(batchID string, face core.Amount) error {
	gs, err := t.pendingRows(`SELECT p.id, p.code FROM sync_pending_code p JOIN code k ON k.code = p.code
		WHERE p.effect = ? AND k.batch_id = ?`, issueGuess, batchID)
	if err != nil {
		return err
	}
	for _, g := range gs {
		var was core.Amount
		if err := t.QueryRow(`SELECT COALESCE(sum(amount), 0) FROM ledger WHERE code = ? AND kind = 'issue'`, g.text).Scan(&was); err != nil {
			return err
		}
		for _, q := range []struct {
			sql  string
			args []any
		}{
			{`UPDATE ledger SET amount = amount + ? WHERE id = (SELECT id FROM ledger WHERE code = ? AND kind = 'issue' LIMIT 1)`, []any{face - was, g.text}},
			{`UPDATE code SET balance = balance + ? WHERE code = ?`, []any{face - was, g.text}},
			{`DELETE FROM sync_pending_code WHERE id = ?`, []any{g.id}},
		} {
			if _, err := t.Exec(q.sql, q.args...); err != nil {
				return err
			}
		}
	}
	return nil
}

// applyPendingCode applies the effects that waited for a code's row.
func (t *tx) applyPendingCode(code string) error {
	effects, err := t.pendingRows(`SELECT id, effect FROM sync_pending_code WHERE code = ? ORDER BY id`, code)
	if err != nil {
		return err
	}
	for _, r := range effects {
		var e codeEffect
		if err := json.Unmarshal([]byte(r.text), &e); err != nil {
			return err
		}
		if e.Op == effectIssue {
			continue // waits for the batch, not the code
		}
		if _, err := t.Exec(`DELETE FROM sync_pending_code WHERE id = ?`, r.id); err != nil {
			return err
		}
		cid, err := t.codeEffectOn(code, e)
		if err != nil {
			return err
		}
		if e.Op == effectDistribute && e.StoreID != "" && cid != "" {
			now := t.now
			t.now = e.At
			err = t.rollupAt(e.StoreID, cid, Rollup{Distributed: 1})
			t.now = now
			if err != nil {
				return err
			}
		}
	}
	return nil
}

// ---------------------------------------------------------------------------
// Merchant, stores, devices, operators

func applyMerchantInit(t *tx, m wire.Mutation, _ string) error {
	var a struct {
		Merchant     core.Merchant `json:"merchant"`
		Store        core.Store    `json:"store"`
		Device       core.Device   `json:"device"`
		Owner        core.Operator `json:"owner"`
		PasswordHash string        `json:"password_hash"`
	}
	if err := decode(m, &a); err != nil {
		return err
	}
	if err := required(m, "merchant", a.Merchant.ID, "store", a.Store.ID, "owner", a.Owner.ID); err != nil {
		return err
	}
	var other string
	err := t.QueryRow(`SELECT id FROM merchant WHERE id <> ? LIMIT 1`, a.Merchant.ID).Scan(&other)
	if err == nil {
		e := core.Errorf(core.ErrConflict, "this database belongs to merchant %s, not %s", other, a.Merchant.ID)
		e.Field, e.Params = "merchant", map[string]string{"why": "other_merchant", "value": a.Merchant.ID}
		return e
	}
	if !errors.Is(err, sql.ErrNoRows) {
		return err
	}
	if _, err := t.Exec(`INSERT INTO merchant(id, name, created_ms) VALUES (?,?,?) ON CONFLICT(id) DO NOTHING`,
		a.Merchant.ID, a.Merchant.Name, a.Merchant.Created); err != nil {
		return err
	}
	if own, err := metaText(t, "merchant_id"); err != nil {
		return err
	} else if own == "" {
		if err := setMeta(t.Tx, "merchant_id", a.Merchant.ID); err != nil {
			return err
		}
	}
	t.pull.local.Operator.MerchantID = a.Merchant.ID
	if err := insertStore(t, a.Store); err != nil {
		return err
	}
	if a.Device.ID != "" {
		if err := insertDevice(t, a.Device); err != nil {
			return err
		}
	}
	return insertOperator(t, a.Owner, a.PasswordHash)
}

func insertStore(t *tx, s core.Store) error {
	if s.TimeZone == "" {
		s.TimeZone = core.DefaultTimeZone
	}
	delete(t.pull.stores, s.ID)
	return insertRenamed(func(name string) error {
		_, err := t.Exec(`INSERT INTO store(id, merchant_id, name, time_zone, created_ms) VALUES (?,?,?,?,?) ON CONFLICT(id) DO NOTHING`,
			s.ID, s.MerchantID, name, s.TimeZone, s.Created)
		return err
	}, s.Name, s.ID)
}

func insertDevice(t *tx, d core.Device) error {
	var one int
	if err := t.QueryRow(`SELECT 1 FROM store WHERE id = ?`, d.StoreID).Scan(&one); errors.Is(err, sql.ErrNoRows) {
		return cannot("device in an unknown store")
	} else if err != nil {
		return err
	}
	delete(t.pull.devices, d.ID)
	_, err := t.Exec(`INSERT INTO device(id, merchant_id, store_id, name, created_ms) VALUES (?,?,?,?,?)
		ON CONFLICT(id) DO UPDATE SET store_id = excluded.store_id, name = excluded.name`, d.ID, d.MerchantID, d.StoreID, d.Name, d.Created)
	return err
}

func insertOperator(t *tx, o core.Operator, hash string) error {
	return insertRenamed(func(name string) error {
		_, err := t.Exec(`INSERT INTO operator(id, merchant_id, name, role, store_id, password_hash, disabled, created_ms) VALUES (?,?,?,?,?,?,?,?)
			ON CONFLICT(id) DO NOTHING`, o.ID, o.MerchantID, name, o.Role, nullable(o.StoreID), hash, o.Disabled, o.Created)
		return err
	}, o.Name, o.ID)
}

func applyStoreAdd(t *tx, m wire.Mutation, _ string) error {
	var s core.Store
	if err := decode(m, &s); err != nil {
		return err
	}
	if err := required(m, "id", s.ID, "name", s.Name); err != nil {
		return err
	}
	return insertStore(t, s)
}

func applyDeviceAdd(t *tx, m wire.Mutation, _ string) error {
	var a struct {
		Device core.Device `json:"device"`
	}
	if err := decode(m, &a); err != nil {
		return err
	}
	if err := required(m, "device", a.Device.ID); err != nil {
		return err
	}
	return insertDevice(t, a.Device)
}

func applyOperatorAdd(t *tx, m wire.Mutation, _ string) error {
	var o operatorArgs
	if err := decode(m, &o); err != nil {
		return err
	}
	if err := required(m, "id", o.ID, "name", o.Name); err != nil {
		return err
	}
	if _, err := core.ParseRole(string(o.Role)); err != nil {
		return err
	}
	return insertOperator(t, o.Operator, o.PasswordHash)
}

// ---------------------------------------------------------------------------
// Campaigns

func applyCampaignCreate(t *tx, m wire.Mutation, _ string) error {
	var c core.Campaign
	if err := decode(m, &c); err != nil {
		return err
	}
	if err := required(m, "id", c.ID, "name", c.Name); err != nil {
		return err
	}
	if c.Status == "" {
		c.Status = core.StatusActive
	}
	t.campaignsChanged = true
	return insertRenamed(func(name string) error {
		_, err := t.Exec(`INSERT INTO campaign(`+campaignCols+`) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?) ON CONFLICT(id) DO NOTHING`,
			c.ID, c.MerchantID, name, c.Description, c.Kind, c.Status, c.Currency, c.AmountOff, c.PercentOff,
			c.MaxDiscount, c.MinSpend, c.FaceValue, jsonString(c.Rules), jsonString(c.Format), 0, 0, 0, c.Created, c.Updated)
		return err
	}, c.Name, c.ID)
}

// campaignCounters are kept by each device from the redemptions it knows, never
// taken from an edit.
var campaignCounters = map[string]bool{"id": true, "merchant_id": true, "issued": true, "redeemed": true, "spent": true,
	"created_ms": true, "updated_ms": true}

// applyCampaignEdit sets each changed field, and each changed rule, whose value was
// set by a change that comes before this one in the order of (HLC, device): the
// last writer wins per field and per rule, the server's rule as well, which is also
// how it keeps its value against an older concurrent edit of value, budget or
// dates (and opens a case there).
func applyCampaignEdit(t *tx, m wire.Mutation, deviceID string) error {
	var a struct {
		ID      string                     `json:"id"`
		Changes map[string]json.RawMessage `json:"changes"`
	}
	if err := decode(m, &a); err != nil {
		return err
	}
	if err := required(m, "id", a.ID); err != nil {
		return err
	}
	delete(a.Changes, "status") // it changes by campaign.status@1 alone, as on the server
	return t.campaignFields(a.ID, fieldStamp{HLC: m.HLC, Device: deviceID}, a.Changes, false)
}

// applyCampaignStatus changes the status by the clock too, except that archiving is
// final: it stands against a later change made apart, and nothing follows it.
func applyCampaignStatus(t *tx, m wire.Mutation, deviceID string) error {
	var a struct {
		ID     string              `json:"id"`
		Status core.CampaignStatus `json:"status"`
	}
	if err := decode(m, &a); err != nil {
		return err
	}
	if err := required(m, "id", a.ID, "status", string(a.Status)); err != nil {
		return err
	}
	c, err := t.campaign(a.ID)
	if core.ErrorCode(err) == core.ErrNotFound {
		return cannot("unknown campaign")
	}
	if err != nil {
		return err
	}
	if c.Status == core.StatusArchived {
		return notApplied("archived")
	}
	b, _ := json.Marshal(a.Status)
	return t.campaignFields(a.ID, fieldStamp{HLC: m.HLC, Device: deviceID}, map[string]json.RawMessage{"status": b},
		a.Status == core.StatusArchived)
}

// campaignFields applies the fields and rules of changes that st comes after (all of
// them when force).
func (t *tx) campaignFields(id string, st fieldStamp, changes map[string]json.RawMessage, force bool) error {
	old, err := t.campaign(id)
	if core.ErrorCode(err) == core.ErrNotFound {
		return cannot("unknown campaign")
	}
	if err != nil {
		return err
	}
	var cur, rules map[string]json.RawMessage
	if err := json.Unmarshal([]byte(jsonString(old)), &cur); err != nil {
		return err
	}
	if err := json.Unmarshal(cur["rules"], &rules); err != nil {
		return err
	}
	var set []string
	// take tells whether st comes after the change that set field's value.
	take := func(field string) (bool, error) {
		if force {
			return true, nil
		}
		held, err := t.campaignStamp(id, field)
		return st.after(held), err
	}
	for _, k := range mapKeys(changes) {
		if campaignCounters[k] || strings.Contains(k, ".") {
			continue
		}
		if k == "rules" {
			var rc map[string]json.RawMessage
			if err := json.Unmarshal(changes[k], &rc); err != nil {
				return core.Invalid("args", "campaign rules", string(firstBytes(changes[k], 60)), "bad campaign rules: %v", err)
			}
			for _, r := range mapKeys(rc) {
				ok, err := take("rules." + r)
				if err != nil {
					return err
				}
				if ok {
					rules[r] = rc[r]
					set = append(set, "rules."+r)
				}
			}
			continue
		}
		ok, err := take(k)
		if err != nil {
			return err
		}
		if ok {
			cur[k] = changes[k]
			set = append(set, k)
		}
	}
	if len(set) == 0 {
		return notApplied("older edit")
	}
	cur["rules"], _ = json.Marshal(rules)
	b, _ := json.Marshal(cur)
	var c core.Campaign
	if err := json.Unmarshal(b, &c); err != nil {
		return core.Invalid("args", "campaign fields", string(firstBytes(b, 60)), "bad campaign fields: %v", err)
	}
	c.Updated = max(t.now, old.Updated+1)
	t.campaignsChanged = true
	err = insertRenamed(func(name string) error {
		_, err := t.Exec(`UPDATE campaign SET name=?, description=?, kind=?, status=?, currency=?, amount_off=?, percent_off=?, max_discount=?,
			min_spend=?, face_value=?, rules=?, format=?, updated_ms=? WHERE id=?`,
			name, c.Description, c.Kind, c.Status, c.Currency, c.AmountOff, c.PercentOff, c.MaxDiscount, c.MinSpend, c.FaceValue,
			jsonString(c.Rules), jsonString(c.Format), c.Updated, c.ID)
		return err
	}, c.Name, c.ID)
	if err != nil {
		return err
	}
	return t.stampCampaign(id, st, set...)
}

// applyBatch records a batch generated or imported elsewhere: the campaign's issued
// count and the generated rollup. The codes come with the codes stream.
func applyBatch(t *tx, m wire.Mutation, _ string) error {
	var a struct {
		Batch      core.Batch `json:"batch"`
		CampaignID string     `json:"campaign_id"`
		Count      int64      `json:"count"`
	}
	if err := decode(m, &a); err != nil {
		return err
	}
	if a.CampaignID == "" {
		a.CampaignID = a.Batch.CampaignID
	}
	if err := required(m, "batch", a.Batch.ID, "campaign_id", a.CampaignID); err != nil {
		return err
	}
	if a.Count == 0 {
		a.Count = a.Batch.Count
	}
	_, err := t.insertBatch(a.Batch, a.CampaignID, a.Count, strings.TrimPrefix(strings.TrimSuffix(m.Name, "@1"), "codes."))
	return err
}

// insertBatch writes a remote batch once, with the issued count and rollup; it
// reports whether it was new.
func (t *tx) insertBatch(b core.Batch, campaignID string, count int64, source string) (bool, error) {
	c, err := t.campaign(campaignID)
	if core.ErrorCode(err) == core.ErrNotFound {
		return false, cannot("unknown campaign")
	} else if err != nil {
		return false, err
	}
	if b.Source == "generate" || b.Source == "import" {
		source = b.Source
	}
	if source != "import" {
		source = "generate"
	}
	if b.Created == 0 {
		b.Created = t.now
	}
	res, err := t.Exec(`INSERT INTO batch(id, campaign_id, source, count, operator_id, created_ms) VALUES (?,?,?,?,?,?) ON CONFLICT(id) DO NOTHING`,
		b.ID, campaignID, source, count, t.actor.Operator.ID, b.Created)
	if err != nil {
		return false, err
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return false, nil
	}
	if _, err := t.Exec(`UPDATE campaign SET issued = issued + ? WHERE id = ?`, count, campaignID); err != nil {
		return false, err
	}
	if c.Kind == core.KindGiftCard && source == "generate" {
		if err := t.fixIssued(b.ID, c.FaceValue); err != nil {
			return false, err
		}
	}
	t.campaignsChanged = true
	now := t.now
	t.now = b.Created
	err = t.rollupAt(t.actor.Store.ID, campaignID, Rollup{Generated: count})
	t.now = now
	return true, err
}

func applyDistribute(t *tx, m wire.Mutation, _ string) error {
	var a struct {
		Codes    []string `json:"codes"`
		MemberID string   `json:"member_id"`
		Phone    string   `json:"phone"` // plain, when a sender includes it: sealed here with this device's key
	}
	if err := decode(m, &a); err != nil {
		return err
	}
	if len(a.Codes) == 0 {
		return required(m, "codes", "")
	}
	var sealer *core.Secrets
	var ix []byte
	if a.Phone != "" {
		s, err := t.db.sealer()
		if err != nil {
			return err
		}
		sealer, ix = s, s.Index(a.Phone)
	}
	perCampaign := map[string]int64{}
	for _, code := range a.Codes {
		cid, err := t.codeEffectOn(code, codeEffect{Op: effectDistribute, At: t.now, MemberID: a.MemberID, TZ: t.actor.Store.TimeZone,
			StoreID: t.actor.Store.ID})
		if err != nil {
			return err
		}
		if cid == "" {
			continue
		}
		perCampaign[cid]++
		if sealer != nil {
			if _, err := t.Exec(`UPDATE code SET phone = ?, phone_ix = ? WHERE code = ?`, sealer.Seal(a.Phone, code), ix, code); err != nil {
				return err
			}
		}
	}
	for _, cid := range mapKeys(perCampaign) {
		if err := t.rollupAt(t.actor.Store.ID, cid, Rollup{Distributed: perCampaign[cid]}); err != nil {
			return err
		}
	}
	return nil
}

func applyVoid(t *tx, m wire.Mutation, _ string) error {
	var a struct {
		Code string `json:"code"`
	}
	if err := decode(m, &a); err != nil {
		return err
	}
	if err := required(m, "code", a.Code); err != nil {
		return err
	}
	return t.codeEffect(a.Code, codeEffect{Op: effectVoid})
}

// ---------------------------------------------------------------------------
// Redemptions

type redeemArgs struct {
	Redemption core.Redemption    `json:"redemption"`
	MemberID   string             `json:"member_id"`
	Split      []core.PartyAmount `json:"split"`
}

// applyRedeem writes a redemption made elsewhere: the row with its id, the code's use
// and a gift card's debit, budget, rollups and settlement shares, as Redeem does. A
// redemption flagged already_redeemed is the losing one of a double redemption: the
// server did not apply it, so neither does this device. One flagged for another
// reason (late_offline) stands on the server and is applied, even while a losing
// redemption of the same code still stands here (its reversal follows in the log).
func applyRedeem(t *tx, m wire.Mutation, _ string) error {
	var a redeemArgs
	if err := decode(m, &a); err != nil {
		return err
	}
	r := a.Redemption
	if err := required(m, "redemption.id", r.ID, "redemption.code", r.Code, "redemption.campaign_id", r.CampaignID); err != nil {
		return err
	}
	var one int
	if err := t.QueryRow(`SELECT 1 FROM redemption WHERE id = ?`, r.ID).Scan(&one); err == nil {
		return notApplied("known redemption")
	} else if !errors.Is(err, sql.ErrNoRows) {
		return err
	}
	c, err := t.campaign(r.CampaignID)
	if core.ErrorCode(err) == core.ErrNotFound {
		return cannot("unknown campaign")
	}
	if err != nil {
		return err
	}
	if t.pull.status == wire.Flagged && t.pull.reason == core.ReasonAlreadyRedeemed {
		return notApplied("lost double redemption")
	}
	if t.pull.status == wire.Flagged && t.pull.reason == "" && c.Kind != core.KindGiftCard {
		// A server that does not say why: a code whose uses are taken here already.
		limit := max(c.Rules.UsesPerCode, 1)
		if c.Kind == core.KindCardKey {
			limit = 1
		}
		var standing int
		if err := t.QueryRow(`SELECT count(*) FROM redemption WHERE code = ? AND status = 'done'`, r.Code).Scan(&standing); err != nil {
			return err
		}
		if standing >= limit {
			return notApplied("lost double redemption")
		}
	}
	if r.Created == 0 {
		r.Created = t.now
	}
	t.now = r.Created
	t.actAt(r.StoreID, r.OperatorID)
	if r.StoreID == "" {
		r.StoreID = t.actor.Store.ID
	}
	split := encodeShares(a.Split)
	insert := func(key any) error {
		_, err := t.Exec(`INSERT INTO redemption(id, code, campaign_id, store_id, device_id, operator_id, order_ref, order_amount,
			discount, value, member_ix, member_id, split, status, created_ms, idem_key) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)`,
			r.ID, r.Code, r.CampaignID, r.StoreID, r.DeviceID, r.OperatorID, r.OrderRef, r.OrderAmount, r.Discount, r.Value,
			nil, nullable(a.MemberID), split, core.RedemptionDone, r.Created, key)
		return err
	}
	if err := insert(nullable(r.IdemKey)); isUnique(err) && r.IdemKey != "" {
		err = insert(nil) // the key is this device's own for another request: keep the redemption without it
		if err != nil {
			return err
		}
	} else if err != nil {
		return err
	}
	use := codeEffect{Op: effectUse, Uses: 1}
	if c.Kind == core.KindGiftCard {
		use.Balance = -int64(r.Value)
		if _, err := t.Exec(`INSERT INTO ledger(id, code, campaign_id, kind, amount, redemption_id, created_ms) VALUES (?,?,?,'debit',?,?,?)`,
			core.NewID(), r.Code, c.ID, -r.Value, r.ID, r.Created); err != nil {
			return err
		}
	}
	if err := t.codeEffect(r.Code, use); err != nil {
		return err
	}
	if _, err := t.Exec(`UPDATE campaign SET redeemed = redeemed + 1, spent = spent + ? WHERE id = ?`, r.Discount+r.Value, c.ID); err != nil {
		return err
	}
	if err := t.rollupAt(r.StoreID, c.ID, Rollup{Redeemed: 1, Discount: r.Discount, OrderAmount: r.OrderAmount, Value: r.Value}); err != nil {
		return err
	}
	rr := r
	if err := t.redeemedAt(&rr, t.storeLocation(r.StoreID), 1, a.Split); err != nil {
		return err
	}
	// A purchase with a member's phone and no amount is a visit of its own; with an
	// amount, the points.earn@1 made with it records the visit.
	if a.MemberID != "" && r.OrderAmount == 0 && t.memberHere(a.MemberID) {
		return t.visit(a.MemberID, 0)
	}
	return nil
}

func (t *tx) memberHere(id string) bool {
	var one int
	return t.QueryRow(`SELECT 1 FROM member WHERE id = ?`, id).Scan(&one) == nil
}

func applyRollback(t *tx, m wire.Mutation, _ string) error {
	var a struct {
		RedemptionID string `json:"redemption_id"`
		Reason       string `json:"reason"`
	}
	if err := decode(m, &a); err != nil {
		return err
	}
	if err := required(m, "redemption_id", a.RedemptionID); err != nil {
		return err
	}
	done, err := t.reverseRedemption(a.RedemptionID, a.Reason, "")
	if err != nil {
		return err
	}
	if !done {
		return notApplied("redemption not standing here")
	}
	return nil
}

// applyReverse undoes the losing redemption of a double redemption, if this device
// has it standing (it may be this device's own).
func applyReverse(t *tx, m wire.Mutation, _ string) error {
	var a struct {
		RedemptionID string `json:"redemption_id"`
		Code         string `json:"code"`
		Reason       string `json:"reason"`
		CaseID       string `json:"case_id"`
	}
	if err := decode(m, &a); err != nil {
		return err
	}
	if err := required(m, "redemption_id", a.RedemptionID); err != nil {
		return err
	}
	done, err := t.reverseRedemption(a.RedemptionID, "double_redemption", wire.ServerDevice)
	if err != nil {
		return err
	}
	if !done {
		return notApplied("redemption not standing here")
	}
	return t.localAudit("redemption.reverse", "redemption", a.RedemptionID, map[string]any{"code": a.Code, "case_id": a.CaseID,
		"reason": "double_redemption", "server_reason": a.Reason})
}

func applyFreeze(t *tx, m wire.Mutation, _ string) error {
	var a struct {
		Kind      string `json:"kind"`
		AccountID string `json:"account_id"`
		CaseID    string `json:"case_id"`
	}
	if err := decode(m, &a); err != nil {
		return err
	}
	if err := required(m, "kind", a.Kind, "account_id", a.AccountID); err != nil {
		return err
	}
	if a.Kind != wire.AccountWallet && a.Kind != wire.AccountGiftCard {
		return cannot("unknown account kind")
	}
	if err := t.freeze(a.Kind, a.AccountID); err != nil {
		return err
	}
	return t.localAudit("account.freeze", a.Kind, a.AccountID, map[string]any{"case_id": a.CaseID})
}

// ---------------------------------------------------------------------------
// Cases

func applyCaseOpen(t *tx, m wire.Mutation, _ string) error {
	var c wire.Case
	if err := decode(m, &c); err != nil {
		return err
	}
	if err := required(m, "id", c.ID, "kind", c.Kind); err != nil {
		return err
	}
	if c.CreatedMS == 0 {
		c.CreatedMS = t.now
	}
	c.Status = "open"
	if err := t.saveCase(&c, false); err != nil {
		return err
	}
	return t.localAudit("case.open", "case", c.ID, map[string]any{"kind": c.Kind, "subject": c.Subject})
}

// applyCaseResolve takes the server's resolved case, or the decision another device
// pushed ({case_id, action, note, operator_id}).
func applyCaseResolve(t *tx, m wire.Mutation, _ string) error {
	var a struct {
		wire.Case
		CaseID     string `json:"case_id"`
		OperatorID string `json:"operator_id"`
	}
	if err := decode(m, &a); err != nil {
		return err
	}
	c := a.Case
	if c.ID == "" {
		c.ID = a.CaseID
	}
	if err := required(m, "case_id", c.ID); err != nil {
		return err
	}
	if c.ResolvedBy == "" {
		c.ResolvedBy = a.OperatorID
	}
	if c.ResolvedMS == 0 {
		c.ResolvedMS = t.now
	}
	if c.CreatedMS == 0 {
		c.CreatedMS = t.now
	}
	c.Status = "resolved"
	if err := t.saveCase(&c, true); err != nil {
		return err
	}
	return t.localAudit("case.resolve", "case", c.ID, map[string]any{"action": c.Action, "by": c.ResolvedBy, "note": c.Note})
}

// ---------------------------------------------------------------------------
// Members

// memberPII is a member's personal data as it travels (opened by the sender); it is
// sealed here with this device's key.
type memberPII struct {
	Phone    string `json:"phone"`
	Name     string `json:"name"`
	Birthday string `json:"birthday"`
}

func applyMemberAdd(t *tx, m wire.Mutation, _ string) error {
	var a struct {
		MemberID   string     `json:"member_id"`
		StoreID    string     `json:"store_id"`
		PII        *memberPII `json:"pii"`
		BirthMonth int        `json:"birth_month"`
		Tags       []string   `json:"tags"`
		Consent    bool       `json:"consent"`
		ConsentMS  int64      `json:"consent_ms"`
		TierID     string     `json:"tier_id"`
		Created    int64      `json:"created_ms"`
	}
	if err := decode(m, &a); err != nil {
		return err
	}
	if err := required(m, "member_id", a.MemberID); err != nil {
		return err
	}
	if t.memberHere(a.MemberID) {
		return notApplied("known member")
	}
	if a.Created == 0 {
		a.Created = t.now
	}
	if a.StoreID == "" {
		a.StoreID = t.actor.Store.ID
	}
	var phone, ix, name, nameIx, birthday []byte
	if a.PII != nil && (a.PII.Phone != "" || a.PII.Name != "" || a.PII.Birthday != "") {
		s, err := t.db.sealer()
		if err != nil {
			return err
		}
		phone, name, birthday = sealOrNil(s, a.PII.Phone, a.MemberID), sealOrNil(s, a.PII.Name, a.MemberID), sealOrNil(s, a.PII.Birthday, a.MemberID)
		ix, nameIx = indexOrNil(s, a.PII.Phone), indexOrNil(s, nameKey(a.PII.Name))
	}
	insert := func(ix []byte) error {
		_, err := t.Exec(`INSERT INTO member(id, merchant_id, phone, phone_ix, name, name_ix, birthday, birth_month, tags,
			consent, consent_ms, tier_id, store_id, created_ms, updated_ms) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)`,
			a.MemberID, t.pull.local.Operator.MerchantID, phone, ix, name, nameIx, birthday, a.BirthMonth, storedTags(a.Tags),
			a.Consent, a.ConsentMS, a.TierID, a.StoreID, a.Created, a.Created)
		return err
	}
	err := insert(ix)
	if isUnique(err) && ix != nil {
		// The same phone signed up on two devices while apart: the second record is
		// kept, without the index, so the phone keeps finding the first.
		t.pull.count("phone_clash", 1)
		ix = nil
		err = insert(nil)
	}
	if err != nil || ix == nil {
		return err
	}
	for i := 1; i < len(memberInserts); i++ {
		if _, err := t.Exec(memberInserts[i], a.MemberID, ix); err != nil {
			return err
		}
	}
	return nil
}

func applyMemberEdit(t *tx, m wire.Mutation, _ string) error {
	var a struct {
		MemberID   string     `json:"member_id"`
		Changed    []string   `json:"changed"`
		PII        *memberPII `json:"pii"`
		BirthMonth int        `json:"birth_month"`
		Tags       []string   `json:"tags"`
		Consent    bool       `json:"consent"`
		ConsentMS  int64      `json:"consent_ms"`
	}
	if err := decode(m, &a); err != nil {
		return err
	}
	if err := required(m, "member_id", a.MemberID); err != nil {
		return err
	}
	if !t.memberHere(a.MemberID) {
		return cannot("unknown member")
	}
	pii := a.PII
	if pii == nil {
		pii = &memberPII{}
	}
	var sealer *core.Secrets
	seal := func() error {
		if sealer != nil {
			return nil
		}
		s, err := t.db.sealer()
		sealer = s
		return err
	}
	id := a.MemberID
	for _, f := range a.Changed {
		var err error
		switch f {
		case "phone":
			if err = seal(); err != nil {
				return err
			}
			ix := indexOrNil(sealer, pii.Phone)
			_, err = t.Exec(`UPDATE member SET phone = ?, phone_ix = ?, updated_ms = ? WHERE id = ?`, sealOrNil(sealer, pii.Phone, id), ix, t.now, id)
			if isUnique(err) {
				t.pull.count("phone_clash", 1)
				_, err = t.Exec(`UPDATE member SET phone = ?, phone_ix = ?, updated_ms = ? WHERE id = ?`, sealOrNil(sealer, pii.Phone, id), nil, t.now, id)
			}
		case "name":
			if err = seal(); err != nil {
				return err
			}
			_, err = t.Exec(`UPDATE member SET name = ?, name_ix = ?, updated_ms = ? WHERE id = ?`,
				sealOrNil(sealer, pii.Name, id), indexOrNil(sealer, nameKey(pii.Name)), t.now, id)
		case "birthday":
			if err = seal(); err != nil {
				return err
			}
			_, err = t.Exec(`UPDATE member SET birthday = ?, birth_month = ?, updated_ms = ? WHERE id = ?`,
				sealOrNil(sealer, pii.Birthday, id), a.BirthMonth, t.now, id)
		case "tags":
			_, err = t.Exec(`UPDATE member SET tags = ?, updated_ms = ? WHERE id = ?`, storedTags(a.Tags), t.now, id)
		case "consent":
			_, err = t.Exec(`UPDATE member SET consent = ?, consent_ms = ?, updated_ms = ? WHERE id = ?`, a.Consent, a.ConsentMS, t.now, id)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

func applyMemberAnonymise(t *tx, m wire.Mutation, _ string) error {
	var a struct {
		MemberID string `json:"member_id"`
	}
	if err := decode(m, &a); err != nil {
		return err
	}
	if err := required(m, "member_id", a.MemberID); err != nil {
		return err
	}
	if !t.memberHere(a.MemberID) {
		return cannot("unknown member")
	}
	const records = `WITH RECURSIVE r(id) AS (SELECT ? UNION SELECT m.id FROM member m JOIN r ON m.merged_into = r.id) SELECT id FROM r`
	for _, q := range []string{
		`UPDATE member SET phone = NULL, phone_ix = NULL, name = NULL, name_ix = NULL, birthday = NULL, birth_month = 0, tags = '',
			consent = 0, consent_ms = ?2, updated_ms = ?2 WHERE id IN (` + records + `)`,
		`UPDATE code SET phone = NULL, phone_ix = NULL WHERE member_id IN (` + records + `) AND (phone IS NOT NULL OR phone_ix IS NOT NULL)`,
		`UPDATE redemption SET member_ix = NULL WHERE member_id IN (` + records + `) AND member_ix IS NOT NULL`,
	} {
		if _, err := t.Exec(q, a.MemberID, t.now); err != nil {
			return err
		}
	}
	_, err := t.Exec(`UPDATE member SET status = 'anonymised' WHERE id = ?`, a.MemberID)
	return err
}

func applyMemberMerge(t *tx, m wire.Mutation, _ string) error {
	var a struct {
		From string `json:"from"`
		Into string `json:"into"`
	}
	if err := decode(m, &a); err != nil {
		return err
	}
	if err := required(m, "from", a.From, "into", a.Into); err != nil {
		return err
	}
	var status string
	if err := t.QueryRow(`SELECT status FROM member WHERE id = ?`, a.From).Scan(&status); errors.Is(err, sql.ErrNoRows) {
		return cannot("unknown member")
	} else if err != nil {
		return err
	}
	if status != core.MemberActive || !t.memberHere(a.Into) {
		return notApplied("merged already")
	}
	return t.mergeMembers(a.From, a.Into, &MergeResult{})
}

func applyMemberTier(t *tx, m wire.Mutation, _ string) error {
	var a struct {
		MemberID string `json:"member_id"`
		To       string `json:"to"`
	}
	if err := decode(m, &a); err != nil {
		return err
	}
	if err := required(m, "member_id", a.MemberID); err != nil {
		return err
	}
	_, err := t.Exec(`UPDATE member SET tier_id = ?, updated_ms = max(updated_ms, ?) WHERE id = ?`, a.To, t.now, a.MemberID)
	return err
}

// applyHandout records a code handed to a member elsewhere (automatic issuing or a
// points reward): a code generated for it, the distribution, the member's phone
// sealed onto the code with this device's key, and the rule's fire-once record.
func applyHandout(t *tx, m wire.Mutation, _ string) error {
	var a struct {
		MemberID   string      `json:"member_id"`
		Code       string      `json:"code"`
		CampaignID string      `json:"campaign_id"`
		Why        string      `json:"why"`
		ValidFrom  int64       `json:"valid_from_ms"`
		ValidTo    int64       `json:"valid_to_ms"`
		Batch      *core.Batch `json:"batch"`
	}
	if err := decode(m, &a); err != nil {
		return err
	}
	if err := required(m, "member_id", a.MemberID, "code", a.Code, "campaign_id", a.CampaignID); err != nil {
		return err
	}
	c, err := t.campaign(a.CampaignID)
	if core.ErrorCode(err) == core.ErrNotFound {
		return cannot("unknown campaign")
	}
	if err != nil {
		return err
	}
	if a.Batch != nil && a.Batch.ID != "" {
		// A code generated for the hand-out travels only here: write its row.
		count := max(a.Batch.Count, 1)
		if _, err := t.insertBatch(*a.Batch, c.ID, count, "generate"); err != nil {
			return err
		}
		balance := core.Amount(0)
		if c.Kind == core.KindGiftCard {
			balance = c.FaceValue
		}
		res, err := t.Exec(`INSERT INTO code(code, campaign_id, batch_id, balance, created_ms) VALUES (?,?,?,?,?) ON CONFLICT(code) DO NOTHING`,
			a.Code, c.ID, a.Batch.ID, balance, t.now)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 1 && balance > 0 {
			if _, err := t.Exec(`INSERT INTO ledger(id, code, campaign_id, kind, amount, created_ms) VALUES (?,?,?,'issue',?,?)`,
				core.NewID(), a.Code, c.ID, balance, t.now); err != nil {
				return err
			}
		}
	}
	res, err := t.Exec(`UPDATE code SET distributed_ms = ?, member_id = ?, valid_from_ms = ?, valid_to_ms = ? WHERE code = ?`,
		t.now, a.MemberID, a.ValidFrom, a.ValidTo, a.Code)
	if err != nil {
		return err
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return t.codeEffect(a.Code, codeEffect{Op: effectDistribute, At: t.now, MemberID: a.MemberID, TZ: t.actor.Store.TimeZone,
			StoreID: t.actor.Store.ID})
	}
	if err := t.rollupAt(t.actor.Store.ID, c.ID, Rollup{Distributed: 1}); err != nil {
		return err
	}
	var sealedPhone, ix []byte
	if err := t.QueryRow(`SELECT phone, phone_ix FROM member WHERE id = ?`, a.MemberID).Scan(&sealedPhone, &ix); err == nil && sealedPhone != nil {
		if s, err := t.db.sealer(); err == nil {
			if phone, err := s.Open(sealedPhone, a.MemberID); err == nil {
				if _, err := t.Exec(`UPDATE code SET phone = ?, phone_ix = ? WHERE code = ?`, s.Seal(phone, a.Code), ix, a.Code); err != nil {
					return err
				}
			}
		}
	}
	// The rule fired for this member: it must not fire again here.
	period := ""
	switch a.Why {
	case core.IssueBirthday:
		period = fmt.Sprint(time.UnixMilli(t.now).In(t.actor.Store.Location()).Year())
	case core.IssueWelcome, core.IssueSpend:
	default:
		return nil
	}
	var rule string
	if err := t.QueryRow(`SELECT id FROM issue_rule WHERE kind = ? AND campaign_id = ? ORDER BY active DESC, created_ms LIMIT 1`, a.Why, c.ID).Scan(&rule); err != nil {
		if errors.Is(err, sql.ErrNoRows) {
			return nil
		}
		return err
	}
	_, err = t.Exec(`INSERT OR IGNORE INTO issued(rule_id, member_id, period, code, created_ms) VALUES (?,?,?,?,?)`, rule, a.MemberID, period, a.Code, t.now)
	return err
}

// ---------------------------------------------------------------------------
// Stored value and points

// insertWallet writes a remote wallet entry once, with its id, and moves the member's
// cached balance; it reports whether the entry was new.
func (t *tx) insertWallet(e *core.WalletEntry) (bool, error) {
	if e == nil || e.ID == "" || e.MemberID == "" {
		return false, core.Invalid("args", "a wallet entry", "", "a wallet entry without id or member")
	}
	if e.Created == 0 {
		e.Created = t.now
	}
	if e.StoreID == "" {
		e.StoreID = t.actor.Store.ID
	}
	insert := func(key any) (sql.Result, error) {
		return t.Exec(`INSERT INTO wallet_entry(id, member_id, kind, amount, ref, related_id, store_id, operator_id, device_id, idem_key, created_ms)
			VALUES (?,?,?,?,?,?,?,?,?,?,?) ON CONFLICT(id) DO NOTHING`, e.ID, e.MemberID, e.Kind, e.Amount, e.Ref, e.RelatedID,
			e.StoreID, e.OperatorID, e.DeviceID, key, e.Created)
	}
	res, err := insert(nullable(e.IdemKey))
	if isUnique(err) && e.IdemKey != "" {
		res, err = insert(nil)
	}
	if err != nil {
		return false, err
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return false, nil
	}
	_, err = t.Exec(`UPDATE member SET wallet = wallet + ?, updated_ms = max(updated_ms, ?) WHERE id = ?`, e.Amount, e.Created, e.MemberID)
	return true, err
}

func applyWalletTopup(t *tx, m wire.Mutation, _ string) error {
	var a struct {
		Entry *core.WalletEntry `json:"entry"`
		Bonus *core.WalletEntry `json:"bonus"`
	}
	if err := decode(m, &a); err != nil {
		return err
	}
	if _, err := t.insertWallet(a.Entry); err != nil {
		return err
	}
	if a.Bonus != nil {
		_, err := t.insertWallet(a.Bonus)
		return err
	}
	return nil
}

// applyWalletPay takes a payment made elsewhere, also one that overdraws the wallet:
// the server applied it and opened a case; the freeze follows as account.freeze@1.
func applyWalletPay(t *tx, m wire.Mutation, _ string) error {
	var e core.WalletEntry
	if err := decode(m, &e); err != nil {
		return err
	}
	_, err := t.insertWallet(&e)
	return err
}

func applyWalletRefund(t *tx, m wire.Mutation, _ string) error {
	var a struct {
		Entry *core.WalletEntry `json:"entry"`
	}
	if err := decode(m, &a); err != nil {
		return err
	}
	_, err := t.insertWallet(a.Entry)
	return err
}

// insertPoints writes a remote points entry with its id and moves the member's cached
// points; it reports whether the entry was new.
func (t *tx) insertPoints(e *core.PointsEntry) (bool, error) {
	if e.Created == 0 {
		e.Created = t.now
	}
	if e.StoreID == "" {
		e.StoreID = t.actor.Store.ID
	}
	res, err := t.Exec(`INSERT INTO points_entry(id, member_id, kind, points, remaining, expires_ms, order_amount, ref, related_id,
		campaign_id, reason, store_id, operator_id, device_id, created_ms) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?) ON CONFLICT(id) DO NOTHING`,
		e.ID, e.MemberID, e.Kind, e.Points, e.Remaining, e.Expires, e.OrderAmount, e.Ref, e.RelatedID, e.CampaignID, e.Reason,
		e.StoreID, e.OperatorID, e.DeviceID, e.Created)
	if err != nil {
		return false, err
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return false, nil
	}
	_, err = t.Exec(`UPDATE member SET points = points + ?, updated_ms = max(updated_ms, ?) WHERE id = ?`, e.Points, e.Created, e.MemberID)
	return true, err
}

func (t *tx) pointsEntryHere(id string) bool {
	var one int
	return t.QueryRow(`SELECT 1 FROM points_entry WHERE id = ?`, id).Scan(&one) == nil
}

// pointsEntryFrom decodes a points entry made elsewhere and sets the transaction to
// act at its store and time; an entry already here is not applied again.
func (t *tx) pointsEntryFrom(m wire.Mutation) (*core.PointsEntry, error) {
	var e core.PointsEntry
	if err := decode(m, &e); err != nil {
		return nil, err
	}
	if err := required(m, "id", e.ID, "member_id", e.MemberID); err != nil {
		return nil, err
	}
	if t.pointsEntryHere(e.ID) {
		return nil, notApplied("known entry")
	}
	if e.Created > 0 {
		t.now = e.Created
	}
	t.actAt(e.StoreID, e.OperatorID)
	return &e, nil
}

// applyPointsEarn adds an earned lot and the purchase's visit, at the store and time
// it was made.
func applyPointsEarn(t *tx, m wire.Mutation, _ string) error {
	e, err := t.pointsEntryFrom(m)
	if err != nil {
		return err
	}
	if _, err := t.insertPoints(e); err != nil {
		return err
	}
	if t.memberHere(e.MemberID) {
		return t.visit(e.MemberID, e.OrderAmount)
	}
	return nil
}

// applyPointsTake replays a spend or adjustment: lots due by then expire first (as
// they did where it was made), then the points leave the lots, first to expire first.
func applyPointsTake(t *tx, m wire.Mutation, _ string) error {
	e, err := t.pointsEntryFrom(m)
	if err != nil {
		return err
	}
	if e.Points < 0 {
		if _, err := t.expireDue(e.MemberID); err != nil {
			return err
		}
		if err := t.takeUpTo(e.MemberID, -e.Points, ""); err != nil {
			return err
		}
	}
	_, err = t.insertPoints(e)
	return err
}

// applyPointsReverse replays the reversal of an earn: its points leave (that lot
// first) and the purchase leaves the member's spend and that day's visit amount.
func applyPointsReverse(t *tx, m wire.Mutation, _ string) error {
	e, err := t.pointsEntryFrom(m)
	if err != nil {
		return err
	}
	if _, err := t.expireDue(e.MemberID); err != nil {
		return err
	}
	if err := t.takeUpTo(e.MemberID, -e.Points, e.RelatedID); err != nil {
		return err
	}
	if _, err := t.insertPoints(e); err != nil {
		return err
	}
	earn, err := scanPointsEntry(t.QueryRow(`SELECT `+pointsCols+` FROM points_entry WHERE id = ?`, e.RelatedID))
	if errors.Is(err, sql.ErrNoRows) {
		return nil
	}
	if err != nil {
		return err
	}
	day := time.UnixMilli(earn.Created).In(t.storeLocation(earn.StoreID)).Format(time.DateOnly)
	if _, err := t.Exec(`UPDATE member SET spend = max(spend - ?, 0), updated_ms = max(updated_ms, ?) WHERE id = ?`, earn.OrderAmount, t.now, e.MemberID); err != nil {
		return err
	}
	_, err = t.Exec(`UPDATE member_visit SET amount = max(amount - ?, 0) WHERE day = ? AND member_id = ? AND store_id = ?`,
		earn.OrderAmount, day, e.MemberID, earn.StoreID)
	return err
}

// applyPointsExpire expires the lots a sweep elsewhere expired, as far as they are
// not expired here already (each device sweeps its own copy).
func applyPointsExpire(t *tx, m wire.Mutation, _ string) error {
	var a struct {
		Lots []struct {
			Lot    string `json:"lot"`
			Points int64  `json:"points"`
		} `json:"lots"`
	}
	if err := decode(m, &a); err != nil {
		return err
	}
	var lots []dueLot
	for _, l := range a.Lots {
		var d dueLot
		err := t.QueryRow(`SELECT id, member_id, remaining FROM points_entry WHERE id = ? AND remaining > 0`, l.Lot).Scan(&d.id, &d.memberID, &d.remaining)
		if errors.Is(err, sql.ErrNoRows) {
			continue
		}
		if err != nil {
			return err
		}
		d.remaining = min(d.remaining, l.Points)
		if d.remaining > 0 {
			lots = append(lots, d)
		}
	}
	for _, l := range lots {
		if _, err := t.Exec(`UPDATE points_entry SET remaining = remaining - ? WHERE id = ?`, l.remaining, l.id); err != nil {
			return err
		}
		if _, err := t.addPoints(&core.PointsEntry{MemberID: l.memberID, Kind: core.PointsExpire, Points: -l.remaining, RelatedID: l.id}); err != nil {
			return err
		}
	}
	return nil
}

// takeUpTo is take for a change already made elsewhere: it consumes what the lots
// here hold, up to n, and never refuses.
func (t *tx) takeUpTo(memberID string, n int64, prefer string) error {
	_, err := t.consume(memberID, n, prefer)
	return err
}

// ---------------------------------------------------------------------------
// Settings

func applyTierSet(t *tx, m wire.Mutation, _ string) error {
	var tr core.Tier
	if err := decode(m, &tr); err != nil {
		return err
	}
	if err := required(m, "id", tr.ID, "name", tr.Name); err != nil {
		return err
	}
	if tr.MultiplierBP == 0 {
		tr.MultiplierBP = 10000
	}
	return insertRenamed(func(name string) error {
		_, err := t.Exec(`INSERT INTO tier(`+tierCols+`) VALUES (?,?,?,?,?,?) ON CONFLICT(id) DO UPDATE SET
			name = excluded.name, min_spend = excluded.min_spend, min_points = excluded.min_points, multiplier_bp = excluded.multiplier_bp`,
			tr.ID, name, tr.MinSpend, tr.MinPoints, tr.MultiplierBP, tr.Created)
		return err
	}, tr.Name, tr.ID)
}

func applyTierRemove(t *tx, m wire.Mutation, _ string) error {
	var a struct {
		ID string `json:"id"`
	}
	if err := decode(m, &a); err != nil {
		return err
	}
	_, err := t.Exec(`DELETE FROM tier WHERE id = ?`, a.ID)
	return err
}

// applyLoyaltySet takes settings changed elsewhere unless they were changed here later.
func applyLoyaltySet(t *tx, m wire.Mutation, _ string) error {
	var l core.Loyalty
	if err := decode(m, &l); err != nil {
		return err
	}
	h, err := t.fieldClock("loyalty", "", "settings")
	if err != nil {
		return err
	}
	if m.HLC <= h {
		return notApplied("older settings")
	}
	if _, err := t.Exec(`INSERT INTO meta(key, value) VALUES ('loyalty', ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value`, []byte(jsonString(l))); err != nil {
		return err
	}
	return t.stampAt("loyalty", "", m.HLC, "settings")
}

func applySplitSet(t *tx, m wire.Mutation, _ string) error {
	var r core.SplitRule
	if err := decode(m, &r); err != nil {
		return err
	}
	if err := required(m, "id", r.ID, "scope", r.Scope); err != nil {
		return err
	}
	parties, _ := json.Marshal(r.Parties)
	if _, err := t.Exec(`DELETE FROM split_rule WHERE id = ? AND NOT (scope = ? AND scope_id = ?)`, r.ID, r.Scope, r.ScopeID); err != nil {
		return err
	}
	if _, err := t.Exec(`INSERT INTO split_rule(id, scope, scope_id, parties, remainder, created_ms, updated_ms) VALUES (?,?,?,?,?,?,?)
		ON CONFLICT(scope, scope_id) DO UPDATE SET parties = excluded.parties, remainder = excluded.remainder, updated_ms = excluded.updated_ms`,
		r.ID, r.Scope, r.ScopeID, string(parties), r.Remainder, r.Created, r.Updated); err != nil {
		return err
	}
	return t.bumpSplitRev()
}

func applySplitRemove(t *tx, m wire.Mutation, _ string) error {
	var a struct {
		ID      string `json:"id"`
		Scope   string `json:"scope"`
		ScopeID string `json:"scope_id"`
	}
	if err := decode(m, &a); err != nil {
		return err
	}
	if _, err := t.Exec(`DELETE FROM split_rule WHERE id = ? OR (scope = ? AND scope_id = ?)`, a.ID, a.Scope, a.ScopeID); err != nil {
		return err
	}
	return t.bumpSplitRev()
}

func applyIssueRuleAdd(t *tx, m wire.Mutation, _ string) error {
	var r core.IssueRule
	if err := decode(m, &r); err != nil {
		return err
	}
	if err := required(m, "id", r.ID, "campaign_id", r.CampaignID); err != nil {
		return err
	}
	if _, err := t.campaign(r.CampaignID); core.ErrorCode(err) == core.ErrNotFound {
		return cannot("unknown campaign")
	} else if err != nil {
		return err
	}
	_, err := t.Exec(`INSERT INTO issue_rule(id, kind, campaign_id, threshold, active, created_ms) VALUES (?,?,?,?,1,?) ON CONFLICT(id) DO NOTHING`,
		r.ID, r.Kind, r.CampaignID, r.Threshold, r.Created)
	return err
}

func applyIssueRuleRemove(t *tx, m wire.Mutation, _ string) error {
	var a struct {
		ID string `json:"id"`
	}
	if err := decode(m, &a); err != nil {
		return err
	}
	_, err := t.Exec(`UPDATE issue_rule SET active = 0 WHERE id = ?`, a.ID)
	return err
}

// AppliedNames lists the mutations this version applies when they come from elsewhere.
func AppliedNames() []string {
	out := mapKeys(appliers)
	sort.Strings(out)
	return out
}
