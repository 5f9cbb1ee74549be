package core_test

import (
	"testing"
	"time"

	"github.com/kameng/kameng/core"
)

func TestTierForPicksHighestMetThreshold(t *testing.T) {
	tiers := []core.Tier{
		{Name: "silver", MinSpend: 100000, MinPoints: 1000, MultiplierBP: 12000},
		{Name: "base", MinSpend: 0, MinPoints: 0, MultiplierBP: 10000},
		{Name: "gold", MinSpend: 500000, MinPoints: 5000, MultiplierBP: 15000},
	}
	cases := []struct {
		basis  string
		spend  core.Amount
		points int64
		want   string
	}{
		{core.TierBySpend, 0, 0, "base"},
		{core.TierBySpend, 99999, 0, "base"},
		{core.TierBySpend, 100000, 0, "silver"}, // exactly at the threshold
		{core.TierBySpend, 499999, 99999, "silver"},
		{core.TierBySpend, 500000, 0, "gold"},
		{core.TierByPoints, 900000, 999, "base"},
		{core.TierByPoints, 0, 1000, "silver"},
		{core.TierByPoints, 0, 5000, "gold"},
	}
	for _, c := range cases {
		got := core.TierFor(tiers, c.basis, c.spend, c.points)
		if got == nil || got.Name != c.want {
			t.Errorf("TierFor(%s, %d, %d) = %v, want %s", c.basis, c.spend, c.points, got, c.want)
		}
	}
	if got := core.TierFor(tiers[:1], core.TierBySpend, 10, 0); got != nil {
		t.Errorf("below every threshold: got %s, want no tier", got.Name)
	}
}

func TestBonusForTakesHighestReachedRule(t *testing.T) {
	l := core.DefaultLoyalty()
	l.Bonuses = []core.TopupBonus{{Min: 10000, Bonus: 2000}, {Min: 50000, Bonus: 15000}, {Min: 20000, Bonus: 5000}}
	for paid, want := range map[core.Amount]core.Amount{9999: 0, 10000: 2000, 19999: 2000, 20000: 5000, 50000: 15000, 1000000: 15000} {
		if got := l.BonusFor(paid); got != want {
			t.Errorf("BonusFor(%d) = %d, want %d", paid, got, want)
		}
	}
	l.Bonuses = append(l.Bonuses, core.TopupBonus{Min: 10000, Bonus: 1})
	if err := l.Validate(); core.ErrorCode(err) != core.ErrInvalid {
		t.Errorf("two bonuses for one amount: %v", err)
	}
}

func TestPointsForRoundsDownExactly(t *testing.T) {
	l := core.DefaultLoyalty()
	if got := l.PointsFor(12999, 10000); got != 129 {
		t.Errorf("¥129.99 at 1/yuan = %d, want 129", got)
	}
	if got := l.PointsFor(12999, 15000); got != 194 { // 129.99 × 1.5 = 194.985
		t.Errorf("×1.5 = %d, want 194", got)
	}
	l.PointsPerYuanBP = 5000
	if got := l.PointsFor(301, 10000); got != 1 { // 3.01 yuan × 0.5
		t.Errorf("half a point per yuan on ¥3.01 = %d, want 1", got)
	}
	if got := l.PointsFor(core.Amount(1)<<60, 1000000); got <= 0 {
		t.Errorf("large amounts must not overflow: %d", got)
	}
	if got := l.PointsFor(-100, 10000); got != 0 {
		t.Errorf("negative amount earned %d", got)
	}
}

func TestExpiresAtEndOfFollowingYear(t *testing.T) {
	sh := core.LoadLocation("Asia/Shanghai")
	l := core.DefaultLoyalty()
	earned := time.Date(2026, 12, 31, 23, 30, 0, 0, sh)
	want := time.Date(2028, 1, 1, 0, 0, 0, 0, sh).UnixMilli()
	if got := l.ExpiresAt(earned, sh); got != want {
		t.Errorf("next_year_end: %v, want %v", time.UnixMilli(got).In(sh), time.UnixMilli(want).In(sh))
	}
	// Earned on Dec 31, usable for 30 more days (through Jan 30). 2026-12-31 23:30 in Shanghai is still 2026 there even though UTC says 15:30.
	l.Expiry, l.ExpiryDays = core.ExpireDays, 30
	if got, want := l.ExpiresAt(earned, sh), time.Date(2027, 1, 31, 0, 0, 0, 0, sh).UnixMilli(); got != want {
		t.Errorf("30 days: %v, want %v", time.UnixMilli(got).In(sh), time.UnixMilli(want).In(sh))
	}
	l.Expiry = core.ExpireNever
	if got := l.ExpiresAt(earned, sh); got != 0 {
		t.Errorf("never: %d", got)
	}
}

func TestParseBirthdayAndTags(t *testing.T) {
	for in, want := range map[string]struct {
		s string
		m int
	}{"1990-05-17": {"1990-05-17", 5}, "05-17": {"--05-17", 5}, "--12-01": {"--12-01", 12}, "02-29": {"--02-29", 2}, "": {"", 0}} {
		s, m, err := core.ParseBirthday(in)
		if err != nil || s != want.s || m != want.m {
			t.Errorf("ParseBirthday(%q) = %q %d %v, want %q %d", in, s, m, err, want.s, want.m)
		}
	}
	for _, bad := range []string{"13-01", "1990-02-30", "1800-01-01", "tomorrow", "2999-01-01"} {
		if _, _, err := core.ParseBirthday(bad); core.ErrorCode(err) != core.ErrInvalid {
			t.Errorf("ParseBirthday(%q) accepted", bad)
		}
	}
	got := core.ParseTags(" VIP, 员工，vip,, new ")
	if len(got) != 3 || got[0] != "new" || got[1] != "vip" || got[2] != "员工" {
		t.Errorf("ParseTags = %q", got)
	}
}

func TestIssueRuleValidate(t *testing.T) {
	ok := []core.IssueRule{{Kind: core.IssueWelcome}, {Kind: core.IssueBirthday}, {Kind: core.IssueSpend, Threshold: 50000}, {Kind: core.IssueIdle, Threshold: 30}}
	for _, r := range ok {
		if err := r.Validate(); err != nil {
			t.Errorf("%+v: %v", r, err)
		}
	}
	bad := []core.IssueRule{{Kind: "sometimes"}, {Kind: core.IssueSpend}, {Kind: core.IssueIdle, Threshold: -1}, {Kind: core.IssueWelcome, Threshold: 3}}
	for _, r := range bad {
		if err := r.Validate(); core.ErrorCode(err) != core.ErrInvalid {
			t.Errorf("%+v accepted", r)
		}
	}
}
