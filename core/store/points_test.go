package store_test

import (
	"testing"
	"time"

	"github.com/kameng/kameng/core"
	"github.com/kameng/kameng/core/store"
)

func (e *env) earn(member string, amount core.Amount, campaign string) *store.PointsResult {
	e.t.Helper()
	r, err := e.db.Earn(e.owner, member, amount, campaign, "")
	if err != nil {
		e.t.Fatalf("earn %s for %s: %v", amount, member, err)
	}
	return r
}

func (e *env) adjust(member string, delta int64) *store.PointsResult {
	e.t.Helper()
	r, err := e.db.Adjust(e.owner, member, delta, "测试")
	if err != nil {
		e.t.Fatalf("adjust %s by %d: %v", member, delta, err)
	}
	return r
}

func (e *env) points(member string) *store.PointsView {
	e.t.Helper()
	v, err := e.db.PointsShow(member, 100)
	if err != nil {
		e.t.Fatal(err)
	}
	if v.Balance != v.Ledger || v.Balance != v.InLots {
		e.t.Fatalf("member %s: points %d, ledger %d, lots %d", member, v.Balance, v.Ledger, v.InLots)
	}
	return v
}

// remaining is what the lots with these ids have left.
func (e *env) remaining(ids ...string) []int64 {
	e.t.Helper()
	out := make([]int64, len(ids))
	for i, id := range ids {
		p, err := e.db.PointsEntry(id)
		if err != nil {
			e.t.Fatal(err)
		}
		out[i] = p.Remaining
	}
	return out
}

func sameInts(a, b []int64) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func (e *env) rawInt(q string, args ...any) int64 {
	e.t.Helper()
	var n int64
	if err := e.db.Raw().QueryRow(q, args...).Scan(&n); err != nil {
		e.t.Fatalf("%s: %v", q, err)
	}
	return n
}

func (e *env) rawExec(q string, args ...any) {
	e.t.Helper()
	if _, err := e.db.Raw().Exec(q, args...); err != nil {
		e.t.Fatalf("%s: %v", q, err)
	}
}

func TestPointsEarnRatesBonusesAndExpiry(t *testing.T) {
	e := newEnv(t)
	m := e.customer("13800138010")
	r := e.earn(m, 12850, "")
	nextYearEnd := time.Date(2027, 1, 1, 0, 0, 0, 0, shanghai).UnixMilli()
	if r.Entry.Points != 128 || r.Entry.Remaining != 128 || r.Entry.Expires != nextYearEnd || r.Entry.OrderAmount != 12850 ||
		r.Entry.Kind != core.PointsEarn || r.Balance != 128 {
		t.Fatalf("earn 128.50: %+v balance %d", r.Entry, r.Balance)
	}
	if spend := e.rawInt(`SELECT spend FROM member WHERE id = ?`, m); spend != 12850 {
		t.Fatalf("spend %d", spend)
	}
	if amt := e.rawInt(`SELECT amount FROM member_visit WHERE member_id = ? AND day = ?`, m, day0); amt != 12850 {
		t.Fatalf("visit amount %d", amt)
	}

	// A campaign's bonus adds to the rate; a tier's multiplier scales it.
	c := e.create(amountOff("双倍积分日", 500, core.Rules{}))
	e.setLoyalty(func(l *core.Loyalty) { l.CampaignBonus[c.ID] = 50 })
	if r := e.earn(m, 10000, "双倍积分日"); r.Entry.Points != 150 || r.Entry.CampaignID != c.ID {
		t.Fatalf("earn with a campaign bonus: %+v", r.Entry)
	}
	e.rawExec(`INSERT INTO tier(id, name, min_spend, multiplier_bp, created_ms) VALUES ('gold', '金卡', 0, 15000, 0)`)
	e.rawExec(`UPDATE member SET tier_id = 'gold' WHERE id = ?`, m)
	if r := e.earn(m, 10000, ""); r.Entry.Points != 150 {
		t.Fatalf("earn at ×1.5: %+v", r.Entry)
	}
	e.rawExec(`DELETE FROM tier`)
	e.rawExec(`UPDATE member SET tier_id = '' WHERE id = ?`, m)

	// Expiry rules: N days after the day earned, in the store's zone; or never.
	e.setLoyalty(func(l *core.Loyalty) { l.Expiry, l.ExpiryDays = core.ExpireDays, 30 })
	if r := e.earn(m, 100, ""); r.Entry.Expires != time.Date(2025, 7, 11, 0, 0, 0, 0, shanghai).UnixMilli() {
		t.Fatalf("30-day lot expires %s", time.UnixMilli(r.Entry.Expires).In(shanghai))
	}
	e.setLoyalty(func(l *core.Loyalty) { l.Expiry, l.ExpiryDays, l.PointsPerYuanBP = core.ExpireNever, 0, 5000 })
	if r := e.earn(m, 999, ""); r.Entry.Points != 4 || r.Entry.Expires != 0 {
		t.Fatalf("never-expiring half-rate lot: %+v", r.Entry)
	}
	// A purchase too small for a point is still a purchase.
	if r := e.earn(m, 150, ""); r.Entry.Points != 0 || r.Entry.Remaining != 0 || r.Balance != 128+150+150+1+4 {
		t.Fatalf("earn of 1.50 at half rate: %+v balance %d", r.Entry, r.Balance)
	}
	if spend := e.rawInt(`SELECT spend FROM member WHERE id = ?`, m); spend != 12850+10000+10000+100+999+150 {
		t.Fatalf("spend %d", spend)
	}

	e.refused(core.ErrInvalid, "amount", func() error { _, err := e.db.Earn(e.owner, m, 0, "", ""); return err })
	e.refused(core.ErrNotFound, "campaign", func() error { _, err := e.db.Earn(e.owner, m, 100, "没有这个活动", ""); return err })
	e.refused(core.ErrNotFound, "member", func() error { _, err := e.db.Earn(e.owner, "13900000000", 100, "", ""); return err })
	if n := e.auditActions()["points.earn"]; n != 6 {
		t.Fatalf("%d earn audit entries", n)
	}
	e.points(m)
	e.ledgersSound()
}

