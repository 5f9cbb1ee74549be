package store_test

import (
	"fmt"
	"sync"
	"testing"

	"github.com/kameng/kameng/core"
	"github.com/kameng/kameng/core/store"
)

const racers = 16

// race runs fn(i) in racers goroutines released at once, each with its own handle
// on the file when separate is set (as separate processes would), else all on e.db.
// It returns the results in goroutine order.
func race(t *testing.T, e *env, separate bool, fn func(db *store.DB, i int) (*store.RedeemResult, error)) []*store.RedeemResult {
	t.Helper()
	dbs := make([]*store.DB, racers)
	for i := range dbs {
		dbs[i] = e.db
		if separate {
			db, err := store.Open(e.path)
			if err != nil {
				t.Fatal(err)
			}
			db.Clock = e.clock // read only while racing
			if err := db.Unlock(testKEK()); err != nil {
				t.Fatal(err)
			}
			dbs[i] = db
		}
	}
	results := make([]*store.RedeemResult, racers)
	errs := make([]error, racers)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := 0; i < racers; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			results[i], errs[i] = fn(dbs[i], i)
		}()
	}
	close(start)
	wg.Wait()
	if separate {
		for _, db := range dbs {
			if err := db.Close(); err != nil {
				t.Errorf("close: %v", err)
			}
		}
	}
	for i, err := range errs {
		if err != nil {
			t.Fatalf("racer %d: %v", i, err)
		}
	}
	return results
}

func TestConcurrentSingleUseRedeem(t *testing.T) {
	for _, separate := range []bool{true, false} {
		t.Run(fmt.Sprintf("separate=%v", separate), func(t *testing.T) {
			e := newEnv(t)
			c := e.create(amountOff("秒杀券", 2000, core.Rules{}))
			code := e.codes(c.ID, 1)[0]
			before := e.counts()
			results := race(t, e, separate, func(db *store.DB, i int) (*store.RedeemResult, error) {
				return db.Redeem(e.owner, code, core.Order{Amount: 5000, Ref: fmt.Sprint("order-", i)}, "")
			})
			ok := 0
			for _, r := range results {
				switch {
				case r.Verdict.OK && r.Redemption != nil:
					ok++
				case r.Verdict.Reason == core.ReasonAlreadyRedeemed && r.Redemption == nil:
				default:
					t.Errorf("unexpected result %+v", r)
				}
			}
			if ok != 1 {
				t.Fatalf("%d redemptions succeeded, want exactly 1", ok)
			}
			after := e.counts()
			if after.Redemptions != before.Redemptions+1 || after.Audit != before.Audit+1 || after.Outbox != before.Outbox+1 {
				t.Fatalf("counts %+v → %+v", before, after)
			}
			reds, err := e.db.Redemptions(store.RedemptionFilter{Code: code})
			if err != nil || len(reds) != 1 {
				t.Fatalf("redemptions of the code: %d %v", len(reds), err)
			}
			if k := e.code(code); k.Uses != 1 {
				t.Fatalf("uses %d", k.Uses)
			}
			if camp := e.campaign(c.ID); camp.Redeemed != 1 || camp.Spent != 2000 {
				t.Fatalf("campaign redeemed %d spent %d", camp.Redeemed, camp.Spent)
			}
			if rep := e.total(day0, day0); rep.Redeemed != 1 {
				t.Fatalf("report %+v", rep)
			}
			if n, brk, err := e.db.VerifyAudit(); err != nil || brk != nil {
				t.Fatalf("audit chain after the race (%d entries): %+v %v", n, brk, err)
			}
		})
	}
}

func TestConcurrentGiftCardDebits(t *testing.T) {
	for _, separate := range []bool{true, false} {
		t.Run(fmt.Sprintf("separate=%v", separate), func(t *testing.T) {
			e := newEnv(t)
			c := e.create(giftCard("储值卡", 10000))
			code := e.codes(c.ID, 1)[0]
			results := race(t, e, separate, func(db *store.DB, i int) (*store.RedeemResult, error) {
				return db.Redeem(e.owner, code, core.Order{Amount: 2000, Debit: 1500}, "")
			})
			ok := 0
			for _, r := range results {
				switch {
				case r.Verdict.OK && r.Redemption != nil && r.Redemption.Value == 1500:
					ok++
				case !r.Verdict.OK && r.Redemption == nil && r.Verdict.Reason == core.ReasonInsufficientBalance:
				default:
					t.Errorf("unexpected result %+v", r)
				}
			}
			if ok != 6 {
				t.Fatalf("%d debits of 1500 from 10000 succeeded, want 6", ok)
			}
			k := e.code(code)
			bal, err := e.db.LedgerBalance(code)
			if err != nil || k.Balance != 1000 || bal != 1000 {
				t.Fatalf("balance %d, ledger %d (%v), want 1000", k.Balance, bal, err)
			}
			if bad, err := e.db.LedgerMismatches(); err != nil || len(bad) != 0 {
				t.Fatalf("ledger mismatches %v %v", bad, err)
			}
			if n := e.counts().Redemptions; n != 6 {
				t.Fatalf("%d redemptions, want 6", n)
			}
			if camp := e.campaign(c.ID); camp.Spent != 9000 || camp.Redeemed != 6 {
				t.Fatalf("campaign spent %d redeemed %d", camp.Spent, camp.Redeemed)
			}
		})
	}
}

