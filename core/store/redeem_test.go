package store_test

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/kameng/kameng/core"
	"github.com/kameng/kameng/core/store"
)

func TestRedeemWritesOneOfEverything(t *testing.T) {
	e := newEnv(t)
	c := e.create(amountOff("满100减20", 2000, core.Rules{}))
	code := e.codes(c.ID, 1)[0]
	before, rep0, camp0 := e.counts(), e.total(day0, day0), e.campaign(c.ID)
	outbox0, err := e.db.Outbox(1000)
	if err != nil {
		t.Fatal(err)
	}

	r := e.redeem(e.owner, code, core.Order{Ref: "POS-0001", Amount: 12800}, "")
	if !r.Verdict.OK || r.Replayed || r.Redemption == nil {
		t.Fatalf("redeem: %+v", r)
	}
	red := r.Redemption
	if red.Code != code || red.CampaignID != c.ID || red.Discount != 2000 || red.OrderAmount != 12800 || red.OrderRef != "POS-0001" ||
		red.Status != core.RedemptionDone || red.StoreID != e.owner.Store.ID || red.OperatorID != e.owner.Operator.ID ||
		red.DeviceID != e.owner.Device.ID || red.Created != t0.UnixMilli() {
		t.Fatalf("redemption %+v", red)
	}
	stored, err := e.db.Redemption(red.ID)
	if err != nil || *stored != *red {
		t.Fatalf("stored redemption %+v (%v), returned %+v", stored, err, red)
	}

	after := e.counts()
	if after.Redemptions != before.Redemptions+1 || after.Audit != before.Audit+1 || after.Outbox != before.Outbox+1 ||
		after.Pending != before.Pending+1 || after.Codes != before.Codes || after.Campaigns != before.Campaigns {
		t.Fatalf("counts %+v → %+v, want one more redemption, audit and outbox entry", before, after)
	}
	camp := e.campaign(c.ID)
	if camp.Redeemed != camp0.Redeemed+1 || camp.Spent != camp0.Spent+2000 {
		t.Fatalf("campaign redeemed %d spent %d, want %d %d", camp.Redeemed, camp.Spent, camp0.Redeemed+1, camp0.Spent+2000)
	}
	rep := e.total(day0, day0)
	if rep.Redeemed != rep0.Redeemed+1 || rep.Discount != rep0.Discount+2000 || rep.OrderAmount != rep0.OrderAmount+12800 || rep.Net != rep0.Net+1 {
		t.Fatalf("report %+v → %+v", rep0, rep)
	}
	if k := e.code(code); k.Uses != 1 {
		t.Fatalf("code uses %d", k.Uses)
	}

	// The audit entry and the mutation describe this redemption.
	var last *core.AuditEntry
	e.db.EachAudit(func(a *core.AuditEntry) error { last = a; return nil })
	if last.Action != "redeem" || last.EntityID != red.ID || last.Operator != e.owner.Operator.ID {
		t.Fatalf("last audit entry %+v", last)
	}
	outbox, err := e.db.Outbox(1000)
	if err != nil {
		t.Fatal(err)
	}
	if len(outbox) != len(outbox0)+1 {
		t.Fatalf("outbox %d → %d", len(outbox0), len(outbox))
	}
	m := outbox[len(outbox)-1]
	var args struct {
		Redemption core.Redemption `json:"redemption"`
	}
	if err := json.Unmarshal(m.Args, &args); err != nil {
		t.Fatal(err)
	}
	if m.Name != "code.redeem@1" || args.Redemption.ID != red.ID || m.DeviceID != e.owner.Device.ID || m.MID <= outbox0[len(outbox0)-1].MID {
		t.Fatalf("mutation %+v", m)
	}
	if m.HLC <= outbox0[len(outbox0)-1].HLC {
		t.Fatalf("hlc did not advance: %d after %d", m.HLC, outbox0[len(outbox0)-1].HLC)
	}

	// The report covers the store's day, not UTC's.
	if got := e.total("2025-06-09", "2025-06-09"); got.Redeemed != 0 {
		t.Fatalf("redemption reported on the previous day: %+v", got)
	}
}

func TestRedeemSingleUseTwice(t *testing.T) {
	e := newEnv(t)
	c := e.create(amountOff("券", 2000, core.Rules{}))
	code := e.codes(c.ID, 1)[0]
	e.mustRedeem(e.owner, code, core.Order{Amount: 5000})
	before, rep := e.counts(), e.total(day0, day0)
	r := e.redeem(e.owner, code, core.Order{Amount: 5000}, "")
	if r.Verdict.OK || r.Verdict.Reason != core.ReasonAlreadyRedeemed || r.Redemption != nil {
		t.Fatalf("second redeem: %+v", r)
	}
	if after := e.counts(); after != before {
		t.Fatalf("second redeem wrote: %+v → %+v", before, after)
	}
	if got := e.total(day0, day0); got != rep {
		t.Fatalf("second redeem changed the report: %+v → %+v", rep, got)
	}
	if camp := e.campaign(c.ID); camp.Redeemed != 1 || camp.Spent != 2000 {
		t.Fatalf("campaign redeemed %d spent %d", camp.Redeemed, camp.Spent)
	}
}

