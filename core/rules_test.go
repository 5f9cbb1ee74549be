package core_test

import (
	"testing"
	"time"

	"github.com/kameng/kameng/core"
)

var shanghai = core.LoadLocation("Asia/Shanghai")

// ruleNow is Tuesday 2025-06-10 10:00 in Shanghai (02:00 UTC).
var ruleNow = time.Date(2025, 6, 10, 10, 0, 0, 0, shanghai)

func ms(t time.Time) int64 { return t.UnixMilli() }

// at returns the Shanghai wall time hh:mm on ruleNow's day.
func at(hh, mm int) time.Time {
	return time.Date(2025, 6, 10, hh, mm, 0, 0, shanghai)
}

func weekday(days ...time.Weekday) uint8 {
	var w uint8
	for _, d := range days {
		w |= 1 << uint(d)
	}
	return w
}

// baseInput is an active amount-off coupon (¥20 off), an unused code and a store in
// Shanghai; every case changes what it needs.
func baseInput() core.CheckInput {
	return core.CheckInput{
		Code: &core.Code{Code: "ABCDEFGHJKLMN", CampaignID: "camp-1", Status: core.CodeActive},
		Campaign: &core.Campaign{ID: "camp-1", Name: "满100减20", Kind: core.KindAmountOff, Status: core.StatusActive,
			AmountOff: 2000, Rules: core.Rules{UsesPerCode: 1}},
		Store: &core.Store{ID: "store-1", Name: "旗舰店", TimeZone: "Asia/Shanghai"},
		Now:   ruleNow,
		Order: core.Order{Amount: 10000},
	}
}

func giftInput(balance core.Amount) core.CheckInput {
	in := baseInput()
	in.Campaign.Kind, in.Campaign.AmountOff, in.Campaign.FaceValue = core.KindGiftCard, 0, 10000
	in.Code.Balance = balance
	return in
}

