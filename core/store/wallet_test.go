package store_test

import (
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/kameng/kameng/core"
	"github.com/kameng/kameng/core/store"
)

// customer signs a member up by phone at the owner's store and returns its id.
func (e *env) customer(phone string) string {
	e.t.Helper()
	id, err := addCustomer(e.db, e.owner, phone)
	if err != nil {
		e.t.Fatalf("add member %s: %v", phone, err)
	}
	return id
}

func addCustomer(db *store.DB, a *store.Actor, phone string) (string, error) {
	res, err := db.AddMember(a, store.MemberInput{Phone: phone})
	if err != nil {
		return "", err
	}
	return res.Member.ID, nil
}

// ledgerState is everything a wallet, points or merge change writes, so a refused
// change can be shown to have written nothing.
func ledgerState(db *sql.DB) (string, error) {
	var parts [12]sql.NullString
	err := db.QueryRow(`SELECT (SELECT count(*) FROM wallet_entry), (SELECT count(*) FROM points_entry),
		(SELECT group_concat(id || ':' || remaining, ';') FROM (SELECT id, remaining FROM points_entry WHERE remaining > 0 ORDER BY id)),
		(SELECT count(*) FROM audit), (SELECT count(*) FROM outbox),
		(SELECT group_concat(x, ';') FROM (SELECT id || ':' || status || ':' || merged_into || ':' || wallet || ':' || points || ':' ||
			spend || ':' || visits || ':' || tier_id AS x FROM member ORDER BY id)),
		(SELECT group_concat(x, ';') FROM (SELECT day || member_id || store_id || ':' || orders || ':' || amount AS x FROM member_visit ORDER BY 1)),
		(SELECT group_concat(code || ':' || member_id, ';') FROM (SELECT code, member_id FROM code WHERE member_id IS NOT NULL ORDER BY code)),
		(SELECT group_concat(member_id, ';') FROM (SELECT member_id FROM redemption WHERE member_id IS NOT NULL ORDER BY id)),
		(SELECT group_concat(rule_id || member_id || period, ';') FROM (SELECT * FROM issued ORDER BY 1)),
		(SELECT value FROM meta WHERE key = 'loyalty'), (SELECT count(*) FROM code)`).
		Scan(&parts[0], &parts[1], &parts[2], &parts[3], &parts[4], &parts[5], &parts[6], &parts[7], &parts[8], &parts[9], &parts[10], &parts[11])
	var b strings.Builder
	for _, p := range parts {
		b.WriteString(p.String + "|")
	}
	return b.String(), err
}