func TestRedeemIdempotent(t *testing.T) {
	e := newEnv(t)
	c := e.create(amountOff("券", 2000, core.Rules{UsesPerCode: 5}))
	code := e.codes(c.ID, 1)[0]
	first := e.redeem(e.owner, code, core.Order{Amount: 5000}, "till-1/order-42")
	if !first.Verdict.OK || first.Replayed || first.Redemption == nil || first.Redemption.IdemKey != "till-1/order-42" {
		t.Fatalf("first: %+v", first)
	}
	before := e.counts()
	for i := 0; i < 2; i++ {
		e.advance(time.Second)
		again := e.redeem(e.owner, code, core.Order{Amount: 5000}, "till-1/order-42")
		if !again.Replayed || again.Redemption == nil || again.Redemption.ID != first.Redemption.ID || !again.Verdict.OK ||
			again.Verdict.Discount != first.Verdict.Discount {
			t.Fatalf("repeat %d: %+v, want replay of %s", i, again, first.Redemption.ID)
		}
		// Also through a second handle on the same file (another process).
		other := e.reopen()
		r, err := other.Redeem(e.owner, code, core.Order{Amount: 5000}, "till-1/order-42")
		if err != nil || !r.Replayed || r.Redemption.ID != first.Redemption.ID {
			t.Fatalf("repeat via another handle: %+v %v", r, err)
		}
	}
	if after := e.counts(); after != before {
		t.Fatalf("replays wrote: %+v → %+v", before, after)
	}
	if k := e.code(code); k.Uses != 1 {
		t.Fatalf("uses %d after replays, want 1", k.Uses)
	}
	// Another key is another redemption.
	if r := e.redeem(e.owner, code, core.Order{Amount: 5000}, "till-1/order-43"); r.Replayed || r.Redemption == nil ||
		r.Redemption.ID == first.Redemption.ID {
		t.Fatalf("new key: %+v", r)
	}
	if k := e.code(code); k.Uses != 2 {
		t.Fatalf("uses %d, want 2", k.Uses)
	}
}

func TestRedeemRefusedWritesNothing(t *testing.T) {
	e := newEnv(t)
	c := &core.Campaign{Name: "满100减20", Kind: core.KindAmountOff, AmountOff: 2000, MinSpend: 10000}
	e.create(c)
	code := e.codes(c.ID, 1)[0]
	before, rep := e.counts(), e.total(day0, day0)
	r := e.redeem(e.owner, code, core.Order{Amount: 100}, "key-refused")
	if r.Verdict.OK || r.Redemption != nil || r.Verdict.Reason != core.ReasonBelowMinSpend {
		t.Fatalf("refused redeem: %+v", r)
	}
	if after := e.counts(); after != before {
		t.Fatalf("refused redeem wrote: %+v → %+v", before, after)
	}
	if got := e.total(day0, day0); got != rep {
		t.Fatalf("report changed: %+v → %+v", rep, got)
	}
	// The key of a refused attempt is not used up: the corrected order goes through.
	r = e.redeem(e.owner, code, core.Order{Amount: 10000}, "key-refused")
	if !r.Verdict.OK || r.Replayed || r.Redemption == nil {
		t.Fatalf("retry with the same key: %+v", r)
	}
	// A code that does not exist writes no redemption either.
	before = e.counts()
	if r := e.redeem(e.owner, "NOSUCH", core.Order{}, ""); r.Verdict.Reason != core.ReasonNotFound || r.Redemption != nil {
		t.Fatalf("unknown code: %+v", r)
	}
	if after := e.counts(); after != before {
		t.Fatalf("unknown code wrote: %+v → %+v", before, after)
	}
}

