package store_test

import (
	"testing"
	"time"

	"github.com/kameng/kameng/core"
	"github.com/kameng/kameng/core/store"
)

// member signs a customer up at the owner's store and returns the id.
func (e *env) member(phone, name string, consent bool) string {
	e.t.Helper()
	m, err := e.db.AddMember(e.owner, store.MemberInput{Phone: phone, Name: name, Consent: consent})
	if err != nil {
		e.t.Fatalf("add member %s: %v", phone, err)
	}
	return m.Member.ID
}

func allDays(from, to string) store.AnalyticsFilter {
	return store.AnalyticsFilter{From: from, To: to}
}

func TestHeatmapCellsByLocalWeekdayAndHour(t *testing.T) {
	e := newEnv(t)
	london := e.storeActor("London", "Europe/London")
	c := e.create(amountOff("C", 100, core.Rules{RollbackHours: 72}))
	codes := e.codes(c.ID, 6)
	// t0 is Tuesday 10:00 in Shanghai, 03:00 in London (BST).
	r0 := e.mustRedeem(e.owner, codes[0], core.Order{})
	e.mustRedeem(e.owner, codes[1], core.Order{})
	e.mustRedeem(london, codes[2], core.Order{})
	e.advance(15 * time.Hour) // Wednesday 01:00 in Shanghai, Tuesday 18:00 in London
	e.mustRedeem(e.owner, codes[3], core.Order{})
	e.mustRedeem(london, codes[4], core.Order{})
	// A rollback a day later takes the redemption out of the hour it was made in.
	e.advance(24 * time.Hour)
	if _, err := e.db.Rollback(e.owner, r0.ID, "退货", false, 0); err != nil {
		t.Fatal(err)
	}
	h, err := e.db.Heatmap(allDays("2025-06-01", "2025-06-30"))
	if err != nil {
		t.Fatal(err)
	}
	tue, wed := time.Tuesday, time.Wednesday
	want := map[[2]int]int64{{int(tue), 10}: 1, {int(tue), 3}: 1, {int(wed), 1}: 1, {int(tue), 18}: 1}
	for wd := range 7 {
		for hour := range 24 {
			if got := h.Cells[wd][hour]; got != want[[2]int{wd, hour}] {
				t.Fatalf("cell %s %02d:00 = %d, want %d", time.Weekday(wd), hour, got, want[[2]int{wd, hour}])
			}
		}
	}
	if h.Total != 4 || h.Max != 1 {
		t.Fatalf("total %d max %d", h.Total, h.Max)
	}
	only, err := e.db.Heatmap(store.AnalyticsFilter{From: "2025-06-01", To: "2025-06-30", Store: london.Store.ID})
	if err != nil || only.Total != 2 || only.Cells[tue][3] != 1 || only.Cells[tue][18] != 1 {
		t.Fatalf("London only: %+v %v", only, err)
	}
	// Days outside the range are left out: Wednesday (Shanghai) only.
	wedOnly, err := e.db.Heatmap(allDays("2025-06-11", "2025-06-11"))
	if err != nil || wedOnly.Total != 1 || wedOnly.Cells[wed][1] != 1 {
		t.Fatalf("2025-06-11 only: %+v %v", wedOnly, err)
	}
}