func TestEvaluateReasons(t *testing.T) {
	cases := []struct {
		name   string
		mod    func(in *core.CheckInput)
		reason string
	}{
		{"ok", func(in *core.CheckInput) {}, core.ReasonOK},

		{"voided code", func(in *core.CheckInput) { in.Code.Status = core.CodeVoided }, core.ReasonVoided},
		{"archived campaign", func(in *core.CheckInput) { in.Campaign.Status = core.StatusArchived }, core.ReasonVoided},
		{"voided beats paused", func(in *core.CheckInput) {
			in.Code.Status = core.CodeVoided
			in.Campaign.Status = core.StatusPaused
		}, core.ReasonVoided},
		{"paused", func(in *core.CheckInput) { in.Campaign.Status = core.StatusPaused }, core.ReasonPaused},

		{"wrong store", func(in *core.CheckInput) { in.Campaign.Rules.Stores = []string{"store-2", "store-3"} }, core.ReasonWrongStore},
		{"listed store", func(in *core.CheckInput) { in.Campaign.Rules.Stores = []string{"store-2", "store-1"} }, core.ReasonOK},

		{"not started (campaign)", func(in *core.CheckInput) { in.Campaign.Rules.ValidFrom = ms(ruleNow) + 1 }, core.ReasonNotStarted},
		{"started exactly now", func(in *core.CheckInput) { in.Campaign.Rules.ValidFrom = ms(ruleNow) }, core.ReasonOK},
		{"not started (code window overrides campaign)", func(in *core.CheckInput) {
			in.Campaign.Rules.ValidFrom = ms(ruleNow) - 1000
			in.Code.ValidFrom = ms(ruleNow.Add(time.Hour))
		}, core.ReasonNotStarted},
		{"expired (campaign, end is exclusive)", func(in *core.CheckInput) { in.Campaign.Rules.ValidTo = ms(ruleNow) }, core.ReasonExpired},
		{"one ms before the end", func(in *core.CheckInput) { in.Campaign.Rules.ValidTo = ms(ruleNow) + 1 }, core.ReasonOK},
		{"expired (code window after distribution)", func(in *core.CheckInput) {
			in.Code.ValidFrom = ms(ruleNow.AddDate(0, 0, -7))
			in.Code.ValidTo = ms(ruleNow.Add(-time.Minute))
		}, core.ReasonExpired},
		{"code window still open while the campaign has no end", func(in *core.CheckInput) {
			in.Code.ValidFrom = ms(ruleNow.AddDate(0, 0, -6))
			in.Code.ValidTo = ms(ruleNow.AddDate(0, 0, 1))
		}, core.ReasonOK},

		{"inside 09:00-21:00", func(in *core.CheckInput) { in.Campaign.Rules.HoursFrom, in.Campaign.Rules.HoursTo = 9*60, 21*60 }, core.ReasonOK},
		{"at the start of 09:00-21:00", func(in *core.CheckInput) {
			in.Campaign.Rules.HoursFrom, in.Campaign.Rules.HoursTo = 9*60, 21*60
			in.Now = at(9, 0)
		}, core.ReasonOK},
		{"before 09:00-21:00", func(in *core.CheckInput) {
			in.Campaign.Rules.HoursFrom, in.Campaign.Rules.HoursTo = 9*60, 21*60
			in.Now = at(8, 59)
		}, core.ReasonOutsideHours},
		{"at the (exclusive) end of 09:00-21:00", func(in *core.CheckInput) {
			in.Campaign.Rules.HoursFrom, in.Campaign.Rules.HoursTo = 9*60, 21*60
			in.Now = at(21, 0)
		}, core.ReasonOutsideHours},
		{"22:00-02:00 at 23:30", func(in *core.CheckInput) {
			in.Campaign.Rules.HoursFrom, in.Campaign.Rules.HoursTo = 22*60, 2*60
			in.Now = at(23, 30)
		}, core.ReasonOK},
		{"22:00-02:00 at 01:59", func(in *core.CheckInput) {
			in.Campaign.Rules.HoursFrom, in.Campaign.Rules.HoursTo = 22*60, 2*60
			in.Now = at(1, 59)
		}, core.ReasonOK},
		{"22:00-02:00 at 02:00", func(in *core.CheckInput) {
			in.Campaign.Rules.HoursFrom, in.Campaign.Rules.HoursTo = 22*60, 2*60
			in.Now = at(2, 0)
		}, core.ReasonOutsideHours},
		{"22:00-02:00 at noon", func(in *core.CheckInput) {
			in.Campaign.Rules.HoursFrom, in.Campaign.Rules.HoursTo = 22*60, 2*60
			in.Now = at(12, 0)
		}, core.ReasonOutsideHours},
		// 23:30 UTC on Tuesday is 07:30 on Wednesday in Shanghai: hours and weekdays
		// are the store's, not UTC's.
		{"hours in the store's zone: 07:00-08:00 at 23:30 UTC", func(in *core.CheckInput) {
			in.Campaign.Rules.HoursFrom, in.Campaign.Rules.HoursTo = 7*60, 8*60
			in.Now = time.Date(2025, 6, 10, 23, 30, 0, 0, time.UTC)
		}, core.ReasonOK},
		{"hours in the store's zone: 23:00-24:00 at 23:30 UTC", func(in *core.CheckInput) {
			in.Campaign.Rules.HoursFrom, in.Campaign.Rules.HoursTo = 23*60, 24*60
			in.Now = time.Date(2025, 6, 10, 23, 30, 0, 0, time.UTC)
		}, core.ReasonOutsideHours},
		{"weekday in the store's zone: Wednesday only at Tuesday 23:30 UTC", func(in *core.CheckInput) {
			in.Campaign.Rules.Weekdays = weekday(time.Wednesday)
			in.Now = time.Date(2025, 6, 10, 23, 30, 0, 0, time.UTC)
		}, core.ReasonOK},
		{"weekday in the store's zone: Tuesday only at Tuesday 23:30 UTC", func(in *core.CheckInput) {
			in.Campaign.Rules.Weekdays = weekday(time.Tuesday)
			in.Now = time.Date(2025, 6, 10, 23, 30, 0, 0, time.UTC)
		}, core.ReasonOutsideHours},
		{"a store in UTC sees Tuesday 23:30", func(in *core.CheckInput) {
			in.Store.TimeZone = "UTC"
			in.Campaign.Rules.Weekdays = weekday(time.Tuesday)
			in.Campaign.Rules.HoursFrom, in.Campaign.Rules.HoursTo = 23*60, 24*60
			in.Now = time.Date(2025, 6, 10, 23, 30, 0, 0, time.UTC)
		}, core.ReasonOK},
		{"weekends only on a Tuesday", func(in *core.CheckInput) {
			in.Campaign.Rules.Weekdays = weekday(time.Saturday, time.Sunday)
		}, core.ReasonOutsideHours},
		{"weekdays and hours both met", func(in *core.CheckInput) {
			in.Campaign.Rules.Weekdays = weekday(time.Monday, time.Tuesday)
			in.Campaign.Rules.HoursFrom, in.Campaign.Rules.HoursTo = 9*60, 11*60
		}, core.ReasonOK},

		{"already redeemed (single use)", func(in *core.CheckInput) { in.Code.Uses = 1 }, core.ReasonAlreadyRedeemed},
		{"second of three uses", func(in *core.CheckInput) { in.Code.Uses, in.Campaign.Rules.UsesPerCode = 1, 3 }, core.ReasonOK},
		{"all three uses taken", func(in *core.CheckInput) { in.Code.Uses, in.Campaign.Rules.UsesPerCode = 3, 3 }, core.ReasonAlreadyRedeemed},
		{"card key delivered", func(in *core.CheckInput) {
			in.Campaign.Kind, in.Campaign.AmountOff, in.Campaign.FaceValue = core.KindCardKey, 0, 5000
			in.Code.Uses = 1
		}, core.ReasonAlreadyRedeemed},

		{"below min spend", func(in *core.CheckInput) { in.Campaign.MinSpend, in.Order.Amount = 10000, 9999 }, core.ReasonBelowMinSpend},
		{"exactly min spend", func(in *core.CheckInput) { in.Campaign.MinSpend, in.Order.Amount = 10000, 10000 }, core.ReasonOK},
		{"min spend with unknown order amount", func(in *core.CheckInput) { in.Campaign.MinSpend, in.Order.Amount = 10000, 0 }, core.ReasonBelowMinSpend},

		{"per member limit reached", func(in *core.CheckInput) {
			in.Campaign.Rules.PerMemberLimit, in.MemberUses, in.Order.Member = 2, 2, "13812345678"
		}, core.ReasonPerMemberLimit},
		{"per member limit not reached", func(in *core.CheckInput) {
			in.Campaign.Rules.PerMemberLimit, in.MemberUses, in.Order.Member = 2, 1, "13812345678"
		}, core.ReasonOK},
		{"tier-only campaign, member of another tier", func(in *core.CheckInput) {
			in.Campaign.Rules.Tiers, in.MemberTier, in.Order.Member = []string{"gold"}, "silver", "13812345678"
		}, core.ReasonTierOnly},
		{"tier-only campaign, no member", func(in *core.CheckInput) {
			in.Campaign.Rules.Tiers = []string{"gold"}
		}, core.ReasonTierOnly},
		{"tier-only campaign, member of the tier", func(in *core.CheckInput) {
			in.Campaign.Rules.Tiers, in.MemberTier, in.Order.Member = []string{"silver", "gold"}, "gold", "13812345678"
		}, core.ReasonOK},
		{"per member limit without a member", func(in *core.CheckInput) {
			in.Campaign.Rules.PerMemberLimit, in.MemberUses, in.Order.Member = 1, 5, ""
		}, core.ReasonOK},

		{"budget count exhausted", func(in *core.CheckInput) { in.Campaign.Rules.BudgetCount, in.Campaign.Redeemed = 5, 5 }, core.ReasonBudgetExhausted},
		{"budget count: last one", func(in *core.CheckInput) { in.Campaign.Rules.BudgetCount, in.Campaign.Redeemed = 5, 4 }, core.ReasonOK},
		{"budget amount exactly used up by this order", func(in *core.CheckInput) {
			in.Campaign.Rules.BudgetAmount, in.Campaign.Spent = 10000, 8000
		}, core.ReasonOK},
		{"budget amount exceeded by this order", func(in *core.CheckInput) {
			in.Campaign.Rules.BudgetAmount, in.Campaign.Spent = 10000, 8001
		}, core.ReasonBudgetExhausted},
		{"budget amount counts gift card value", func(in *core.CheckInput) {
			*in = giftInput(10000)
			in.Order = core.Order{Amount: 5000}
			in.Campaign.Rules.BudgetAmount, in.Campaign.Spent = 100000, 96000
		}, core.ReasonBudgetExhausted},

		{"gift card debit above balance", func(in *core.CheckInput) {
			*in = giftInput(5000)
			in.Order = core.Order{Amount: 8000, Debit: 5001}
		}, core.ReasonInsufficientBalance},
		{"gift card debit equal to balance", func(in *core.CheckInput) {
			*in = giftInput(5000)
			in.Order = core.Order{Amount: 8000, Debit: 5000}
		}, core.ReasonOK},
		{"gift card empty", func(in *core.CheckInput) {
			*in = giftInput(0)
			in.Order = core.Order{Amount: 8000}
		}, core.ReasonAlreadyRedeemed},
		{"gift card partly used stays usable", func(in *core.CheckInput) {
			*in = giftInput(100)
			in.Code.Uses = 7
		}, core.ReasonOK},
	}
	produced := map[string]bool{}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			in := baseInput()
			tc.mod(&in)
			v := core.Evaluate(in)
			produced[v.Reason] = true
			if v.Reason != tc.reason {
				t.Fatalf("reason = %q, want %q (verdict %+v)", v.Reason, tc.reason, v)
			}
			if v.OK != (tc.reason == core.ReasonOK) {
				t.Fatalf("OK = %v with reason %q", v.OK, v.Reason)
			}
			if !v.OK && (v.Discount != 0 || v.Value != 0 || v.Payable != 0) {
				t.Fatalf("a refused verdict carries money: %+v", v)
			}
			if v.Code != in.Code.Code || v.Campaign != in.Campaign.ID {
				t.Fatalf("verdict names %q/%q, want %q/%q", v.Code, v.Campaign, in.Code.Code, in.Campaign.ID)
			}
		})
	}
	// Evaluate decides every reason except those the store decides before it has a
	// code to evaluate (unknown code, typing mistake, throttling).
	storeOnly := map[string]bool{core.ReasonNotFound: true, core.ReasonBadCheckChar: true, core.ReasonThrottled: true}
	for _, r := range core.Reasons {
		if !storeOnly[r] && !produced[r] {
			t.Errorf("no case produces reason %q", r)
		}
	}
}

