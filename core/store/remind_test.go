package store_test

import (
	"testing"
	"time"

	"github.com/kameng/kameng/core"
	"github.com/kameng/kameng/core/store"
)

func TestRemindersMaskPhonesAndKeepToConsent(t *testing.T) {
	e := newEnv(t)
	m1 := e.member("13800000001", "张三", true)
	m2 := e.member("13800000002", "李四", false)
	soon := e.create(amountOff("五天券", 500, core.Rules{ValidDays: 5}))
	later := e.create(amountOff("月券", 500, core.Rules{ValidDays: 30}))
	card := e.create(&core.Campaign{Name: "三天卡", Kind: core.KindGiftCard, FaceValue: 10000, Rules: core.Rules{ValidTo: t0.Add(72 * time.Hour).UnixMilli()}})
	ks, kl, kc := e.codes(soon.ID, 6), e.codes(later.ID, 1), e.codes(card.ID, 2)
	give := func(phone string, codes ...string) {
		if _, err := e.db.Distribute(e.owner, codes, phone); err != nil {
			t.Fatal(err)
		}
	}
	give("13800000001", ks[0], ks[1], kl[0], kc[0])
	give("13800000002", ks[2])
	give("13900000009", ks[3])                            // a phone that is no member
	give("", ks[4])                                       // handed out on paper: nobody to remind
	e.mustRedeem(e.owner, ks[1], core.Order{})            // used: nothing to remind of
	e.mustRedeem(e.owner, kc[0], core.Order{Debit: 2500}) // 75.00 left
	if _, err := e.db.SetLoyalty(e.owner, func(l *core.Loyalty) error { l.Expiry, l.ExpiryDays = core.ExpireDays, 3; return nil }); err != nil {
		t.Fatal(err)
	}
	if _, err := e.db.Earn(e.owner, m1, 30000, "", ""); err != nil { // 300 points, through 3 days from today
		t.Fatal(err)
	}
	if _, err := e.db.Earn(e.owner, m2, 10000, "", ""); err != nil {
		t.Fatal(err)
	}
	audits := func() int { return e.auditActions()["remind.reveal"] }

	r, err := e.db.Reminders(e.owner, store.RemindOptions{Now: e.clock.T, Days: 7})
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Items) != 3 || r.NoConsent != 3 || r.Revealed {
		t.Fatalf("consenting only: %d items %+v, %d left out", len(r.Items), r.Items, r.NoConsent)
	}
	got := map[string]store.ReminderItem{}
	for _, it := range r.Items {
		if it.MemberID != m1 || it.Phone != "138****0001" || it.Name != "张三" || !it.Consent {
			t.Fatalf("item %+v", it)
		}
		got[it.What] = it
	}
	if it := got["五天券"]; it.Amount != 500 || it.Expires != t0.AddDate(0, 0, 5).UnixMilli() || it.Kind != string(core.KindAmountOff) {
		t.Fatalf("coupon %+v", it)
	}
	if it := got["三天卡"]; it.Amount != 7500 || it.Expires != t0.Add(72*time.Hour).UnixMilli() {
		t.Fatalf("gift card %+v", it)
	}
	if it := got["points"]; it.Points != 300 || it.Kind != "points" || it.Expires != time.Date(2025, 6, 14, 0, 0, 0, 0, shanghai).UnixMilli() {
		t.Fatalf("points %+v", it)
	}
	if r.Items[0].What != "三天卡" { // soonest first
		t.Fatalf("order %+v", r.Items)
	}
	if audits() != 0 {
		t.Fatal("a masked list was audited as a reveal")
	}

	all, err := e.db.Reminders(e.owner, store.RemindOptions{Now: e.clock.T, Days: 7, All: true})
	if err != nil {
		t.Fatal(err)
	}
	phones := map[string]int{}
	for _, it := range all.Items {
		phones[it.Phone]++
		if it.Phone == "139****0009" && (it.MemberID != "" || it.Consent) {
			t.Fatalf("stranger's item %+v", it)
		}
		if it.MemberID == m2 && it.Consent {
			t.Fatalf("no consent, yet %+v", it)
		}
	}
	if len(all.Items) != 6 || all.NoConsent != 0 || phones["138****0001"] != 3 || phones["138****0002"] != 2 || phones["139****0009"] != 1 {
		t.Fatalf("--all: %+v", all.Items)
	}

	// Revealed: full numbers, and one audit entry per list.
	rev, err := e.db.Reminders(e.owner, store.RemindOptions{Now: e.clock.T, Days: 7, All: true, Reveal: true, File: "sms.csv"})
	if err != nil {
		t.Fatal(err)
	}
	for _, it := range rev.Items {
		if len(it.Phone) != 11 || it.Phone[3:7] == "****" {
			t.Fatalf("revealed phone %q", it.Phone)
		}
	}
	if !rev.Revealed || audits() != 1 {
		t.Fatalf("revealed %v, %d reveal audits", rev.Revealed, audits())
	}

	// Two days ahead: nothing ends yet.
	if r, err := e.db.Reminders(e.owner, store.RemindOptions{Now: e.clock.T, Days: 2, All: true}); err != nil || len(r.Items) != 0 {
		t.Fatalf("two days: %+v %v", r, err)
	}
	// Once the card has passed its end it is no longer reminded of.
	e.advance(73 * time.Hour)
	r, _ = e.db.Reminders(e.owner, store.RemindOptions{Now: e.clock.T, Days: 7})
	for _, it := range r.Items {
		if it.What == "三天卡" {
			t.Fatalf("expired card still listed: %+v", it)
		}
	}
	if _, err := e.db.Reminders(e.owner, store.RemindOptions{Now: e.clock.T, Days: -1}); core.ErrorCode(err) != core.ErrInvalid {
		t.Fatalf("negative days: %v", err)
	}
}
