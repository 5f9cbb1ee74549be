package core_test

import (
	"testing"

	"github.com/kameng/kameng/core"
)

func shares(t *testing.T, s string) []core.Share {
	t.Helper()
	p, err := core.ParseShares(s)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestSplitAddsUpToTheFen(t *testing.T) {
	r := core.SplitRule{Scope: core.SplitDefault, Parties: shares(t, "brand:33.33,store:33.33,platform:33.34"), Remainder: "store"}
	if err := r.Validate(); err != nil {
		t.Fatal(err)
	}
	for _, v := range []core.Amount{0, 1, 2, 3, 7, 100, 9999, 10001, 123457, -101} {
		parts := r.Split(v)
		var sum core.Amount
		for _, p := range parts {
			sum += p.Amount
		}
		if sum != v {
			t.Errorf("Split(%d) adds up to %d: %+v", v, sum, parts)
		}
	}
	// 1 fen: every share rounds down to 0 and the remainder party takes it.
	got := r.Split(1)
	for _, p := range got {
		want := core.Amount(0)
		if p.Party == "store" {
			want = 1
		}
		if p.Amount != want {
			t.Errorf("Split(1): %s got %d, want %d", p.Party, p.Amount, want)
		}
	}
}

func TestSplitRemainderLargest(t *testing.T) {
	r := core.SplitRule{Scope: core.SplitDefault, Parties: shares(t, "a:30,b:70")}
	if err := r.Validate(); err != nil || r.Remainder != core.RemainderLargest {
		t.Fatalf("validate: %v, remainder %q", err, r.Remainder)
	}
	got := r.Split(1001) // 300.3 → 300, 700.7 → 700, 1 left → b
	if got[0].Party != "a" || got[0].Amount != 300 || got[1].Party != "b" || got[1].Amount != 701 {
		t.Errorf("Split(1001) = %+v", got)
	}
}

func TestSplitRuleValidate(t *testing.T) {
	bad := []core.SplitRule{
		{Scope: core.SplitDefault, Parties: shares(t, "a:50,b:40")},
		{Scope: core.SplitDefault, Parties: shares(t, "a:50,a:50")},
		{Scope: core.SplitDefault, Parties: shares(t, "a:100"), Remainder: "z"},
		{Scope: core.SplitCampaign, Parties: shares(t, "a:100")},
		{Scope: "galaxy", Parties: shares(t, "a:100")},
		{Scope: core.SplitDefault},
		{Scope: core.SplitDefault, Parties: shares(t, "a:0,b:100")},
	}
	for _, r := range bad {
		if err := r.Validate(); core.ErrorCode(err) != core.ErrInvalid {
			t.Errorf("%+v accepted", r)
		}
	}
	if _, err := core.ParseShares("brand 60"); core.ErrorCode(err) != core.ErrInvalid {
		t.Error("share without a colon accepted")
	}
	if _, err := core.ParseShares("brand:6o"); core.ErrorCode(err) != core.ErrInvalid {
		t.Error("bad percentage accepted")
	}
	if p := shares(t, "品牌：60%，门店:40％"); len(p) != 2 || p[0].Party != "品牌" || p[0].PercentBP != 6000 || p[1].PercentBP != 4000 {
		t.Errorf("full-width separators: %+v", p)
	}
}
