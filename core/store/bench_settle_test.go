package store_test

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/kameng/kameng/core"
	"github.com/kameng/kameng/core/store"
)

// BenchmarkStatementMonth times a party's month statement, and its verification against
// the redemption table, over 1,000,000 redemptions made within one month.

var benchStatement1M benchFixture

// benchMonth is the fixture's month, in Asia/Shanghai.
var benchMonth = time.Date(2025, 11, 1, 0, 0, 0, 0, core.LoadLocation(core.DefaultTimeZone))

const benchMonthFrom, benchMonthTo = "2025-11-01", "2025-11-30"

type benchCell struct{ day, store, campaign string }

type benchRollup struct{ redeemed, rolledBack, discount, order, value int64 }

type benchSettle struct{ redeemed, rolledBack, gross, reversed int64 }

type benchHour struct {
	day   string
	hour  int
	store string
}

// benchBuildStatement fills a database with n redemptions spread evenly over benchMonth
// at three stores (one in London, so its days differ), over four campaigns with odd
// values, split by a default rule, a store rule and a campaign rule (none in the first
// two days), every 17th rolled back three hours later. The rows are written in bulk in
// one transaction, with redemption.split, rollup, settle_rollup and rollup_hour filled
// exactly as the redeem and rollback paths fill them; codes are left out (nothing here
// reads them).
func benchBuildStatement(b *testing.B, n int) func(string) error {
	return func(path string) error {
		db, err := store.OpenWith(path, store.Options{Synchronous: "OFF"})
		if err != nil {
			return err
		}
		defer db.Close()
		db.Clock = &core.FixedClock{T: benchMonth.Add(-24 * time.Hour)}
		a, err := db.Init(store.InitInput{Merchant: "m", Store: "s1", Device: "d", Owner: "o", PasswordHash: "x", KDF: "file", KEK: benchKEK})
		if err != nil {
			return err
		}
		stores := []core.Store{a.Store}
		for _, s := range []struct{ name, tz string }{{"s2", ""}, {"s3", "Europe/London"}} {
			st, err := db.AddStore(a, s.name, s.tz)
			if err != nil {
				return err
			}
			stores = append(stores, *st)
		}
		camps := []*core.Campaign{
			{Name: "十元", Kind: core.KindAmountOff, AmountOff: 1000},
			{Name: "礼品卡", Kind: core.KindGiftCard, FaceValue: 100_000},
			{Name: "点卡", Kind: core.KindCardKey, FaceValue: 7},
			{Name: "一分", Kind: core.KindAmountOff, AmountOff: 1},
		}
		for _, c := range camps {
			c.Format = core.DefaultCodeFormat()
			if err := db.CreateCampaign(a, c); err != nil {
				return err
			}
		}
		rule := func(scope, ref, parties, rem string) (*core.SplitRule, error) {
			sh, err := core.ParseShares(parties)
			if err != nil {
				return nil, err
			}
			return db.SetSplitRule(a, core.SplitRule{Scope: scope, ScopeID: ref, Parties: sh, Remainder: rem})
		}
		def, err := rule(core.SplitDefault, "", "a:33.33,b:33.33,c:33.34", "")
		if err != nil {
			return err
		}
		byStore, err := rule(core.SplitStore, stores[1].ID, "a:50,franchise:50", "franchise")
		if err != nil {
			return err
		}
		byCampaign, err := rule(core.SplitCampaign, camps[2].ID, "a:70,b:30", "")
		if err != nil {
			return err
		}
		splitFor := func(c, s int) *core.SplitRule {
			switch {
			case c == 2:
				return byCampaign
			case s == 1:
				return byStore
			}
			return def
		}

		tx, err := db.Raw().Begin()
		if err != nil {
			return err
		}
		defer tx.Rollback()
		ins, err := tx.Prepare(`INSERT INTO redemption(id, code, campaign_id, store_id, device_id, operator_id, order_amount, discount, value,
			split, status, created_ms, rolled_back_ms, rollback_reason, rollback_operator) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)`)
		if err != nil {
			return err
		}
		defer ins.Close()
		rollups := map[benchCell]*benchRollup{}
		settles := map[[2]string]*benchSettle{} // party, cell key
		cellKeys := map[string]benchCell{}
		hours := map[benchHour]int64{}
		locs := make([]*time.Location, len(stores))
		for i := range stores {
			locs[i] = stores[i].Location()
		}
		start, step := benchMonth.UnixMilli(), benchMonth.AddDate(0, 1, 0).Sub(benchMonth).Milliseconds()/int64(n)
		unsplitUntil := benchMonth.AddDate(0, 0, 2).UnixMilli()
		t0 := time.Now()
		for i := range n {
			si, ci := i%3, (i/3)%len(camps)
			s, c, loc := &stores[si], camps[ci], locs[si]
			created := start + int64(i)*step
			var order, discount, value int64
			switch c.Kind {
			case core.KindAmountOff:
				discount, order = int64(c.AmountOff), 5000
			case core.KindGiftCard:
				value = int64(1 + (i*7919)%50000)
				order = value
			case core.KindCardKey:
				value = int64(c.FaceValue)
			}
			status, rolled := core.RedemptionDone, int64(0)
			if i%17 == 0 {
				status, rolled = core.RedemptionRolledBack, created+3*3600*1000
			}
			var shares []core.PartyAmount
			split := ""
			if created >= unsplitUntil {
				shares = splitFor(ci, si).Split(core.Amount(discount + value))
				m := make(map[string]core.Amount, len(shares))
				for _, sh := range shares {
					m[sh.Party] = sh.Amount
				}
				js, _ := json.Marshal(m)
				split = string(js)
			}
			reason, rbOp := "", ""
			if rolled > 0 {
				reason, rbOp = "bench", a.Operator.ID
			}
			if _, err := ins.Exec(core.NewID(), fmt.Sprintf("B%09d", i), c.ID, s.ID, a.Device.ID, a.Operator.ID, order, discount, value,
				split, status, created, rolled, reason, rbOp); err != nil {
				return err
			}
			made := time.UnixMilli(created).In(loc)
			day := made.Format(time.DateOnly)
			cell := benchCell{day, s.ID, c.ID}
			r := rollups[cell]
			if r == nil {
				r = &benchRollup{}
				rollups[cell] = r
			}
			r.redeemed++
			r.discount += discount
			r.order += order
			r.value += value
			hours[benchHour{day, made.Hour(), s.ID}]++
			key := day + "\x00" + s.ID + "\x00" + c.ID
			cellKeys[key] = cell
			for _, sh := range shares {
				st := settles[[2]string{sh.Party, key}]
				if st == nil {
					st = &benchSettle{}
					settles[[2]string{sh.Party, key}] = st
				}
				st.redeemed++
				st.gross += int64(sh.Amount)
			}
			if rolled > 0 { // on the rollback's day at the redeeming store; the hour of the redemption
				rday := time.UnixMilli(rolled).In(loc).Format(time.DateOnly)
				rcell := benchCell{rday, s.ID, c.ID}
				rr := rollups[rcell]
				if rr == nil {
					rr = &benchRollup{}
					rollups[rcell] = rr
				}
				rr.rolledBack++
				rr.discount -= discount
				rr.order -= order
				rr.value -= value
				hours[benchHour{day, made.Hour(), s.ID}]--
				rkey := rday + "\x00" + s.ID + "\x00" + c.ID
				cellKeys[rkey] = rcell
				for _, sh := range shares {
					st := settles[[2]string{sh.Party, rkey}]
					if st == nil {
						st = &benchSettle{}
						settles[[2]string{sh.Party, rkey}] = st
					}
					st.rolledBack++
					st.reversed += int64(sh.Amount)
				}
			}
			if (i+1)%200_000 == 0 {
				fmt.Fprintf(os.Stderr, "fixture %s: %d/%d redemptions, %s\n", filepath.Base(path), i+1, n, time.Since(t0).Round(time.Second))
			}
		}
		for k, r := range rollups {
			if _, err := tx.Exec(`INSERT INTO rollup(day, store_id, campaign_id, redeemed, rolled_back, discount, order_amount, value) VALUES (?,?,?,?,?,?,?,?)`,
				k.day, k.store, k.campaign, r.redeemed, r.rolledBack, r.discount, r.order, r.value); err != nil {
				return err
			}
		}
		for k, st := range settles {
			cell := cellKeys[k[1]]
			if _, err := tx.Exec(`INSERT INTO settle_rollup(party, day, store_id, campaign_id, redeemed, rolled_back, gross, reversed) VALUES (?,?,?,?,?,?,?,?)`,
				k[0], cell.day, cell.store, cell.campaign, st.redeemed, st.rolledBack, st.gross, st.reversed); err != nil {
				return err
			}
		}
		for k, v := range hours {
			if _, err := tx.Exec(`INSERT INTO rollup_hour(day, hour, store_id, redeemed) VALUES (?,?,?,?)`, k.day, k.hour, k.store, v); err != nil {
				return err
			}
		}
		if err := tx.Commit(); err != nil {
			return err
		}
		_, err = db.Raw().Exec(`PRAGMA wal_checkpoint(TRUNCATE)`)
		return err
	}
}