func TestRedeemGiftCardLedger(t *testing.T) {
	e := newEnv(t)
	c := e.create(giftCard("储值卡", 10000))
	code := e.codes(c.ID, 1)[0]
	if bal, _ := e.db.LedgerBalance(code); bal != 10000 {
		t.Fatalf("opening ledger balance %d", bal)
	}
	r := e.mustRedeem(e.owner, code, core.Order{Amount: 5000, Debit: 3000})
	if r.Value != 3000 || r.Discount != 0 {
		t.Fatalf("redemption value %d discount %d", r.Value, r.Discount)
	}
	r2 := e.mustRedeem(e.owner, code, core.Order{Amount: 2500})
	if r2.Value != 2500 {
		t.Fatalf("default debit %d, want the order 2500", r2.Value)
	}
	k := e.code(code)
	bal, err := e.db.LedgerBalance(code)
	if err != nil || k.Balance != 4500 || bal != 4500 {
		t.Fatalf("balance %d, ledger %d (%v), want 4500", k.Balance, bal, err)
	}
	if camp := e.campaign(c.ID); camp.Spent != 5500 || camp.Redeemed != 2 {
		t.Fatalf("campaign spent %d redeemed %d", camp.Spent, camp.Redeemed)
	}
	if rep := e.total(day0, day0); rep.Value != 5500 || rep.Redeemed != 2 {
		t.Fatalf("report %+v", rep)
	}
	if bad, err := e.db.LedgerMismatches(); err != nil || len(bad) != 0 {
		t.Fatalf("ledger mismatches %v %v", bad, err)
	}
}

// Redeeming takes money off a gift card; it must never put money on it.
func TestRedeemNegativeDebitDoesNotCredit(t *testing.T) {
	e := newEnv(t)
	c := e.create(giftCard("储值卡", 10000))
	code := e.codes(c.ID, 1)[0]
	r, err := e.db.Redeem(e.owner, code, core.Order{Amount: 3000, Debit: -5000}, "")
	if err == nil && r.Verdict.OK {
		t.Errorf("a negative debit was accepted: %+v", r.Verdict)
	}
	if k := e.code(code); k.Balance > 10000 {
		t.Fatalf("redeem raised the balance to %d", k.Balance)
	}
}

func TestRollbackCoupon(t *testing.T) {
	e := newEnv(t)
	c := e.create(amountOff("券", 2000, core.Rules{}))
	code := e.codes(c.ID, 1)[0]
	red := e.mustRedeem(e.owner, code, core.Order{Amount: 5000})
	e.advance(10 * time.Minute)
	before := e.counts()

	out, err := e.db.Rollback(e.owner, red.ID, "顾客退货", false, 0)
	if err != nil {
		t.Fatal(err)
	}
	if out.Status != core.RedemptionRolledBack || out.Reason != "顾客退货" || out.RolledBack != e.clock.T.UnixMilli() {
		t.Fatalf("rolled back %+v", out)
	}
	stored, _ := e.db.Redemption(red.ID)
	if stored.Status != core.RedemptionRolledBack || stored.Reason != "顾客退货" {
		t.Fatalf("stored %+v", stored)
	}
	after := e.counts()
	if after.Redemptions != before.Redemptions || after.Audit != before.Audit+1 || after.Outbox != before.Outbox+1 {
		t.Fatalf("counts %+v → %+v, want one more audit and outbox entry", before, after)
	}
	if k := e.code(code); k.Uses != 0 {
		t.Fatalf("uses %d after rollback", k.Uses)
	}
	if camp := e.campaign(c.ID); camp.Redeemed != 0 || camp.Spent != 0 {
		t.Fatalf("campaign redeemed %d spent %d after rollback", camp.Redeemed, camp.Spent)
	}
	rep := e.total(day0, day0)
	if rep.Redeemed != 1 || rep.RolledBack != 1 || rep.Net != 0 || rep.Discount != 0 || rep.OrderAmount != 0 {
		t.Fatalf("report after rollback %+v", rep)
	}
	if e.auditActions()["rollback"] != 1 {
		t.Fatalf("audit actions %v", e.auditActions())
	}

	// The use is back: the code can be redeemed again.
	e.wantReason(e.owner, code, core.Order{Amount: 5000}, core.ReasonOK)
	e.mustRedeem(e.owner, code, core.Order{Amount: 5000})

	// Twice is a conflict, and changes nothing.
	before = e.counts()
	_, err = e.db.Rollback(e.owner, red.ID, "再来一次", false, 0)
	wantErr(t, err, core.ErrConflict, "")
	if k := e.code(code); k.Uses != 1 {
		t.Fatalf("second rollback changed uses to %d", k.Uses)
	}
	if after := e.counts(); after != before {
		t.Fatalf("refused rollback wrote: %+v → %+v", before, after)
	}

	_, err = e.db.Rollback(e.owner, "no-such-redemption", "x", false, 0)
	wantErr(t, err, core.ErrNotFound, "")
}