func TestFunnelCountsAndRates(t *testing.T) {
	e := newEnv(t)
	a := e.create(amountOff("A", 500, core.Rules{RollbackHours: 72}))
	b := e.create(amountOff("B", 500, core.Rules{}))
	as := e.codes(a.ID, 10)
	e.codes(b.ID, 5)
	if _, err := e.db.Distribute(e.owner, as[:4], ""); err != nil {
		t.Fatal(err)
	}
	var last *core.Redemption
	for _, code := range as[:3] {
		last = e.mustRedeem(e.owner, code, core.Order{Amount: 1000})
	}
	if _, err := e.db.Rollback(e.owner, last.ID, "错核", false, 0); err != nil {
		t.Fatal(err)
	}
	f, err := e.db.Funnel(allDays(day0, day0))
	if err != nil {
		t.Fatal(err)
	}
	if len(f.Rows) != 2 {
		t.Fatalf("rows %+v", f.Rows)
	}
	var ra store.FunnelRow
	for _, r := range f.Rows {
		if r.CampaignID == a.ID {
			ra = r
		}
	}
	want := store.FunnelRow{CampaignID: a.ID, Campaign: "A", Generated: 10, Distributed: 4, Redeemed: 3, RolledBack: 1, Net: 2,
		DistributedBP: 4000, RedeemedBP: 5000, OverallBP: 2000}
	if ra != want {
		t.Fatalf("funnel A %+v, want %+v", ra, want)
	}
	if tot := f.Total; tot.Generated != 15 || tot.Distributed != 4 || tot.Net != 2 || tot.OverallBP != 1333 {
		t.Fatalf("total %+v", tot)
	}
	only, err := e.db.Funnel(store.AnalyticsFilter{From: day0, To: day0, Campaign: b.ID})
	if err != nil || len(only.Rows) != 1 || only.Rows[0].Generated != 5 || only.Rows[0].RedeemedBP != 0 {
		t.Fatalf("B only: %+v %v", only, err)
	}
	// Another day has nothing.
	empty, err := e.db.Funnel(allDays("2025-06-11", "2025-06-30"))
	if err != nil || len(empty.Rows) != 0 || empty.Total.Generated != 0 {
		t.Fatalf("empty range: %+v %v", empty, err)
	}
}

func TestCostAgainstOrderAmount(t *testing.T) {
	e := newEnv(t)
	c := e.create(amountOff("满减", 2000, core.Rules{}))
	g := e.create(giftCard("卡", 10000))
	codes := e.codes(c.ID, 2)
	e.mustRedeem(e.owner, codes[0], core.Order{Amount: 10000})
	e.mustRedeem(e.owner, codes[1], core.Order{Amount: 5000})
	e.mustRedeem(e.owner, e.codes(g.ID, 1)[0], core.Order{Amount: 3000})
	cost, err := e.db.Cost(allDays(day0, day0), "campaign")
	if err != nil {
		t.Fatal(err)
	}
	var rc store.CostRow
	for _, r := range cost.Rows {
		if r.Key == c.ID {
			rc = r
		}
	}
	if rc.Net != 2 || rc.Discount != 4000 || rc.OrderAmount != 15000 || rc.CostBP != 2666 || rc.AvgDiscount != 2000 || rc.AvgOrder != 7500 {
		t.Fatalf("cost %+v", rc)
	}
	if tot := cost.Total; tot.Discount != 4000 || tot.OrderAmount != 18000 || tot.Value != 3000 || tot.CostBP != 2222 {
		t.Fatalf("total %+v", tot)
	}
}

