package store_test

import (
	"errors"
	"testing"

	"github.com/kameng/kameng/core"
	"github.com/kameng/kameng/core/imports"
	"github.com/kameng/kameng/core/store"
)

func TestImportCardKeys(t *testing.T) {
	e := newEnv(t)
	c := e.create(cardKey("话费卡100元", 10000))
	b, err := e.db.ImportCodes(e.owner, c.ID, []store.ImportRow{
		{Line: 1, Code: "8613800000001", Secret: "PIN-0001"},
		{Line: 2, Code: "8613800000002", Secret: "PIN-0002"},
		{Line: 3, Code: "8613800000003", Secret: "PIN-0003"},
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if b.Source != "import" || b.Count != 3 {
		t.Fatalf("batch %+v", b)
	}
	if n, _ := e.db.CountCodes(store.CodeFilter{Campaign: c.ID}); n != 3 {
		t.Fatalf("%d codes", n)
	}
	if got := e.campaign(c.ID).Issued; got != 3 {
		t.Fatalf("issued %d", got)
	}
	if s, err := e.db.Reveal(e.owner, "8613800000002", "secret"); err != nil || s != "PIN-0002" {
		t.Fatalf("reveal %q %v", s, err)
	}
	v := e.wantReason(e.owner, "8613-8000-0000-1", core.Order{Amount: 10000}, core.ReasonOK)
	if v.Value != 10000 || v.Code != "8613800000001" {
		t.Fatalf("verdict %+v", v)
	}

	before := e.counts()
	batches, _ := e.db.Batches(c.ID)
	_, err = e.db.ImportCodes(e.owner, c.ID, []store.ImportRow{
		{Line: 1, Code: "8613800000010", Secret: "PIN-0010"},
		{Line: 2, Code: "8613800000002", Secret: "PIN-XXXX"}, // already in the database
		{Line: 3, Code: "8613800000011", Secret: "PIN-0011"},
		{Line: 4, Code: "8613800000010", Secret: "PIN-0010"}, // twice in the file
		{Line: 5, Code: "8613800000012", Secret: ""},         // card key without its secret
	}, nil)
	var rej *store.ImportRejected
	if !errors.As(err, &rej) {
		t.Fatalf("error %T %v, want *store.ImportRejected", err, err)
	}
	want := []imports.Problem{
		{Line: 2, Field: "code", Reason: imports.ReasonDuplicate},
		{Line: 4, Field: "code", Reason: imports.ReasonDuplicate},
		{Line: 5, Field: "secret", Reason: imports.ReasonEmpty},
	}
	if len(rej.Problems) != len(want) {
		t.Fatalf("problems %+v, want %+v", rej.Problems, want)
	}
	for i, p := range rej.Problems {
		if p.Line != want[i].Line || p.Field != want[i].Field || p.Reason != want[i].Reason {
			t.Fatalf("problem %d: %+v, want %+v", i, p, want[i])
		}
	}
	if after := e.counts(); after != before {
		t.Fatalf("refused import wrote: %+v → %+v", before, after)
	}
	if again, _ := e.db.Batches(c.ID); len(again) != len(batches) {
		t.Fatalf("refused import left a batch: %d → %d", len(batches), len(again))
	}
	if _, err := e.db.FindCode("8613800000010", false); core.ErrorCode(err) != core.ErrNotFound {
		t.Fatalf("a row of the refused import exists: %v", err)
	}
	if got := e.campaign(c.ID).Issued; got != 3 {
		t.Fatalf("issued %d after a refused import", got)
	}
	// The secret of the existing code was not overwritten.
	if s, _ := e.db.Reveal(e.owner, "8613800000002", "secret"); s != "PIN-0002" {
		t.Fatalf("secret changed to %q", s)
	}
}

func TestImportCardKeyWithoutSecretRefused(t *testing.T) {
	e := newEnv(t)
	c := e.create(cardKey("卡密", 1000))
	before := e.counts()
	_, err := e.db.ImportCodes(e.owner, c.ID, []store.ImportRow{
		{Line: 1, Code: "CARD0001", Secret: "1234"},
		{Line: 2, Code: "CARD0002"},
	}, nil)
	var rej *store.ImportRejected
	if !errors.As(err, &rej) || len(rej.Problems) != 1 || rej.Problems[0].Line != 2 || rej.Problems[0].Field != "secret" {
		t.Fatalf("error %v", err)
	}
	if after := e.counts(); after != before {
		t.Fatalf("refused import wrote: %+v → %+v", before, after)
	}
	_, err = e.db.ImportCodes(e.owner, c.ID, nil, nil)
	wantErr(t, err, core.ErrInvalid, "file")
}

func TestImportGiftCards(t *testing.T) {
	e := newEnv(t)
	c := e.create(giftCard("商城礼品卡", 10000))
	if _, err := e.db.ImportCodes(e.owner, c.ID, []store.ImportRow{
		{Line: 2, Code: "GC0001", Face: 5000},
		{Line: 3, Code: "GC0002"},
	}, nil); err != nil {
		t.Fatal(err)
	}
	for code, want := range map[string]core.Amount{"GC0001": 5000, "GC0002": 10000} {
		k := e.code(code)
		bal, _ := e.db.LedgerBalance(code)
		if k.Balance != want || bal != want {
			t.Fatalf("%s: balance %d ledger %d, want %d", code, k.Balance, bal, want)
		}
	}
	e.mustRedeem(e.owner, "gc0001", core.Order{Amount: 2000})
	if k := e.code("GC0001"); k.Balance != 3000 {
		t.Fatalf("balance %d", k.Balance)
	}
	if bad, _ := e.db.LedgerMismatches(); len(bad) != 0 {
		t.Fatalf("ledger mismatches %v", bad)
	}
}
