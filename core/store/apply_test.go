package store_test

import (
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/kameng/kameng/core"
	"github.com/kameng/kameng/core/store"
	"github.com/kameng/kameng/core/wire"
)

// dump reads the replicated state of a database: every row that two converged
// devices must hold alike, without what is local by nature (audit, outbox, sealed
// personal data and its keyed hashes, ledger row ids).
func dump(t testing.TB, db *store.DB) map[string][]string {
	t.Helper()
	queries := map[string]string{
		"merchant": `SELECT id, name FROM merchant ORDER BY id`,
		"store":    `SELECT id, name, time_zone FROM store ORDER BY id`,
		"device":   `SELECT id, store_id, name FROM device ORDER BY id`,
		"operator": `SELECT id, name, role, COALESCE(store_id, ''), password_hash FROM operator ORDER BY id`,
		"campaign": `SELECT id, name, description, kind, status, amount_off, face_value, rules, format, issued, redeemed, spent FROM campaign ORDER BY id`,
		"batch":    `SELECT id, campaign_id, source, count FROM batch ORDER BY id`,
		"code": `SELECT code, campaign_id, batch_id, status, uses, balance, distributed_ms, valid_from_ms, valid_to_ms,
			COALESCE(member_id, ''), frozen FROM code ORDER BY code`,
		"redemption": `SELECT id, code, campaign_id, store_id, device_id, operator_id, order_ref, order_amount, discount, value,
			COALESCE(member_id, ''), split, status, created_ms, rollback_reason FROM redemption ORDER BY id`,
		"ledger": `SELECT code, campaign_id, kind, amount, COALESCE(redemption_id, '') FROM ledger ORDER BY code, kind, amount, redemption_id`,
		"member": `SELECT id, merchant_id, birth_month, tags, consent, tier_id, status, store_id, wallet, points, spend, visits, last_visit_ms, frozen,
			phone IS NULL, phone_ix IS NULL FROM member ORDER BY id`,
		"wallet_entry": `SELECT id, member_id, kind, amount, ref, related_id, store_id, device_id FROM wallet_entry ORDER BY id`,
		"points_entry": `SELECT id, member_id, kind, points, remaining, expires_ms, order_amount, related_id FROM points_entry
			WHERE kind NOT IN ('expire') ORDER BY id`,
		"tier":          `SELECT id, name, min_spend, min_points, multiplier_bp FROM tier ORDER BY id`,
		"rollup":        `SELECT * FROM rollup ORDER BY day, store_id, campaign_id`,
		"rollup_hour":   `SELECT * FROM rollup_hour ORDER BY day, hour, store_id`,
		"settle_rollup": `SELECT * FROM settle_rollup ORDER BY party, day, store_id, campaign_id`,
		"member_visit":  `SELECT * FROM member_visit ORDER BY day, member_id, store_id`,
		"split_rule":    `SELECT id, scope, scope_id, parties, remainder FROM split_rule ORDER BY id`,
	}
	out := map[string][]string{}
	for name, q := range queries {
		rows, err := db.Raw().Query(q)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		cols, _ := rows.Columns()
		for rows.Next() {
			vals := make([]any, len(cols))
			ptrs := make([]any, len(cols))
			for i := range vals {
				ptrs[i] = &vals[i]
			}
			if err := rows.Scan(ptrs...); err != nil {
				t.Fatal(err)
			}
			parts := make([]string, len(vals))
			for i, v := range vals {
				if b, ok := v.([]byte); ok {
					v = string(b)
				}
				parts[i] = fmt.Sprint(v)
			}
			out[name] = append(out[name], strings.Join(parts, "|"))
		}
		rows.Close()
	}
	return out
}

// sameState fails with the first difference between two dumps.
func sameState(t testing.TB, what string, a, b map[string][]string) {
	t.Helper()
	for name := range a {
		if !reflect.DeepEqual(a[name], b[name]) {
			t.Fatalf("%s: table %s differs\nA: %s\nB: %s", what, name, strings.Join(a[name], "\n   "), strings.Join(b[name], "\n   "))
		}
	}
}