func TestEvaluateDiscountMath(t *testing.T) {
	cases := []struct {
		name                     string
		in                       func() core.CheckInput
		discount, value, payable core.Amount
		balance                  core.Amount
	}{
		{"amount off below the order", func() core.CheckInput { return baseInput() }, 2000, 0, 8000, 0},
		{"amount off capped at the order", func() core.CheckInput {
			in := baseInput()
			in.Order.Amount = 1500
			return in
		}, 1500, 0, 0, 0},
		{"amount off with unknown order amount", func() core.CheckInput {
			in := baseInput()
			in.Order.Amount = 0
			return in
		}, 2000, 0, 0, 0},
		{"percent off floors to the fen", func() core.CheckInput {
			in := baseInput()
			in.Campaign.Kind, in.Campaign.AmountOff, in.Campaign.PercentOff = core.KindPercentOff, 0, 1500
			in.Order.Amount = 999 // 15% = 149.85 fen
			return in
		}, 149, 0, 850, 0},
		{"percent off 12.5% of ¥0.07", func() core.CheckInput {
			in := baseInput()
			in.Campaign.Kind, in.Campaign.AmountOff, in.Campaign.PercentOff = core.KindPercentOff, 0, 1250
			in.Order.Amount = 7 // 0.875 fen
			return in
		}, 0, 0, 7, 0},
		{"percent off below the cap", func() core.CheckInput {
			in := baseInput()
			in.Campaign.Kind, in.Campaign.AmountOff, in.Campaign.PercentOff, in.Campaign.MaxDiscount = core.KindPercentOff, 0, 1500, 5000
			in.Order.Amount = 12345 // 1851.75
			return in
		}, 1851, 0, 10494, 0},
		{"percent off respects the cap", func() core.CheckInput {
			in := baseInput()
			in.Campaign.Kind, in.Campaign.AmountOff, in.Campaign.PercentOff, in.Campaign.MaxDiscount = core.KindPercentOff, 0, 1500, 1000
			in.Order.Amount = 100000
			return in
		}, 1000, 0, 99000, 0},
		{"gift card default debit = order when balance suffices", func() core.CheckInput {
			in := giftInput(10000)
			in.Order = core.Order{Amount: 5000}
			return in
		}, 0, 5000, 0, 10000},
		{"gift card default debit = balance when the order is larger", func() core.CheckInput {
			in := giftInput(10000)
			in.Order = core.Order{Amount: 15000}
			return in
		}, 0, 10000, 5000, 10000},
		{"gift card partial debit", func() core.CheckInput {
			in := giftInput(10000)
			in.Order = core.Order{Amount: 5000, Debit: 3000}
			return in
		}, 0, 3000, 2000, 10000},
		{"gift card without order amount takes the balance", func() core.CheckInput {
			in := giftInput(7300)
			in.Order = core.Order{}
			return in
		}, 0, 7300, 0, 7300},
		{"card key delivers its face value; the order is paid in full", func() core.CheckInput {
			in := baseInput()
			in.Campaign.Kind, in.Campaign.AmountOff, in.Campaign.FaceValue = core.KindCardKey, 0, 5000
			in.Order.Amount = 8000
			return in
		}, 0, 5000, 8000, 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			v := core.Evaluate(tc.in())
			if !v.OK {
				t.Fatalf("not ok: %+v", v)
			}
			if v.Discount != tc.discount || v.Value != tc.value || v.Payable != tc.payable || v.Balance != tc.balance {
				t.Fatalf("discount/value/payable/balance = %d/%d/%d/%d, want %d/%d/%d/%d",
					v.Discount, v.Value, v.Payable, v.Balance, tc.discount, tc.value, tc.payable, tc.balance)
			}
		})
	}
}

