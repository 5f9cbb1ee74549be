package store_test

import (
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/kameng/kameng/core"
	"github.com/kameng/kameng/core/store"
)

// ---------------------------------------------------------------------------
// Members: finding a member by phone among 1,000,000

var benchMembers1M benchFixture

// benchMemberPhone is the i-th member's phone: distinct for every i below 10^8 (7919
// is prime to 10^8), spread over the number range rather than counting up.
func benchMemberPhone(i int) string {
	return fmt.Sprintf("139%08d", (int64(i)*7919)%100_000_000)
}

// benchBuildMembers fills a database with n members through ImportMembers (one
// transaction, prepared inserts) at synchronous=OFF.
func benchBuildMembers(b *testing.B, n int) func(string) error {
	return func(path string) error {
		db, a, _ := benchKameng(b, path, store.Options{Synchronous: "OFF"})
		defer db.Close()
		rows := make([]store.MemberInput, n)
		for i := range rows {
			rows[i] = store.MemberInput{Line: i + 2, Phone: benchMemberPhone(i), Name: fmt.Sprintf("会员%d", i),
				Birthday: fmt.Sprintf("--%02d-%02d", i%12+1, i%28+1), Consent: i%2 == 0}
			if i%10 == 0 {
				rows[i].Tags = "vip"
			}
		}
		start := time.Now()
		got, err := db.ImportMembers(a, rows, false, nil)
		if err == nil && got != n {
			err = fmt.Errorf("imported %d members, want %d", got, n)
		}
		b.Logf("fixture: %d members imported in %s", n, time.Since(start).Round(time.Millisecond))
		return err
	}
}

// BenchmarkFindMemberByPhone1M times 20,000 lookups of random members by phone through
// FindMembers (normalise, keyed hash, one index probe, open the sealed fields, mask)
// on a database of 1,000,000 members. The bar: p99 under 1 ms.
func BenchmarkFindMemberByPhone1M(b *testing.B) {
	const n, lookups, warm = 1_000_000, 20_000, 2_000
	path := benchMembers1M.get(b, "members1m", benchBuildMembers(b, n))
	benchDropAfter(b, path)
	db, err := store.Open(path)
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	if err := db.Unlock(benchKEK); err != nil {
		b.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(5, 5))
	find := func(i int) error {
		ms, err := db.FindMembers(store.MemberFilter{Phone: benchMemberPhone(i)})
		if err != nil {
			return err
		}
		if len(ms) != 1 || ms[0].Name != fmt.Sprintf("会员%d", i) || ms[0].Phone != core.MaskPhone(benchMemberPhone(i)) {
			return fmt.Errorf("member %d: found %+v", i, ms)
		}
		return nil
	}
	for range warm { // warm the page cache, the connections and the statement cache
		if err := find(rng.IntN(n)); err != nil {
			b.Fatal(err)
		}
	}
	durs := make([]time.Duration, 0, lookups*max(b.N, 1))
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		for range lookups {
			m := rng.IntN(n)
			t0 := time.Now()
			err := find(m)
			durs = append(durs, time.Since(t0))
			if err != nil {
				b.Fatal(err)
			}
		}
	}
	b.StopTimer()
	b.ReportMetric(benchPerSec(len(durs), benchSum(durs)), "finds/s")
	b.ReportMetric(benchMS(benchPercentile(durs, 0.50)), "find-p50-ms")
	b.ReportMetric(benchMS(benchPercentile(durs, 0.99)), "find-p99-ms")
}
