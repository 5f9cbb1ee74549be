package store_test

import (
	"testing"
	"time"

	"github.com/kameng/kameng/core"
)

// An idempotency key belongs to one request: reusing it for another code is refused,
// not answered with the other code's redemption.
func TestIdempotencyKeyReusedForAnotherCodeIsRefused(t *testing.T) {
	e := newEnv(t)
	c := e.create(amountOff("幂等", 500, core.Rules{}))
	codes := e.codes(c.ID, 2)
	first := e.redeem(e.owner, codes[0], core.Order{Amount: 3000}, "till-1")
	if !first.Verdict.OK {
		t.Fatalf("first redeem: %+v", first.Verdict)
	}
	before := e.counts()
	_, err := e.db.Redeem(e.owner, codes[1], core.Order{Amount: 3000}, "till-1")
	wantErr(t, err, core.ErrConflict, "key")
	if after := e.counts(); after != before {
		t.Fatalf("a refused request wrote: %+v → %+v", before, after)
	}
	if k := e.code(codes[1]); k.Uses != 0 {
		t.Fatalf("second code used: %+v", k)
	}
	// The same key with the same code still replays the first result, payable included.
	again := e.redeem(e.owner, codes[0], core.Order{Amount: 3000}, "till-1")
	if !again.Replayed || again.Redemption.ID != first.Redemption.ID || again.Verdict.Payable != 2500 || again.Verdict.Name != "幂等" {
		t.Fatalf("replay = %+v", again.Verdict)
	}
}

// "Valid N days from distribution" never runs past the campaign's own end date.
func TestValidDaysCappedByCampaignEnd(t *testing.T) {
	e := newEnv(t)
	end := e.clock.T.Add(3 * 24 * time.Hour).UnixMilli()
	c := e.create(amountOff("领取后30天", 500, core.Rules{ValidDays: 30, ValidTo: end}))
	code := e.codes(c.ID, 1)[0]
	if _, err := e.db.Distribute(e.owner, []string{code}, ""); err != nil {
		t.Fatal(err)
	}
	if k := e.code(code); k.ValidTo != end {
		t.Fatalf("valid to %d, want the campaign end %d", k.ValidTo, end)
	}
	e.advance(4 * 24 * time.Hour)
	e.wantReason(e.owner, code, core.Order{Amount: 1000}, core.ReasonExpired)
}

// A percent-off coupon cannot be priced without the order: asking is bad input and
// uses nothing up.
func TestPercentOffNeedsTheOrderAmount(t *testing.T) {
	e := newEnv(t)
	c := e.create(&core.Campaign{Name: "九折", Kind: core.KindPercentOff, PercentOff: 1000, Format: core.DefaultCodeFormat()})
	code := e.codes(c.ID, 1)[0]
	_, err := e.db.Check(e.owner, code, core.Order{})
	wantErr(t, err, core.ErrInvalid, "order")
	_, err = e.db.Redeem(e.owner, code, core.Order{}, "")
	wantErr(t, err, core.ErrInvalid, "order")
	if k := e.code(code); k.Uses != 0 {
		t.Fatalf("coupon used without an order: %+v", k)
	}
	v := e.check(e.owner, code, core.Order{Amount: 12345})
	if !v.OK || v.Discount != 1234 {
		t.Fatalf("10%% of 123.45 = %s, want 12.34 (rounded down)", v.Discount)
	}
}

func TestHoursThatNeverOpenAreRefused(t *testing.T) {
	e := newEnv(t)
	err := e.db.CreateCampaign(e.owner, amountOff("永不开放", 500, core.Rules{HoursFrom: 600, HoursTo: 600}))
	wantErr(t, err, core.ErrInvalid, "hours")
}
