package store_test

import (
	"strings"
	"testing"
	"time"

	"github.com/kameng/kameng/core"
	"github.com/kameng/kameng/core/store"
)

func TestGenerateCodes(t *testing.T) {
	e := newEnv(t)
	f := core.DefaultCodeFormat()
	f.Prefix = "KM"
	c := e.create(&core.Campaign{Name: "券", Kind: core.KindAmountOff, AmountOff: 1000, Format: f})
	before := e.counts()
	var progress []int64
	b, err := e.db.GenerateCodes(e.owner, c.ID, 500, func(done int64) { progress = append(progress, done) })
	if err != nil {
		t.Fatal(err)
	}
	if b.Count != 500 || b.Source != "generate" || b.CampaignID != c.ID {
		t.Fatalf("batch %+v", b)
	}
	if len(progress) == 0 || progress[len(progress)-1] != 500 {
		t.Fatalf("progress %v does not end at 500", progress)
	}
	seen := map[string]bool{}
	if err := e.db.EachCode(store.CodeFilter{Batch: b.ID}, false, func(k *core.Code) error {
		if seen[k.Code] {
			t.Fatalf("code %s twice", k.Code)
		}
		seen[k.Code] = true
		if !strings.HasPrefix(k.Code, "KM") || len(k.Code) != 2+12+1 || f.Verify(k.Code) != nil {
			t.Fatalf("code %s does not fit the format: %v", k.Code, f.Verify(k.Code))
		}
		if k.Status != core.CodeActive || k.Uses != 0 || k.CampaignID != c.ID || k.HasSecret {
			t.Fatalf("new code %+v", k)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if len(seen) != 500 {
		t.Fatalf("%d codes listed", len(seen))
	}
	after := e.counts()
	if after.Codes != before.Codes+500 || after.Audit != before.Audit+1 || after.Outbox != before.Outbox+1 {
		t.Fatalf("counts %+v → %+v", before, after)
	}
	if got := e.campaign(c.ID).Issued; got != 500 {
		t.Fatalf("issued %d", got)
	}
	if rep := e.total(day0, day0); rep.Generated != 500 {
		t.Fatalf("report generated %d", rep.Generated)
	}
	if n, _ := e.db.CountCodes(store.CodeFilter{Campaign: c.ID, Status: "unused"}); n != 500 {
		t.Fatalf("unused %d", n)
	}
	_, err = e.db.GenerateCodes(e.owner, c.ID, 0, nil)
	wantErr(t, err, core.ErrInvalid, "count")
	_, err = e.db.GenerateCodes(e.owner, "no such campaign", 1, nil)
	wantErr(t, err, core.ErrNotFound, "")
}

func TestGenerateGiftCardsOpenLedger(t *testing.T) {
	e := newEnv(t)
	c := e.create(giftCard("礼品卡", 20000))
	for _, k := range e.codes(c.ID, 5) {
		bal, _ := e.db.LedgerBalance(k)
		if got := e.code(k).Balance; got != 20000 || bal != 20000 {
			t.Fatalf("%s: balance %d ledger %d", k, got, bal)
		}
	}
	if bad, _ := e.db.LedgerMismatches(); len(bad) != 0 {
		t.Fatalf("mismatches %v", bad)
	}
}

// A batch that would make guessing too easy is refused whole: no code of it is written.
func TestGenerateRefusesGuessableBatch(t *testing.T) {
	e := newEnv(t)
	f := core.DefaultCodeFormat()
	f.Length = 8 // 32^8 ≈ 1.1e12 codes: at most 1099 may be issued
	c := e.create(&core.Campaign{Name: "短码", Kind: core.KindAmountOff, AmountOff: 100, Format: f})
	e.codes(c.ID, 1000)
	before := e.counts()
	_, err := e.db.GenerateCodes(e.owner, c.ID, 100, nil)
	ce := wantErr(t, err, core.ErrInvalid, "length")
	if ce.Params["odds"] == "" {
		t.Fatalf("params %v do not state the odds", ce.Params)
	}
	if after := e.counts(); after != before {
		t.Fatalf("refused batch wrote: %+v → %+v", before, after)
	}
	if got := e.campaign(c.ID).Issued; got != 1000 {
		t.Fatalf("issued %d", got)
	}
	if batches, _ := e.db.Batches(c.ID); len(batches) != 1 {
		t.Fatalf("%d batches", len(batches))
	}
	e.codes(c.ID, 99) // up to the limit is fine
}

// With an alphabet that holds 0 and 1, what people type as O, I or L is read as 0 or 1.
func TestCheckFoldsLookAlikes(t *testing.T) {
	e := newEnv(t)
	f := core.CodeFormat{Alphabet: "0123456789ABCDEFGHJKMNPQRSTVWXYZ", Length: 12, Group: 4, Check: true}
	c := e.create(&core.Campaign{Name: "克罗克福德", Kind: core.KindAmountOff, AmountOff: 100, Format: f})
	var code string
	for _, k := range e.codes(c.ID, 40) {
		if strings.ContainsAny(k[:12], "01") {
			code = k
			break
		}
	}
	if code == "" {
		t.Fatal("no code with 0 or 1 among 40")
	}
	typed := strings.NewReplacer("0", "o", "1", "l").Replace(f.Display(code))
	if v := e.wantReason(e.owner, typed, core.Order{}, core.ReasonOK); v.Code != code {
		t.Fatalf("typed %s found %s, want %s", typed, v.Code, code)
	}
	typed = strings.NewReplacer("0", "O", "1", "I").Replace(code)
	e.wantReason(e.owner, typed, core.Order{}, core.ReasonOK)
	e.mustRedeem(e.owner, typed, core.Order{})
	if k := e.code(code); k.Uses != 1 {
		t.Fatalf("uses %d", k.Uses)
	}
}

func TestReportGroupings(t *testing.T) {
	e := newEnv(t)
	second := e.storeActor("二店", "")
	a := e.create(amountOff("A券", 1000, core.Rules{}))
	b := e.create(amountOff("B券", 500, core.Rules{}))
	ca, cb := e.codes(a.ID, 3), e.codes(b.ID, 3)
	e.mustRedeem(e.owner, ca[0], core.Order{Amount: 3000})
	e.mustRedeem(second, cb[0], core.Order{Amount: 2000})
	e.clock.T = t0.Add(24 * time.Hour)
	e.mustRedeem(second, ca[1], core.Order{Amount: 4000})

	byStore, err := e.db.Report(store.ReportFilter{From: "2025-06-10", To: "2025-06-11", By: "store"})
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]store.ReportRow{}
	for _, r := range byStore {
		got[r.Name] = r
	}
	if got["旗舰店"].Redeemed != 1 || got["旗舰店"].Discount != 1000 || got["二店"].Redeemed != 2 || got["二店"].Discount != 1500 {
		t.Fatalf("by store %+v", byStore)
	}
	byDay, _ := e.db.Report(store.ReportFilter{From: "2025-06-10", To: "2025-06-11", By: "day"})
	if len(byDay) != 2 || byDay[0].Key != "2025-06-10" || byDay[0].Redeemed != 2 || byDay[1].Redeemed != 1 {
		t.Fatalf("by day %+v", byDay)
	}
	byCampaign, _ := e.db.Report(store.ReportFilter{From: "2025-06-10", To: "2025-06-11", By: "campaign", Store: second.Store.ID})
	if len(byCampaign) != 2 {
		t.Fatalf("by campaign in 二店 %+v", byCampaign)
	}
	for _, r := range byCampaign {
		if (r.Key == a.ID && (r.Name != "A券" || r.Redeemed != 1)) || (r.Key == b.ID && (r.Name != "B券" || r.Redeemed != 1)) {
			t.Fatalf("by campaign in 二店 %+v", byCampaign)
		}
	}
	if tot := e.total("2025-06-11", "2025-06-11"); tot.Redeemed != 1 || tot.OrderAmount != 4000 {
		t.Fatalf("total of the second day %+v", tot)
	}
	_, err = e.db.Report(store.ReportFilter{From: day0, To: day0, By: "week"})
	wantErr(t, err, core.ErrInvalid, "by")
}