func BenchmarkStatementMonth(b *testing.B) {
	const n, reps = 1_000_000, 20
	path := benchStatement1M.get(b, "statement1m-v2", benchBuildStatement(b, n))
	benchDropAfter(b, path)
	if benchStatement1M.build > 0 {
		b.Logf("fixture: %d redemptions in one month built in bulk in %s", n, benchStatement1M.build.Round(time.Second))
	}
	db, err := store.Open(path)
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	var total int64
	if err := db.Raw().QueryRow(`SELECT count(*) FROM redemption`).Scan(&total); err != nil || total != n {
		b.Fatalf("fixture has %d redemptions (%v)", total, err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	var times, verifies []time.Duration
	var cold time.Duration
	var s *store.Statement
	for i := 0; i < b.N; i++ {
		for r := range reps + 1 {
			t0 := time.Now()
			s, err = db.Statement("a", benchMonthFrom, benchMonthTo)
			d := time.Since(t0)
			if err != nil {
				b.Fatal(err)
			}
			if i == 0 && r == 0 {
				cold = d
			} else {
				times = append(times, d)
			}
		}
		t0 := time.Now()
		if err := db.VerifyStatement(s); err != nil {
			b.Fatal(err)
		}
		verifies = append(verifies, time.Since(t0))
	}
	b.StopTimer()
	// The statement is what the redemptions say, to the fen.
	v, rec := s.Verify, s.Reconciliation
	if !v.OK || len(v.Differences) != 0 || v.Net != rec.AllParties.Net || v.Party.Net != s.Totals.Net || v.Unsplit != rec.Unsplit {
		b.Fatalf("verification: ok %v, %d differences, net %d vs %d, party %d vs %d, unsplit %d vs %d", v.OK, len(v.Differences),
			v.Net, rec.AllParties.Net, v.Party.Net, s.Totals.Net, v.Unsplit, rec.Unsplit)
	}
	if len(s.Lines) < 3*30*3 || v.Redeemed < n*9/10 || v.RolledBack == 0 || rec.Unsplit == 0 {
		b.Fatalf("statement: %d lines, %d split redemptions, %d rollbacks, unsplit %d", len(s.Lines), v.Redeemed, v.RolledBack, rec.Unsplit)
	}
	mean := func(d []time.Duration) float64 { return benchMS(benchSum(d)) / float64(len(d)) }
	b.ReportMetric(mean(times), "statement-ms")
	b.ReportMetric(benchMS(slices.Max(times)), "statement-max-ms")
	b.ReportMetric(benchMS(cold), "statement-cold-ms")
	b.ReportMetric(mean(verifies)/1000, "verify-s")
	b.ReportMetric(float64(len(s.Lines)), "lines")
	b.ReportMetric(float64(v.Redeemed), "split-redemptions")
	if benchStatement1M.build > 0 {
		b.ReportMetric(benchStatement1M.build.Seconds(), "build-s")
	}
}
