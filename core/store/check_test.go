package store_test

import (
	"crypto/rand"
	"strings"
	"testing"
	"time"

	"github.com/kameng/kameng/core"
	"github.com/kameng/kameng/core/store"
)

func TestCheckOK(t *testing.T) {
	e := newEnv(t)
	c := e.create(amountOff("满100减20", 2000, core.Rules{}))
	codes := e.codes(c.ID, 3)
	v := e.wantReason(e.owner, codes[0], core.Order{Amount: 10000}, core.ReasonOK)
	if v.Discount != 2000 || v.Payable != 8000 || v.Campaign != c.ID || v.Name != c.Name || v.Code != codes[0] {
		t.Fatalf("verdict %+v", v)
	}
	// What a cashier types: display form with hyphens, lower case, spaces around.
	typed := "  " + strings.ToLower(c.Format.Display(codes[1])) + " "
	if v := e.wantReason(e.owner, typed, core.Order{Amount: 10000}, core.ReasonOK); v.Code != codes[1] {
		t.Fatalf("typed %q matched %q, want %q", typed, v.Code, codes[1])
	}
	// A check writes nothing.
	before := e.counts()
	e.check(e.owner, codes[2], core.Order{Amount: 10000})
	if after := e.counts(); after != before {
		t.Fatalf("check changed the database: %+v → %+v", before, after)
	}
}

func TestCheckNotFoundAndBadCheckChar(t *testing.T) {
	e := newEnv(t)
	c := e.create(amountOff("券", 2000, core.Rules{}))
	codes := e.codes(c.ID, 2)

	// A well-formed code with a correct check character that was never issued.
	other, err := core.DefaultCodeFormat().NewGenerator(rand.Reader).Next()
	if err != nil {
		t.Fatal(err)
	}
	e.wantReason(e.owner, other, core.Order{}, core.ReasonNotFound)
	e.wantReason(e.owner, "NOPE", core.Order{}, core.ReasonNotFound)
	e.wantReason(e.owner, "", core.Order{}, core.ReasonNotFound)

	bad := mistype(codes[0])
	v := e.wantReason(e.owner, bad, core.Order{}, core.ReasonBadCheckChar)
	if v.Discount != 0 || v.Campaign != "" {
		t.Fatalf("bad check char verdict leaks a campaign: %+v", v)
	}
	// The same typo in display form.
	e.wantReason(e.owner, c.Format.Display(mistype(codes[1])), core.Order{}, core.ReasonBadCheckChar)
	// Redeeming a mistyped code writes no redemption.
	before := e.counts()
	if r := e.redeem(e.owner, bad, core.Order{}, ""); r.Verdict.Reason != core.ReasonBadCheckChar || r.Redemption != nil {
		t.Fatalf("redeem of a typo: %+v", r)
	}
	if after := e.counts(); after.Redemptions != before.Redemptions || after.Audit != before.Audit || after.Outbox != before.Outbox {
		t.Fatalf("redeem of a typo wrote: %+v → %+v", before, after)
	}
}

// The format cache must know a campaign's format as soon as its codes exist,
// otherwise a typo in a new campaign's code is reported as unknown (and a code typed
// with a look-alike is not found at all).
func TestCheckKnowsNewFormatAtOnce(t *testing.T) {
	e := newEnv(t)
	a := e.create(amountOff("旧券", 2000, core.Rules{}))
	codesA := e.codes(a.ID, 1)
	e.wantReason(e.owner, codesA[0], core.Order{}, core.ReasonOK) // loads the format cache

	f := core.DefaultCodeFormat()
	f.Prefix, f.Length = "VIP", 10
	b := e.create(&core.Campaign{Name: "新券", Kind: core.KindAmountOff, AmountOff: 500, Format: f})
	codesB := e.codes(b.ID, 1)
	e.wantReason(e.owner, codesB[0], core.Order{}, core.ReasonOK)
	e.wantReason(e.owner, mistype(codesB[0]), core.Order{}, core.ReasonBadCheckChar)
}

