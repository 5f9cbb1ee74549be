package store_test

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/kameng/kameng/core"
	"github.com/kameng/kameng/core/store"
)

func BenchmarkZZProbe(b *testing.B) {
	for _, sync := range []string{"FULL", "OFF"} {
		dir := benchScratch(b, "probe")
		path := filepath.Join(dir, "k.db")
		db, a, c := benchKameng(b, path, store.Options{Synchronous: sync})
		db.GenerateCodes(a, c.ID, 10000, nil)
		codes := benchAllCodes(b, db)
		rs := newBenchRedeemSQL(b, db.Raw(), a, c.ID)
		upd, _ := db.Raw().Prepare(`UPDATE code SET uses = uses + 1 WHERE code = ?`)
		db.Raw().Exec(`PRAGMA wal_checkpoint(TRUNCATE)`)
		walSize := func() int64 { st, _ := os.Stat(path + "-wal"); return st.Size() }
		w0 := walSize()
		for _, k := range codes[:50] { db.Redeem(a, k, core.Order{Amount: 5000}, "") }
		w1 := walSize()
		for _, k := range codes[50:100] { rs.redeem(k, 5000) }
		w2 := walSize()
		for _, k := range codes[100:150] { upd.Exec(k) }
		w3 := walSize()
		fr := func(d int64) float64 { return float64(d) / 4120 / 50 }
		b.Logf("%s frames per commit: redeem %.1f same-sql %.1f update %.1f", sync, fr(w1-w0), fr(w2-w1), fr(w3-w2))
		t := func(f func(string), ks []string) time.Duration { t0 := time.Now(); for _, k := range ks { f(k) }; return time.Since(t0) / time.Duration(len(ks)) }
		for r := 0; r < 2; r++ {
			o := 1000 + r*3000
			d1 := t(func(k string) { db.Redeem(a, k, core.Order{Amount: 5000}, "") }, codes[o:o+1000])
			d2 := t(func(k string) { rs.redeem(k, 5000) }, codes[o+1000:o+2000])
			d3 := t(func(k string) { upd.Exec(k) }, codes[o+2000:o+3000])
			b.Logf("%s per op: redeem %v same-sql %v update %v", sync, d1, d2, d3)
		}
		db.Close()
	}
}