// ledgerProblems checks every member's balances against their ledgers: the cached
// wallet equals the sum of its entries and is not negative; the cached points equal
// the sum of the points entries and what the lots have left, and are not negative;
// only positive entries hold points, never more than they brought.
func ledgerProblems(db *sql.DB) ([]string, error) {
	rows, err := db.Query(`SELECT m.id, m.wallet, m.points,
		(SELECT COALESCE(sum(amount), 0) FROM wallet_entry w WHERE w.member_id = m.id),
		(SELECT COALESCE(sum(points), 0) FROM points_entry p WHERE p.member_id = m.id),
		(SELECT COALESCE(sum(remaining), 0) FROM points_entry p WHERE p.member_id = m.id AND remaining > 0)
		FROM member m ORDER BY m.id`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var id string
		var wallet, points, wsum, psum, lots int64
		if err := rows.Scan(&id, &wallet, &points, &wsum, &psum, &lots); err != nil {
			return nil, err
		}
		if wallet != wsum || wallet < 0 {
			out = append(out, fmt.Sprintf("member %s: wallet %d, ledger %d", id, wallet, wsum))
		}
		if points != psum || points != lots || points < 0 {
			out = append(out, fmt.Sprintf("member %s: points %d, ledger %d, lots %d", id, points, psum, lots))
		}
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	var bad int
	if err := db.QueryRow(`SELECT count(*) FROM points_entry WHERE remaining < 0 OR (remaining > 0 AND remaining > points)`).Scan(&bad); err != nil {
		return nil, err
	}
	if bad > 0 {
		out = append(out, fmt.Sprintf("%d points entries hold more than they brought, or less than nothing", bad))
	}
	return out, nil
}

func (e *env) ledgersSound() {
	e.t.Helper()
	probs, err := ledgerProblems(e.db.Raw())
	if err != nil {
		e.t.Fatal(err)
	}
	for _, p := range probs {
		e.t.Error(p)
	}
	if len(probs) > 0 {
		e.t.FailNow()
	}
}

func (e *env) state() string {
	e.t.Helper()
	s, err := ledgerState(e.db.Raw())
	if err != nil {
		e.t.Fatal(err)
	}
	return s
}

// refused runs a change that must fail with code (and field), and checks it wrote nothing.
func (e *env) refused(code, field string, change func() error) *core.Error {
	e.t.Helper()
	before := e.state()
	ce := wantErr(e.t, change(), code, field)
	if after := e.state(); after != before {
		e.t.Fatalf("a refused change wrote:\nbefore %s\nafter  %s", before, after)
	}
	return ce
}

func (e *env) wallet(id string) core.Amount {
	e.t.Helper()
	v, err := e.db.WalletShow(id, 100)
	if err != nil {
		e.t.Fatal(err)
	}
	if v.Balance != v.Ledger {
		e.t.Fatalf("member %s: wallet %s, ledger %s", id, v.Balance, v.Ledger)
	}
	return v.Balance
}

func (e *env) setLoyalty(edit func(l *core.Loyalty)) {
	e.t.Helper()
	if _, err := e.db.SetLoyalty(e.owner, func(l *core.Loyalty) error { edit(l); return nil }); err != nil {
		e.t.Fatal(err)
	}
}

func TestWalletTopupBonusPayRefund(t *testing.T) {
	e := newEnv(t)
	m := e.customer("13800138000")
	e.setLoyalty(func(l *core.Loyalty) {
		l.Bonuses = []core.TopupBonus{{Min: 10000, Bonus: 2000}, {Min: 50000, Bonus: 15000}}
	})

	// 充100送20: a top-up entry and a bonus entry pointing at it.
	r, err := e.db.Topup(e.owner, m, 10000, "T1", "")
	if err != nil {
		t.Fatal(err)
	}
	if r.Entry.Kind != core.WalletTopup || r.Entry.Amount != 10000 || r.Bonus == nil || r.Bonus.Kind != core.WalletBonus ||
		r.Bonus.Amount != 2000 || r.Bonus.RelatedID != r.Entry.ID || r.Balance != 12000 {
		t.Fatalf("top-up 100: %+v bonus %+v balance %s", r.Entry, r.Bonus, r.Balance)
	}
	// Bonuses do not stack: 600 reaches the 500 rule only.
	if r, err = e.db.Topup(e.owner, m, 60000, "", ""); err != nil || r.Bonus.Amount != 15000 || r.Balance != 12000+75000 {
		t.Fatalf("top-up 600: %+v %v", r, err)
	}
	// Below every rule: no bonus entry.
	if r, err = e.db.Topup(e.owner, m, 5000, "", ""); err != nil || r.Bonus != nil || r.Balance != 92000 {
		t.Fatalf("top-up 50: %+v %v", r, err)
	}
	pay, err := e.db.Pay(e.owner, "138 0013 8000", 30000, "T2", "")
	if err != nil {
		t.Fatal(err)
	}
	if pay.Entry.Kind != core.WalletPay || pay.Entry.Amount != -30000 || pay.Balance != 62000 || pay.Entry.MemberID != m || pay.Entry.Ref != "T2" {
		t.Fatalf("pay: %+v balance %s", pay.Entry, pay.Balance)
	}
	e.ledgersSound()

	// More than the balance: a conflict on the amount that names the balance; nothing written.
	ce := e.refused(core.ErrConflict, "amount", func() error { _, err := e.db.Pay(e.owner, m, 62001, "", ""); return err })
	if !strings.Contains(ce.Message, "620.00") || ce.Params["have"] != "¥620.00" || ce.Params["want"] != "¥620.01" {
		t.Fatalf("insufficient balance: %q %v", ce.Message, ce.Params)
	}
	e.refused(core.ErrInvalid, "amount", func() error { _, err := e.db.Pay(e.owner, m, 0, "", ""); return err })
	e.refused(core.ErrNotFound, "member", func() error { _, err := e.db.Pay(e.owner, "13900000000", 100, "", ""); return err })
	e.refused(core.ErrNotFound, "member", func() error { _, err := e.db.Topup(e.owner, "nobody", 100, "", ""); return err })
	// The whole balance can be paid.
	if r, err := e.db.Pay(e.owner, m, 62000, "", ""); err != nil || r.Balance != 0 {
		t.Fatalf("pay all: %+v %v", r, err)
	}
	if r, err := e.db.Topup(e.owner, m, 5000, "", ""); err != nil || r.Balance != 5000 {
		t.Fatalf("top-up after paying all: %+v %v", r, err)
	}

	// Refunds: part, then the rest (amount 0), then nothing is left.
	e.refused(core.ErrInvalid, "reason", func() error { _, err := e.db.Refund(e.owner, pay.Entry.ID, 100, " "); return err })
	if r, err := e.db.Refund(e.owner, pay.Entry.ID, 10000, "退一件"); err != nil || r.Entry.Amount != 10000 || r.Entry.RelatedID != pay.Entry.ID ||
		r.Entry.Kind != core.WalletRefund || r.Balance != 15000 || r.Entry.Ref != "T2" {
		t.Fatalf("refund 100: %+v %v", r, err)
	}
	ce = e.refused(core.ErrConflict, "amount", func() error { _, err := e.db.Refund(e.owner, pay.Entry.ID, 20001, "多退"); return err })
	if ce.Params["have"] != "¥200.00" {
		t.Fatalf("over-refund: %q %v", ce.Message, ce.Params)
	}
	if r, err := e.db.Refund(e.owner, pay.Entry.ID, 0, "整单退"); err != nil || r.Entry.Amount != 20000 || r.Balance != 35000 {
		t.Fatalf("refund the rest: %+v %v", r, err)
	}
	e.refused(core.ErrConflict, "payment", func() error { _, err := e.db.Refund(e.owner, pay.Entry.ID, 0, "again"); return err })
	e.refused(core.ErrInvalid, "payment", func() error { _, err := e.db.Refund(e.owner, r.Entry.ID, 0, "a top-up"); return err })
	e.refused(core.ErrNotFound, "payment", func() error { _, err := e.db.Refund(e.owner, "no-such-entry", 0, "x"); return err })

	if got := e.wallet(m); got != 35000 {
		t.Fatalf("balance %s, want 350.00", got)
	}
	v, err := e.db.WalletShow("13800138000", 3)
	if err != nil || len(v.Entries) != 3 || v.Entries[0].Kind != core.WalletRefund || v.MemberID != m {
		t.Fatalf("show: %+v %v", v, err)
	}
	e.ledgersSound()
	acts := e.auditActions()
	if acts["wallet.topup"] != 4 || acts["wallet.pay"] != 2 || acts["wallet.refund"] != 2 {
		t.Fatalf("audit actions %v", acts)
	}
	var outbox int
	if err := e.db.Raw().QueryRow(`SELECT count(*) FROM outbox WHERE name LIKE 'wallet.%'`).Scan(&outbox); err != nil || outbox != 8 {
		t.Fatalf("wallet mutations in the outbox: %d %v", outbox, err)
	}
}

func TestWalletIdempotencyKeys(t *testing.T) {
	e := newEnv(t)
	m, other := e.customer("13800138001"), e.customer("13800138002")
	e.setLoyalty(func(l *core.Loyalty) { l.Bonuses = []core.TopupBonus{{Min: 10000, Bonus: 1000}} })
	top, err := e.db.Topup(e.owner, m, 20000, "", "TOP-1")
	if err != nil {
		t.Fatal(err)
	}
	p1, err := e.db.Pay(e.owner, m, 5000, "", "PAY-1")
	if err != nil || p1.Replayed {
		t.Fatal(p1, err)
	}
	if _, err := e.db.Pay(e.owner, m, 1000, "", ""); err != nil {
		t.Fatal(err)
	}
	before := e.state()
	// The same request again: the first result, with the balance right after it.
	p2, err := e.db.Pay(e.owner, m, 5000, "", "PAY-1")
	if err != nil || !p2.Replayed || p2.Entry.ID != p1.Entry.ID || p2.Balance != p1.Balance {
		t.Fatalf("replayed pay: %+v %v, first %+v", p2, err, p1)
	}
	t2, err := e.db.Topup(e.owner, "13800138001", 20000, "", "TOP-1")
	if err != nil || !t2.Replayed || t2.Entry.ID != top.Entry.ID || t2.Bonus == nil || t2.Bonus.ID != top.Bonus.ID || t2.Balance != 21000 {
		t.Fatalf("replayed top-up: %+v %v", t2, err)
	}
	if after := e.state(); after != before {
		t.Fatalf("a replay wrote:\n%s\n%s", before, after)
	}
	// The same key for another amount, member or kind of change is the caller's bug.
	e.refused(core.ErrConflict, "key", func() error { _, err := e.db.Pay(e.owner, m, 5001, "", "PAY-1"); return err })
	e.refused(core.ErrConflict, "key", func() error { _, err := e.db.Pay(e.owner, other, 5000, "", "PAY-1"); return err })
	e.refused(core.ErrConflict, "key", func() error { _, err := e.db.Topup(e.owner, m, 5000, "", "PAY-1"); return err })
	e.refused(core.ErrConflict, "key", func() error { _, err := e.db.Pay(e.owner, m, 20000, "", "TOP-1"); return err })
	e.refused(core.ErrInvalid, "key", func() error { _, err := e.db.Pay(e.owner, m, 1, "", strings.Repeat("k", 129)); return err })
	// A refused payment does not use its key up.
	e.refused(core.ErrConflict, "amount", func() error { _, err := e.db.Pay(e.owner, m, 999999, "", "PAY-2"); return err })
	if r, err := e.db.Pay(e.owner, m, 100, "", "PAY-2"); err != nil || r.Replayed {
		t.Fatalf("key of a refused payment: %+v %v", r, err)
	}
	e.ledgersSound()
}

// Payments from two database handles at once never take a wallet below zero: the
// conditional update lets exactly as many through as the balance covers.
func TestWalletConcurrentPayments(t *testing.T) {
	e := newEnv(t)
	m := e.customer("13800138003")
	if _, err := e.db.Topup(e.owner, m, 10000, "", ""); err != nil {
		t.Fatal(err)
	}
	dbs := []*store.DB{e.db, e.reopen(), e.reopen()}
	var mu sync.Mutex
	ok, short := 0, 0
	var wg sync.WaitGroup
	for i := 0; i < 12; i++ {
		wg.Add(1)
		go func(db *store.DB) {
			defer wg.Done()
			_, err := db.Pay(e.owner, m, 1500, "", "")
			mu.Lock()
			defer mu.Unlock()
			var ce *core.Error
			switch {
			case err == nil:
				ok++
			case errors.As(err, &ce) && ce.Code == core.ErrConflict && ce.Field == "amount":
				short++
			default:
				t.Errorf("pay: %v", err)
			}
		}(dbs[i%len(dbs)])
	}
	wg.Wait()
	if ok != 6 || short != 6 {
		t.Fatalf("%d payments went through and %d were short, want 6 and 6", ok, short)
	}
	if got := e.wallet(m); got != 1000 {
		t.Fatalf("balance %s, want 10.00", got)
	}
	e.ledgersSound()
}

func TestWalletBonusRulesValidated(t *testing.T) {
	e := newEnv(t)
	for _, bad := range [][]core.TopupBonus{{{Min: 0, Bonus: 100}}, {{Min: 100, Bonus: 0}}, {{Min: 100, Bonus: 5}, {Min: 100, Bonus: 6}}} {
		before := e.state()
		_, err := e.db.SetLoyalty(e.owner, func(l *core.Loyalty) error { l.Bonuses = bad; return nil })
		wantErr(t, err, core.ErrInvalid, "bonus")
		if e.state() != before {
			t.Fatalf("refused bonus rules %v were saved", bad)
		}
	}
}