func TestRollbackGiftCard(t *testing.T) {
	e := newEnv(t)
	c := e.create(giftCard("储值卡", 10000))
	code := e.codes(c.ID, 1)[0]
	r1 := e.mustRedeem(e.owner, code, core.Order{Amount: 8000, Debit: 6000})
	e.mustRedeem(e.owner, code, core.Order{Amount: 1000})
	if k := e.code(code); k.Balance != 3000 {
		t.Fatalf("balance %d", k.Balance)
	}
	if _, err := e.db.Rollback(e.owner, r1.ID, "刷错卡", false, 0); err != nil {
		t.Fatal(err)
	}
	k := e.code(code)
	bal, _ := e.db.LedgerBalance(code)
	if k.Balance != 9000 || bal != 9000 {
		t.Fatalf("after rollback: balance %d ledger %d, want 9000", k.Balance, bal)
	}
	if bad, _ := e.db.LedgerMismatches(); len(bad) != 0 {
		t.Fatalf("ledger mismatches %v", bad)
	}
	rep := e.total(day0, day0)
	if rep.Redeemed != 2 || rep.RolledBack != 1 || rep.Net != 1 || rep.Value != 1000 {
		t.Fatalf("report %+v", rep)
	}
	if camp := e.campaign(c.ID); camp.Spent != 1000 || camp.Redeemed != 1 {
		t.Fatalf("campaign spent %d redeemed %d", camp.Spent, camp.Redeemed)
	}
	// The restored balance can be spent.
	e.wantReason(e.owner, code, core.Order{Debit: 9000}, core.ReasonOK)
}

func TestRollbackPolicy(t *testing.T) {
	e := newEnv(t)
	c := e.create(amountOff("两小时内可撤销", 1000, core.Rules{RollbackHours: 2}))
	codes := e.codes(c.ID, 4)
	cashier := e.operatorActor("小王", core.RoleCashier)
	old := e.mustRedeem(e.owner, codes[0], core.Order{})
	edge := e.mustRedeem(e.owner, codes[1], core.Order{})
	mine := e.mustRedeem(cashier, codes[2], core.Order{})
	owners := e.mustRedeem(e.owner, codes[3], core.Order{})

	_, err := e.db.Rollback(e.owner, old.ID, "", false, 0)
	wantErr(t, err, core.ErrInvalid, "reason")
	_, err = e.db.Rollback(e.owner, old.ID, "   ", false, 0)
	wantErr(t, err, core.ErrInvalid, "reason")

	// A cashier limited to their own redemptions.
	e.advance(5 * time.Minute)
	_, err = e.db.Rollback(cashier, owners.ID, "不是我的", true, 0)
	wantErr(t, err, core.ErrForbidden, "")
	if _, err := e.db.Rollback(cashier, mine.ID, "自己的", true, 0); err != nil {
		t.Fatalf("own redemption: %v", err)
	}
	// A short window for the cashier.
	e.advance(10 * time.Minute)
	_, err = e.db.Rollback(cashier, owners.ID, "太久了", false, 10*time.Minute)
	wantErr(t, err, core.ErrForbidden, "")
	if r, _ := e.db.Redemption(owners.ID); r.Status != core.RedemptionDone {
		t.Fatalf("refused rollback changed the redemption: %+v", r)
	}

	// The campaign's window: exactly two hours is allowed, a minute more is not.
	e.clock.T = t0.Add(2 * time.Hour)
	if _, err := e.db.Rollback(e.owner, edge.ID, "刚好两小时", false, 0); err != nil {
		t.Fatalf("rollback at the edge of the window: %v", err)
	}
	e.advance(time.Minute)
	before := e.counts()
	_, err = e.db.Rollback(e.owner, old.ID, "太晚了", false, 0)
	wantErr(t, err, core.ErrForbidden, "")
	if after := e.counts(); after != before {
		t.Fatalf("refused rollback wrote: %+v → %+v", before, after)
	}
	if k := e.code(codes[0]); k.Uses != 1 {
		t.Fatalf("refused rollback restored the use")
	}
}

// A rollback undoes a redemption in the store where it happened: the store's report
// must return to zero, and the store of whoever pressed the button must not show a
// negative count.
func TestRollbackRollupBelongsToRedemptionStore(t *testing.T) {
	e := newEnv(t)
	hq := e.storeActor("总部", "")
	c := e.create(amountOff("券", 2000, core.Rules{}))
	code := e.codes(c.ID, 1)[0]
	red := e.mustRedeem(e.owner, code, core.Order{Amount: 5000})
	if _, err := e.db.Rollback(hq, red.ID, "总部撤销", false, 0); err != nil {
		t.Fatal(err)
	}
	rows, err := e.db.Report(store.ReportFilter{From: day0, To: day0, By: "store"})
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range rows {
		switch r.Key {
		case e.owner.Store.ID:
			if r.Redeemed != 1 || r.RolledBack != 1 || r.Net != 0 || r.Discount != 0 {
				t.Errorf("store of the redemption: %+v, want redeemed 1, rolled back 1, net 0, discount 0", r)
			}
		case hq.Store.ID:
			if r.Net != 0 || r.RolledBack != 0 || r.Discount != 0 {
				t.Errorf("store of the operator who rolled back: %+v, want nothing", r)
			}
		}
	}
}