func TestEvaluateUsesLeftAndValidTo(t *testing.T) {
	in := baseInput()
	in.Campaign.Rules.UsesPerCode = 3
	in.Code.Uses = 1
	in.Code.ValidTo = ms(ruleNow.Add(48 * time.Hour))
	in.Campaign.Rules.ValidTo = ms(ruleNow.Add(24 * time.Hour))
	v := core.Evaluate(in)
	if !v.OK || v.UsesLeft != 2 {
		t.Fatalf("uses left = %d (ok %v), want 2", v.UsesLeft, v.OK)
	}
	if v.ValidTo != in.Code.ValidTo {
		t.Fatalf("ValidTo = %d, want the code's own end %d", v.ValidTo, in.Code.ValidTo)
	}
	g := giftInput(500)
	if v := core.Evaluate(g); v.UsesLeft != 0 {
		t.Fatalf("a gift card reports %d uses left; uses do not limit a gift card", v.UsesLeft)
	}
}

func TestEvaluateIsPure(t *testing.T) {
	in := giftInput(10000)
	in.Order = core.Order{Amount: 5000, Debit: 2500}
	first := core.Evaluate(in)
	for i := 0; i < 3; i++ {
		if again := core.Evaluate(in); again != first {
			t.Fatalf("same input, different verdicts: %+v then %+v", first, again)
		}
	}
	if in.Code.Balance != 10000 || in.Campaign.Spent != 0 {
		t.Fatalf("Evaluate changed its input: balance %d spent %d", in.Code.Balance, in.Campaign.Spent)
	}
}

// A gift card debit is money taken from the card: a negative debit would put money
// on the card through the redeem path (and write a "debit" ledger entry that adds).
func TestEvaluateRefusesNegativeDebit(t *testing.T) {
	in := giftInput(5000)
	in.Order = core.Order{Amount: 3000, Debit: -2000}
	v := core.Evaluate(in)
	if v.OK || v.Value < 0 {
		t.Fatalf("a negative debit is accepted: ok=%v value=%d payable=%d", v.OK, v.Value, v.Payable)
	}
}