func TestPointsSpentFirstToExpireFirst(t *testing.T) {
	e := newEnv(t)
	m := e.customer("13800138011")
	a := e.earn(m, 10000, "").Entry.ID // expires 2027-01-01
	e.advance(365 * 24 * time.Hour)    // 2026-06-10
	b := e.earn(m, 10000, "").Entry.ID // expires 2028-01-01
	e.setLoyalty(func(l *core.Loyalty) { l.Expiry = core.ExpireNever })
	c := e.adjust(m, 50).Entry.ID // never expires
	e.setLoyalty(func(l *core.Loyalty) { l.Expiry, l.ExpiryDays = core.ExpireDays, 10 })
	d := e.earn(m, 1000, "").Entry.ID // expires 2026-06-21, first of all
	if got := e.points(m).Lots; len(got) != 4 || got[0].ID != d || got[1].ID != a || got[2].ID != b || got[3].ID != c {
		t.Fatalf("lots in spending order: %v", got)
	}

	r := e.adjust(m, -120)
	if r.Entry.Points != -120 || r.Entry.Remaining != 0 || r.Balance != 140 {
		t.Fatalf("take 120: %+v balance %d", r.Entry, r.Balance)
	}
	if got := e.remaining(d, a, b, c); !sameInts(got, []int64{0, 0, 90, 50}) {
		t.Fatalf("lots left %v, want [0 0 90 50]", got)
	}
	ce := e.refused(core.ErrConflict, "points", func() error { _, err := e.db.Adjust(e.owner, m, -141, "太多"); return err })
	if ce.Params["have"] != "140" || ce.Params["want"] != "141" {
		t.Fatalf("below zero: %q %v", ce.Message, ce.Params)
	}
	e.refused(core.ErrInvalid, "reason", func() error { _, err := e.db.Adjust(e.owner, m, -1, ""); return err })
	e.refused(core.ErrInvalid, "points", func() error { _, err := e.db.Adjust(e.owner, m, 0, "零"); return err })

	// A reward: its price comes out of the lots in the same order.
	reward := e.create(amountOff("兑换券", 1000, core.Rules{}))
	e.codes(reward.ID, 3)
	e.refused(core.ErrInvalid, "reward", func() error { _, err := e.db.Spend(e.owner, m, "兑换券"); return err })
	e.refused(core.ErrNotFound, "campaign", func() error { _, err := e.db.Spend(e.owner, m, "没有"); return err })
	e.setLoyalty(func(l *core.Loyalty) { l.Rewards[reward.ID] = 100 })
	s, err := e.db.Spend(e.owner, m, reward.ID)
	if err != nil {
		t.Fatal(err)
	}
	if s.Code == "" || s.Entry.RelatedID != s.Code || s.Entry.Points != -100 || s.Entry.CampaignID != reward.ID || s.Balance != 40 {
		t.Fatalf("spend: %+v code %q balance %d", s.Entry, s.Code, s.Balance)
	}
	if got := e.remaining(b, c); !sameInts(got, []int64{0, 40}) {
		t.Fatalf("lots left after the reward %v, want [0 40]", got)
	}
	if k := e.code(s.Code); k.CampaignID != reward.ID {
		t.Fatalf("reward code %+v", k)
	}
	e.refused(core.ErrConflict, "points", func() error { _, err := e.db.Spend(e.owner, m, reward.ID); return err })
	e.ledgersSound()
}