func TestConcurrentSameIdempotencyKey(t *testing.T) {
	e := newEnv(t)
	c := e.create(giftCard("储值卡", 10000))
	code := e.codes(c.ID, 1)[0]
	results := race(t, e, true, func(db *store.DB, i int) (*store.RedeemResult, error) {
		return db.Redeem(e.owner, code, core.Order{Amount: 1000}, "till-9/order-1")
	})
	var id string
	fresh := 0
	for _, r := range results {
		if !r.Verdict.OK || r.Redemption == nil {
			t.Fatalf("result %+v", r)
		}
		if id == "" {
			id = r.Redemption.ID
		}
		if r.Redemption.ID != id {
			t.Fatalf("two redemptions for one key: %s and %s", id, r.Redemption.ID)
		}
		if !r.Replayed {
			fresh++
		}
	}
	if fresh != 1 {
		t.Fatalf("%d results not marked as replays, want 1", fresh)
	}
	if k := e.code(code); k.Balance != 9000 {
		t.Fatalf("balance %d, want 9000", k.Balance)
	}
}

func TestConcurrentRollback(t *testing.T) {
	e := newEnv(t)
	c := e.create(giftCard("储值卡", 10000))
	code := e.codes(c.ID, 1)[0]
	red := e.mustRedeem(e.owner, code, core.Order{Amount: 4000})
	dbs := make([]*store.DB, racers)
	for i := range dbs {
		dbs[i] = e.reopen()
	}
	errs := make([]error, racers)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := 0; i < racers; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			_, errs[i] = dbs[i].Rollback(e.owner, red.ID, fmt.Sprint("撤销 ", i), false, 0)
		}()
	}
	close(start)
	wg.Wait()
	ok := 0
	for i, err := range errs {
		switch core.ErrorCode(err) {
		case "":
			ok++
		case core.ErrConflict:
		default:
			t.Fatalf("racer %d: %v", i, err)
		}
	}
	if ok != 1 {
		t.Fatalf("%d rollbacks succeeded, want 1", ok)
	}
	k := e.code(code)
	bal, _ := e.db.LedgerBalance(code)
	if k.Balance != 10000 || bal != 10000 || k.Uses != 0 {
		t.Fatalf("balance %d ledger %d uses %d after one rollback", k.Balance, bal, k.Uses)
	}
	if rep := e.total(day0, day0); rep.RolledBack != 1 || rep.Value != 0 {
		t.Fatalf("report %+v", rep)
	}
}

// Limits that span codes (per member, campaign budget) are decided inside the write
// transaction too: racing redemptions of different codes cannot overshoot them.
func TestConcurrentLimitsAcrossCodes(t *testing.T) {
	e := newEnv(t)
	member := e.create(amountOff("每人限一张", 1000, core.Rules{PerMemberLimit: 1}))
	budget := e.create(amountOff("限量5张", 1000, core.Rules{BudgetCount: 5}))
	mc, bc := e.codes(member.ID, racers), e.codes(budget.ID, racers)

	results := race(t, e, true, func(db *store.DB, i int) (*store.RedeemResult, error) {
		return db.Redeem(e.owner, mc[i], core.Order{Member: "13812345678"}, "")
	})
	if ok := countOK(t, results, core.ReasonPerMemberLimit); ok != 1 {
		t.Fatalf("%d redemptions for one member, limit 1", ok)
	}

	results = race(t, e, true, func(db *store.DB, i int) (*store.RedeemResult, error) {
		return db.Redeem(e.owner, bc[i], core.Order{}, "")
	})
	if ok := countOK(t, results, core.ReasonBudgetExhausted); ok != 5 {
		t.Fatalf("%d redemptions within a budget of 5", ok)
	}
	if got := e.campaign(budget.ID).Redeemed; got != 5 {
		t.Fatalf("campaign redeemed %d", got)
	}
}

// countOK counts successful results; every other result must carry the given reason.
func countOK(t *testing.T, results []*store.RedeemResult, refused string) int {
	t.Helper()
	ok := 0
	for _, r := range results {
		switch {
		case r.Verdict.OK && r.Redemption != nil:
			ok++
		case r.Verdict.Reason == refused && r.Redemption == nil:
		default:
			t.Errorf("unexpected result %+v", r.Verdict)
		}
	}
	return ok
}