// A redemption with a member's phone records the member, the visit and the spend; a
// phone that is no member records none. Tier-only campaigns ask the member's tier.
func TestRedeemWithMemberAndTierOnly(t *testing.T) {
	e := newEnv(t)
	gold, err := e.db.SetTier(e.owner, core.Tier{Name: "金卡", MinSpend: 10000})
	if err != nil {
		t.Fatal(err)
	}
	m1 := e.member("13800000001", "张三", true)
	e.member("13800000002", "李四", true)
	c := e.create(amountOff("C", 500, core.Rules{UsesPerCode: 1}))
	vip := e.create(amountOff("VIP", 1000, core.Rules{Tiers: []string{gold.ID}}))
	codes, vips := e.codes(c.ID, 3), e.codes(vip.ID, 3)

	r := e.redeem(e.owner, codes[0], core.Order{Amount: 12000, Member: "13800000001"}, "")
	if !r.Verdict.OK || r.MemberID != m1 || r.Points != 120 {
		t.Fatalf("redeem with member (¥120 earns 120 points): %+v", r)
	}
	var member string
	if err := e.db.Raw().QueryRow(`SELECT COALESCE(member_id, '') FROM redemption WHERE id = ?`, r.Redemption.ID).Scan(&member); err != nil || member != m1 {
		t.Fatalf("redemption.member_id %q %v", member, err)
	}
	var spend, visits int64
	var tier string
	if err := e.db.Raw().QueryRow(`SELECT spend, visits, tier_id FROM member WHERE id = ?`, m1).Scan(&spend, &visits, &tier); err != nil {
		t.Fatal(err)
	}
	if spend != 12000 || visits != 1 || tier != gold.ID {
		t.Fatalf("member after the purchase: spend %d visits %d tier %q", spend, visits, tier)
	}
	// A phone that is no member: redeemed, but nobody's.
	r2 := e.redeem(e.owner, codes[1], core.Order{Amount: 3000, Member: "13900000009"}, "")
	if !r2.Verdict.OK || r2.MemberID != "" {
		t.Fatalf("redeem with a stranger's phone: %+v", r2)
	}

	// Tier-only: the gold member may, the other member and no member may not.
	e.wantReason(e.owner, vips[0], core.Order{Member: "13800000001"}, core.ReasonOK)
	e.wantReason(e.owner, vips[0], core.Order{Member: "13800000002"}, core.ReasonTierOnly)
	e.wantReason(e.owner, vips[0], core.Order{}, core.ReasonTierOnly)
	if r := e.redeem(e.owner, vips[1], core.Order{Member: "13800000002"}, ""); r.Verdict.Reason != core.ReasonTierOnly || r.Redemption != nil {
		t.Fatalf("tier-only redeem by a non-gold member: %+v", r.Verdict)
	}
	if r := e.redeem(e.owner, vips[1], core.Order{Member: "13800000001"}, ""); !r.Verdict.OK {
		t.Fatalf("tier-only redeem by the gold member: %+v", r.Verdict)
	}
}

func TestRepeatPurchaseRate(t *testing.T) {
	e := newEnv(t)
	e.member("13800000001", "a", true)
	e.member("13800000002", "b", true)
	e.member("13800000003", "c", true)
	e.member("13800000004", "d", true) // never buys
	c := e.create(amountOff("C", 100, core.Rules{}))
	codes := e.codes(c.ID, 10)
	buy := func(code, phone string, amount core.Amount) {
		if r := e.redeem(e.owner, code, core.Order{Amount: amount, Member: phone}, ""); !r.Verdict.OK || r.MemberID == "" {
			t.Fatalf("redeem for %s: %+v", phone, r)
		}
	}
	buy(codes[0], "13800000001", 1000)
	buy(codes[1], "13800000001", 1000) // the same day twice: one day
	buy(codes[2], "13800000002", 2000)
	e.advance(24 * time.Hour)
	buy(codes[3], "13800000002", 2000) // a second day: a repeat customer
	buy(codes[4], "13800000003", 500)
	rep, err := e.db.Repeat(allDays(day0, "2025-06-11"))
	if err != nil {
		t.Fatal(err)
	}
	if *rep != (store.Repeat{Members: 3, Repeat: 1, RateBP: 3333, Orders: 5, Amount: 6500}) {
		t.Fatalf("repeat %+v", rep)
	}
	first, err := e.db.Repeat(allDays(day0, day0))
	if err != nil || first.Members != 2 || first.Repeat != 0 || first.RateBP != 0 {
		t.Fatalf("first day: %+v %v", first, err)
	}
	west := e.storeActor("西店", "")
	e.advance(24 * time.Hour)
	if r := e.redeem(west, codes[5], core.Order{Amount: 100, Member: "13800000003"}, ""); !r.Verdict.OK {
		t.Fatal(r.Verdict)
	}
	all, _ := e.db.Repeat(allDays(day0, "2025-06-12"))
	onlyWest, _ := e.db.Repeat(store.AnalyticsFilter{From: day0, To: "2025-06-12", Store: west.Store.ID})
	if all.Repeat != 2 || all.Members != 3 || onlyWest.Members != 1 || onlyWest.Repeat != 0 {
		t.Fatalf("all %+v, 西店 %+v", all, onlyWest)
	}
}