func TestPointsExpireSweepAndLazyExpiry(t *testing.T) {
	e := newEnv(t)
	m, n := e.customer("13800138012"), e.customer("13800138013")
	lot := e.earn(m, 10000, "").Entry
	e.clock.T = time.Date(2026, 12, 31, 23, 59, 59, 0, shanghai)
	if r, err := e.db.Expire(e.owner, time.Time{}, nil); err != nil || r.Lots != 0 {
		t.Fatalf("sweep before the end of the year: %+v %v", r, err)
	}
	e.clock.T = time.Date(2027, 1, 1, 0, 0, 0, 0, shanghai)
	var calls []int64
	r, err := e.db.Expire(e.owner, time.Time{}, func(done int64) { calls = append(calls, done) })
	if err != nil || r.Lots != 1 || r.Points != 100 || r.Members != 1 || len(calls) != 1 || calls[0] != 1 {
		t.Fatalf("sweep at midnight: %+v %v progress %v", r, err, calls)
	}
	v := e.points(m)
	if v.Balance != 0 || v.Entries[0].Kind != core.PointsExpire || v.Entries[0].Points != -100 || v.Entries[0].RelatedID != lot.ID {
		t.Fatalf("after the sweep: %+v", v.Entries[0])
	}
	if r, err := e.db.Expire(e.owner, time.Time{}, nil); err != nil || r.Lots != 0 {
		t.Fatalf("second sweep: %+v %v", r, err)
	}

	// A lot past its time is not spendable even before a sweep: taking points expires it
	// first, in the same transaction.
	e.setLoyalty(func(l *core.Loyalty) { l.Expiry, l.ExpiryDays = core.ExpireDays, 1 })
	short := e.earn(n, 10000, "").Entry
	e.setLoyalty(func(l *core.Loyalty) { l.Expiry = core.ExpireNever })
	e.adjust(n, 30)
	e.advance(3 * 24 * time.Hour)
	e.refused(core.ErrConflict, "points", func() error { _, err := e.db.Adjust(e.owner, n, -31, "过期的不能用"); return err })
	a := e.adjust(n, -30)
	if a.Expired != 100 || a.Balance != 0 {
		t.Fatalf("take 30 after a lot expired: %+v", a)
	}
	if got := e.remaining(short.ID); got[0] != 0 {
		t.Fatalf("the expired lot has %d left", got[0])
	}

	// Sweeps go in batches, and progress hears of each.
	e.setLoyalty(func(l *core.Loyalty) { l.Expiry, l.ExpiryDays = core.ExpireDays, 1 })
	for i := 0; i < 600; i++ {
		e.adjust(m, 1)
	}
	e.advance(3 * 24 * time.Hour)
	calls = nil
	r, err = e.db.Expire(e.owner, time.Time{}, func(done int64) { calls = append(calls, done) })
	if err != nil || r.Lots != 600 || r.Points != 600 || !sameInts(calls, []int64{500, 600}) {
		t.Fatalf("sweep of 600 lots: %+v %v progress %v", r, err, calls)
	}
	if n := e.auditActions()["points.expire"]; n != 3 {
		t.Fatalf("%d expire audit entries, want one per batch (3)", n)
	}
	e.ledgersSound()
}

