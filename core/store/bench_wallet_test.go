package store_test

import (
	"crypto/rand"
	"database/sql"
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/kameng/kameng/core"
	"github.com/kameng/kameng/core/store"
)

// benchWalletMembers writes n members with ¥1,000.00 each (a top-up entry apiece, so
// the ledger holds it) in one transaction, and returns their ids.
func benchWalletMembers(b *testing.B, db *store.DB, a *store.Actor, n int) []string {
	tx, err := db.Raw().Begin()
	if err != nil {
		b.Fatal(err)
	}
	defer tx.Rollback()
	member, err := tx.Prepare(`INSERT INTO member(id, merchant_id, phone, phone_ix, store_id, wallet, created_ms, updated_ms) VALUES (?,?,?,?,?,?,?,?)`)
	if err != nil {
		b.Fatal(err)
	}
	entry, err := tx.Prepare(`INSERT INTO wallet_entry(id, member_id, kind, amount, store_id, operator_id, device_id, created_ms) VALUES (?,?,'topup',?,?,?,?,?)`)
	if err != nil {
		b.Fatal(err)
	}
	ids := make([]string, n)
	now := time.Now().UnixMilli()
	ix, sealed := make([]byte, 32), make([]byte, 39)
	for i := range ids {
		ids[i] = core.NewID()
		rand.Read(ix)
		rand.Read(sealed)
		if _, err := member.Exec(ids[i], a.Operator.MerchantID, sealed, ix, a.Store.ID, 100000, now, now); err != nil {
			b.Fatal(err)
		}
		if _, err := entry.Exec(core.NewID(), ids[i], 100000, a.Store.ID, a.Operator.ID, a.Device.ID, now); err != nil {
			b.Fatal(err)
		}
	}
	if err := tx.Commit(); err != nil {
		b.Fatal(err)
	}
	return ids
}

// benchWalletPages counts the pages a commit writes: on a fresh copy of the benchmark's
// database, with automatic checkpoints off, 200 payments and then 200 raw updates go
// into the WAL, whose frames are read back and attributed to the tables and indexes
// they belong to (dbstat). It logs where a payment's pages go.
func benchWalletPages(b *testing.B) (perPay, perUpdate float64) {
	const n = 200
	dir := benchScratch(b, "wallet-pages")
	path := filepath.Join(dir, "kameng.db")
	db, a, _ := benchKameng(b, path, store.Options{})
	defer db.Close()
	ids := benchWalletMembers(b, db, a, 10_000)
	raw := db.Raw()
	for _, id := range ids[:50] { // statements prepared, tables past their first pages
		if _, err := db.Pay(a, id, 1, "", ""); err != nil {
			b.Fatal(err)
		}
	}
	for _, q := range []string{`PRAGMA wal_checkpoint(TRUNCATE)`, `PRAGMA wal_autocheckpoint = 0`} {
		if _, err := raw.Exec(q); err != nil {
			b.Fatal(err)
		}
	}
	frames := func(from int) (map[uint32]int, int, int) {
		wal, err := os.ReadFile(path + "-wal")
		if err != nil {
			b.Fatal(err)
		}
		size := int(binary.BigEndian.Uint32(wal[8:12]))
		pages, count := map[uint32]int{}, 0
		for off := max(from, 32); off+24+size <= len(wal); off += 24 + size {
			pages[binary.BigEndian.Uint32(wal[off:off+4])]++
			count++
		}
		return pages, count, len(wal)
	}
	for _, id := range ids[100 : 100+n] {
		if _, err := db.Pay(a, id, 1, "", ""); err != nil {
			b.Fatal(err)
		}
	}
	payPages, payFrames, end := frames(0)
	upd, err := raw.Prepare(`UPDATE member SET wallet = wallet - ? WHERE id = ?`)
	if err != nil {
		b.Fatal(err)
	}
	defer upd.Close()
	for _, id := range ids[1000 : 1000+n] {
		if _, err := upd.Exec(1, id); err != nil {
			b.Fatal(err)
		}
	}
	_, updFrames, _ := frames(end)
	owner := map[uint32]string{}
	rows, err := raw.Query(`SELECT name, pageno FROM dbstat`)
	if err != nil {
		b.Fatal(err)
	}
	for rows.Next() {
		var name string
		var page uint32
		if err := rows.Scan(&name, &page); err != nil {
			b.Fatal(err)
		}
		owner[page] = name
	}
	rows.Close()
	per := map[string]int{}
	for page, c := range payPages {
		name := owner[page]
		if page == 1 {
			name = "page 1 (database size in the header)"
		} else if name == "" {
			name = "new or free pages"
		}
		per[name] += c
	}
	var names []string
	for name := range per {
		names = append(names, name)
	}
	sort.Slice(names, func(i, j int) bool { return per[names[i]] > per[names[j]] })
	var where []string
	for _, name := range names {
		where = append(where, fmt.Sprintf("%s %.2f", name, float64(per[name])/n))
	}
	b.Logf("pages written per payment: %s", strings.Join(where, ", "))
	return float64(payFrames) / n, float64(updFrames) / n
}