func TestLiabilityEqualsLedgerSums(t *testing.T) {
	e := newEnv(t)
	end := t0.Add(48 * time.Hour).UnixMilli()
	g := e.create(giftCard("卡", 10000))
	short := e.create(&core.Campaign{Name: "短卡", Kind: core.KindGiftCard, FaceValue: 5000, Rules: core.Rules{ValidTo: end}})
	cards, shorts := e.codes(g.ID, 3), e.codes(short.ID, 2)
	e.mustRedeem(e.owner, cards[0], core.Order{Debit: 2575})
	e.mustRedeem(e.owner, cards[1], core.Order{Debit: 10000}) // emptied
	e.mustRedeem(e.owner, shorts[0], core.Order{Debit: 1})
	if err := e.db.Void(e.owner, cards[2], "丢失"); err != nil { // voided: no longer owed
		t.Fatal(err)
	}
	m1, m2 := e.member("13800000001", "a", true), e.member("13800000002", "b", false)
	if _, err := e.db.Topup(e.owner, m1, 10000, "", ""); err != nil {
		t.Fatal(err)
	}
	if _, err := e.db.Topup(e.owner, m2, 3333, "", ""); err != nil {
		t.Fatal(err)
	}
	if _, err := e.db.Pay(e.owner, m1, 1234, "", ""); err != nil {
		t.Fatal(err)
	}
	if _, err := e.db.Earn(e.owner, m1, 12345, "", ""); err != nil {
		t.Fatal(err)
	}
	if _, err := e.db.Earn(e.owner, m2, 500, "", ""); err != nil {
		t.Fatal(err)
	}

	l, err := e.db.Liability(e.clock.T)
	if err != nil {
		t.Fatal(err)
	}
	// Gift cards: 74.25 + 49.99 + 50.00 valid; nothing expired yet.
	if l.GiftCards.Valid != (store.Outstanding{Count: 3, Amount: 7425 + 4999 + 5000}) || l.GiftCards.Expired.Count != 0 {
		t.Fatalf("gift cards %+v", l.GiftCards)
	}
	var sum core.Amount
	for _, code := range append(cards[:2], shorts...) {
		b, err := e.db.LedgerBalance(code)
		if err != nil {
			t.Fatal(err)
		}
		sum += b
	}
	if l.GiftCards.Ledger != sum || l.GiftCards.Balance != sum || l.GiftCards.Mismatch != 0 {
		t.Fatalf("gift cards %+v, ledger of the active cards %d", l.GiftCards, sum)
	}
	var walletLedger core.Amount
	var pointsLedger int64
	e.db.Raw().QueryRow(`SELECT sum(amount) FROM wallet_entry`).Scan(&walletLedger)
	e.db.Raw().QueryRow(`SELECT sum(points) FROM points_entry`).Scan(&pointsLedger)
	if l.Wallets != (store.WalletLiability{Members: 2, Balance: 10000 - 1234 + 3333, Ledger: walletLedger}) || walletLedger != 12099 {
		t.Fatalf("wallets %+v (ledger %d)", l.Wallets, walletLedger)
	}
	if l.Points.Points != 123+5 || l.Points.Ledger != pointsLedger || l.Points.Lots != 128 || l.Points.Members != 2 || !l.OK {
		t.Fatalf("points %+v (ledger %d), ok %v", l.Points, pointsLedger, l.OK)
	}

	// Past the short cards' end they are owed still, as expired.
	e.advance(72 * time.Hour)
	l, _ = e.db.Liability(e.clock.T)
	if l.GiftCards.Valid != (store.Outstanding{Count: 1, Amount: 7425}) || l.GiftCards.Expired != (store.Outstanding{Count: 2, Amount: 9999}) {
		t.Fatalf("after the end: %+v", l.GiftCards)
	}

	// A cached balance that left its ledger is reported.
	if _, err := e.db.Raw().Exec(`UPDATE code SET balance = balance + 1 WHERE code = ?`, cards[0]); err != nil {
		t.Fatal(err)
	}
	if _, err := e.db.Raw().Exec(`UPDATE member SET wallet = wallet - 7 WHERE id = ?`, m2); err != nil {
		t.Fatal(err)
	}
	l, _ = e.db.Liability(e.clock.T)
	if l.OK || l.GiftCards.Mismatch != 1 || l.Wallets.Mismatch != -7 || l.Points.Mismatch != 0 {
		t.Fatalf("tampered: %+v", l)
	}
}