func TestPointsReverse(t *testing.T) {
	e := newEnv(t)
	m := e.customer("13800138014")
	e1 := e.earn(m, 10000, "").Entry
	e2 := e.earn(m, 5000, "").Entry
	r, err := e.db.Reverse(e.owner, e2.ID, "订单取消", false, 0)
	if err != nil {
		t.Fatal(err)
	}
	if r.Entry.Kind != core.PointsReverse || r.Entry.Points != -50 || r.Entry.RelatedID != e2.ID || r.Balance != 100 || r.Entry.Reason != "订单取消" {
		t.Fatalf("reverse: %+v balance %d", r.Entry, r.Balance)
	}
	// That lot's points went, not the older lot's that expires at the same time.
	if got := e.remaining(e1.ID, e2.ID); !sameInts(got, []int64{100, 0}) {
		t.Fatalf("lots after the reversal %v", got)
	}
	if spend := e.rawInt(`SELECT spend FROM member WHERE id = ?`, m); spend != 10000 {
		t.Fatalf("spend after the reversal %d", spend)
	}
	if amt := e.rawInt(`SELECT amount FROM member_visit WHERE member_id = ? AND day = ?`, m, day0); amt != 10000 {
		t.Fatalf("visit amount after the reversal %d", amt)
	}
	e.refused(core.ErrConflict, "entry", func() error { _, err := e.db.Reverse(e.owner, e2.ID, "again", false, 0); return err })
	e.refused(core.ErrInvalid, "reason", func() error { _, err := e.db.Reverse(e.owner, e1.ID, "", false, 0); return err })
	e.refused(core.ErrInvalid, "entry", func() error { _, err := e.db.Reverse(e.owner, r.Entry.ID, "not an earn", false, 0); return err })
	e.refused(core.ErrNotFound, "entry", func() error { _, err := e.db.Reverse(e.owner, "nope", "x", false, 0); return err })

	// Points already spent cannot be taken back: the reversal is refused whole.
	e.adjust(m, -60)
	ce := e.refused(core.ErrConflict, "points", func() error { _, err := e.db.Reverse(e.owner, e1.ID, "取消", false, 0); return err })
	if ce.Params["have"] != "40" || ce.Params["want"] != "100" {
		t.Fatalf("short reversal: %v", ce.Params)
	}

	// Cashiers reverse only their own earns, and only recent ones.
	cashier := e.operatorActor("收银员", core.RoleCashier)
	e.refused(core.ErrForbidden, "role", func() error { _, err := e.db.Reverse(cashier, e1.ID, "x", true, 30*time.Minute); return err })
	own, err := e.db.Earn(cashier, m, 2000, "", "T9")
	if err != nil {
		t.Fatal(err)
	}
	e.advance(31 * time.Minute)
	e.refused(core.ErrForbidden, "role", func() error { _, err := e.db.Reverse(cashier, own.Entry.ID, "x", true, 30*time.Minute); return err })
	if _, err := e.db.Reverse(e.owner, own.Entry.ID, "店长撤销", false, 0); err != nil {
		t.Fatal(err)
	}
	if n := e.auditActions()["points.reverse"]; n != 2 {
		t.Fatalf("%d reverse audit entries", n)
	}
	e.ledgersSound()
}

