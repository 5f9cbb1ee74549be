package store_test

import (
	"strings"
	"testing"
	"time"

	"github.com/kameng/kameng/core"
)

func TestCampaignCreateDefaults(t *testing.T) {
	e := newEnv(t)
	c := e.create(amountOff("券", 2000, core.Rules{}))
	got := e.campaign(c.ID)
	if got.Status != core.StatusActive || got.Currency != "CNY" || got.MerchantID != e.owner.Operator.MerchantID ||
		got.Rules.UsesPerCode != 1 || got.Rules.RollbackHours != 72 || got.Created != t0.UnixMilli() || got.Format != core.DefaultCodeFormat() {
		t.Fatalf("stored campaign %+v", got)
	}
	if byName := e.campaign("券"); byName.ID != c.ID {
		t.Fatalf("lookup by name found %s", byName.ID)
	}
	_, err := e.db.Campaign("nope")
	wantErr(t, err, core.ErrNotFound, "campaign")
	if e.auditActions()["campaign.create"] != 1 {
		t.Fatalf("no audit entry for the creation: %v", e.auditActions())
	}
}

func TestCampaignValidation(t *testing.T) {
	e := newEnv(t)
	e.create(amountOff("已存在", 1000, core.Rules{}))
	cases := []struct {
		name  string
		c     *core.Campaign
		field string
	}{
		{"no name", amountOff("", 1000, core.Rules{}), "name"},
		{"name too long", amountOff(strings.Repeat("券", 81), 1000, core.Rules{}), "name"},
		{"duplicate name", amountOff("已存在", 1000, core.Rules{}), "name"},
		{"zero amount off", amountOff("a", 0, core.Rules{}), "amount_off"},
		{"negative amount off", amountOff("a", -5, core.Rules{}), "amount_off"},
		{"percent 0", &core.Campaign{Name: "p", Kind: core.KindPercentOff}, "percent_off"},
		{"percent 100%", &core.Campaign{Name: "p", Kind: core.KindPercentOff, PercentOff: 10000}, "percent_off"},
		{"gift card without value", giftCard("g", 0), "face_value"},
		{"card key without value", cardKey("k", 0), "face_value"},
		{"unknown kind", &core.Campaign{Name: "x", Kind: "points_x2"}, "kind"},
		{"min spend below the discount", &core.Campaign{Name: "m", Kind: core.KindAmountOff, AmountOff: 2000, MinSpend: 1000}, "min_spend"},
		{"negative min spend", &core.Campaign{Name: "m", Kind: core.KindAmountOff, AmountOff: 2000, MinSpend: -1}, "min_spend"},
		{"negative max discount", &core.Campaign{Name: "m", Kind: core.KindPercentOff, PercentOff: 1000, MaxDiscount: -1}, "max_discount"},
		{"ends before it starts", amountOff("v", 1000, core.Rules{ValidFrom: t0.UnixMilli(), ValidTo: t0.Add(-time.Hour).UnixMilli()}), "valid_to"},
		{"ends when it starts", amountOff("v", 1000, core.Rules{ValidFrom: t0.UnixMilli(), ValidTo: t0.UnixMilli()}), "valid_to"},
		{"negative valid days", amountOff("v", 1000, core.Rules{ValidDays: -1}), "valid_days"},
		{"hours past midnight", amountOff("h", 1000, core.Rules{HoursFrom: 1440}), "hours"},
		{"weekday bit 7", amountOff("w", 1000, core.Rules{Weekdays: 128}), "weekdays"},
		{"negative budget", amountOff("b", 1000, core.Rules{BudgetCount: -1}), "budget"},
		{"code too short", &core.Campaign{Name: "f", Kind: core.KindAmountOff, AmountOff: 1,
			Format: core.CodeFormat{Alphabet: core.DefaultAlphabet, Length: 3, Check: true}}, "length"},
		{"bad prefix", &core.Campaign{Name: "f", Kind: core.KindAmountOff, AmountOff: 1,
			Format: core.CodeFormat{Alphabet: core.DefaultAlphabet, Length: 12, Prefix: "vip-", Check: true}}, "prefix"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if tc.c.Format == (core.CodeFormat{}) {
				tc.c.Format = core.DefaultCodeFormat()
			}
			before := e.counts()
			wantErr(t, e.db.CreateCampaign(e.owner, tc.c), core.ErrInvalid, tc.field)
			if after := e.counts(); after != before {
				t.Fatalf("invalid campaign wrote: %+v → %+v", before, after)
			}
		})
	}
}