func TestForecastByMonthOfLastUse(t *testing.T) {
	e := newEnv(t)
	endJune := time.Date(2025, 7, 1, 0, 0, 0, 0, shanghai).UnixMilli() // valid through 30 June
	g := e.create(&core.Campaign{Name: "卡", Kind: core.KindGiftCard, FaceValue: 10000, Rules: core.Rules{ValidTo: endJune}})
	c := e.create(amountOff("券", 500, core.Rules{ValidDays: 30}))
	p := e.create(&core.Campaign{Name: "折", Kind: core.KindPercentOff, PercentOff: 1000, Rules: core.Rules{ValidTo: endJune}})
	cards, coupons, pcts := e.codes(g.ID, 3), e.codes(c.ID, 4), e.codes(p.ID, 2)
	e.mustRedeem(e.owner, cards[0], core.Order{Debit: 10000}) // emptied: owes nothing
	e.mustRedeem(e.owner, cards[1], core.Order{Debit: 2500})
	if _, err := e.db.Distribute(e.owner, coupons[:3], ""); err != nil { // valid 30 days from today: to 10 July
		t.Fatal(err)
	}
	e.mustRedeem(e.owner, coupons[0], core.Order{})
	e.mustRedeem(e.owner, pcts[0], core.Order{Amount: 1000})
	if _, err := e.db.SetLoyalty(e.owner, func(l *core.Loyalty) error { l.Expiry, l.ExpiryDays = core.ExpireDays, 40; return nil }); err != nil {
		t.Fatal(err)
	}
	m := e.member("13800000001", "a", true)
	if _, err := e.db.Earn(e.owner, m, 30000, "", ""); err != nil { // 300 points, valid 40 days: through 20 July
		t.Fatal(err)
	}
	rows, err := e.db.Forecast(allDays("2025-06-01", "2025-12-31"), shanghai)
	if err != nil {
		t.Fatal(err)
	}
	want := []store.ForecastRow{
		{Month: "2025-06", GiftCards: 2, GiftCardBalance: 7500 + 10000, Coupons: 1},
		{Month: "2025-07", Coupons: 2, CouponValue: 1000, PointsLots: 1, Points: 300},
	}
	if len(rows) != len(want) {
		t.Fatalf("forecast %+v", rows)
	}
	for i := range want {
		if rows[i] != want[i] {
			t.Fatalf("month %d: %+v, want %+v", i, rows[i], want[i])
		}
	}
	// A range that ends on 30 June keeps June (its last day) and drops July.
	june, err := e.db.Forecast(allDays("2025-06-01", "2025-06-30"), shanghai)
	if err != nil || len(june) != 1 || june[0].Month != "2025-06" {
		t.Fatalf("June only: %+v %v", june, err)
	}
	// One campaign: its codes only, no points.
	one, err := e.db.Forecast(store.AnalyticsFilter{From: "2025-06-01", To: "2025-12-31", Campaign: c.ID}, shanghai)
	if err != nil || len(one) != 1 || one[0] != (store.ForecastRow{Month: "2025-07", Coupons: 2, CouponValue: 1000}) {
		t.Fatalf("campaign only: %+v %v", one, err)
	}
}