// benchWalletUnsynced times 2,000 payments and 2,000 raw updates, interleaved, at
// synchronous=OFF on a fresh database: what each costs without waiting for the disk
// (statements, page writes into the OS cache). Microseconds per operation.
func benchWalletUnsynced(b *testing.B) (pay, update float64) {
	const n, block = 2_000, 100
	dir := benchScratch(b, "wallet-unsynced")
	db, a, _ := benchKameng(b, filepath.Join(dir, "kameng.db"), store.Options{Synchronous: "OFF"})
	defer db.Close()
	ids := benchWalletMembers(b, db, a, 2*n)
	upd, err := db.Raw().Prepare(`UPDATE member SET wallet = wallet - ? WHERE id = ?`)
	if err != nil {
		b.Fatal(err)
	}
	defer upd.Close()
	var p, u time.Duration
	for j := 0; j < n; j += block {
		t0 := time.Now()
		for _, id := range ids[n+j : n+j+block] {
			if _, err := upd.Exec(1250, id); err != nil {
				b.Fatal(err)
			}
		}
		u += time.Since(t0)
		t0 = time.Now()
		for _, id := range ids[j : j+block] {
			if _, err := db.Pay(a, id, 1250, "", ""); err != nil {
				b.Fatal(err)
			}
		}
		p += time.Since(t0)
	}
	return float64(p.Microseconds()) / n, float64(u.Microseconds()) / n
}

// BenchmarkWalletPay makes 2,000 wallet payments (each a whole Pay transaction at
// synchronous=FULL: member lookup, conditional update, entry, audit and outbox rows)
// from 2,000 of 10,000 members and, interleaved in blocks of 100 on the same file,
// 2,000 raw autocommit single-row `UPDATE member SET wallet = wallet - ? WHERE id = ?`
// on 2,000 other members through the same write connection: the baseline of the bar
// (ratio ≥ 0.5). A third series does the same payments with an idempotency key.
func BenchmarkWalletPay(b *testing.B) {
	const n, block, members = 2_000, 100, 10_000
	b.ReportAllocs()
	var pays, keyed, updates []time.Duration
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		dir := benchScratch(b, "wallet")
		db, a, _ := benchKameng(b, filepath.Join(dir, "kameng.db"), store.Options{})
		ids := benchWalletMembers(b, db, a, members)
		mine, withKey, theirs := ids[:n], ids[n:2*n], ids[2*n:3*n]
		upd, err := db.Raw().Prepare(`UPDATE member SET wallet = wallet - ? WHERE id = ?`)
		if err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		for j := 0; j < n; j += block {
			for _, id := range theirs[j : j+block] {
				t0 := time.Now()
				res, err := upd.Exec(1250, id)
				updates = append(updates, time.Since(t0))
				if err != nil {
					b.Fatal(err)
				}
				if k, _ := res.RowsAffected(); k != 1 {
					b.Fatalf("update of %s touched %d rows", id, k)
				}
			}
			for _, id := range mine[j : j+block] {
				t0 := time.Now()
				_, err := db.Pay(a, id, 1250, "", "")
				pays = append(pays, time.Since(t0))
				if err != nil {
					b.Fatal(err)
				}
			}
			for _, id := range withKey[j : j+block] {
				t0 := time.Now()
				_, err := db.Pay(a, id, 1250, "", "bench-"+id)
				keyed = append(keyed, time.Since(t0))
				if err != nil {
					b.Fatal(err)
				}
			}
		}
		b.StopTimer()
		upd.Close()
		benchWalletSound(b, db.Raw(), append(mine, withKey...))
		if cnt, brk, err := db.VerifyAudit(); err != nil || brk != nil {
			b.Fatalf("audit chain after %d entries: %+v %v", cnt, brk, err)
		}
		db.Close()
		os.RemoveAll(dir)
		b.StartTimer()
	}
	b.StopTimer()
	pagesPay, pagesUpdate := benchWalletPages(b)
	b.ReportMetric(pagesPay, "pages/pay")
	b.ReportMetric(pagesUpdate, "pages/update")
	cpuPay, cpuUpdate := benchWalletUnsynced(b)
	b.ReportMetric(cpuPay, "unsynced-pay-us")
	b.ReportMetric(cpuUpdate, "unsynced-update-us")
	p, k, u := benchSum(pays), benchSum(keyed), benchSum(updates)
	b.ReportMetric(benchPerSec(len(pays), p), "pays/s")
	b.ReportMetric(benchPerSec(len(keyed), k), "keyed-pays/s")
	b.ReportMetric(benchPerSec(len(updates), u), "updates/s")
	b.ReportMetric(benchMS(benchPercentile(pays, 0.99)), "pay-p99-ms")
	b.ReportMetric(benchMS(benchPercentile(updates, 0.99)), "update-p99-ms")
	b.ReportMetric(benchPerSec(len(pays), p)/benchPerSec(len(updates), u), "ratio")
}

// benchWalletSound fails unless each member paid exactly once and its balance equals
// its ledger.
func benchWalletSound(b *testing.B, db *sql.DB, ids []string) {
	for _, id := range ids {
		var wallet, ledger, pays int64
		if err := db.QueryRow(`SELECT wallet, (SELECT sum(amount) FROM wallet_entry WHERE member_id = ?1),
			(SELECT count(*) FROM wallet_entry WHERE member_id = ?1 AND kind = 'pay') FROM member WHERE id = ?1`, id).Scan(&wallet, &ledger, &pays); err != nil {
			b.Fatal(err)
		}
		if wallet != 100000-1250 || ledger != wallet || pays != 1 {
			b.Fatalf("member %s: wallet %d, ledger %d, %d payments", id, wallet, ledger, pays)
		}
	}
}
