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

// The device side of sync (DESIGN §8): registration, the outbox as the server sees it,
// acknowledgements, offline policy and allowances, cases, and joining a merchant.
// Applying what other devices did is in apply.go.

// SyncState is the state of sync as screens show it.
type SyncState struct {
	Server      string           `json:"server"` // "" when not registered
	MerchantID  string           `json:"merchant_id"`
	DeviceID    string           `json:"device_id"`
	Epoch       int64            `json:"epoch"`
	AckedMID    int64            `json:"acked_mid"`    // last mid the server acknowledged
	Pending     int64            `json:"pending"`      // outbox rows with mid > AckedMID
	Cursors     map[string]int64 `json:"cursors"`      // stream -> seq applied
	LastSyncMS  int64            `json:"last_sync_ms"` // last complete successful sync
	LastError   string           `json:"last_error,omitempty"`
	LastErrorMS int64            `json:"last_error_ms,omitempty"`
	SkewMS      int64            `json:"skew_ms"` // server time − local time at the last pull
	OpenCases   int64            `json:"open_cases"`
	Rejected    int64            `json:"rejected"` // own mutations the server rejected or flagged
	Skipped     int64            `json:"skipped"`  // remote mutations this version cannot apply
}

// ReasonFrozen is the check reason, and the "why" of a refused payment, for an account
// frozen after an overdraft until a person settles the case.
const ReasonFrozen = "frozen"

// Offline refusals (Params["why"] of the *core.Error).
const (
	OfflineNotAllowed = "offline_not_allowed"
	OfflineValueCap   = "offline_value_cap"
	OfflineCount      = "offline_count"
	OfflineStale      = "offline_stale"
	OfflineAllowance  = "offline_allowance"
)

// metaText and metaInt read one meta value as text or integer ("" / 0 when absent).
func metaText(q queryer, key string) (string, error) {
	var s string
	err := q.QueryRow(`SELECT COALESCE((SELECT CAST(value AS TEXT) FROM meta WHERE key = ?), '')`, key).Scan(&s)
	return s, err
}

func metaInt(q queryer, key string) (int64, error) {
	var n int64
	err := q.QueryRow(`SELECT COALESCE((SELECT CAST(value AS INTEGER) FROM meta WHERE key = ?), 0)`, key).Scan(&n)
	return n, err
}

// thisDeviceID is the device id, also while joining (before FinishJoin).
func thisDeviceID(q queryer) (string, error) {
	id, err := metaText(q, "device_id")
	if err != nil || id != "" {
		return id, err
	}
	return metaText(q, "join_device_id")
}

// syncActor is who the sync bookkeeping acts as: this device, in its store, as the
// operator "sync".
func (db *DB) syncActor() (*Actor, error) {
	a := &Actor{Operator: core.Operator{ID: "sync", Name: "sync", Role: core.RoleTechnician}}
	if d, err := db.ThisDevice(); err == nil {
		a.Device = *d
		a.Operator.MerchantID = d.MerchantID
		if s, err := db.FindStore(d.StoreID); err == nil {
			a.Store = *s
		}
		return a, nil
	}
	id, err := thisDeviceID(db.r)
	if err != nil {
		return nil, err
	}
	if id == "" {
		return nil, core.Errorf(core.ErrNotFound, "not initialised: run kameng init or join a merchant")
	}
	a.Device.ID = id
	a.Store.TimeZone = core.DefaultTimeZone
	// Joining: the merchant is known once its first mutation was pulled, or from the
	// registration.
	for _, key := range []string{"merchant_id", "sync_merchant"} {
		if a.Operator.MerchantID != "" {
			break
		}
		if a.Operator.MerchantID, err = metaText(db.r, key); err != nil {
			return nil, err
		}
	}
	return a, nil
}