func TestCheckVoidedPausedArchived(t *testing.T) {
	e := newEnv(t)
	c := e.create(amountOff("券", 2000, core.Rules{}))
	codes := e.codes(c.ID, 3)
	if err := e.db.Void(e.owner, codes[0], "lost"); err != nil {
		t.Fatal(err)
	}
	e.wantReason(e.owner, codes[0], core.Order{}, core.ReasonVoided)
	wantErr(t, e.db.Void(e.owner, codes[0], "again"), core.ErrConflict, "")

	e.advance(time.Minute)
	if _, err := e.db.SetCampaignStatus(e.owner, c.ID, core.StatusPaused); err != nil {
		t.Fatal(err)
	}
	e.wantReason(e.owner, codes[1], core.Order{}, core.ReasonPaused)
	e.advance(time.Minute)
	if _, err := e.db.SetCampaignStatus(e.owner, c.ID, core.StatusActive); err != nil {
		t.Fatal(err)
	}
	e.wantReason(e.owner, codes[1], core.Order{}, core.ReasonOK)
	e.advance(time.Minute)
	if _, err := e.db.SetCampaignStatus(e.owner, c.ID, core.StatusArchived); err != nil {
		t.Fatal(err)
	}
	e.wantReason(e.owner, codes[2], core.Order{}, core.ReasonVoided)
}

func TestCheckWrongStore(t *testing.T) {
	e := newEnv(t)
	other := e.storeActor("二店", "")
	c := e.create(amountOff("旗舰店专享", 2000, core.Rules{Stores: []string{e.owner.Store.ID}}))
	codes := e.codes(c.ID, 2)
	e.wantReason(other, codes[0], core.Order{}, core.ReasonWrongStore)
	if r := e.redeem(other, codes[0], core.Order{}, ""); r.Verdict.Reason != core.ReasonWrongStore || r.Redemption != nil {
		t.Fatalf("redeem in the wrong store: %+v", r)
	}
	e.wantReason(e.owner, codes[0], core.Order{}, core.ReasonOK)

	every := e.create(amountOff("全店通用", 1000, core.Rules{}))
	e.wantReason(other, e.codes(every.ID, 1)[0], core.Order{}, core.ReasonOK)
}

func TestCheckValidityWindow(t *testing.T) {
	e := newEnv(t)
	future := e.create(amountOff("下周", 2000, core.Rules{ValidFrom: t0.Add(7 * 24 * time.Hour).UnixMilli()}))
	past := e.create(amountOff("上周", 2000, core.Rules{ValidFrom: t0.Add(-14 * 24 * time.Hour).UnixMilli(),
		ValidTo: t0.Add(-7 * 24 * time.Hour).UnixMilli()}))
	today := e.create(amountOff("今天", 2000, core.Rules{ValidTo: t0.Add(2 * time.Hour).UnixMilli()}))
	f, p, d := e.codes(future.ID, 1)[0], e.codes(past.ID, 1)[0], e.codes(today.ID, 1)[0]

	e.wantReason(e.owner, f, core.Order{}, core.ReasonNotStarted)
	e.wantReason(e.owner, p, core.Order{}, core.ReasonExpired)
	e.wantReason(e.owner, d, core.Order{}, core.ReasonOK)

	e.advance(2 * time.Hour)
	e.wantReason(e.owner, d, core.Order{}, core.ReasonExpired)
	if r := e.redeem(e.owner, d, core.Order{}, ""); r.Verdict.Reason != core.ReasonExpired || r.Redemption != nil {
		t.Fatalf("redeem of an expired code: %+v", r)
	}
	e.clock.T = t0.Add(7 * 24 * time.Hour)
	e.wantReason(e.owner, f, core.Order{}, core.ReasonOK)
}

