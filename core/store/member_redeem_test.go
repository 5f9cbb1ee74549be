package store_test

import (
	"testing"

	"github.com/kameng/kameng/core"
)

// After a merge, the old phone still names the customer: a redemption with it belongs
// to the surviving record, and the per-member limit counts both records' redemptions.
func TestRedeemWithMergedPhone(t *testing.T) {
	e := newEnv(t)
	old := e.member("13800000011", "旧号", true)
	survivor := e.member("13800000012", "新号", true)
	c := e.create(amountOff("每人一次", 500, core.Rules{UsesPerCode: 1, PerMemberLimit: 1}))
	codes := e.codes(c.ID, 3)

	if r := e.redeem(e.owner, codes[0], core.Order{Amount: 3000, Member: "13800000011"}, ""); !r.Verdict.OK || r.MemberID != old {
		t.Fatalf("first redemption: %+v", r)
	}
	if _, err := e.db.Merge(e.owner, old, survivor); err != nil {
		t.Fatal(err)
	}
	// The survivor's own phone: the old record's redemption counts against the limit.
	e.wantReason(e.owner, codes[1], core.Order{Member: "13800000012"}, core.ReasonPerMemberLimit)
	// The old phone: the same.
	e.wantReason(e.owner, codes[1], core.Order{Member: "13800000011"}, core.ReasonPerMemberLimit)

	c2 := e.create(amountOff("不限", 500, core.Rules{UsesPerCode: 1}))
	more := e.codes(c2.ID, 1)
	r := e.redeem(e.owner, more[0], core.Order{Amount: 5000, Member: "13800000011"}, "")
	if !r.Verdict.OK || r.MemberID != survivor || r.Points != 50 {
		t.Fatalf("redemption with the merged phone: member %q points %d, want %q and 50", r.MemberID, r.Points, survivor)
	}
}
