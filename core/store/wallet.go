package store

import (
	"database/sql"
	"errors"
	"strings"

	"github.com/kameng/kameng/core"
	"github.com/kameng/kameng/core/wire"
)

// Stored value (储值). A member's balance is the sum of their wallet_entry rows;
// member.wallet caches it and is changed in the same transaction as every entry.

// maxWallet bounds a balance so sums of balances stay far from int64 overflow.
const maxWallet = core.Amount(9_000_000_000_000_000)

// WalletResult is what a top-up, payment or refund produced.
type WalletResult struct {
	Entry    *core.WalletEntry `json:"entry"`
	Bonus    *core.WalletEntry `json:"bonus,omitempty"` // a top-up's bonus
	Balance  core.Amount       `json:"balance"`         // the member's balance after it
	Replayed bool              `json:"replayed"`        // an earlier request with the same idempotency key
}

const walletCols = `id, member_id, kind, amount, ref, related_id, store_id, operator_id, device_id, COALESCE(idem_key, ''), created_ms`

// scanWalletEntry reads walletCols.
func scanWalletEntry(row scanner) (*core.WalletEntry, error) {
	var e core.WalletEntry
	err := row.Scan(&e.ID, &e.MemberID, &e.Kind, &e.Amount, &e.Ref, &e.RelatedID, &e.StoreID, &e.OperatorID, &e.DeviceID,
		&e.IdemKey, &e.Created)
	return &e, err
}

// addWallet inserts one entry (with the actor, the time and a new id filled in).
func (t *tx) addWallet(e *core.WalletEntry) error {
	e.ID, e.StoreID, e.OperatorID, e.DeviceID, e.Created = core.NewID(), t.actor.Store.ID, t.actor.Operator.ID, t.actor.Device.ID, t.now
	var key any
	if e.IdemKey != "" {
		key = e.IdemKey
	}
	_, err := t.Exec(`INSERT INTO wallet_entry(id, member_id, kind, amount, ref, related_id, store_id, operator_id, device_id, idem_key, created_ms)
		VALUES (?,?,?,?,?,?,?,?,?,?,?)`, e.ID, e.MemberID, e.Kind, e.Amount, e.Ref, e.RelatedID, e.StoreID, e.OperatorID, e.DeviceID, key, e.Created)
	return err
}

// walletReplay answers a repeated idempotency key with the first result, or refuses a
// key that was used for another kind of change, member or amount. ok is false when
// the key is new.
func (t *tx) walletReplay(key, kind, memberID string, amount core.Amount) (res *WalletResult, ok bool, err error) {
	e, err := scanWalletEntry(t.QueryRow(`SELECT `+walletCols+` FROM wallet_entry WHERE idem_key = ?`, key))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, err
	}
	owner, err := t.db.memberRef(t, e.MemberID) // the first request's member, wherever it was merged
	if err != nil && core.ErrorCode(err) != core.ErrConflict {
		return nil, false, err
	}
	if e.Kind != kind || (owner != memberID && e.MemberID != memberID) || absAmount(e.Amount) != amount {
		ce := core.Errorf(core.ErrConflict, "idempotency key %q was used for a %s of %s for member %s, not this request",
			key, e.Kind, absAmount(e.Amount).Yuan(), e.MemberID)
		ce.Field = "key"
		return nil, false, ce
	}
	res = &WalletResult{Entry: e, Replayed: true}
	last := e.ID // ids are time-ordered (UUIDv7)
	if kind == core.WalletTopup {
		b, err := scanWalletEntry(t.QueryRow(`SELECT `+walletCols+` FROM wallet_entry WHERE related_id = ? AND kind = 'bonus'`, e.ID))
		if err == nil {
			res.Bonus, last = b, b.ID
		} else if !errors.Is(err, sql.ErrNoRows) {
			return nil, false, err
		}
	}
	// The balance right after the first request: the member's entries up to it.
	err = t.QueryRow(`SELECT COALESCE(sum(amount), 0) FROM wallet_entry WHERE member_id = ? AND id <= ?`, e.MemberID, last).Scan(&res.Balance)
	return res, true, err
}

// walletKey checks an idempotency key's length.
func walletKey(key string) (string, error) {
	key = strings.TrimSpace(key)
	if len(key) > 128 {
		return "", core.Invalid("key", "up to 128 characters", key[:20]+"…", "idempotency key too long")
	}
	return key, nil
}

func absAmount(a core.Amount) core.Amount { return max(a, -a) }

func positiveAmount(field string, a core.Amount) error {
	if a <= 0 {
		return core.Invalid(field, "more than 0", a.String(), "the %s must be above zero", field)
	}
	return nil
}