func TestCheckValidDaysFromDistribution(t *testing.T) {
	e := newEnv(t)
	c := e.create(amountOff("领取后7天有效", 2000, core.Rules{ValidDays: 7}))
	codes := e.codes(c.ID, 2)
	e.advance(3 * time.Hour) // handed out later than generated
	handed := e.clock.T
	if n, err := e.db.Distribute(e.owner, codes[:1], ""); err != nil || n != 1 {
		t.Fatalf("distribute: %d %v", n, err)
	}
	k := e.code(codes[0])
	if k.Distributed != handed.UnixMilli() || k.ValidFrom != handed.UnixMilli() || k.ValidTo != handed.AddDate(0, 0, 7).UnixMilli() {
		t.Fatalf("code window %d–%d (distributed %d), want %d–%d", k.ValidFrom, k.ValidTo, k.Distributed,
			handed.UnixMilli(), handed.AddDate(0, 0, 7).UnixMilli())
	}
	_, err := e.db.Distribute(e.owner, codes[:1], "")
	wantErr(t, err, core.ErrConflict, "")

	e.clock.T = handed.AddDate(0, 0, 7).Add(-time.Millisecond)
	e.wantReason(e.owner, codes[0], core.Order{}, core.ReasonOK)
	e.clock.T = handed.AddDate(0, 0, 7)
	v := e.wantReason(e.owner, codes[0], core.Order{}, core.ReasonExpired)
	if v.ValidTo != k.ValidTo {
		t.Fatalf("verdict ValidTo %d, want %d", v.ValidTo, k.ValidTo)
	}
	// The code that was not handed out has no personal window.
	e.wantReason(e.owner, codes[1], core.Order{}, core.ReasonOK)
}

func TestCheckOutsideHoursInStoreZone(t *testing.T) {
	e := newEnv(t)
	utc := e.storeActor("伦敦店", "UTC")
	c := e.create(amountOff("夜宵券", 1000, core.Rules{HoursFrom: 22 * 60, HoursTo: 2 * 60}))
	code := e.codes(c.ID, 1)[0]
	// 10:00 in Shanghai.
	e.wantReason(e.owner, code, core.Order{}, core.ReasonOutsideHours)
	// 23:30 UTC = 07:30 next morning in Shanghai: outside there, inside in London's UTC.
	e.clock.T = time.Date(2025, 6, 10, 23, 30, 0, 0, time.UTC)
	e.wantReason(e.owner, code, core.Order{}, core.ReasonOutsideHours)
	e.wantReason(utc, code, core.Order{}, core.ReasonOK)
	// 23:30 in Shanghai: inside; 02:00 the window has closed.
	e.clock.T = time.Date(2025, 6, 10, 23, 30, 0, 0, shanghai)
	e.wantReason(e.owner, code, core.Order{}, core.ReasonOK)
	e.clock.T = time.Date(2025, 6, 11, 1, 59, 0, 0, shanghai)
	e.wantReason(e.owner, code, core.Order{}, core.ReasonOK)
	e.clock.T = time.Date(2025, 6, 11, 2, 0, 0, 0, shanghai)
	e.wantReason(e.owner, code, core.Order{}, core.ReasonOutsideHours)

	// Weekdays: Wednesday only. Tuesday 23:30 UTC is Wednesday in Shanghai.
	wed := e.create(amountOff("周三会员日", 1000, core.Rules{Weekdays: 1 << uint(time.Wednesday)}))
	w := e.codes(wed.ID, 1)[0]
	e.clock.T = time.Date(2025, 6, 10, 23, 30, 0, 0, time.UTC)
	e.wantReason(e.owner, w, core.Order{}, core.ReasonOK)
	e.wantReason(utc, w, core.Order{}, core.ReasonOutsideHours)
}

func TestCheckAlreadyRedeemedAndMultiUse(t *testing.T) {
	e := newEnv(t)
	c := e.create(amountOff("单次券", 2000, core.Rules{}))
	code := e.codes(c.ID, 1)[0]
	e.mustRedeem(e.owner, code, core.Order{Amount: 5000})
	e.wantReason(e.owner, code, core.Order{Amount: 5000}, core.ReasonAlreadyRedeemed)

	m := e.create(amountOff("三次券", 500, core.Rules{UsesPerCode: 3}))
	mc := e.codes(m.ID, 1)[0]
	for i := 3; i > 0; i-- {
		v := e.wantReason(e.owner, mc, core.Order{}, core.ReasonOK)
		if v.UsesLeft != i {
			t.Fatalf("uses left %d, want %d", v.UsesLeft, i)
		}
		e.mustRedeem(e.owner, mc, core.Order{})
	}
	e.wantReason(e.owner, mc, core.Order{}, core.ReasonAlreadyRedeemed)
	if k := e.code(mc); k.Uses != 3 {
		t.Fatalf("uses = %d, want 3", k.Uses)
	}
}