// balancesAgree checks every cached balance against its ledger.
func balancesAgree(t testing.TB, db *store.DB) {
	t.Helper()
	checks := map[string]string{
		"gift card balance ≠ ledger": `SELECT count(*) FROM code k JOIN campaign c ON c.id = k.campaign_id WHERE c.kind = 'gift_card'
			AND k.balance <> (SELECT COALESCE(sum(amount), 0) FROM ledger l WHERE l.code = k.code)`,
		"wallet ≠ ledger":        `SELECT count(*) FROM member m WHERE m.wallet <> (SELECT COALESCE(sum(amount), 0) FROM wallet_entry w WHERE w.member_id = m.id)`,
		"points ≠ ledger":        `SELECT count(*) FROM member m WHERE m.points <> (SELECT COALESCE(sum(points), 0) FROM points_entry p WHERE p.member_id = m.id)`,
		"points ≠ lots":          `SELECT count(*) FROM member m WHERE m.points <> (SELECT COALESCE(sum(remaining), 0) FROM points_entry p WHERE p.member_id = m.id AND remaining > 0)`,
		"uses ≠ redemptions":     `SELECT count(*) FROM code k WHERE k.uses <> (SELECT count(*) FROM redemption r WHERE r.code = k.code AND r.status = 'done')`,
		"redeemed ≠ redemptions": `SELECT count(*) FROM campaign c WHERE c.redeemed <> (SELECT count(*) FROM redemption r WHERE r.campaign_id = c.id AND r.status = 'done')`,
	}
	for what, q := range checks {
		var n int
		if err := db.Raw().QueryRow(q).Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n != 0 {
			t.Errorf("%s: %d rows", what, n)
		}
	}
	if n, brk, err := db.VerifyAudit(); err != nil || brk != nil {
		t.Fatalf("audit chain after %d entries: %+v %v", n, brk, err)
	}
}

// merchantA is a first device with a bit of everything.
type merchantA struct {
	*env
	amount, gift *core.Campaign
	codes, cards []string
	member       string
	phone        string
	second       *core.Store
}