// Topup adds amount to a member's wallet and the bonus of the highest top-up rule it
// reaches (充100送20) as a second entry. A repeated idempotency key returns the first
// result.
func (db *DB) Topup(a *Actor, member string, amount core.Amount, ref, idemKey string) (*WalletResult, error) {
	if err := positiveAmount("amount", amount); err != nil {
		return nil, err
	}
	idemKey, err := walletKey(idemKey)
	if err != nil {
		return nil, err
	}
	res := &WalletResult{}
	err = db.write(a, func(t *tx) error {
		id, err := db.memberRef(t, member)
		if err != nil {
			return err
		}
		if idemKey != "" {
			if r, ok, err := t.walletReplay(idemKey, core.WalletTopup, id, amount); ok || err != nil {
				if ok {
					*res = *r
				}
				return err
			}
		}
		l, err := loyaltyFrom(t)
		if err != nil {
			return err
		}
		bonus := l.BonusFor(amount)
		total := amount + bonus
		if err := t.QueryRow(`UPDATE member SET wallet = wallet + ?, updated_ms = ? WHERE id = ? AND wallet <= ? RETURNING wallet`,
			total, t.now, id, maxWallet-total).Scan(&res.Balance); errors.Is(err, sql.ErrNoRows) {
			return core.Invalid("amount", "a smaller top-up", amount.String(), "this top-up would take the balance above %s", maxWallet.Yuan())
		} else if err != nil {
			return err
		}
		res.Entry = &core.WalletEntry{MemberID: id, Kind: core.WalletTopup, Amount: amount, Ref: strings.TrimSpace(ref), IdemKey: idemKey}
		if err := t.addWallet(res.Entry); err != nil {
			return err
		}
		if bonus > 0 {
			res.Bonus = &core.WalletEntry{MemberID: id, Kind: core.WalletBonus, Amount: bonus, Ref: res.Entry.Ref, RelatedID: res.Entry.ID}
			if err := t.addWallet(res.Bonus); err != nil {
				return err
			}
		}
		return t.journal("wallet.topup", "member", id, map[string]any{"entry": res.Entry.ID, "amount": amount, "bonus": bonus, "ref": res.Entry.Ref},
			"wallet.topup@1", map[string]any{"entry": res.Entry, "bonus": res.Bonus})
	})
	if err != nil {
		return nil, err
	}
	return res, nil
}

