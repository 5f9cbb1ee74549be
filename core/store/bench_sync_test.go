package store_test

import (
	"math/rand/v2"
	"path/filepath"
	"runtime"
	"testing"
	"time"

	"github.com/kameng/kameng/core"
	"github.com/kameng/kameng/core/store"
	"github.com/kameng/kameng/core/wire"
)

// BenchmarkApplyCodes1M applies a first pull of 1,000,000 codes from the codes stream
// in pages of 5,000 (one transaction each, synchronous=FULL), as a device joining a
// large merchant does. Codes are made page by page, so the benchmark holds one page at
// a time like the sync client; the heap is sampled after every page to show it stays
// flat. The bar: well under 60 s.
func BenchmarkApplyCodes1M(b *testing.B) {
	const (
		n    = 1_000_000
		page = 5000
	)
	for i := 0; i < b.N; i++ {
		dir := benchScratch(b, "apply-codes")
		db, err := store.Open(filepath.Join(dir, "k.db"))
		if err != nil {
			b.Fatal(err)
		}
		a, err := db.Init(store.InitInput{Merchant: "m", Store: "s", Device: "d", Owner: "o", PasswordHash: "x", KDF: "file", KEK: benchKEK})
		if err != nil {
			b.Fatal(err)
		}
		campaignID, batchID := core.NewID(), core.NewID()
		r := rand.New(rand.NewPCG(uint64(i)+7, 3))
		buf := make([]byte, 13)
		created := time.Now().UnixMilli()
		var ms runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&ms)
		base := ms.HeapInuse
		var peak, afterFirst uint64
		var took time.Duration
		seq := int64(0)
		for done := 0; done < n; done += page {
			p := &wire.Page{Stream: wire.StreamCodes, Changes: make([]wire.Change, page), Total: n}
			codes := make([]wire.Code, page)
			for j := range codes {
				for k := range buf {
					buf[k] = core.DefaultAlphabet[r.IntN(len(core.DefaultAlphabet))]
				}
				seq++
				codes[j] = wire.Code{Code: string(buf), CampaignID: campaignID, BatchID: batchID, MaxUses: 1, Status: core.CodeActive, CreatedMS: created}
				p.Changes[j] = wire.Change{Seq: seq, Code: &codes[j]}
			}
			p.Next, p.More = seq, done+page < n
			start := time.Now()
			if err := db.ApplyPage(1, time.Now().UnixMilli(), p); err != nil {
				b.Fatal(err)
			}
			took += time.Since(start)
			runtime.ReadMemStats(&ms)
			peak = max(peak, ms.HeapInuse)
			if done == 0 {
				afterFirst = ms.HeapInuse
			}
		}
		var count int64
		if err := db.Raw().QueryRow(`SELECT count(*) FROM code WHERE batch_id = ?`, batchID).Scan(&count); err != nil {
			b.Fatal(err)
		}
		if count < n-10 { // random codes: a collision or two is possible, not more
			b.Fatalf("%d codes applied, want %d", count, n)
		}
		if st, err := db.SyncState(); err != nil || st.Cursors[wire.StreamCodes] != seq {
			b.Fatalf("cursor %v %v, want %d", st.Cursors, err, seq)
		}
		_ = a
		db.Close()
		b.ReportMetric(float64(count)/took.Seconds(), "codes/s")
		b.ReportMetric(took.Seconds(), "apply-s")
		b.ReportMetric(float64(peak)/(1<<20), "heap-peak-MB")
		b.ReportMetric(float64(afterFirst)/(1<<20), "heap-after-page1-MB")
		b.ReportMetric(float64(base)/(1<<20), "heap-before-MB")
		if took > 60*time.Second {
			b.Errorf("1M codes applied in %s, over the 60 s bar", took)
		}
	}
}