func newMerchantA(t *testing.T) *merchantA {
	e := newEnv(t)
	a := &merchantA{env: e, phone: "13912345678"}
	amount := amountOff("满100减20", 2000, core.Rules{UsesPerCode: 1, RollbackHours: 72})
	amount.MinSpend = 10000
	a.amount = e.create(amount)
	a.gift = e.create(giftCard("礼品卡", 10000))
	a.codes = e.codes(a.amount.ID, 6)
	a.cards = e.codes(a.gift.ID, 3)
	var err error
	if a.second, err = e.db.AddStore(e.owner, "二店", "Asia/Urumqi"); err != nil {
		t.Fatal(err)
	}
	if _, err := e.db.AddOperator(e.owner, "cashier1", core.RoleCashier, a.second.ID, passwordHash()); err != nil {
		t.Fatal(err)
	}
	if _, err := e.db.SetSplitRule(e.owner, core.SplitRule{Scope: core.SplitDefault, Parties: []core.Share{{Party: "brand", PercentBP: 6000},
		{Party: "store", PercentBP: 4000}}, Remainder: "brand"}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.db.SetTier(e.owner, core.Tier{Name: "银卡", MinSpend: 1_000_000}); err != nil {
		t.Fatal(err)
	}
	m, err := e.db.AddMember(e.owner, store.MemberInput{Phone: a.phone, Name: "张三", Birthday: "1990-05-06", Tags: "vip", Consent: true})
	if err != nil {
		t.Fatal(err)
	}
	a.member = m.Member.ID
	e.advance(time.Minute)
	if _, err := e.db.Topup(e.owner, a.member, 20000, "top1", ""); err != nil {
		t.Fatal(err)
	}
	pay, err := e.db.Pay(e.owner, a.member, 5000, "p1", "")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.db.Refund(e.owner, pay.Entry.ID, 1000, "退一部分"); err != nil {
		t.Fatal(err)
	}
	if _, err := e.db.Earn(e.owner, a.member, 8800, "", "o1"); err != nil {
		t.Fatal(err)
	}
	if _, err := e.db.Adjust(e.owner, a.member, -10, "校正"); err != nil {
		t.Fatal(err)
	}
	e.advance(time.Minute)
	e.redeem(e.owner, a.codes[0], core.Order{Amount: 15000, Member: a.phone, Ref: "o2"}, "k-0")
	e.redeem(e.owner, a.cards[0], core.Order{Amount: 3000}, "")
	r := e.mustRedeem(e.owner, a.codes[1], core.Order{Amount: 12000})
	e.advance(time.Minute)
	if _, err := e.db.Rollback(e.owner, r.ID, "顾客退单", false, 0); err != nil {
		t.Fatal(err)
	}
	if err := e.db.Void(e.owner, a.codes[5], "作废"); err != nil {
		t.Fatal(err)
	}
	if _, err := e.db.Distribute(e.owner, []string{a.codes[4]}, a.phone); err != nil {
		t.Fatal(err)
	}
	if _, err := e.db.UpdateCampaign(e.owner, a.amount.ID, func(c *core.Campaign) error { c.Description = "周末可用"; return nil }); err != nil {
		t.Fatal(err)
	}
	return a
}

func TestTwoDevicesConverge(t *testing.T) {
	a := newMerchantA(t)
	h := newHub(t)
	h.register(a.db, a.owner.Operator.MerchantID)
	h.push(a.db)

	bClock := &core.FixedClock{T: a.clock.T.Add(time.Hour)}
	b, bOwner := h.join(a.owner.Operator.MerchantID, "pos-2", "二店", bClock)
	h.push(b) // B's device.add@1: A learns of it
	h.pull(a.db, 3)
	sameState(t, "after B joined", dump(t, a.db), dump(t, b))
	balancesAgree(t, b)
	if bOwner.Store.Name != "二店" {
		t.Fatalf("B works in %q", bOwner.Store.Name)
	}
	actorOn(t, b, &bOwner.Device, "cashier1")

	// Personal data arrived opened and is sealed with B's own key: B finds the member
	// by phone and name, and shows the same masked phone.
	found, err := b.FindMembers(store.MemberFilter{Phone: a.phone})
	if err != nil || len(found) != 1 || found[0].ID != a.member || found[0].Phone != "139****5678" || found[0].Name != "张三" {
		t.Fatalf("member on B by phone: %+v %v", found, err)
	}
	if byName, err := b.FindMembers(store.MemberFilter{Name: "张三"}); err != nil || len(byName) != 1 {
		t.Fatalf("member on B by name: %+v %v", byName, err)
	}
	// The code B now knows checks and redeems like A's.
	if v, err := b.Check(bOwner, a.codes[0], core.Order{Amount: 20000}); err != nil || v.Reason != core.ReasonAlreadyRedeemed {
		t.Fatalf("check of a code A redeemed: %+v %v", v, err)
	}
	if v, err := b.Check(bOwner, a.codes[5], core.Order{Amount: 20000}); err != nil || v.Reason != core.ReasonVoided {
		t.Fatalf("check of a code A voided: %+v %v", v, err)
	}

	// Both devices work apart, then sync.
	a.advance(time.Hour)
	bClock.T = bClock.T.Add(time.Hour)
	if r, err := b.Redeem(bOwner, a.codes[2], core.Order{Amount: 30000, Member: a.phone}, ""); err != nil || !r.Verdict.OK || r.MemberID != a.member {
		t.Fatalf("B redeems with the member's phone: %+v %v", r, err)
	}
	if _, err := b.Redeem(bOwner, a.cards[1], core.Order{Amount: 2500}, ""); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Topup(bOwner, a.phone, 5000, "b-top", ""); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Pay(bOwner, a.member, 1200, "b-pay", ""); err != nil {
		t.Fatal(err)
	}
	bc := &core.Campaign{Name: "B的券", Kind: core.KindAmountOff, AmountOff: 300, Format: core.DefaultCodeFormat()}
	if err := b.CreateCampaign(bOwner, bc); err != nil {
		t.Fatal(err)
	}
	bBatch, err := b.GenerateCodes(bOwner, bc.ID, 4, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.AddMember(bOwner, store.MemberInput{Phone: "13700000009", Name: "李四"}); err != nil {
		t.Fatal(err)
	}
	a.redeem(a.owner, a.cards[0], core.Order{Amount: 1000}, "")
	if _, err := a.db.Earn(a.owner, a.member, 5000, a.amount.ID, "o9"); err != nil {
		t.Fatal(err)
	}
	if _, err := a.db.SetCampaignStatus(a.owner, a.gift.ID, core.StatusPaused); err != nil {
		t.Fatal(err)
	}

	h.push(b)
	h.push(a.db)
	h.pull(b, 3)
	h.pull(a.db, 3)
	sameState(t, "after both synced", dump(t, a.db), dump(t, b))
	balancesAgree(t, a.db)
	balancesAgree(t, b)
	var bCode string
	if err := b.EachCode(store.CodeFilter{Batch: bBatch.ID, Limit: 1}, false, func(k *core.Code) error { bCode = k.Code; return nil }); err != nil {
		t.Fatal(err)
	}
	if v := a.check(a.owner, bCode, core.Order{}); !v.OK {
		t.Fatalf("A checks a code B generated: %+v", v)
	}
	if found, err := a.db.FindMembers(store.MemberFilter{Phone: "13700000009"}); err != nil || len(found) != 1 || found[0].Name != "李四" {
		t.Fatalf("member B added, on A: %+v %v", found, err)
	}
	w, err := a.db.WalletShow(a.member, 5)
	if err != nil || w.Balance != w.Ledger || w.Balance != 20000-5000+1000+5000-1200 {
		t.Fatalf("wallet on A: %+v %v", w, err)
	}
	// Reports read the rollups: the same numbers on both.
	ra, err := a.db.Report(store.ReportFilter{From: "2025-06-01", To: "2025-06-30", By: "store"})
	if err != nil {
		t.Fatal(err)
	}
	rb, err := b.Report(store.ReportFilter{From: "2025-06-01", To: "2025-06-30", By: "store"})
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(ra, rb) || len(ra) != 2 {
		t.Fatalf("reports differ:\nA %+v\nB %+v", ra, rb)
	}
	// The clock: B's changes after the pull are stamped after everything it saw.
	st := syncState(t, b)
	if st.Cursors[wire.StreamLog] != h.seq || st.SkewMS != h.now()-bClock.T.UnixMilli() {
		t.Fatalf("B's state: %+v (seq %d)", st, h.seq)
	}
}

func TestPagesTwiceChangeNothing(t *testing.T) {
	a := newMerchantA(t)
	h := newHub(t)
	h.register(a.db, a.owner.Operator.MerchantID)
	h.push(a.db)
	b, _ := h.join(a.owner.Operator.MerchantID, "pos-2", "", &core.FixedClock{T: t0})
	before := dump(t, b)
	stBefore := syncState(t, b)

	// The same pages again at the same cursor: passed over by seq.
	for _, stream := range []string{wire.StreamCodes, wire.StreamLog} {
		p, _ := h.page(stream, stBefore.DeviceID, 0, 1000)
		if err := b.ApplyPage(h.epoch, h.now(), p); err != nil {
			t.Fatal(err)
		}
	}
	sameState(t, "pages applied again", before, dump(t, b))
	// After a restore on the server (new epoch) the same mutations come again under
	// new seqs: known by their uuids and the codes by their text.
	if err := b.ResetSync(2); err != nil {
		t.Fatal(err)
	}
	h.epoch = 2
	if err := b.ApplyPage(1, h.now(), &wire.Page{Stream: wire.StreamLog}); core.ErrorCode(err) != core.ErrConflict {
		t.Fatalf("a page of the old epoch: %v", err)
	}
	if st := syncState(t, b); len(st.Cursors) != 0 || st.Epoch != 2 {
		t.Fatalf("after reset: %+v", st)
	}
	for i := range h.log {
		h.log[i].Seq += 1000
	}
	for i := range h.codes {
		h.codes[i].Seq += 1000
	}
	h.pull(b, 4)
	sameState(t, "pulled again after an epoch change", before, dump(t, b))
	balancesAgree(t, b)
	if st := syncState(t, b); st.Cursors[wire.StreamLog] <= 1000 || st.Pending != stBefore.Pending {
		t.Fatalf("after the second pull: %+v", st)
	}
}

func TestFailedPageChangesNothing(t *testing.T) {
	a := newMerchantA(t)
	h := newHub(t)
	h.register(a.db, a.owner.Operator.MerchantID)
	h.push(a.db)
	b, bOwner := h.join(a.owner.Operator.MerchantID, "pos-2", "", &core.FixedClock{T: t0})
	before := dump(t, b)
	cursor := syncState(t, b).Cursors[wire.StreamLog]
	audit := len(auditOf(t, b))

	good := &core.Campaign{ID: core.NewID(), MerchantID: bOwner.Operator.MerchantID, Name: "好", Kind: core.KindAmountOff, AmountOff: 100,
		Status: core.StatusActive, Format: core.DefaultCodeFormat()}
	goodArgs, _ := json.Marshal(good)
	page := &wire.Page{Stream: wire.StreamLog, Next: cursor + 2, Changes: []wire.Change{
		{Seq: cursor + 1, DeviceID: "dev-x", Status: wire.Applied, Mutation: &wire.Mutation{UUID: core.NewID(), Name: "campaign.create@1", Args: goodArgs}},
		{Seq: cursor + 2, DeviceID: "dev-x", Status: wire.Applied, Mutation: &wire.Mutation{UUID: core.NewID(), Name: "code.redeem@1",
			Args: json.RawMessage(`{"redemption": 5}`)}},
	}}
	err := b.ApplyPage(h.epoch, h.now(), page)
	if err == nil || !strings.Contains(err.Error(), "code.redeem@1") {
		t.Fatalf("a page with bad arguments: %v", err)
	}
	sameState(t, "after the failed page", before, dump(t, b))
	if st := syncState(t, b); st.Cursors[wire.StreamLog] != cursor {
		t.Fatalf("cursor moved to %d, was %d", st.Cursors[wire.StreamLog], cursor)
	}
	if n := len(auditOf(t, b)); n != audit {
		t.Fatalf("audit entries %d, were %d", n, audit)
	}
	if _, err := b.Campaign(good.ID); core.ErrorCode(err) != core.ErrNotFound {
		t.Fatalf("the first mutation of the failed page took effect: %v", err)
	}
	// Without the bad change the page applies.
	page.Changes = page.Changes[:1]
	page.Next = cursor + 1
	if err := b.ApplyPage(h.epoch, h.now(), page); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Campaign(good.ID); err != nil {
		t.Fatal(err)
	}
}

func auditOf(t testing.TB, db *store.DB) []*core.AuditEntry {
	t.Helper()
	var out []*core.AuditEntry
	if err := db.EachAudit(func(e *core.AuditEntry) error { out = append(out, e); return nil }); err != nil {
		t.Fatal(err)
	}
	return out
}

func TestDoubleRedemptionReversed(t *testing.T) {
	a := newMerchantA(t)
	h := newHub(t)
	single := map[string]bool{a.amount.ID: true}
	h.singleUse = func(id string) bool { return single[id] }
	h.register(a.db, a.owner.Operator.MerchantID)
	h.push(a.db)
	bClock := &core.FixedClock{T: a.clock.T}
	b, bOwner := h.join(a.owner.Operator.MerchantID, "pos-2", "二店", bClock)

	// Apart, both redeem the same single-use code.
	code := a.codes[3]
	a.advance(time.Minute)
	ra := a.mustRedeem(a.owner, code, core.Order{Amount: 20000, Ref: "A-1"})
	bClock.T = bClock.T.Add(2 * time.Minute)
	rbRes, err := b.Redeem(bOwner, code, core.Order{Amount: 18000, Ref: "B-1"}, "")
	if err != nil || !rbRes.Verdict.OK {
		t.Fatalf("B redeems apart: %+v %v", rbRes, err)
	}
	rb := rbRes.Redemption
	h.push(a.db) // A reaches the server first: its redemption stands
	h.push(b)
	h.pull(a.db, 3)
	h.pull(b, 3)

	for name, db := range map[string]*store.DB{"A": a.db, "B": b} {
		k, err := db.FindCode(code, false)
		if err != nil || k.Uses != 1 {
			t.Fatalf("%s: code uses %+v %v", name, k, err)
		}
		got, err := db.Redemption(ra.ID)
		if err != nil || got.Status != core.RedemptionDone {
			t.Fatalf("%s: the first redemption %+v %v", name, got, err)
		}
		c, err := db.Campaign(a.amount.ID)
		if err != nil || c.Redeemed != 2 { // codes[0] and this one
			t.Fatalf("%s: campaign redeemed %d %v", name, c.Redeemed, err)
		}
		cases, err := db.Cases("open")
		if err != nil || len(cases) != 1 || cases[0].Kind != wire.CaseDoubleRedemption || cases[0].Subject != code {
			t.Fatalf("%s: cases %+v %v", name, cases, err)
		}
		balancesAgree(t, db)
	}
	// B's own redemption was undone, with its reason, and audited.
	got, err := b.Redemption(rb.ID)
	if err != nil || got.Status != core.RedemptionRolledBack || got.Reason != "double_redemption" {
		t.Fatalf("B's losing redemption: %+v %v", got, err)
	}
	if n := countActions(t, b, "redemption.reverse"); n != 1 {
		t.Fatalf("B audited %d reversals", n)
	}
	// A never applied the loser.
	if _, err := a.db.Redemption(rb.ID); core.ErrorCode(err) != core.ErrNotFound {
		t.Fatalf("A has the losing redemption: %v", err)
	}
	if countActions(t, a.db, "redemption.reverse") != 0 || countActions(t, a.db, "case.open") != 1 {
		t.Fatal("A's audit of the case")
	}
	// Settling it: reverse would undo the later redemption, which is already undone here.
	cs, _ := b.Cases("open")
	if _, err := b.ResolveCase(bOwner, cs[0].ID, wire.ActionReverse, "B 店已退款"); err != nil {
		t.Fatal(err)
	}
	if k, _ := b.FindCode(code, false); k.Uses != 1 {
		t.Fatalf("resolving reversed again: uses %d", k.Uses)
	}
	balancesAgree(t, b)
}

func countActions(t testing.TB, db *store.DB, action string) int {
	n := 0
	for _, e := range auditOf(t, db) {
		if e.Action == action {
			n++
		}
	}
	return n
}

// ResolveCase's reverse action undoes the later redemption where this device has it.
func TestResolveReverseUndoesLaterRedemption(t *testing.T) {
	e := newEnv(t)
	h := newHub(t)
	h.register(e.db, e.owner.Operator.MerchantID)
	c := e.create(amountOff("券", 500, core.Rules{}))
	code := e.codes(c.ID, 1)[0]
	r := e.mustRedeem(e.owner, code, core.Order{Amount: 1000})
	h.push(e.db)
	detail, _ := json.Marshal(map[string]any{"later": map[string]any{"redemption_id": r.ID, "device_id": e.owner.Device.ID}})
	cs := wire.Case{ID: core.NewID(), Kind: wire.CaseDoubleRedemption, Status: "open", Subject: code, Detail: detail, CreatedMS: h.now()}
	h.server("case.open@1", cs)
	h.pull(e.db, 10)
	if _, err := e.db.ResolveCase(e.owner, cs.ID, wire.ActionReverse, ""); err != nil {
		t.Fatal(err)
	}
	got, err := e.db.Redemption(r.ID)
	if err != nil || got.Status != core.RedemptionRolledBack || got.Reason != "double_redemption" {
		t.Fatalf("after reverse: %+v %v", got, err)
	}
	if k := e.code(code); k.Uses != 0 {
		t.Fatalf("uses %d", k.Uses)
	}
	balancesAgree(t, e.db)
}

func TestFrozenAccountsRefused(t *testing.T) {
	a := newMerchantA(t)
	h := newHub(t)
	h.register(a.db, a.owner.Operator.MerchantID)
	h.push(a.db)
	caseID := core.NewID()
	h.server("account.freeze@1", map[string]any{"kind": wire.AccountWallet, "account_id": a.member, "case_id": caseID})
	h.server("account.freeze@1", map[string]any{"kind": wire.AccountGiftCard, "account_id": a.cards[2], "case_id": caseID})
	h.pull(a.db, 10)

	_, err := a.db.Pay(a.owner, a.member, 100, "", "")
	if ce := wantErr(t, err, core.ErrConflict, "member"); ce.Params["why"] != store.ReasonFrozen {
		t.Fatalf("pay from a frozen wallet: %+v", ce)
	}
	a.wantReason(a.owner, a.cards[2], core.Order{Amount: 100}, store.ReasonFrozen)
	r := a.redeem(a.owner, a.cards[2], core.Order{Amount: 100}, "")
	if r.Verdict.OK || r.Verdict.Reason != store.ReasonFrozen || r.Redemption != nil {
		t.Fatalf("redeem a frozen card: %+v", r.Verdict)
	}
	if k := a.code(a.cards[2]); k.Balance != 10000 || k.Uses != 0 {
		t.Fatalf("frozen card changed: %+v", k)
	}
	// Other accounts are untouched.
	a.wantReason(a.owner, a.cards[1], core.Order{Amount: 100}, core.ReasonOK)
	if countActions(t, a.db, "account.freeze") != 2 {
		t.Fatal("freezes not audited")
	}
}

func TestHLCAfterApplyIsAheadOfRemote(t *testing.T) {
	e := newEnv(t)
	h := newHub(t)
	h.register(e.db, e.owner.Operator.MerchantID)
	// Another device whose clock runs an hour ahead.
	remote := (e.clock.Now().Add(time.Hour).UnixMilli() << 16) + 5
	c := core.Campaign{ID: core.NewID(), MerchantID: e.owner.Operator.MerchantID, Name: "远方", Kind: core.KindAmountOff, AmountOff: 100,
		Status: core.StatusActive, Format: core.DefaultCodeFormat()}
	args, _ := json.Marshal(c)
	h.seq++
	h.log = append(h.log, wire.Change{Seq: h.seq, DeviceID: "dev-x", Status: wire.Applied,
		Mutation: &wire.Mutation{MID: 1, UUID: core.NewID(), Name: "campaign.create@1", Args: args, HLC: remote, WallMS: e.clock.Now().UnixMilli()}})
	h.pull(e.db, 10)
	// A change made here now is stamped after it, although the local clock is behind.
	if _, err := e.db.AddStore(e.owner, "新店", ""); err != nil {
		t.Fatal(err)
	}
	ms, err := e.db.PendingMutations(100, 0)
	if err != nil {
		t.Fatal(err)
	}
	last := ms[len(ms)-1]
	if last.Name != "store.add@1" || last.HLC <= remote {
		t.Fatalf("local HLC %d after observing %d", last.HLC, remote)
	}
	// It persists: another handle on the file stamps after it as well.
	other := e.reopen()
	if err := other.Unlock(testKEK()); err != nil {
		t.Fatal(err)
	}
	if _, err := other.AddStore(e.owner, "又一店", ""); err != nil {
		t.Fatal(err)
	}
	ms, _ = other.PendingMutations(100, 0)
	if ms[len(ms)-1].HLC <= last.HLC {
		t.Fatal("the clock went back on another handle")
	}
}

func TestCampaignEditsLastWriterWins(t *testing.T) {
	e := newEnv(t)
	h := newHub(t)
	h.register(e.db, e.owner.Operator.MerchantID)
	c := e.create(amountOff("原名", 500, core.Rules{}))
	h.push(e.db)
	bClock := &core.FixedClock{T: e.clock.T}
	b, bOwner := h.join(e.owner.Operator.MerchantID, "pos-2", "", bClock)

	// Apart: A renames at 10:01, B renames and re-describes at 10:02. B's edit is newer.
	e.advance(time.Minute)
	if _, err := e.db.UpdateCampaign(e.owner, c.ID, func(c *core.Campaign) error { c.Name = "A名"; c.MinSpend = 1000; return nil }); err != nil {
		t.Fatal(err)
	}
	bClock.T = bClock.T.Add(2 * time.Minute)
	if _, err := b.UpdateCampaign(bOwner, c.ID, func(c *core.Campaign) error { c.Name = "B名"; c.Description = "B说明"; return nil }); err != nil {
		t.Fatal(err)
	}
	// B reaches the server first; A's older edit arrives after it.
	h.push(b)
	h.push(e.db)
	h.pull(e.db, 5)
	h.pull(b, 5)
	for name, db := range map[string]*store.DB{"A": e.db, "B": b} {
		got, err := db.Campaign(c.ID)
		if err != nil {
			t.Fatal(err)
		}
		if got.Name != "B名" || got.Description != "B说明" || got.MinSpend != 1000 {
			t.Fatalf("%s: name %q description %q min spend %d", name, got.Name, got.Description, got.MinSpend)
		}
	}
	sameState(t, "after concurrent edits", dump(t, e.db), dump(t, b))
	// A later edit on A wins everywhere.
	e.advance(10 * time.Minute)
	if _, err := e.db.SetCampaignStatus(e.owner, c.ID, core.StatusPaused); err != nil {
		t.Fatal(err)
	}
	h.push(e.db)
	h.pull(b, 5)
	if got, _ := b.Campaign(c.ID); got.Status != core.StatusPaused {
		t.Fatalf("status on B: %s", got.Status)
	}
}

func TestUnknownMutationsSkippedAndKept(t *testing.T) {
	e := newEnv(t)
	h := newHub(t)
	h.register(e.db, e.owner.Operator.MerchantID)
	h.server("future.thing@7", map[string]any{"x": 1})
	h.server("case.open@1", wire.Case{ID: core.NewID(), Kind: wire.CaseClockSkew, Subject: "dev"})
	h.pull(e.db, 10)
	st := syncState(t, e.db)
	if st.Skipped != 1 || st.Cursors[wire.StreamLog] != h.seq || st.OpenCases != 1 {
		t.Fatalf("after an unknown mutation: %+v", st)
	}
	var name, args string
	if err := e.db.Raw().QueryRow(`SELECT name, args FROM sync_skipped`).Scan(&name, &args); err != nil || name != "future.thing@7" || args != `{"x":1}` {
		t.Fatalf("kept %q %q %v", name, args, err)
	}
}

// The log can overtake the codes stream (a batch uploaded while a device pulls): the
// effects on codes not here yet wait for them.
func TestLogBeforeCodes(t *testing.T) {
	a := newMerchantA(t)
	h := newHub(t)
	h.register(a.db, a.owner.Operator.MerchantID)
	h.push(a.db)
	b, err := store.Open(t.TempDir() + "/b.db")
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	b.Clock = &core.FixedClock{T: t0}
	if err := b.Join(store.JoinInput{Device: "pos-2", KDF: "file", KEK: testKEK()}); err != nil {
		t.Fatal(err)
	}
	h.register(b, a.owner.Operator.MerchantID)
	h.pull(b, 4, wire.StreamLog)
	var pending int
	b.Raw().QueryRow(`SELECT count(*) FROM sync_pending_code`).Scan(&pending)
	if pending == 0 {
		t.Fatal("no effect waited for its code")
	}
	h.pull(b, 4, wire.StreamCodes)
	b.Raw().QueryRow(`SELECT count(*) FROM sync_pending_code`).Scan(&pending)
	if pending != 0 {
		t.Fatalf("%d effects still waiting", pending)
	}
	if _, err := b.FinishJoin(); err != nil {
		t.Fatal(err)
	}
	h.push(b)
	h.pull(a.db, 3)
	sameState(t, "log before codes", dump(t, a.db), dump(t, b))
	balancesAgree(t, b)
}

// A codes row that already shows its redemptions (the server's current state) is
// taken as issued: the log's redemptions are not counted twice.
func TestCodesRowsTakenAsIssued(t *testing.T) {
	a := newMerchantA(t)
	h := newHub(t)
	h.register(a.db, a.owner.Operator.MerchantID)
	h.push(a.db)
	for i := range h.codes {
		k := h.codes[i].Code
		if cur, err := a.db.FindCode(k.Code, false); err == nil {
			k.Uses, k.Balance, k.Status = int64(cur.Uses), int64(cur.Balance), cur.Status
		}
		if k.Code == a.cards[0] {
			k.Issued = 0 // a server that does not keep the opening value
		}
	}
	b, _ := h.join(a.owner.Operator.MerchantID, "pos-2", "", &core.FixedClock{T: t0})
	h.push(b)
	h.pull(a.db, 3)
	sameState(t, "codes rows with current state", dump(t, a.db), dump(t, b))
	balancesAgree(t, b)
}

func TestApplyPageRefusals(t *testing.T) {
	e := newEnv(t)
	if err := e.db.ApplyPage(1, 0, nil); core.ErrorCode(err) != core.ErrInvalid {
		t.Fatalf("nil page: %v", err)
	}
	if err := e.db.ApplyPage(1, 0, &wire.Page{Stream: "members"}); core.ErrorCode(err) != core.ErrInvalid {
		t.Fatalf("unknown stream: %v", err)
	}
	err := e.db.ApplyPage(1, 0, &wire.Page{Stream: wire.StreamCodes, Changes: []wire.Change{{Seq: 1}}})
	if core.ErrorCode(err) != core.ErrInvalid {
		t.Fatalf("codes change without a code: %v", err)
	}
	// A page of another merchant's beginning is refused.
	other := newEnv(t)
	ms, _ := other.db.PendingMutations(1, 0)
	err = e.db.ApplyPage(1, 0, &wire.Page{Stream: wire.StreamLog, Changes: []wire.Change{{Seq: 1, DeviceID: other.owner.Device.ID,
		Status: wire.Applied, Mutation: &ms[0]}}})
	if core.ErrorCode(err) != core.ErrConflict {
		t.Fatalf("another merchant's init: %v", err)
	}
	var n int
	e.db.Raw().QueryRow(`SELECT count(*) FROM merchant`).Scan(&n)
	if n != 1 {
		t.Fatalf("%d merchants", n)
	}
}