func TestMergeMembers(t *testing.T) {
	e := newEnv(t)
	from, into := e.customer("13800138020"), e.customer("13800138021")
	if _, err := e.db.Topup(e.owner, from, 10000, "", ""); err != nil {
		t.Fatal(err)
	}
	if _, err := e.db.Topup(e.owner, into, 5000, "", ""); err != nil {
		t.Fatal(err)
	}
	early := e.earn(from, 10000, "").Entry // expires 2027-01-01
	e.advance(24 * time.Hour)
	e.setLoyalty(func(l *core.Loyalty) { l.Expiry = core.ExpireNever })
	late := e.earn(from, 3000, "").Entry // never expires
	e.earn(into, 2000, "")               // both bought on day 2
	e.adjust(from, -20)                  // the early lot has 80 left

	camp := e.create(amountOff("会员券", 500, core.Rules{}))
	codes := e.codes(camp.ID, 2)
	e.rawExec(`UPDATE code SET member_id = ? WHERE code = ?`, from, codes[0])
	red := e.mustRedeem(e.owner, codes[1], core.Order{Amount: 10000})
	e.rawExec(`UPDATE redemption SET member_id = ? WHERE id = ?`, from, red.ID)
	for _, r := range []string{"welcome", "birthday"} {
		e.rawExec(`INSERT INTO issue_rule(id, kind, campaign_id, created_ms) VALUES (?, ?, ?, 0)`, r, r, camp.ID)
	}
	e.rawExec(`INSERT INTO issued(rule_id, member_id, period, code, created_ms) VALUES ('welcome', ?, '', 'W1', 0), ('welcome', ?, '', 'W2', 0),
		('birthday', ?, '2025', 'B1', 0)`, from, into, from)
	e.ledgersSound()

	e.refused(core.ErrConflict, "member", func() error { _, err := e.db.Merge(e.owner, into, "13800138021"); return err })
	res, err := e.db.Merge(e.owner, "13800138020", into)
	if err != nil {
		t.Fatal(err)
	}
	if res.From != from || res.Into != into || res.Wallet != 10000 || res.Points != 110 || res.Lots != 2 || res.Codes != 1 || res.Redemptions != 1 {
		t.Fatalf("merge: %+v", res)
	}
	e.ledgersSound()
	if w := e.wallet(into); w != 15000 {
		t.Fatalf("survivor's wallet %s", w)
	}
	v := e.points(into)
	if v.Balance != 20+110 {
		t.Fatalf("survivor's points %d", v.Balance)
	}
	// Each lot moved with its expiry, and names the lot it was earned in.
	moved := map[string]*core.PointsEntry{}
	for _, l := range v.Lots {
		if l.Kind == core.PointsMergeIn {
			moved[l.Ref] = l
		}
	}
	if l := moved[early.ID]; l == nil || l.Remaining != 80 || l.Expires != early.Expires || l.RelatedID != from {
		t.Fatalf("the early lot moved as %+v", l)
	}
	if l := moved[late.ID]; l == nil || l.Remaining != 30 || l.Expires != 0 {
		t.Fatalf("the late lot moved as %+v", l)
	}
	if n := e.rawInt(`SELECT count(*) FROM points_entry WHERE member_id = ? AND kind = 'merge_out' AND related_id = ?`, from, into); n != 2 {
		t.Fatalf("%d merge_out points entries", n)
	}
	if n := e.rawInt(`SELECT count(*) FROM wallet_entry WHERE kind IN ('merge_in', 'merge_out')`); n != 2 {
		t.Fatalf("%d merge wallet entries", n)
	}
	// The merged record keeps its history and its phone, which now finds the survivor.
	var status, mergedInto string
	if err := e.db.Raw().QueryRow(`SELECT status, merged_into FROM member WHERE id = ?`, from).Scan(&status, &mergedInto); err != nil ||
		status != core.MemberMerged || mergedInto != into {
		t.Fatalf("merged record: %s %s %v", status, mergedInto, err)
	}
	if n := e.rawInt(`SELECT count(*) FROM points_entry WHERE member_id = ?`, from); n != 5 {
		t.Fatalf("the merged record has %d points entries, want its 3 and 2 merge_out", n)
	}
	if p, err := e.db.Pay(e.owner, "13800138020", 100, "", ""); err != nil || p.Entry.MemberID != into {
		t.Fatalf("pay with the merged phone: %+v %v", p, err)
	}
	if e.rawInt(`SELECT count(*) FROM code WHERE member_id = ?`, into) != 1 || e.rawInt(`SELECT count(*) FROM redemption WHERE member_id = ?`, into) != 1 {
		t.Fatal("codes or redemptions were not moved")
	}
	// Visits fold: day 1 was from's, day 2 both's (one visit day, two orders).
	if got := e.rawInt(`SELECT visits FROM member WHERE id = ?`, into); got != 2 {
		t.Fatalf("survivor's visit days %d, want 2", got)
	}
	if got := e.rawInt(`SELECT orders FROM member_visit WHERE member_id = ? AND day = '2025-06-11'`, into); got != 2 {
		t.Fatalf("orders on day 2: %d", got)
	}
	if e.rawInt(`SELECT count(*) FROM member_visit WHERE member_id = ?`, from) != 0 || e.rawInt(`SELECT spend FROM member WHERE id = ?`, into) != 15000 {
		t.Fatal("visits or spend were not folded")
	}
	// Issues: the survivor keeps its own welcome, gains from's birthday; from has none.
	if got := e.rawInt(`SELECT count(*) FROM issued WHERE member_id = ?`, into); got != 2 {
		t.Fatalf("survivor has %d issues", got)
	}
	if code := e.rawInt(`SELECT count(*) FROM issued WHERE member_id = ? AND rule_id = 'welcome' AND code = 'W2'`, into); code != 1 {
		t.Fatal("the survivor's own welcome issue was replaced")
	}
	if e.rawInt(`SELECT count(*) FROM issued WHERE member_id = ?`, from) != 0 {
		t.Fatal("from kept issues")
	}

	// Reversing an earn of the merged record takes back the lot it became.
	if _, err := e.db.Reverse(e.owner, late.ID, "取消", false, 0); err != nil {
		t.Fatal(err)
	}
	if got := e.remaining(moved[late.ID].ID, moved[early.ID].ID); !sameInts(got, []int64{0, 80}) {
		t.Fatalf("after reversing the late earn %v", got)
	}
	e.refused(core.ErrConflict, "entry", func() error { _, err := e.db.Reverse(e.owner, late.ID, "again", false, 0); return err })

	// Merging again is refused: both now name the survivor.
	e.refused(core.ErrConflict, "member", func() error { _, err := e.db.Merge(e.owner, from, into); return err })
	if n := e.auditActions()["member.merge"]; n != 1 {
		t.Fatalf("%d merge audit entries", n)
	}
	e.ledgersSound()
}