func TestCampaignEditRules(t *testing.T) {
	e := newEnv(t)
	c := e.create(amountOff("满100减20", 2000, core.Rules{}))

	// Before any code exists, value and format may change.
	e.advance(time.Minute)
	got, err := e.db.UpdateCampaign(e.owner, c.ID, func(c *core.Campaign) error {
		c.AmountOff = 2500
		c.Format.Length = 14
		return nil
	})
	if err != nil || got.AmountOff != 2500 || got.Format.Length != 14 || got.Updated != e.clock.T.UnixMilli() {
		t.Fatalf("edit before codes: %+v %v", got, err)
	}
	codes := e.codes(c.ID, 3)
	if len(codes[0]) != 15 {
		t.Fatalf("code %s does not have the edited length", codes[0])
	}

	// With codes: the format is locked; the value is not yet.
	e.advance(time.Minute)
	_, err = e.db.UpdateCampaign(e.owner, c.ID, func(c *core.Campaign) error { c.Format.Prefix = "VIP"; return nil })
	ce := wantErr(t, err, core.ErrConflict, "format")
	if !strings.Contains(ce.Message, "format") {
		t.Fatalf("message %q does not name the field", ce.Message)
	}
	if _, err := e.db.UpdateCampaign(e.owner, c.ID, func(c *core.Campaign) error { c.AmountOff = 2000; return nil }); err != nil {
		t.Fatalf("value edit before redemptions: %v", err)
	}

	e.mustRedeem(e.owner, codes[0], core.Order{Amount: 10000})

	// After a redemption: value and kind are locked …
	e.advance(time.Minute)
	for field, edit := range map[string]func(c *core.Campaign) error{
		"amount_off": func(c *core.Campaign) error { c.AmountOff = 3000; return nil },
		"min_spend":  func(c *core.Campaign) error { c.MinSpend = 5000; return nil },
		"kind": func(c *core.Campaign) error {
			c.Kind, c.PercentOff = core.KindPercentOff, 1000
			return nil
		},
	} {
		before := e.counts()
		_, err := e.db.UpdateCampaign(e.owner, c.ID, edit)
		ce := wantErr(t, err, core.ErrConflict, field)
		if !strings.Contains(ce.Message, field) || !strings.Contains(ce.Params["fields"], field) {
			t.Fatalf("%s: message %q params %v do not name the field", field, ce.Message, ce.Params)
		}
		if after := e.counts(); after != before {
			t.Fatalf("%s: refused edit wrote %+v → %+v", field, before, after)
		}
	}
	if got := e.campaign(c.ID); got.AmountOff != 2000 || got.Kind != core.KindAmountOff || got.MinSpend != 0 {
		t.Fatalf("refused edits changed the campaign: %+v", got)
	}

	// … while name, description and rules like the end date still change.
	e.advance(time.Minute)
	end := t0.Add(30 * 24 * time.Hour).UnixMilli()
	got, err = e.db.UpdateCampaign(e.owner, c.ID, func(c *core.Campaign) error {
		c.Name, c.Description, c.Rules.ValidTo = "夏季满减", "仅限堂食", end
		return nil
	})
	if err != nil || got.Name != "夏季满减" || got.Description != "仅限堂食" {
		t.Fatalf("cosmetic edit: %+v %v", got, err)
	}
	stored := e.campaign(c.ID)
	if stored.Name != "夏季满减" || stored.Description != "仅限堂食" || stored.Rules.ValidTo != end || stored.Redeemed != 1 || stored.Issued != 3 {
		t.Fatalf("stored after edit %+v", stored)
	}
	if e.auditActions()["campaign.edit"] != 3 {
		t.Fatalf("campaign.edit audit entries: %v", e.auditActions())
	}

	// Validation applies to edits, and a failed edit changes nothing.
	e.advance(time.Minute)
	_, err = e.db.UpdateCampaign(e.owner, c.ID, func(c *core.Campaign) error { c.Name = ""; return nil })
	wantErr(t, err, core.ErrInvalid, "name")
	_, err = e.db.UpdateCampaign(e.owner, c.ID, func(c *core.Campaign) error { c.Rules.HoursFrom = -1; return nil })
	wantErr(t, err, core.ErrInvalid, "hours")
	if got := e.campaign(c.ID); got.Name != "夏季满减" || got.Rules.HoursFrom != 0 {
		t.Fatalf("invalid edit changed the campaign: %+v", got)
	}
	_, err = e.db.UpdateCampaign(e.owner, "no such campaign", func(c *core.Campaign) error { return nil })
	wantErr(t, err, core.ErrNotFound, "")
}