func TestCheckBelowMinSpend(t *testing.T) {
	e := newEnv(t)
	c := &core.Campaign{Name: "满100减20", Kind: core.KindAmountOff, AmountOff: 2000, MinSpend: 10000}
	e.create(c)
	code := e.codes(c.ID, 1)[0]
	e.wantReason(e.owner, code, core.Order{Amount: 9999}, core.ReasonBelowMinSpend)
	e.wantReason(e.owner, code, core.Order{Amount: 10000}, core.ReasonOK)
	if r := e.redeem(e.owner, code, core.Order{Amount: 9999}, ""); r.Verdict.Reason != core.ReasonBelowMinSpend || r.Redemption != nil {
		t.Fatalf("redeem below min spend: %+v", r)
	}
	if k := e.code(code); k.Uses != 0 {
		t.Fatalf("refused redeem used the code: uses %d", k.Uses)
	}
}

func TestCheckPerMemberLimit(t *testing.T) {
	e := newEnv(t)
	c := e.create(amountOff("每人限一张", 1000, core.Rules{PerMemberLimit: 1}))
	codes := e.codes(c.ID, 4)
	alice, bob := "13812345678", "13987654321"
	first := e.mustRedeem(e.owner, codes[0], core.Order{Member: alice})
	e.wantReason(e.owner, codes[1], core.Order{Member: alice}, core.ReasonPerMemberLimit)
	if r := e.redeem(e.owner, codes[1], core.Order{Member: alice}, ""); r.Verdict.Reason != core.ReasonPerMemberLimit || r.Redemption != nil {
		t.Fatalf("second redeem by the same member: %+v", r)
	}
	e.wantReason(e.owner, codes[1], core.Order{Member: bob}, core.ReasonOK)
	e.wantReason(e.owner, codes[1], core.Order{}, core.ReasonOK)
	// A rolled-back redemption no longer counts.
	if _, err := e.db.Rollback(e.owner, first.ID, "顾客退货", false, 0); err != nil {
		t.Fatal(err)
	}
	e.wantReason(e.owner, codes[1], core.Order{Member: alice}, core.ReasonOK)
}

func TestCheckBudgetExhausted(t *testing.T) {
	e := newEnv(t)
	c := e.create(amountOff("限量3张", 1000, core.Rules{BudgetCount: 3}))
	codes := e.codes(c.ID, 5)
	var last *core.Redemption
	for _, k := range codes[:3] {
		last = e.mustRedeem(e.owner, k, core.Order{})
	}
	e.wantReason(e.owner, codes[3], core.Order{}, core.ReasonBudgetExhausted)
	before := e.counts()
	if r := e.redeem(e.owner, codes[3], core.Order{}, ""); r.Verdict.Reason != core.ReasonBudgetExhausted || r.Redemption != nil {
		t.Fatalf("redeem over budget: %+v", r)
	}
	if after := e.counts(); after != before {
		t.Fatalf("refused redeem wrote: %+v → %+v", before, after)
	}
	if got := e.campaign(c.ID).Redeemed; got != 3 {
		t.Fatalf("campaign redeemed = %d, want 3", got)
	}
	if _, err := e.db.Rollback(e.owner, last.ID, "操作失误", false, 0); err != nil {
		t.Fatal(err)
	}
	e.wantReason(e.owner, codes[3], core.Order{}, core.ReasonOK)

	money := e.create(amountOff("预算50元", 2000, core.Rules{BudgetAmount: 5000}))
	mc := e.codes(money.ID, 3)
	e.mustRedeem(e.owner, mc[0], core.Order{})
	e.mustRedeem(e.owner, mc[1], core.Order{})
	e.wantReason(e.owner, mc[2], core.Order{}, core.ReasonBudgetExhausted)
	// A smaller order uses less of the budget: ¥10 off fits the remaining ¥10.
	e.wantReason(e.owner, mc[2], core.Order{Amount: 1000}, core.ReasonOK)
}

