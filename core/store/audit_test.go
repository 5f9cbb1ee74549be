package store_test

import (
	"testing"
	"time"

	"github.com/kameng/kameng/core"
)

// auditEnv makes a database with a handful of audited operations.
func auditEnv(t *testing.T) (*env, int64) {
	e := newEnv(t)
	c := e.create(amountOff("券", 2000, core.Rules{})) // 2
	codes := e.codes(c.ID, 3)                         // 3
	e.advance(time.Minute)
	red := e.mustRedeem(e.owner, codes[0], core.Order{Amount: 5000}) // 4
	e.advance(time.Minute)
	if _, err := e.db.Rollback(e.owner, red.ID, "退货", false, 0); err != nil { // 5
		t.Fatal(err)
	}
	e.mustRedeem(e.owner, codes[1], core.Order{}) // 6
	n, brk, err := e.db.VerifyAudit()
	if err != nil || brk != nil {
		t.Fatalf("sound chain: %d %+v %v", n, brk, err)
	}
	if n != 6 || e.counts().Audit != 6 {
		t.Fatalf("verified %d entries, table has %d, want 6", n, e.counts().Audit)
	}
	return e, n
}

func TestAuditChainSound(t *testing.T) {
	e, _ := auditEnv(t)
	var prev = core.GenesisHash
	var seq int64
	var actions []string
	e.db.EachAudit(func(a *core.AuditEntry) error {
		seq++
		if a.Seq != seq || a.PrevHash != prev || a.Hash != a.ComputeHash(prev) {
			t.Errorf("entry %d: %+v", seq, a)
		}
		prev = a.Hash
		actions = append(actions, a.Action)
		return nil
	})
	want := []string{"init", "campaign.create", "codes.generate", "redeem", "rollback", "redeem"}
	if len(actions) != len(want) {
		t.Fatalf("actions %v, want %v", actions, want)
	}
	for i := range want {
		if actions[i] != want[i] {
			t.Fatalf("actions %v, want %v", actions, want)
		}
	}
}

func TestAuditTamperedDetail(t *testing.T) {
	e, _ := auditEnv(t)
	if _, err := e.db.Raw().Exec("UPDATE audit SET detail = ? WHERE seq = 3", `{"campaign_id":"x","count":999999}`); err != nil {
		t.Fatal(err)
	}
	_, brk, err := e.db.VerifyAudit()
	if err != nil {
		t.Fatal(err)
	}
	if brk == nil || brk.Seq != 3 || brk.Why != "hash" || brk.Action != "codes.generate" {
		t.Fatalf("break %+v, want seq 3 (codes.generate) hash", brk)
	}
}

func TestAuditTamperedOtherColumns(t *testing.T) {
	for _, q := range []string{
		"UPDATE audit SET operator_id = 'someone-else' WHERE seq = 4",
		"UPDATE audit SET ts_ms = ts_ms + 1 WHERE seq = 4",
		"UPDATE audit SET action = 'void' WHERE seq = 4",
	} {
		e, _ := auditEnv(t)
		if _, err := e.db.Raw().Exec(q); err != nil {
			t.Fatal(err)
		}
		_, brk, err := e.db.VerifyAudit()
		if err != nil || brk == nil || brk.Seq != 4 || brk.Why != "hash" {
			t.Fatalf("%s: break %+v %v, want seq 4 hash", q, brk, err)
		}
	}
}

func TestAuditDeletedEntry(t *testing.T) {
	e, _ := auditEnv(t)
	if _, err := e.db.Raw().Exec("DELETE FROM audit WHERE seq = 3"); err != nil {
		t.Fatal(err)
	}
	_, brk, err := e.db.VerifyAudit()
	if err != nil {
		t.Fatal(err)
	}
	if brk == nil || brk.Seq != 4 || brk.Why != "link" {
		t.Fatalf("break %+v, want seq 4 link", brk)
	}
}

func TestAuditRewrittenEntryAndHash(t *testing.T) {
	// Rewriting an entry together with its own hash is caught at the next link.
	e, _ := auditEnv(t)
	var entry *core.AuditEntry
	e.db.EachAudit(func(a *core.AuditEntry) error {
		if a.Seq == 4 {
			entry = a
		}
		return nil
	})
	entry.Detail = []byte(`{"campaign_id":"x","code":"x","discount":0,"order":0,"value":0}`)
	forged := entry.ComputeHash(entry.PrevHash)
	if _, err := e.db.Raw().Exec("UPDATE audit SET detail = ?, hash = ? WHERE seq = 4", string(entry.Detail), forged); err != nil {
		t.Fatal(err)
	}
	_, brk, err := e.db.VerifyAudit()
	if err != nil || brk == nil || brk.Seq != 5 || brk.Why != "link" {
		t.Fatalf("break %+v %v, want seq 5 link", brk, err)
	}
}

func TestAuditContinuesAcrossHandles(t *testing.T) {
	e, _ := auditEnv(t)
	other := e.reopen()
	c := &core.Campaign{Name: "另一个进程", Kind: core.KindAmountOff, AmountOff: 100, Format: core.DefaultCodeFormat()}
	if err := other.CreateCampaign(e.owner, c); err != nil {
		t.Fatal(err)
	}
	e.create(amountOff("本进程", 100, core.Rules{}))
	n, brk, err := e.db.VerifyAudit()
	if err != nil || brk != nil || n != 8 {
		t.Fatalf("chain after writes from two handles: %d %+v %v", n, brk, err)
	}
}