// Pay takes amount from a member's wallet, or changes nothing when the balance is
// short. It is a payment method, not a purchase: the purchase is recorded by the
// points earn. It is on the counter's hot path, so a member named by id costs one
// conditional update (which is also the lookup), the entry, and the audit and outbox
// rows; a phone, a merged record or a short balance take the slower path.
func (db *DB) Pay(a *Actor, member string, amount core.Amount, ref, idemKey string) (*WalletResult, error) {
	if err := positiveAmount("amount", amount); err != nil {
		return nil, err
	}
	idemKey, err := walletKey(idemKey)
	if err != nil {
		return nil, err
	}
	member = strings.TrimSpace(member)
	res := &WalletResult{}
	err = db.write(a, func(t *tx) error {
		id := member
		if idemKey != "" {
			var err error
			if id, err = db.memberRef(t, member); err != nil {
				return err
			}
			if r, ok, err := t.walletReplay(idemKey, core.WalletPay, id, amount); ok || err != nil {
				if ok {
					*res = *r
				}
				return err
			}
		}
		// The conditional update is what keeps the balance from going negative, also
		// under concurrent payments: the second writer finds too little left.
		const take = `UPDATE member SET wallet = wallet - ?, updated_ms = ? WHERE id = ? AND wallet >= ? AND status = 'active' AND frozen = 0 RETURNING wallet`
		err := t.QueryRow(take, amount, t.now, id, amount).Scan(&res.Balance)
		if errors.Is(err, sql.ErrNoRows) {
			resolved, rerr := db.memberRef(t, member)
			if rerr != nil {
				return rerr
			}
			if resolved != id {
				id = resolved
				err = t.QueryRow(take, amount, t.now, id, amount).Scan(&res.Balance)
			}
		}
		if errors.Is(err, sql.ErrNoRows) {
			var balance core.Amount
			var frozen bool
			if err := t.QueryRow(`SELECT wallet, frozen FROM member WHERE id = ?`, id).Scan(&balance, &frozen); err != nil {
				return err
			}
			if frozen {
				return frozenAccount("member", id)
			}
			return shortOf("amount", "balance_short", amount.Yuan(), balance.Yuan())
		}
		if err != nil {
			return err
		}
		if a.Offline {
			if err := t.allowanceCheck(wire.AccountWallet, id, amount); err != nil {
				return err
			}
		}
		res.Entry = &core.WalletEntry{MemberID: id, Kind: core.WalletPay, Amount: -amount, Ref: strings.TrimSpace(ref), IdemKey: idemKey}
		if err := t.addWallet(res.Entry); err != nil {
			return err
		}
		if err := t.journal("wallet.pay", "member", id, map[string]any{"entry": res.Entry.ID, "amount": amount, "ref": res.Entry.Ref},
			"wallet.pay@1", res.Entry); err != nil {
			return err
		}
		if a.Offline {
			return t.spentOffline(wire.AccountWallet, id, amount)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return res, nil
}

// shortOf is the conflict of taking more than a balance holds. Params carry the
// figures so a screen can say it in its own language ("why" names the sentence).
func shortOf(field, why, want, have string) *core.Error {
	var e *core.Error
	switch why {
	case "points_short":
		e = core.Errorf(core.ErrConflict, "the member has %s points, less than %s", have, want)
	case "refundable_short":
		e = core.Errorf(core.ErrConflict, "only %s is left to refund, less than %s", have, want)
	default:
		e = core.Errorf(core.ErrConflict, "the balance is %s, less than %s", have, want)
	}
	e.Field = field
	e.Params = map[string]string{"why": why, "have": have, "want": want}
	return e
}

// Refund gives back (part of) a wallet payment: at most the payment less what earlier
// refunds gave back; amount 0 refunds all that is left. The money goes back into the
// wallet of the member who paid (or the one they were merged into).
func (db *DB) Refund(a *Actor, payEntryID string, amount core.Amount, reason string) (*WalletResult, error) {
	reason = strings.TrimSpace(reason)
	if reason == "" {
		return nil, core.Invalid("reason", "why the payment is refunded", "", "a refund needs a reason")
	}
	if amount < 0 {
		return nil, core.Invalid("amount", "more than 0, or nothing for all", amount.String(), "a refund cannot be negative")
	}
	res := &WalletResult{}
	err := db.write(a, func(t *tx) error {
		pay, err := scanWalletEntry(t.QueryRow(`SELECT `+walletCols+` FROM wallet_entry WHERE id = ?`, strings.TrimSpace(payEntryID)))
		if errors.Is(err, sql.ErrNoRows) {
			return core.NotFound("payment", payEntryID)
		}
		if err != nil {
			return err
		}
		if pay.Kind != core.WalletPay {
			return core.Invalid("payment", "the id of a wallet payment", payEntryID, "entry %s is a %s, not a payment", pay.ID, pay.Kind)
		}
		var refunded core.Amount
		if err := t.QueryRow(`SELECT COALESCE(sum(amount), 0) FROM wallet_entry WHERE related_id = ? AND kind = 'refund'`, pay.ID).Scan(&refunded); err != nil {
			return err
		}
		left := -pay.Amount - refunded
		if left <= 0 {
			e := core.Errorf(core.ErrConflict, "payment %s was refunded in full already", pay.ID)
			e.Field, e.Params = "payment", map[string]string{"why": "refunded", "id": pay.ID}
			return e
		}
		if amount == 0 {
			amount = left
		}
		if amount > left {
			return shortOf("amount", "refundable_short", amount.Yuan(), left.Yuan())
		}
		id, err := db.memberRef(t, pay.MemberID)
		if err != nil {
			return err
		}
		if err := t.QueryRow(`UPDATE member SET wallet = wallet + ?, updated_ms = ? WHERE id = ? RETURNING wallet`, amount, t.now, id).Scan(&res.Balance); err != nil {
			return err
		}
		res.Entry = &core.WalletEntry{MemberID: id, Kind: core.WalletRefund, Amount: amount, Ref: pay.Ref, RelatedID: pay.ID}
		if err := t.addWallet(res.Entry); err != nil {
			return err
		}
		return t.journal("wallet.refund", "member", id, map[string]any{"entry": res.Entry.ID, "payment": pay.ID, "amount": amount, "reason": reason},
			"wallet.refund@1", map[string]any{"entry": res.Entry, "reason": reason})
	})
	if err != nil {
		return nil, err
	}
	return res, nil
}

// WalletView is a member's stored value: the cached balance, the ledger's sum (the two
// agree) and the newest entries.
type WalletView struct {
	MemberID string              `json:"member_id"`
	Balance  core.Amount         `json:"balance"`
	Ledger   core.Amount         `json:"ledger"`
	Entries  []*core.WalletEntry `json:"entries"`
}

// WalletShow returns a member's balance and newest entries (limit, default 20).
func (db *DB) WalletShow(member string, limit int) (*WalletView, error) {
	q := reader{db}
	id, err := db.memberRef(q, member)
	if err != nil {
		return nil, err
	}
	v := &WalletView{MemberID: id, Entries: []*core.WalletEntry{}}
	if err := q.QueryRow(`SELECT wallet, (SELECT COALESCE(sum(amount), 0) FROM wallet_entry WHERE member_id = ?) FROM member WHERE id = ?`, id, id).
		Scan(&v.Balance, &v.Ledger); err != nil {
		return nil, err
	}
	if limit <= 0 {
		limit = 20
	}
	rows, err := db.r.Query(`SELECT `+walletCols+` FROM wallet_entry WHERE member_id = ? ORDER BY created_ms DESC, id DESC LIMIT ?`, id, limit)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	for rows.Next() {
		e, err := scanWalletEntry(rows)
		if err != nil {
			return nil, err
		}
		v.Entries = append(v.Entries, e)
	}
	return v, rows.Err()
}

// WalletEntry finds one wallet entry by id.
func (db *DB) WalletEntry(id string) (*core.WalletEntry, error) {
	e, err := scanWalletEntry(db.r.QueryRow(`SELECT `+walletCols+` FROM wallet_entry WHERE id = ?`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, core.NotFound("entry", id)
	}
	return e, err
}