func TestCheckInsufficientBalance(t *testing.T) {
	e := newEnv(t)
	c := e.create(giftCard("100元礼品卡", 10000))
	code := e.codes(c.ID, 1)[0]
	v := e.wantReason(e.owner, code, core.Order{Amount: 12000, Debit: 10001}, core.ReasonInsufficientBalance)
	if v.Balance != 10000 {
		t.Fatalf("balance in verdict %d, want 10000", v.Balance)
	}
	v = e.wantReason(e.owner, code, core.Order{Amount: 12000}, core.ReasonOK)
	if v.Value != 10000 || v.Payable != 2000 {
		t.Fatalf("default debit verdict %+v", v)
	}
	e.mustRedeem(e.owner, code, core.Order{Amount: 3000})
	e.wantReason(e.owner, code, core.Order{Debit: 7001}, core.ReasonInsufficientBalance)
	e.wantReason(e.owner, code, core.Order{Debit: 7000}, core.ReasonOK)
	e.mustRedeem(e.owner, code, core.Order{Debit: 7000})
	e.wantReason(e.owner, code, core.Order{Amount: 100}, core.ReasonAlreadyRedeemed)
}

func TestCheckThrottled(t *testing.T) {
	e := newEnv(t)
	c := e.create(amountOff("券", 1000, core.Rules{}))
	codes := e.codes(c.ID, 2)
	cashier := e.operatorActor("小王", core.RoleCashier)

	for i := 0; i < store.ThrottleFailures-1; i++ {
		e.wantReason(e.owner, "WRONG"+string(rune('A'+i)), core.Order{}, core.ReasonNotFound)
	}
	e.wantReason(e.owner, codes[0], core.Order{}, core.ReasonOK) // one short of the limit
	e.wantReason(e.owner, mistype(codes[0]), core.Order{}, core.ReasonBadCheckChar)

	// The limit is reached: even a valid code is refused, and cannot be redeemed.
	e.wantReason(e.owner, codes[0], core.Order{}, core.ReasonThrottled)
	before := e.counts()
	if r := e.redeem(e.owner, codes[0], core.Order{}, ""); r.Verdict.Reason != core.ReasonThrottled || r.Redemption != nil {
		t.Fatalf("redeem while throttled: %+v", r)
	}
	if after := e.counts(); after != before {
		t.Fatalf("throttled redeem wrote: %+v → %+v", before, after)
	}
	// Another operator on the same device is not throttled.
	e.wantReason(cashier, codes[0], core.Order{}, core.ReasonOK)

	e.advance(store.ThrottleWindow / 2)
	e.wantReason(e.owner, codes[0], core.Order{}, core.ReasonThrottled)
	e.advance(store.ThrottleWindow/2 + time.Second)
	e.wantReason(e.owner, codes[0], core.Order{}, core.ReasonOK)
	e.mustRedeem(e.owner, codes[0], core.Order{})
}

// Failed redeem attempts count towards throttling like failed checks.
func TestRedeemFailuresThrottle(t *testing.T) {
	e := newEnv(t)
	c := e.create(amountOff("券", 1000, core.Rules{}))
	code := e.codes(c.ID, 1)[0]
	for i := 0; i < store.ThrottleFailures; i++ {
		if r := e.redeem(e.owner, "GUESS"+string(rune('A'+i)), core.Order{}, ""); r.Verdict.Reason != core.ReasonNotFound {
			t.Fatalf("guess %d: %+v", i, r.Verdict)
		}
	}
	e.wantReason(e.owner, code, core.Order{}, core.ReasonThrottled)
}