func TestCampaignGiftCardFaceValueLockedByCodes(t *testing.T) {
	e := newEnv(t)
	c := e.create(giftCard("礼品卡", 10000))
	e.codes(c.ID, 1)
	e.advance(time.Minute)
	_, err := e.db.UpdateCampaign(e.owner, c.ID, func(c *core.Campaign) error { c.FaceValue = 20000; return nil })
	wantErr(t, err, core.ErrConflict, "face_value")
}

func TestCampaignStatus(t *testing.T) {
	e := newEnv(t)
	c := e.create(amountOff("券", 2000, core.Rules{}))
	codes := e.codes(c.ID, 3)

	e.advance(time.Minute)
	p, err := e.db.SetCampaignStatus(e.owner, c.ID, core.StatusPaused)
	if err != nil || p.Status != core.StatusPaused {
		t.Fatalf("pause: %+v %v", p, err)
	}
	e.wantReason(e.owner, codes[0], core.Order{}, core.ReasonPaused)
	before := e.counts()
	if r := e.redeem(e.owner, codes[0], core.Order{}, ""); r.Verdict.Reason != core.ReasonPaused || r.Redemption != nil {
		t.Fatalf("redeem while paused: %+v", r)
	}
	if after := e.counts(); after != before {
		t.Fatalf("redeem while paused wrote: %+v → %+v", before, after)
	}
	_, err = e.db.SetCampaignStatus(e.owner, c.ID, core.StatusPaused)
	wantErr(t, err, core.ErrConflict, "")
	// Paused campaigns can still be edited.
	if _, err := e.db.UpdateCampaign(e.owner, c.ID, func(c *core.Campaign) error { c.Description = "暂停中"; return nil }); err != nil {
		t.Fatal(err)
	}

	e.advance(time.Minute)
	if _, err := e.db.SetCampaignStatus(e.owner, c.ID, core.StatusActive); err != nil {
		t.Fatal(err)
	}
	e.wantReason(e.owner, codes[0], core.Order{}, core.ReasonOK)
	e.mustRedeem(e.owner, codes[0], core.Order{})

	e.advance(time.Minute)
	if _, err := e.db.SetCampaignStatus(e.owner, c.ID, core.StatusArchived); err != nil {
		t.Fatal(err)
	}
	e.wantReason(e.owner, codes[1], core.Order{}, core.ReasonVoided)
	if r := e.redeem(e.owner, codes[1], core.Order{}, ""); r.Verdict.Reason != core.ReasonVoided || r.Redemption != nil {
		t.Fatalf("redeem in an archived campaign: %+v", r)
	}
	e.advance(time.Minute)
	before = e.counts()
	_, err = e.db.UpdateCampaign(e.owner, c.ID, func(c *core.Campaign) error { c.Name = "复活"; return nil })
	wantErr(t, err, core.ErrConflict, "")
	_, err = e.db.SetCampaignStatus(e.owner, c.ID, core.StatusActive)
	wantErr(t, err, core.ErrConflict, "")
	_, err = e.db.GenerateCodes(e.owner, c.ID, 1, nil)
	wantErr(t, err, core.ErrConflict, "")
	if after := e.counts(); after != before {
		t.Fatalf("refused changes to an archived campaign wrote: %+v → %+v", before, after)
	}
	acts := e.auditActions()
	if acts["campaign.paused"] != 1 || acts["campaign.active"] != 1 || acts["campaign.archived"] != 1 {
		t.Fatalf("status audit entries: %v", acts)
	}
}

// An edit must be seen by the next check even when the clock has not moved on
// (two writes in the same millisecond, or a fixed test clock).
func TestCampaignEditSeenAtOnce(t *testing.T) {
	e := newEnv(t)
	other := e.storeActor("二店", "")
	c := e.create(amountOff("券", 2000, core.Rules{}))
	code := e.codes(c.ID, 1)[0]
	e.wantReason(e.owner, code, core.Order{Amount: 3000}, core.ReasonOK)
	e.wantReason(other, code, core.Order{Amount: 3000}, core.ReasonOK)
	if _, err := e.db.UpdateCampaign(e.owner, c.ID, func(c *core.Campaign) error {
		c.MinSpend = 10000
		c.Rules.Stores = []string{e.owner.Store.ID}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	e.wantReason(e.owner, code, core.Order{Amount: 3000}, core.ReasonBelowMinSpend)
	e.wantReason(other, code, core.Order{Amount: 30000}, core.ReasonWrongStore)
	if r := e.redeem(other, code, core.Order{Amount: 30000}, ""); r.Redemption != nil {
		t.Fatalf("redeemed in a store the campaign no longer allows: %+v", r.Verdict)
	}
}