// SyncState reads the state of sync.
func (db *DB) SyncState() (*SyncState, error) {
	q := reader{db}
	st := &SyncState{Cursors: map[string]int64{}}
	var err error
	texts := []struct {
		dst *string
		key string
	}{{&st.Server, "sync_server"}, {&st.MerchantID, "sync_merchant"}, {&st.LastError, "sync_error"}}
	for _, x := range texts {
		if *x.dst, err = metaText(q, x.key); err != nil {
			return nil, err
		}
	}
	if st.MerchantID == "" {
		if st.MerchantID, err = metaText(q, "merchant_id"); err != nil {
			return nil, err
		}
	}
	if st.DeviceID, err = thisDeviceID(q); err != nil {
		return nil, err
	}
	ints := []struct {
		dst *int64
		key string
	}{{&st.Epoch, "sync_epoch"}, {&st.AckedMID, "sync_acked_mid"}, {&st.LastSyncMS, "sync_last_ms"},
		{&st.LastErrorMS, "sync_error_ms"}, {&st.SkewMS, "sync_skew_ms"}}
	for _, x := range ints {
		if *x.dst, err = metaInt(q, x.key); err != nil {
			return nil, err
		}
	}
	if err := db.r.QueryRow(`SELECT (SELECT count(*) FROM outbox WHERE mid > ?),
		(SELECT count(*) FROM sync_case WHERE status = 'open'), (SELECT count(*) FROM sync_result),
		(SELECT count(*) FROM sync_skipped)`, st.AckedMID).Scan(&st.Pending, &st.OpenCases, &st.Rejected, &st.Skipped); err != nil {
		return nil, err
	}
	rows, err := db.r.Query(`SELECT stream, seq FROM sync_cursor`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	for rows.Next() {
		var s string
		var n int64
		if err := rows.Scan(&s, &n); err != nil {
			return nil, err
		}
		st.Cursors[s] = n
	}
	return st, rows.Err()
}

// SyncServer is the server this device syncs with, "" when not registered: one
// meta read, cheap enough to ask on every sale.
func (db *DB) SyncServer() (string, error) { return metaText(reader{db}, "sync_server") }

const tokenAD = "kameng device token"

// SetRegistration records that this device is registered with a server: the token is
// sealed with the data key, never stored plain. A new epoch drops the cursors.
func (db *DB) SetRegistration(server, deviceToken, merchantID string, epoch, ackedMID int64) error {
	if strings.TrimSpace(server) == "" || deviceToken == "" || merchantID == "" {
		return core.Invalid("server", "a server address, token and merchant", server, "a registration needs the server, the device token and the merchant")
	}
	sealer, err := db.sealer()
	if err != nil {
		return err
	}
	a, err := db.syncActor()
	if err != nil {
		return err
	}
	return db.write(a, func(t *tx) error {
		if own, err := metaText(t, "merchant_id"); err != nil {
			return err
		} else if own != "" && own != merchantID {
			e := core.Errorf(core.ErrConflict, "this database belongs to merchant %s, not %s", own, merchantID)
			e.Field, e.Params = "merchant", map[string]string{"why": "other_merchant", "value": merchantID}
			return e
		}
		old, err := metaInt(t, "sync_epoch")
		if err != nil {
			return err
		}
		if old != 0 && old != epoch {
			if _, err := t.Exec(`DELETE FROM sync_cursor`); err != nil {
				return err
			}
		}
		for k, v := range map[string]any{"sync_server": server, "sync_token": sealer.Seal(deviceToken, tokenAD),
			"sync_merchant": merchantID, "sync_epoch": epoch, "sync_acked_mid": ackedMID} {
			if err := setMeta(t.Tx, k, v); err != nil {
				return err
			}
		}
		return t.audit("sync.register", "device", t.actor.Device.ID, map[string]any{"server": server, "merchant_id": merchantID,
			"epoch": epoch, "acked_mid": ackedMID})
	})
}

// DeviceToken opens the stored device token.
func (db *DB) DeviceToken() (string, error) {
	sealed, err := getMeta(db.r, "sync_token")
	if err != nil {
		return "", err
	}
	if sealed == nil {
		return "", core.Errorf(core.ErrNotFound, "this device is not registered with a server")
	}
	sealer, err := db.sealer()
	if err != nil {
		return "", err
	}
	return sealer.Open(sealed, tokenAD)
}

// PendingMutations returns the outbox rows after the acknowledged mid, in order: at
// most limit rows and about maxBytes of arguments (always at least one row). Members'
// personal data, sealed with this device's key in the outbox, travels opened ("pii")
// so that the other devices can seal it with theirs.
func (db *DB) PendingMutations(limit, maxBytes int) ([]wire.Mutation, error) {
	if limit <= 0 {
		limit = wire.MaxPushMutations
	}
	if maxBytes <= 0 {
		maxBytes = wire.MaxPushBytes
	}
	acked, err := metaInt(reader{db}, "sync_acked_mid")
	if err != nil {
		return nil, err
	}
	rows, err := db.r.Query(`SELECT mid, uuid, name, args, hlc, wall_ms FROM outbox WHERE mid > ? ORDER BY mid LIMIT ?`, acked, limit)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := []wire.Mutation{}
	size := 0
	for rows.Next() {
		var m wire.Mutation
		var args string
		if err := rows.Scan(&m.MID, &m.UUID, &m.Name, &args, &m.HLC, &m.WallMS); err != nil {
			return nil, err
		}
		m.Args = json.RawMessage(args)
		if m.Name == "member.add@1" || m.Name == "member.edit@1" {
			if m.Args, err = db.openPII(m.Args); err != nil {
				return nil, fmt.Errorf("mutation %d: %w", m.MID, err)
			}
		}
		size += len(m.Args) + len(m.Name) + 128
		if len(out) > 0 && size > maxBytes {
			break
		}
		out = append(out, m)
	}
	return out, rows.Err()
}

// openPII replaces the sealed phone, name and birthday of a member mutation (and their
// keyed hashes, which only this device's key can reproduce) with the opened values.
func (db *DB) openPII(raw json.RawMessage) (json.RawMessage, error) {
	var args map[string]json.RawMessage
	if err := json.Unmarshal(raw, &args); err != nil {
		return nil, err
	}
	var id string
	if err := json.Unmarshal(args["member_id"], &id); err != nil || id == "" {
		return raw, nil
	}
	pii := map[string]string{}
	for _, f := range []string{"phone", "name", "birthday"} {
		v, ok := args[f]
		if !ok {
			continue
		}
		delete(args, f)
		var sealed []byte
		if err := json.Unmarshal(v, &sealed); err != nil {
			return nil, err
		}
		pii[f] = ""
		if sealed == nil {
			continue
		}
		sealer, err := db.sealer()
		if err != nil {
			return nil, err
		}
		if pii[f], err = sealer.Open(sealed, id); err != nil {
			return nil, err
		}
	}
	delete(args, "phone_ix")
	delete(args, "name_ix")
	if len(pii) > 0 {
		b, _ := json.Marshal(pii)
		args["pii"] = b
	}
	return json.Marshal(args)
}

// Ack records the server's answer to a push: the acknowledged mid becomes LastMID (a
// mid gap answer moves it back so the missing mutations are sent again), pushed rows
// are marked, and rejected or flagged results are kept for the operator.
func (db *DB) Ack(resp *wire.PushResponse) error {
	if resp == nil {
		return nil
	}
	a, err := db.syncActor()
	if err != nil {
		return err
	}
	return db.write(a, func(t *tx) error {
		var top int64
		if err := t.QueryRow(`SELECT COALESCE(max(mid), 0) FROM outbox`).Scan(&top); err != nil {
			return err
		}
		if resp.LastMID > top || resp.LastMID < 0 {
			e := core.Errorf(core.ErrConflict, "the server acknowledges mutation %d but this device has written only %d", resp.LastMID, top)
			e.Field, e.Params = "mid", map[string]string{"why": "ack_ahead", "value": fmt.Sprint(resp.LastMID)}
			return e
		}
		old, err := metaInt(t, "sync_acked_mid")
		if err != nil {
			return err
		}
		if resp.LastMID > old {
			if _, err := t.Exec(`UPDATE outbox SET pushed_ms = ? WHERE mid > ? AND mid <= ? AND pushed_ms = 0`, t.now, old, resp.LastMID); err != nil {
				return err
			}
		}
		if err := setMeta(t.Tx, "sync_acked_mid", resp.LastMID); err != nil {
			return err
		}
		for _, r := range resp.Results {
			if r.Status != wire.Rejected && r.Status != wire.Flagged {
				continue
			}
			if _, err := t.Exec(`INSERT INTO sync_result(mid, status, reason, case_id, message, ts_ms) VALUES (?,?,?,?,?,?)
				ON CONFLICT(mid) DO UPDATE SET status = excluded.status, reason = excluded.reason, case_id = excluded.case_id,
				message = excluded.message`, r.MID, r.Status, r.Reason, r.CaseID, r.Message, t.now); err != nil {
				return err
			}
		}
		return nil
	})
}

// SyncResult is the server's refusal or flag of one of this device's mutations.
type SyncResult struct {
	wire.Result
	Name string `json:"name"`
	Time int64  `json:"ts_ms"`
}

// SyncResults lists the mutations of this device the server rejected or flagged,
// newest first.
func (db *DB) SyncResults(limit int) ([]SyncResult, error) {
	if limit <= 0 {
		limit = 100
	}
	rows, err := db.r.Query(`SELECT s.mid, s.status, s.reason, s.case_id, s.message, s.ts_ms, COALESCE(o.name, '')
		FROM sync_result s LEFT JOIN outbox o ON o.mid = s.mid ORDER BY s.mid DESC LIMIT ?`, limit)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := []SyncResult{}
	for rows.Next() {
		var r SyncResult
		if err := rows.Scan(&r.MID, &r.Status, &r.Reason, &r.CaseID, &r.Message, &r.Time, &r.Name); err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	return out, rows.Err()
}

// BatchCodes pages the code rows of one local batch for upload, in the order they
// were written, after the code text given (the last of the previous page; "" first).
// Each row is the code as issued: unused, active, with a gift card's opening value;
// what happened to it since travels as mutations.
func (db *DB) BatchCodes(batchID, after string, limit int) ([]wire.Code, error) {
	if limit <= 0 || limit > wire.MaxCodesUpload {
		limit = wire.MaxCodesUpload
	}
	var campaignID string
	err := db.r.QueryRow(`SELECT campaign_id FROM batch WHERE id = ?`, batchID).Scan(&campaignID)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, core.NotFound("batch", batchID)
	}
	if err != nil {
		return nil, err
	}
	c, err := db.Campaign(campaignID)
	if err != nil {
		return nil, err
	}
	var from int64
	if after != "" {
		if err := db.r.QueryRow(`SELECT id FROM code WHERE code = ?`, after).Scan(&from); err != nil {
			if errors.Is(err, sql.ErrNoRows) {
				return nil, core.NotFound("code", after)
			}
			return nil, err
		}
	}
	issued := `0`
	if c.Kind == core.KindGiftCard {
		issued = `COALESCE((SELECT sum(amount) FROM ledger l WHERE l.code = k.code AND l.kind = 'issue'), k.balance)`
	}
	// A batch's codes were written in one transaction, one after the other: the
	// campaign's index, ordered by row id within the campaign, reaches them directly.
	rows, err := db.r.Query(`SELECT k.code, k.valid_from_ms, k.valid_to_ms, k.created_ms, `+issued+`
		FROM code k INDEXED BY code_campaign WHERE k.campaign_id = ? AND k.id > ? AND k.batch_id = ? ORDER BY k.id LIMIT ?`,
		campaignID, from, batchID, limit)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	maxUses := int64(max(c.Rules.UsesPerCode, 1))
	switch c.Kind {
	case core.KindGiftCard:
		maxUses = 0
	case core.KindCardKey:
		maxUses = 1
	}
	out := make([]wire.Code, 0, limit)
	for rows.Next() {
		k := wire.Code{CampaignID: campaignID, BatchID: batchID, MaxUses: maxUses, Status: core.CodeActive}
		if err := rows.Scan(&k.Code, &k.ValidFromMS, &k.ValidToMS, &k.CreatedMS, &k.Issued); err != nil {
			return nil, err
		}
		k.Balance = k.Issued
		out = append(out, k)
	}
	return out, rows.Err()
}

// ResetSync drops the cursors after the server's epoch changed (a restore): the next
// pull starts from the beginning. The outbox, the acknowledged mid and what was
// applied are kept, so nothing is lost and nothing is applied twice.
func (db *DB) ResetSync(epoch int64) error {
	a, err := db.syncActor()
	if err != nil {
		return err
	}
	return db.write(a, func(t *tx) error {
		old, err := metaInt(t, "sync_epoch")
		if err != nil {
			return err
		}
		if _, err := t.Exec(`DELETE FROM sync_cursor`); err != nil {
			return err
		}
		if err := setMeta(t.Tx, "sync_epoch", epoch); err != nil {
			return err
		}
		return t.audit("sync.reset", "device", t.actor.Device.ID, map[string]any{"from_epoch": old, "epoch": epoch})
	})
}

// RecordSyncError records how a sync round ended: nil is success (the last sync time
// moves to now and the error is cleared).
func (db *DB) RecordSyncError(err error, now time.Time) error {
	a, aerr := db.syncActor()
	if aerr != nil {
		return aerr
	}
	return db.write(a, func(t *tx) error {
		if err == nil {
			if err := setMeta(t.Tx, "sync_last_ms", now.UnixMilli()); err != nil {
				return err
			}
			_, derr := t.Exec(`DELETE FROM meta WHERE key IN ('sync_error', 'sync_error_ms')`)
			return derr
		}
		msg := err.Error()
		if len(msg) > 1000 {
			msg = msg[:1000]
		}
		if err := setMeta(t.Tx, "sync_error", msg); err != nil {
			return err
		}
		return setMeta(t.Tx, "sync_error_ms", now.UnixMilli())
	})
}

// ---------------------------------------------------------------------------
// Cases (异常)

const caseCols = `id, kind, status, subject, detail, created_ms, resolved_ms, action, resolved_by, note`

func scanCase(row scanner) (*wire.Case, error) {
	var c wire.Case
	var detail string
	if err := row.Scan(&c.ID, &c.Kind, &c.Status, &c.Subject, &detail, &c.CreatedMS, &c.ResolvedMS, &c.Action, &c.ResolvedBy, &c.Note); err != nil {
		return nil, err
	}
	c.Detail = json.RawMessage(detail)
	return &c, nil
}

// Cases lists the exceptions, newest first: status "open", "resolved" or "all".
func (db *DB) Cases(status string) ([]wire.Case, error) {
	q := `SELECT ` + caseCols + ` FROM sync_case`
	var args []any
	switch status {
	case "", "all":
	case "open", "resolved":
		q += ` WHERE status = ?`
		args = append(args, status)
	default:
		return nil, core.Invalid("status", "open|resolved|all", status, "unknown case status %q", status)
	}
	rows, err := db.r.Query(q+` ORDER BY created_ms DESC, id DESC`, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := []wire.Case{}
	for rows.Next() {
		c, err := scanCase(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, *c)
	}
	return out, rows.Err()
}

// Case finds one exception by id.
func (db *DB) Case(id string) (*wire.Case, error) {
	c, err := scanCase(db.r.QueryRow(`SELECT `+caseCols+` FROM sync_case WHERE id = ?`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, core.NotFound("case", id)
	}
	return c, err
}

func validAction(action string) bool {
	switch action {
	case wire.ActionAccept, wire.ActionReverse, wire.ActionFreeze, wire.ActionCharge, wire.ActionWriteOff:
		return true
	}
	return false
}

// ResolveCase settles an open case: the local effect (reverse undoes the later
// redemption if this device has it; freeze marks the account frozen), the audit entry
// and the mutation case.resolve@1 that carries the decision to the server and from it
// to every device, in one transaction.
func (db *DB) ResolveCase(a *Actor, id, action, note string) (*wire.Case, error) {
	if !validAction(action) {
		return nil, core.Invalid("action", "accept|reverse|freeze|charge|write_off", action, "unknown action %q", action)
	}
	note = strings.TrimSpace(note)
	var out *wire.Case
	err := db.write(a, func(t *tx) error {
		c, err := scanCase(t.QueryRow(`SELECT `+caseCols+` FROM sync_case WHERE id = ?`, id))
		if errors.Is(err, sql.ErrNoRows) {
			return core.NotFound("case", id)
		}
		if err != nil {
			return err
		}
		if c.Status != "open" {
			e := core.Errorf(core.ErrConflict, "case %s was resolved already (%s)", id, c.Action)
			e.Field, e.Params = "case", map[string]string{"why": "case_resolved", "id": id}
			return e
		}
		detail := map[string]any{"kind": c.Kind, "subject": c.Subject, "action": action, "note": note}
		switch action {
		case wire.ActionReverse:
			rid := caseRedemption(c.Detail)
			done, err := t.reverseRedemption(rid, "double_redemption", a.Operator.ID)
			if err != nil {
				return err
			}
			if done {
				detail["reversed"] = rid
			}
		case wire.ActionFreeze:
			kind, account := caseAccount(t, c)
			if kind != "" {
				if err := t.freeze(kind, account); err != nil {
					return err
				}
				detail["frozen"] = kind + ":" + account
			}
		}
		c.Status, c.Action, c.Note, c.ResolvedBy, c.ResolvedMS = "resolved", action, note, a.Operator.ID, t.now
		if err := t.saveCase(c, true); err != nil {
			return err
		}
		out = c
		return t.journal("case.resolve", "case", id, detail, "case.resolve@1",
			map[string]any{"case_id": id, "action": action, "note": note, "operator_id": a.Operator.ID})
	})
	return out, err
}

// saveCase writes a case; an open case never overwrites a resolved one (the
// resolution may have been made here before the server's copy of the case arrived).
func (t *tx) saveCase(c *wire.Case, resolve bool) error {
	detail := string(c.Detail)
	if detail == "" || detail == "null" {
		detail = "{}"
	}
	status := c.Status
	if status != "resolved" {
		status = "open"
	}
	if !resolve && status == "open" {
		_, err := t.Exec(`INSERT INTO sync_case(`+caseCols+`) VALUES (?,?,?,?,?,?,?,?,?,?)
			ON CONFLICT(id) DO UPDATE SET kind = excluded.kind, subject = excluded.subject, detail = excluded.detail
			WHERE sync_case.status = 'open'`,
			c.ID, c.Kind, status, c.Subject, detail, c.CreatedMS, 0, "", "", "")
		return err
	}
	_, err := t.Exec(`INSERT INTO sync_case(`+caseCols+`) VALUES (?,?,?,?,?,?,?,?,?,?)
		ON CONFLICT(id) DO UPDATE SET status = excluded.status, resolved_ms = excluded.resolved_ms, action = excluded.action,
		resolved_by = excluded.resolved_by, note = excluded.note,
		kind = CASE WHEN excluded.kind <> '' THEN excluded.kind ELSE sync_case.kind END,
		subject = CASE WHEN excluded.subject <> '' THEN excluded.subject ELSE sync_case.subject END,
		detail = CASE WHEN excluded.detail <> '{}' THEN excluded.detail ELSE sync_case.detail END`,
		c.ID, c.Kind, status, c.Subject, detail, c.CreatedMS, c.ResolvedMS, c.Action, c.ResolvedBy, c.Note)
	return err
}

// caseRedemption finds the redemption a case's reverse action undoes: the later one
// of a double redemption. The detail names it as later_redemption_id (or
// loser_redemption_id, redemption_id), or as the redemption_id / id of its "later"
// (or "loser", "second") object.
func caseRedemption(detail json.RawMessage) string {
	var d map[string]json.RawMessage
	if json.Unmarshal(detail, &d) != nil {
		return ""
	}
	str := func(m map[string]json.RawMessage, k string) string {
		var s string
		if json.Unmarshal(m[k], &s) == nil {
			return s
		}
		return ""
	}
	for _, k := range []string{"later_redemption_id", "loser_redemption_id", "reverse_redemption_id", "redemption_id"} {
		if s := str(d, k); s != "" {
			return s
		}
	}
	for _, k := range []string{"later", "loser", "second"} {
		var o map[string]json.RawMessage
		if json.Unmarshal(d[k], &o) != nil {
			continue
		}
		for _, f := range []string{"redemption_id", "id"} {
			if s := str(o, f); s != "" {
				return s
			}
		}
	}
	return ""
}

// caseAccount names the account a freeze applies to: kind and account_id of the
// detail, else the subject (a code of this database is a gift card, a member id a
// wallet).
func caseAccount(q queryer, c *wire.Case) (kind, account string) {
	var d struct {
		Kind    string `json:"kind"`
		Account string `json:"account_id"`
	}
	json.Unmarshal(c.Detail, &d)
	if (d.Kind == wire.AccountWallet || d.Kind == wire.AccountGiftCard) && d.Account != "" {
		return d.Kind, d.Account
	}
	var one int
	if q.QueryRow(`SELECT 1 FROM code WHERE code = ?`, c.Subject).Scan(&one) == nil {
		return wire.AccountGiftCard, c.Subject
	}
	if q.QueryRow(`SELECT 1 FROM member WHERE id = ?`, c.Subject).Scan(&one) == nil {
		return wire.AccountWallet, c.Subject
	}
	return "", ""
}

// freeze marks an account frozen: a member's wallet or a gift card.
func (t *tx) freeze(kind, account string) error {
	switch kind {
	case wire.AccountWallet:
		_, err := t.Exec(`UPDATE member SET frozen = 1 WHERE id = ?`, account)
		return err
	case wire.AccountGiftCard:
		return t.codeEffect(account, codeEffect{Op: effectFreeze})
	}
	return nil
}

// reverseRedemption undoes a standing redemption found at sync (double redemption);
// it reports false when this device does not have it standing.
func (t *tx) reverseRedemption(id, reason, operatorID string) (bool, error) {
	if id == "" {
		return false, nil
	}
	r, err := scanRedemption(t.QueryRow(`SELECT `+redemptionCols+` FROM redemption WHERE id = ?`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	if r.Status != core.RedemptionDone {
		return false, nil
	}
	c, err := t.campaign(r.CampaignID)
	if err != nil {
		return false, err
	}
	return true, t.undoRedemption(r, c, reason, operatorID)
}

// frozenAccount is the refusal of a payment from a frozen account.
func frozenAccount(field, id string) *core.Error {
	e := core.Errorf(core.ErrConflict, "%s %s is frozen until its case is settled", field, id)
	e.Field, e.Params = field, map[string]string{"why": ReasonFrozen, "id": id}
	return e
}

// ---------------------------------------------------------------------------
// Allowances and the offline policy

// SetAllowances replaces the allowances with the server's list; offline spending
// already acknowledged is in the server's figures from now on.
func (db *DB) SetAllowances(list []wire.Allowance) error {
	a, err := db.syncActor()
	if err != nil {
		return err
	}
	return db.write(a, func(t *tx) error {
		if _, err := t.Exec(`DELETE FROM sync_allowance`); err != nil {
			return err
		}
		for _, al := range list {
			if _, err := t.Exec(`INSERT INTO sync_allowance(kind, account_id, granted, spent, expires_ms) VALUES (?,?,?,?,?)
				ON CONFLICT(kind, account_id) DO UPDATE SET granted = excluded.granted, spent = excluded.spent, expires_ms = excluded.expires_ms`,
				al.Kind, al.AccountID, al.Granted, al.Spent, al.ExpiresMS); err != nil {
				return err
			}
		}
		acked, err := metaInt(t, "sync_acked_mid")
		if err != nil {
			return err
		}
		_, err = t.Exec(`DELETE FROM sync_spend WHERE mid <= ?`, acked)
		return err
	})
}

// allowanceSQL reads one allowance with what was spent offline and not yet counted by
// the server.
const allowanceSQL = `SELECT a.granted, a.spent + COALESCE((SELECT sum(s.amount) FROM sync_spend s
	WHERE s.kind = a.kind AND s.account_id = a.account_id
	AND s.mid > COALESCE((SELECT CAST(value AS INTEGER) FROM meta WHERE key = 'sync_acked_mid'), 0)), 0), a.expires_ms
	FROM sync_allowance a`

// Allowances lists what the server lets this device spend offline, with Spent
// including what was spent offline since the last refresh.
func (db *DB) Allowances() ([]wire.Allowance, error) {
	rows, err := db.r.Query(strings.Replace(allowanceSQL, `SELECT a.granted`, `SELECT a.kind, a.account_id, a.granted`, 1) + ` ORDER BY a.kind, a.account_id`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := []wire.Allowance{}
	for rows.Next() {
		var al wire.Allowance
		if err := rows.Scan(&al.Kind, &al.AccountID, &al.Granted, &al.Spent, &al.ExpiresMS); err != nil {
			return nil, err
		}
		out = append(out, al)
	}
	return out, rows.Err()
}

// allowanceLeft is what is left of an allowance at now (0 when there is none or it
// has expired).
func allowanceLeft(q queryer, kind, account string, now int64) (core.Amount, error) {
	var granted, spent, expires int64
	err := q.QueryRow(allowanceSQL+` WHERE a.kind = ? AND a.account_id = ?`, kind, account).Scan(&granted, &spent, &expires)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	if expires > 0 && expires <= now {
		return 0, nil
	}
	return core.Amount(max(granted-spent, 0)), nil
}

func offlineRefusal(why, format string, args ...any) *core.Error {
	e := core.Errorf(core.ErrForbidden, format, args...)
	e.Field, e.Params = "offline", map[string]string{"why": why}
	return e
}

func checkAllowance(q queryer, kind, account string, amount core.Amount, now int64) error {
	left, err := allowanceLeft(q, kind, account, now)
	if err != nil {
		return err
	}
	if amount > left {
		e := offlineRefusal(OfflineAllowance, "offline, this device may take %s more from %s %s; %s is asked", left.Yuan(), kind, account, amount.Yuan())
		e.Params["have"], e.Params["want"], e.Params["kind"] = left.Yuan(), amount.Yuan(), kind
		return e
	}
	return nil
}

// OfflineSpendAllowed reports whether a wallet payment (kind wallet, account = the
// member) or gift-card debit (kind gift_card, account = the code) fits in this
// device's remaining allowance; nil when it does. Spending is counted when a payment
// or redemption commits with Actor.Offline set.
func (db *DB) OfflineSpendAllowed(kind, account string, amount core.Amount) error {
	q := reader{db}
	switch kind {
	case wire.AccountWallet:
		if id, err := db.memberRef(q, account); err == nil {
			account = id
		}
	case wire.AccountGiftCard:
		if k, err := db.FindCode(account, false); err == nil {
			account = k.Code
		}
	default:
		return core.Invalid("kind", "wallet|gift_card", kind, "no offline allowance for %q", kind)
	}
	return checkAllowance(q, kind, account, amount, db.Clock.Now().UnixMilli())
}

// allowanceCheck is OfflineSpendAllowed inside a write transaction.
func (t *tx) allowanceCheck(kind, account string, amount core.Amount) error {
	return checkAllowance(t, kind, account, amount, t.now)
}

// spentOffline counts an offline payment against the allowance, keyed by the mid of
// the mutation just written.
func (t *tx) spentOffline(kind, account string, amount core.Amount) error {
	_, err := t.Exec(`INSERT INTO sync_spend(mid, kind, account_id, amount) VALUES (?,?,?,?)`, t.lastMID, kind, account, amount)
	return err
}

// OfflineRedeemAllowed applies a campaign's offline policy (core.Rules.Offline) to a
// code while the server cannot be reached: nil when it may be redeemed here now,
// otherwise a *core.Error whose Params["why"] is offline_not_allowed,
// offline_value_cap, offline_count or offline_stale. A device that is not registered
// with a server is never offline.
func (db *DB) OfflineRedeemAllowed(a *Actor, raw string, now time.Time) error {
	q := reader{db}
	if server, err := metaText(q, "sync_server"); err != nil || server == "" {
		return err
	}
	k, err := db.FindCode(raw, false)
	if err != nil {
		return err
	}
	c, err := db.Campaign(k.CampaignID)
	if err != nil {
		return err
	}
	return offlinePolicy(q, c, k, now.UnixMilli())
}

// offlineRedeemCheck is the offline policy inside Redeem's transaction, with the
// allowance of a gift card for the value taken.
func (t *tx) offlineRedeemCheck(c *core.Campaign, k *core.Code, value core.Amount) error {
	if server, err := metaText(t, "sync_server"); err != nil || server == "" {
		return err
	}
	if err := offlinePolicy(t, c, k, t.now); err != nil {
		return err
	}
	if c.Kind == core.KindGiftCard {
		return t.allowanceCheck(wire.AccountGiftCard, k.Code, value)
	}
	return nil
}

// faceValue is what one redemption of a code can be worth at most, for the offline
// cap; -1 when it has no bound (a percentage without a cap).
func faceValue(c *core.Campaign, k *core.Code) core.Amount {
	switch c.Kind {
	case core.KindAmountOff:
		return c.AmountOff
	case core.KindPercentOff:
		if c.MaxDiscount > 0 {
			return c.MaxDiscount
		}
		return -1
	case core.KindGiftCard:
		return k.Balance
	}
	return c.FaceValue
}

func offlinePolicy(q queryer, c *core.Campaign, k *core.Code, now int64) error {
	p := c.Rules.Offline
	if !p.Allowed {
		e := offlineRefusal(OfflineNotAllowed, "campaign %q may not be redeemed while the server cannot be reached", c.Name)
		e.Params["campaign"] = c.Name
		return e
	}
	if p.MaxValue > 0 {
		if f := faceValue(c, k); f < 0 || f > p.MaxValue {
			e := offlineRefusal(OfflineValueCap, "offline, codes of campaign %q worth more than %s cannot be redeemed", c.Name, p.MaxValue.Yuan())
			e.Params["campaign"], e.Params["max"] = c.Name, p.MaxValue.Yuan()
			return e
		}
	}
	last, err := metaInt(q, "sync_last_ms")
	if err != nil {
		return err
	}
	if p.MaxAgeMins > 0 && now-last > int64(p.MaxAgeMins)*60_000 {
		e := offlineRefusal(OfflineStale, "the last sync was more than %d minutes ago: campaign %q needs a fresher sync to redeem offline", p.MaxAgeMins, c.Name)
		e.Params["campaign"], e.Params["minutes"] = c.Name, fmt.Sprint(p.MaxAgeMins)
		return e
	}
	if p.MaxCount > 0 {
		acked, err := metaInt(q, "sync_acked_mid")
		if err != nil {
			return err
		}
		var n int
		if err := q.QueryRow(`SELECT count(*) FROM outbox WHERE mid > ? AND wall_ms >= ? AND name = 'code.redeem@1'
			AND json_extract(args, '$.redemption.campaign_id') = ?`, acked, last, c.ID).Scan(&n); err != nil {
			return err
		}
		if n >= p.MaxCount {
			e := offlineRefusal(OfflineCount, "this device has redeemed %d codes of campaign %q since the last sync, its offline limit", n, c.Name)
			e.Params["campaign"], e.Params["max"] = c.Name, fmt.Sprint(p.MaxCount)
			return e
		}
	}
	return nil
}

// ---------------------------------------------------------------------------
// Joining a merchant

// JoinInput is what joining an existing merchant from an empty database needs: this
// device and the key setup `kameng init` asks for.
type JoinInput struct {
	DeviceID string // "" for a new id
	Device   string // this device's name
	Store    string // the store it works in (name or id); "" for the merchant's first
	KDF      string // "file" or "passphrase"
	Salt     []byte
	KEK      []byte // key-encryption key that wraps the new data key
}

// Join prepares an empty database to join a merchant: a data key of its own (wrapped
// as Init does), the device id and name, and the store wanted. The merchant, stores
// and operators arrive with the first pull; FinishJoin then creates this device.
func (db *DB) Join(in JoinInput) error {
	if ok, err := db.Initialized(); err != nil {
		return err
	} else if ok {
		return core.Errorf(core.ErrConflict, "this database is already initialised")
	}
	if strings.TrimSpace(in.Device) == "" {
		return core.Invalid("device", "a device name", "", "the device needs a name")
	}
	if in.DeviceID == "" {
		in.DeviceID = core.NewID()
	}
	dataKey := core.NewDataKey()
	wrapped, err := core.WrapKey(in.KEK, dataKey)
	if err != nil {
		return err
	}
	a := &Actor{Operator: core.Operator{ID: "sync", Name: "sync"}, Device: core.Device{ID: in.DeviceID, Name: in.Device},
		Store: core.Store{TimeZone: core.DefaultTimeZone}}
	err = db.write(a, func(t *tx) error {
		if id, err := metaText(t, "join_device_id"); err != nil {
			return err
		} else if id != "" {
			// Its key is set up already: a second key would lock out what the first sealed.
			return core.Errorf(core.ErrConflict, "this database is joining a merchant already as device %s", id)
		}
		for k, v := range map[string]any{"join_device_id": in.DeviceID, "join_device_name": in.Device, "join_store": in.Store,
			"key_kdf": in.KDF, "key_salt": in.Salt, "key_wrapped": wrapped} {
			if err := setMeta(t.Tx, k, v); err != nil {
				return err
			}
		}
		return t.audit("device.join", "device", in.DeviceID, map[string]any{"device": in.Device, "store": in.Store})
	})
	if err != nil {
		return err
	}
	return db.useKey(dataKey)
}

// FinishJoin creates this device in the store named at Join (or the merchant's first
// store) once the merchant has arrived with the first pull, so that an Actor can be
// built; the other devices learn of it through device.add@1.
func (db *DB) FinishJoin() (*core.Device, error) {
	if ok, err := db.Initialized(); err != nil {
		return nil, err
	} else if ok {
		return db.ThisDevice()
	}
	q := reader{db}
	id, err := metaText(q, "join_device_id")
	if err != nil {
		return nil, err
	}
	if id == "" {
		return nil, core.Errorf(core.ErrNotFound, "this database is not joining a merchant")
	}
	name, err := metaText(q, "join_device_name")
	if err != nil {
		return nil, err
	}
	want, err := metaText(q, "join_store")
	if err != nil {
		return nil, err
	}
	m, err := db.Merchant()
	if err != nil {
		return nil, core.Errorf(core.ErrNotFound, "the merchant has not arrived yet: sync first")
	}
	var s *core.Store
	if want != "" {
		if s, err = db.FindStore(want); err != nil {
			return nil, err
		}
	} else {
		stores, err := db.Stores()
		if err != nil {
			return nil, err
		}
		if len(stores) == 0 {
			return nil, core.Errorf(core.ErrNotFound, "the merchant has no store yet: sync first")
		}
		s = &stores[0]
	}
	d := core.Device{ID: id, MerchantID: m.ID, StoreID: s.ID, Name: name, Created: db.Clock.Now().UnixMilli()}
	a := &Actor{Operator: core.Operator{ID: "sync", Name: "sync", MerchantID: m.ID}, Device: d, Store: *s}
	err = db.write(a, func(t *tx) error {
		if _, err := t.Exec(`INSERT INTO device(id, merchant_id, store_id, name, created_ms) VALUES (?,?,?,?,?)
			ON CONFLICT(id) DO UPDATE SET store_id = excluded.store_id, name = excluded.name`, d.ID, d.MerchantID, d.StoreID, d.Name, d.Created); err != nil {
			return err
		}
		for k, v := range map[string]any{"device_id": d.ID, "merchant_id": m.ID} {
			if err := setMeta(t.Tx, k, v); err != nil {
				return err
			}
		}
		if _, err := t.Exec(`DELETE FROM meta WHERE key IN ('join_device_id', 'join_device_name', 'join_store')`); err != nil {
			return err
		}
		return t.journal("device.add", "device", d.ID, map[string]any{"device": d.Name, "store": s.Name}, "device.add@1",
			map[string]any{"device": d})
	})
	if err != nil {
		return nil, err
	}
	return &d, nil
}

// ---------------------------------------------------------------------------
// Field clocks

// stamp records the clock of the mutation just journaled as the clock of fields of
// an entity: a change made elsewhere with an older clock does not overwrite them.
func (t *tx) stamp(entity, id string, fields ...string) error {
	if t.hlc == nil {
		return nil
	}
	return t.stampAt(entity, id, t.hlc.Last(), fields...)
}

func (t *tx) stampAt(entity, id string, hlc int64, fields ...string) error {
	for _, f := range fields {
		if _, err := t.Exec(`INSERT INTO field_clock(entity, id, field, hlc) VALUES (?,?,?,?)
			ON CONFLICT(entity, id, field) DO UPDATE SET hlc = max(hlc, excluded.hlc)`, entity, id, f, hlc); err != nil {
			return err
		}
	}
	return nil
}

// fieldClock is the clock of a field's value (0: never changed since created).
func (t *tx) fieldClock(entity, id, field string) (int64, error) {
	var h int64
	err := t.QueryRow(`SELECT hlc FROM field_clock WHERE entity = ? AND id = ? AND field = ?`, entity, id, field).Scan(&h)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, nil
	}
	return h, err
}

func mapKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// Names maps device, operator and store ids to their names, for showing a case's
// parties; ids this device does not know are left out.
func (db *DB) Names(ids []string) (map[string]string, error) {
	out := map[string]string{}
	for _, id := range ids {
		if id == "" {
			continue
		}
		var name string
		err := db.r.QueryRow(`SELECT name FROM device WHERE id = ?1 UNION ALL SELECT name FROM operator WHERE id = ?1
			UNION ALL SELECT name FROM store WHERE id = ?1 LIMIT 1`, id).Scan(&name)
		if errors.Is(err, sql.ErrNoRows) {
			continue
		}
		if err != nil {
			return nil, err
		}
		out[id] = name
	}
	return out, nil
}
