package store_test

// Benchmarks for the bars of BENCHMARKS.md. Each benchmark does a fixed amount of
// work per iteration (so `-benchtime 1x` is meaningful), measures the real operation
// and a raw-SQLite baseline on the same disk in the same run, and reports both through
// b.ReportMetric so one output line carries the comparison.
//
// Files go under $KAMENG_BENCH_DIR when set (big fixtures are then kept and reused
// across runs), otherwise under the system temp dir unless that is a tmpfs, in which
// case the user cache dir is used: a tmpfs would make every fsync free.

import (
	"bufio"
	"database/sql"
	"encoding/json"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/kameng/kameng/app/export"
	"github.com/kameng/kameng/core"
	"github.com/kameng/kameng/core/store"
)

// benchFixtureVersion changes whenever a fixture builder changes, so kept fixtures are rebuilt.
const benchFixtureVersion = 1

var benchKEK = []byte("0123456789abcdef0123456789abcdef")

// ---------------------------------------------------------------------------
// Where benchmark files live

var (
	benchDirOnce sync.Once
	benchDirPath string
	benchDirKeep bool
	benchDirErr  error
	benchDirLog  sync.Once
)

const benchTmpfsMagic = 0x01021994

func benchIsTmpfs(dir string) bool {
	var st syscall.Statfs_t
	return syscall.Statfs(dir, &st) == nil && st.Type == benchTmpfsMagic
}

// benchDir is the directory for this process's benchmark files.
func benchDir(b *testing.B) string {
	benchDirOnce.Do(func() {
		if d := os.Getenv("KAMENG_BENCH_DIR"); d != "" {
			benchDirPath, benchDirKeep = d, true
			benchDirErr = os.MkdirAll(d, 0o755)
			return
		}
		base := os.TempDir()
		if benchIsTmpfs(base) {
			if c, err := os.UserCacheDir(); err == nil {
				base = c
			}
		}
		benchRemoveStale(base)
		benchDirPath = filepath.Join(base, fmt.Sprintf("kameng-bench-%d", os.Getpid()))
		benchDirErr = os.MkdirAll(benchDirPath, 0o755)
	})
	benchDirLog.Do(func() {
		b.Logf("benchmark files in %s (tmpfs: %v, kept: %v)", benchDirPath, benchIsTmpfs(benchDirPath), benchDirKeep)
	})
	if benchDirErr == nil {
		benchDirErr = os.MkdirAll(benchDirPath, 0o755) // an emptied directory is removed
	}
	if benchDirErr != nil {
		b.Fatal(benchDirErr)
	}
	return benchDirPath
}

// benchTidy removes this process's benchmark directory once it is empty.
func benchTidy() {
	if !benchDirKeep && benchDirPath != "" {
		os.Remove(benchDirPath) // fails, harmlessly, while anything is left in it
	}
}

// benchRemoveStale deletes what earlier benchmark processes (now gone) left behind.
func benchRemoveStale(base string) {
	dirs, _ := filepath.Glob(filepath.Join(base, "kameng-bench-*"))
	for _, d := range dirs {
		pid, err := strconv.Atoi(strings.TrimPrefix(filepath.Base(d), "kameng-bench-"))
		if err != nil || pid == os.Getpid() {
			continue
		}
		if _, err := os.Stat(fmt.Sprintf("/proc/%d", pid)); os.IsNotExist(err) {
			os.RemoveAll(d)
		}
	}
}

// benchScratch is a fresh directory for one benchmark invocation, removed afterwards.
func benchScratch(b *testing.B, name string) string {
	d, err := os.MkdirTemp(benchDir(b), name+"-")
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { os.RemoveAll(d); benchTidy() })
	return d
}

// benchRunsOnce reports whether each benchmark function is invoked exactly once in this
// process (-benchtime 1x, -count 1): a cached fixture can then go when it is done.
func benchRunsOnce() bool {
	bt, cnt := flag.Lookup("test.benchtime"), flag.Lookup("test.count")
	return bt != nil && bt.Value.String() == "1x" && (cnt == nil || cnt.Value.String() == "1")
}

// benchDropAfter removes a cached fixture when this benchmark is its only user.
func benchDropAfter(b *testing.B, path string) {
	if benchDirKeep || !benchRunsOnce() {
		return
	}
	b.Cleanup(func() { benchRemoveDB(path); benchTidy() })
}

func benchRemoveDB(path string) {
	for _, s := range []string{"", "-wal", "-shm", ".ok"} {
		os.Remove(path + s)
	}
}

// ---------------------------------------------------------------------------
// Fixtures

// benchFixture is a database file built once per process (or kept across runs).
type benchFixture struct {
	once  sync.Once
	path  string
	build time.Duration // 0 when reused from an earlier run
	err   error
}

// get builds the file with fn unless a complete one from an earlier run is there.
func (f *benchFixture) get(b *testing.B, name string, fn func(path string) error) string {
	f.once.Do(func() {
		f.path = filepath.Join(benchDir(b), name+".db")
		stamp := fmt.Sprintf("fixture v%d schema %d %s\n", benchFixtureVersion, store.SchemaVersion, name)
		if got, err := os.ReadFile(f.path + ".ok"); err == nil && string(got) == stamp {
			if _, err := os.Stat(f.path); err == nil {
				return
			}
		}
		benchRemoveDB(f.path)
		start := time.Now()
		if f.err = fn(f.path); f.err != nil {
			return
		}
		f.build = time.Since(start)
		f.err = os.WriteFile(f.path+".ok", []byte(stamp), 0o644)
	})
	if f.err != nil {
		b.Fatal(f.err)
	}
	if _, err := os.Stat(f.path); err != nil {
		b.Fatalf("fixture %s is gone: %v", f.path, err)
	}
	return f.path
}

// benchKameng creates a database with a merchant, a store and an amount-off campaign.
func benchKameng(b testing.TB, path string, opt store.Options) (*store.DB, *store.Actor, *core.Campaign) {
	db, err := store.OpenWith(path, opt)
	if err != nil {
		b.Fatal(err)
	}
	a, err := db.Init(store.InitInput{Merchant: "m", Store: "s", Device: "d", Owner: "o", PasswordHash: "x", KDF: "file", KEK: benchKEK})
	if err != nil {
		b.Fatal(err)
	}
	c := &core.Campaign{Name: "c", Kind: core.KindAmountOff, AmountOff: 1000, Format: core.DefaultCodeFormat()}
	if err := db.CreateCampaign(a, c); err != nil {
		b.Fatal(err)
	}
	return db, a, c
}

// benchActor rebuilds the owner's actor at a store of an existing database.
func benchActor(b testing.TB, db *store.DB, storeName string) *store.Actor {
	op, _, err := db.FindOperator("o")
	if err != nil {
		b.Fatal(err)
	}
	dev, err := db.ThisDevice()
	if err != nil {
		b.Fatal(err)
	}
	if storeName == "" {
		storeName = dev.StoreID
	}
	st, err := db.FindStore(storeName)
	if err != nil {
		b.Fatal(err)
	}
	return &store.Actor{Operator: *op, Device: *dev, Store: *st}
}

// benchAllCodes lists the stored codes in insertion order.
func benchAllCodes(b testing.TB, db *store.DB) []string {
	out := make([]string, 0, 1<<20)
	err := db.EachCode(store.CodeFilter{}, false, func(k *core.Code) error {
		out = append(out, k.Code)
		return nil
	})
	if err != nil {
		b.Fatal(err)
	}
	return out
}

// benchBuildCodes fills a database with n generated codes at synchronous=OFF.
func benchBuildCodes(b *testing.B, n int64) func(string) error {
	return func(path string) error {
		db, a, c := benchKameng(b, path, store.Options{Synchronous: "OFF"})
		defer db.Close()
		_, err := db.GenerateCodes(a, c.ID, n, nil)
		return err
	}
}

var benchCodes1M benchFixture

// benchRawDSN opens a file with the pragmas store.Open uses, for the raw baselines.
func benchRawDSN(path string, readOnly bool) string {
	d := "file:" + path + "?_pragma=busy_timeout(15000)&_pragma=journal_mode(WAL)&_pragma=synchronous(FULL)&_pragma=foreign_keys(1)"
	if readOnly {
		d += "&_pragma=query_only(1)"
	}
	return d
}

func benchOpenRaw(b testing.TB, path string, readOnly bool) *sql.DB {
	r, err := sql.Open("sqlite", benchRawDSN(path, readOnly))
	if err != nil {
		b.Fatal(err)
	}
	r.SetMaxOpenConns(1)
	r.SetMaxIdleConns(1)
	if err := r.Ping(); err != nil {
		b.Fatal(err)
	}
	return r
}

// benchCodeDDL is the CREATE TABLE code statement and its indexes, copied from the migration.
func benchCodeDDL(b testing.TB) []string {
	src, err := os.ReadFile("migrations/0001_init.sql")
	if err != nil {
		b.Fatal(err)
	}
	var out []string
	noComments := regexp.MustCompile(`(?m)--.*$`).ReplaceAllString(string(src), "")
	for _, st := range strings.Split(noComments, ";") {
		st = strings.TrimSpace(st)
		if regexp.MustCompile(`^CREATE TABLE code \(`).MatchString(st) ||
			regexp.MustCompile(`^CREATE (UNIQUE )?INDEX \w+ ON code \(`).MatchString(st) {
			out = append(out, st)
		}
	}
	if len(out) < 2 {
		b.Fatalf("code DDL not found in the migration: %q", out)
	}
	return out
}

// benchRandomCodes returns n distinct strings of the shape of a default-format code.
func benchRandomCodes(n int, seed uint64) []string {
	r := rand.New(rand.NewPCG(seed, 1))
	seen := make(map[string]struct{}, n)
	out := make([]string, 0, n)
	buf := make([]byte, 13)
	for len(out) < n {
		for i := range buf {
			buf[i] = core.DefaultAlphabet[r.IntN(len(core.DefaultAlphabet))]
		}
		s := string(buf)
		if _, dup := seen[s]; !dup {
			seen[s] = struct{}{}
			out = append(out, s)
		}
	}
	return out
}

// ---------------------------------------------------------------------------
// Figures

func benchPercentile(d []time.Duration, p float64) time.Duration {
	if len(d) == 0 {
		return 0
	}
	s := slices.Clone(d)
	slices.Sort(s)
	i := int(float64(len(s))*p+0.999999) - 1
	return s[max(0, min(i, len(s)-1))]
}

func benchSum(d []time.Duration) time.Duration {
	var t time.Duration
	for _, x := range d {
		t += x
	}
	return t
}

func benchMS(d time.Duration) float64 { return float64(d) / 1e6 }

func benchPerSec(n int, d time.Duration) float64 { return float64(n) / d.Seconds() }

// benchVmHWM returns the process's peak resident set in MB (/proc/self/status VmHWM).
func benchVmHWM() float64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "VmHWM:" {
			kb, _ := strconv.ParseFloat(f[1], 64)
			return kb / 1024
		}
	}
	return 0
}

// benchResetHWM restarts the VmHWM count (Linux clear_refs "5") so a peak can be attributed.
func benchResetHWM() bool {
	return os.WriteFile("/proc/self/clear_refs", []byte("5"), 0) == nil
}

// ---------------------------------------------------------------------------
// 1. Generate

// BenchmarkGenerate1M generates and stores 1,000,000 codes with GenerateCodes and
// compares it with a raw one-transaction INSERT of 1,000,000 precomputed rows of the
// same shape into a table with the identical DDL, both at synchronous=FULL.
func BenchmarkGenerate1M(b *testing.B) {
	const n = 1_000_000
	ddl := benchCodeDDL(b)
	pre := benchRandomCodes(n, 1)
	campaignID, batchID := core.NewID(), core.NewID()
	b.ReportAllocs()
	b.ResetTimer()
	var gen, base time.Duration
	for i := 0; i < b.N; i++ {
		dir := benchScratch(b, "generate")

		// Baseline: raw bulk insert.
		b.StopTimer()
		raw := benchOpenRaw(b, filepath.Join(dir, "raw.db"), false)
		for _, st := range ddl {
			if _, err := raw.Exec(st); err != nil {
				b.Fatal(err)
			}
		}
		now := time.Now().UnixMilli()
		b.StartTimer()
		t0 := time.Now()
		tx, err := raw.Begin()
		if err != nil {
			b.Fatal(err)
		}
		ins, err := tx.Prepare(`INSERT INTO code(code, campaign_id, batch_id, balance, secret, created_ms) VALUES (?,?,?,?,?,?)`)
		if err != nil {
			b.Fatal(err)
		}
		for _, code := range pre {
			if _, err := ins.Exec(code, campaignID, batchID, 0, nil, now); err != nil {
				b.Fatal(err)
			}
		}
		ins.Close()
		if err := tx.Commit(); err != nil {
			b.Fatal(err)
		}
		base += time.Since(t0)
		b.StopTimer()
		raw.Close()

		// Kameng: GenerateCodes at the default synchronous=FULL.
		db, a, c := benchKameng(b, filepath.Join(dir, "kameng.db"), store.Options{})
		b.StartTimer()
		t0 = time.Now()
		batch, err := db.GenerateCodes(a, c.ID, n, nil)
		if err != nil {
			b.Fatal(err)
		}
		gen += time.Since(t0)
		b.StopTimer()
		if batch.Count != n {
			b.Fatalf("batch of %d codes, want %d", batch.Count, n)
		}
		if cnt, err := db.CountCodes(store.CodeFilter{Campaign: c.ID}); err != nil || cnt != n {
			b.Fatalf("%d codes stored (%v), want %d", cnt, err, n)
		}
		db.Close()
		os.RemoveAll(dir)
		b.StartTimer()
	}
	b.StopTimer()
	gen /= time.Duration(b.N)
	base /= time.Duration(b.N)
	b.ReportMetric(gen.Seconds(), "gen-s")
	b.ReportMetric(base.Seconds(), "base-s")
	b.ReportMetric(benchPerSec(n, gen), "codes/s")
	b.ReportMetric(benchPerSec(n, base), "base-rows/s")
	b.ReportMetric(gen.Seconds()/base.Seconds(), "ratio")
}

// ---------------------------------------------------------------------------
// 2. Redeem

// benchRedeemSQL writes one redemption with exactly the statements Redeem runs (the
// throttle count, the code and campaign reads, the conditional use, the redemption,
// campaign, rollup, audit, outbox and clock rows) in one IMMEDIATE transaction, but
// with every statement prepared once. It is the floor for this design on SQLite: the
// gap between it and Redeem is what the code adds on top of the SQL it runs.
type benchRedeemSQL struct {
	db         *sql.DB
	a          *store.Actor
	campaignID string
	loc        *time.Location
	st         map[string]*sql.Stmt
}

var benchRedeemStatements = map[string]string{
	"fail": `SELECT count(*) FROM check_failure WHERE actor = ? AND ts_ms > ?`,
	"code": `SELECT code, campaign_id, batch_id, status, uses, balance, secret IS NOT NULL, phone, distributed_ms,
		valid_from_ms, valid_to_ms, created_ms FROM code WHERE code = ?`,
	"campaign": `SELECT updated_ms, status, issued, redeemed, spent FROM campaign WHERE id = ?`,
	"use":      `UPDATE code SET uses = uses + 1 WHERE code = ? AND uses < ? AND status = 'active'`,
	"redemption": `INSERT INTO redemption(id, code, campaign_id, store_id, device_id, operator_id, order_ref, order_amount,
		discount, value, member_ix, status, created_ms, idem_key) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)`,
	"spent": `UPDATE campaign SET redeemed = redeemed + 1, spent = spent + ? WHERE id = ?`,
	"rollup": `INSERT INTO rollup(day, store_id, campaign_id, generated, distributed, redeemed, rolled_back, discount, order_amount, value)
		VALUES (?,?,?,?,?,?,?,?,?,?)
		ON CONFLICT(day, store_id, campaign_id) DO UPDATE SET
		  generated = generated + excluded.generated, distributed = distributed + excluded.distributed,
		  redeemed = redeemed + excluded.redeemed, rolled_back = rolled_back + excluded.rolled_back,
		  discount = discount + excluded.discount, order_amount = order_amount + excluded.order_amount,
		  value = value + excluded.value`,
	"last": `SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1`,
	"audit": `INSERT INTO audit(seq, id, ts_ms, operator_id, device_id, action, entity, entity_id, detail, prev_hash, hash)
		VALUES (?,?,?,?,?,?,?,?,?,?,?)`,
	"hlc":    `SELECT max(COALESCE((SELECT value FROM meta WHERE key = 'hlc'), 0), COALESCE((SELECT hlc FROM outbox ORDER BY mid DESC LIMIT 1), 0))`,
	"outbox": `INSERT INTO outbox(uuid, device_id, name, args, hlc, wall_ms) VALUES (?,?,?,?,?,?)`,
}

func newBenchRedeemSQL(b testing.TB, db *sql.DB, a *store.Actor, campaignID string) *benchRedeemSQL {
	r := &benchRedeemSQL{db: db, a: a, campaignID: campaignID, loc: a.Store.Location(), st: map[string]*sql.Stmt{}}
	for k, q := range benchRedeemStatements {
		st, err := db.Prepare(q)
		if err != nil {
			b.Fatal(err)
		}
		r.st[k] = st
	}
	return r
}

func (r *benchRedeemSQL) close() {
	for _, st := range r.st {
		st.Close()
	}
}

func (r *benchRedeemSQL) redeem(code string, amount core.Amount) error {
	tx, err := r.db.Begin()
	if err != nil {
		return err
	}
	defer tx.Rollback()
	st := func(k string) *sql.Stmt { return tx.Stmt(r.st[k]) }
	now := time.Now()
	nowMs := now.UnixMilli()
	a := r.a
	var fails int
	if err := st("fail").QueryRow(a.Device.ID+"/"+a.Operator.ID, nowMs-5*60*1000).Scan(&fails); err != nil {
		return err
	}
	var k core.Code
	var phone []byte
	if err := st("code").QueryRow(code).Scan(&k.Code, &k.CampaignID, &k.BatchID, &k.Status, &k.Uses, &k.Balance,
		&k.HasSecret, &phone, &k.Distributed, &k.ValidFrom, &k.ValidTo, &k.Created); err != nil {
		return err
	}
	var updated, issued, redeemed int64
	var spent core.Amount
	var status string
	if err := st("campaign").QueryRow(k.CampaignID).Scan(&updated, &status, &issued, &redeemed, &spent); err != nil {
		return err
	}
	res, err := st("use").Exec(code, 1)
	if err != nil {
		return err
	}
	if n, _ := res.RowsAffected(); n != 1 {
		return fmt.Errorf("code %s was not usable", code)
	}
	discount := core.Amount(1000)
	rd := &core.Redemption{ID: core.NewID(), Code: code, CampaignID: r.campaignID, StoreID: a.Store.ID, DeviceID: a.Device.ID,
		OperatorID: a.Operator.ID, OrderAmount: amount, Discount: discount, Status: core.RedemptionDone, Created: nowMs}
	if _, err := st("redemption").Exec(rd.ID, rd.Code, rd.CampaignID, rd.StoreID, rd.DeviceID, rd.OperatorID, "", amount,
		discount, 0, nil, rd.Status, nowMs, nil); err != nil {
		return err
	}
	if _, err := st("spent").Exec(discount, r.campaignID); err != nil {
		return err
	}
	if _, err := st("rollup").Exec(now.In(r.loc).Format(time.DateOnly), a.Store.ID, r.campaignID, 0, 0, 1, 0, discount, amount, 0); err != nil {
		return err
	}
	var seq int64
	prev := core.GenesisHash
	if err := st("last").QueryRow().Scan(&seq, &prev); err != nil && err != sql.ErrNoRows {
		return err
	}
	e := core.AuditEntry{Seq: seq + 1, ID: core.NewID(), Time: nowMs, Operator: a.Operator.ID, Device: a.Device.ID,
		Action: "redeem", Entity: "redemption", EntityID: rd.ID, PrevHash: prev,
		Detail: core.CanonicalDetail(map[string]any{"code": code, "campaign_id": r.campaignID, "discount": discount, "value": 0, "order": amount})}
	e.Hash = e.ComputeHash(prev)
	if _, err := st("audit").Exec(e.Seq, e.ID, e.Time, e.Operator, e.Device, e.Action, e.Entity, e.EntityID,
		string(e.Detail), e.PrevHash, e.Hash); err != nil {
		return err
	}
	var prevHLC int64
	if err := st("hlc").QueryRow().Scan(&prevHLC); err != nil {
		return err
	}
	hlc := core.NewHLC(prevHLC)
	args, err := json.Marshal(map[string]any{"redemption": rd, "member_ix": nil})
	if err != nil {
		return err
	}
	if _, err := st("outbox").Exec(core.NewID(), a.Device.ID, "code.redeem@1", string(args), hlc.Now(nowMs), nowMs); err != nil {
		return err
	}
	return tx.Commit()
}

// BenchmarkRedeem redeems 2,000 distinct single-use codes (each a whole transaction at
// synchronous=FULL) and, interleaved in blocks on the same file and table, makes
// 2,000 raw autocommit single-row UPDATEs through the same write connection (the
// baseline of the bar). A third interleaved series writes 2,000 redemptions with
// Redeem's own statements prepared once (benchRedeemSQL), to show how much of the
// cost is SQLite's and how much is the code's.
func BenchmarkRedeem(b *testing.B) {
	const n, block = 2_000, 100
	b.ReportAllocs()
	var redeems, updates, sameSQL []time.Duration
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		dir := benchScratch(b, "redeem")
		db, a, c := benchKameng(b, filepath.Join(dir, "kameng.db"), store.Options{})
		if _, err := db.GenerateCodes(a, c.ID, 100_000, nil); err != nil {
			b.Fatal(err)
		}
		codes := benchAllCodes(b, db)
		mine, theirs, floor := codes[:n], codes[n:2*n], codes[2*n:3*n]
		upd, err := db.Raw().Prepare(`UPDATE code SET uses = uses + 1 WHERE code = ?`)
		if err != nil {
			b.Fatal(err)
		}
		rs := newBenchRedeemSQL(b, db.Raw(), a, c.ID)
		order := core.Order{Amount: 5000}
		b.StartTimer()
		for j := 0; j < n; j += block {
			for _, code := range theirs[j : j+block] {
				t0 := time.Now()
				res, err := upd.Exec(code)
				updates = append(updates, time.Since(t0))
				if err != nil {
					b.Fatal(err)
				}
				if k, _ := res.RowsAffected(); k != 1 {
					b.Fatalf("update of %s touched %d rows", code, k)
				}
			}
			for _, code := range mine[j : j+block] {
				t0 := time.Now()
				res, err := db.Redeem(a, code, order, "")
				redeems = append(redeems, time.Since(t0))
				if err != nil {
					b.Fatal(err)
				}
				if !res.Verdict.OK {
					b.Fatalf("redeem %s: %s", code, res.Verdict.Reason)
				}
			}
			for _, code := range floor[j : j+block] {
				t0 := time.Now()
				err := rs.redeem(code, order.Amount)
				sameSQL = append(sameSQL, time.Since(t0))
				if err != nil {
					b.Fatal(err)
				}
			}
		}
		b.StopTimer()
		upd.Close()
		rs.close()
		rows, err := db.Report(store.ReportFilter{From: "2000-01-01", To: "2100-01-01", By: "total"})
		if err != nil || len(rows) != 1 || rows[0].Redeemed != 2*n {
			b.Fatalf("report after redeeming: %+v %v", rows, err)
		}
		if cnt, brk, err := db.VerifyAudit(); err != nil || brk != nil {
			b.Fatalf("audit chain after %d entries: %+v %v", cnt, brk, err)
		}
		db.Close()
		os.RemoveAll(dir)
		b.StartTimer()
	}
	b.StopTimer()
	r, u, f := benchSum(redeems), benchSum(updates), benchSum(sameSQL)
	b.ReportMetric(benchPerSec(len(redeems), r), "redeems/s")
	b.ReportMetric(benchPerSec(len(updates), u), "updates/s")
	b.ReportMetric(benchPerSec(len(sameSQL), f), "same-sql-tx/s")
	b.ReportMetric(benchMS(benchPercentile(redeems, 0.99)), "redeem-p99-ms")
	b.ReportMetric(benchMS(benchPercentile(updates, 0.99)), "update-p99-ms")
	b.ReportMetric(benchPerSec(len(redeems), r)/benchPerSec(len(updates), u), "ratio")
}

// ---------------------------------------------------------------------------
// 3. Check

// BenchmarkCheck1M makes 100,000 Check calls on random existing codes of a database
// of 1,000,000 codes and 100,000 raw point lookups by the unique code index (prepared
// statement, same columns) on the same file, interleaved in blocks. A third series
// runs Check's own statements prepared once, as a floor for its SQL.
func BenchmarkCheck1M(b *testing.B) {
	const n, block, warm = 100_000, 10_000, 10_000
	path := benchCodes1M.get(b, "codes1m", benchBuildCodes(b, 1_000_000))
	benchDropAfter(b, path)
	if benchCodes1M.build > 0 {
		b.Logf("fixture: 1,000,000 codes built in %s", benchCodes1M.build.Round(time.Millisecond))
	}
	db, err := store.Open(path)
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	a := benchActor(b, db, "")
	codes := benchAllCodes(b, db)
	if len(codes) != 1_000_000 {
		b.Fatalf("fixture has %d codes", len(codes))
	}
	raw := benchOpenRaw(b, path, true)
	defer raw.Close()
	lookup, err := raw.Prepare(`SELECT code, campaign_id, batch_id, status, uses, balance, secret IS NOT NULL, phone,
		distributed_ms, valid_from_ms, valid_to_ms, created_ms FROM code WHERE code = ?`)
	if err != nil {
		b.Fatal(err)
	}
	defer lookup.Close()
	var k core.Code
	var phone []byte
	look := func(code string) error {
		return lookup.QueryRow(code).Scan(&k.Code, &k.CampaignID, &k.BatchID, &k.Status, &k.Uses, &k.Balance, &k.HasSecret,
			&phone, &k.Distributed, &k.ValidFrom, &k.ValidTo, &k.Created)
	}
	// The statements Check runs (throttle count, code joined with its campaign),
	// prepared once: the floor for Check's SQL.
	fail, err := raw.Prepare(`SELECT count(*) FROM check_failure WHERE actor = ? AND ts_ms > ?`)
	if err != nil {
		b.Fatal(err)
	}
	defer fail.Close()
	join, err := raw.Prepare(`SELECT k.code, k.campaign_id, k.batch_id, k.status, k.uses, k.balance, k.secret IS NOT NULL,
		k.distributed_ms, k.valid_from_ms, k.valid_to_ms, k.created_ms, c.updated_ms, c.status, c.issued, c.redeemed, c.spent
		FROM code k JOIN campaign c ON c.id = k.campaign_id WHERE k.code = ?`)
	if err != nil {
		b.Fatal(err)
	}
	defer join.Close()
	actorKey := a.Device.ID + "/" + a.Operator.ID
	sameSQL := func(code string) error {
		var fails int
		if err := fail.QueryRow(actorKey, time.Now().Add(-5*time.Minute).UnixMilli()).Scan(&fails); err != nil {
			return err
		}
		var updated, issued, redeemed, spent int64
		var status string
		return join.QueryRow(code).Scan(&k.Code, &k.CampaignID, &k.BatchID, &k.Status, &k.Uses, &k.Balance, &k.HasSecret,
			&k.Distributed, &k.ValidFrom, &k.ValidTo, &k.Created, &updated, &status, &issued, &redeemed, &spent)
	}
	order := core.Order{Amount: 5000}
	check := func(code string) error {
		v, err := db.Check(a, code, order)
		if err == nil && !v.OK {
			err = fmt.Errorf("check %s: %s", code, v.Reason)
		}
		return err
	}
	series := []struct {
		fn   func(string) error
		durs []time.Duration
	}{{fn: look}, {fn: check}, {fn: sameSQL}}
	rng := rand.New(rand.NewPCG(3, 3))
	pick := func() string { return codes[rng.IntN(len(codes))] }
	for range warm { // warm the page cache and the connections
		for _, s := range series {
			if err := s.fn(pick()); err != nil {
				b.Fatal(err)
			}
		}
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		for j := 0; j < n; j += block {
			for si := range series {
				s := &series[si]
				for range block {
					code := pick()
					t0 := time.Now()
					err := s.fn(code)
					s.durs = append(s.durs, time.Since(t0))
					if err != nil {
						b.Fatal(err)
					}
				}
			}
		}
	}
	b.StopTimer()
	lookups, checks, floor := series[0].durs, series[1].durs, series[2].durs
	c, l := benchSum(checks), benchSum(lookups)
	b.ReportMetric(benchPerSec(len(checks), c), "checks/s")
	b.ReportMetric(benchPerSec(len(lookups), l), "lookups/s")
	b.ReportMetric(benchPerSec(len(floor), benchSum(floor)), "same-sql/s")
	b.ReportMetric(benchPerSec(len(checks), c)/benchPerSec(len(lookups), l), "ratio")
	b.ReportMetric(benchMS(benchPercentile(checks, 0.50)), "check-p50-ms")
	b.ReportMetric(benchMS(benchPercentile(checks, 0.99)), "check-p99-ms")
	b.ReportMetric(benchMS(benchPercentile(lookups, 0.99)), "lookup-p99-ms")
}

// ---------------------------------------------------------------------------
// 4. Report

var (
	benchRedemptions1M  benchFixture
	benchRedemptions10k benchFixture
)

// benchReportStart is the first day of the redemption fixtures (Asia/Shanghai).
var benchReportStart = time.Date(2025, 3, 1, 0, 0, 0, 0, core.LoadLocation(core.DefaultTimeZone))

// benchBuildRedemptions fills a database with n real redemptions made through db.Redeem at
// synchronous=OFF, with a fixed clock moving evenly across 90 days and the
// redemptions taken in turn at three stores, so the rollup is what the redeem path
// wrote.
func benchBuildRedemptions(b *testing.B, n int) func(string) error {
	return func(path string) error {
		clk := &core.FixedClock{T: benchReportStart.Add(-time.Hour)}
		db, err := store.OpenWith(path, store.Options{Synchronous: "OFF"})
		if err != nil {
			return err
		}
		defer db.Close()
		db.Clock = clk
		a, err := db.Init(store.InitInput{Merchant: "m", Store: "s", Device: "d", Owner: "o", PasswordHash: "x", KDF: "file", KEK: benchKEK})
		if err != nil {
			return err
		}
		actors := []*store.Actor{a}
		for _, name := range []string{"s2", "s3"} {
			s, err := db.AddStore(a, name, "")
			if err != nil {
				return err
			}
			actors = append(actors, &store.Actor{Operator: a.Operator, Device: a.Device, Store: *s})
		}
		c := &core.Campaign{Name: "c", Kind: core.KindAmountOff, AmountOff: 1000, Format: core.DefaultCodeFormat()}
		if err := db.CreateCampaign(a, c); err != nil {
			return err
		}
		if _, err := db.GenerateCodes(a, c.ID, int64(n), nil); err != nil {
			return err
		}
		codes := benchAllCodes(b, db)
		step := 90 * 24 * time.Hour / time.Duration(n)
		start := time.Now()
		for i, code := range codes {
			clk.T = benchReportStart.Add(time.Duration(i) * step)
			res, err := db.Redeem(actors[i%len(actors)], code, core.Order{Amount: 5000}, "")
			if err != nil {
				return err
			}
			if !res.Verdict.OK {
				return fmt.Errorf("redeem %s: %s", code, res.Verdict.Reason)
			}
			if n >= 100_000 && (i+1)%100_000 == 0 {
				fmt.Fprintf(os.Stderr, "fixture %s: %d/%d redemptions, %s\n", filepath.Base(path), i+1, n, time.Since(start).Round(time.Second))
			}
		}
		return nil
	}
}

var benchGroupings = []string{"day", "store", "campaign"}

// benchReportTimes runs each grouping reps times after one warm-up call and returns the
// durations per grouping and the cold (first) call.
func benchReportTimes(b *testing.B, path string, wantRedeemed int64, reps int) (per map[string][]time.Duration, cold time.Duration) {
	db, err := store.Open(path)
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	per = map[string][]time.Duration{}
	for i, by := range benchGroupings {
		t0 := time.Now()
		rows, err := db.Report(store.ReportFilter{From: "2000-01-01", To: "2100-01-01", By: by})
		if i == 0 {
			cold = time.Since(t0)
		}
		if err != nil {
			b.Fatal(err)
		}
		var redeemed int64
		for _, r := range rows {
			redeemed += r.Redeemed
		}
		if redeemed != wantRedeemed {
			b.Fatalf("report by %s sums %d redemptions, want %d", by, redeemed, wantRedeemed)
		}
		if by == "store" && len(rows) != 3 || by == "day" && len(rows) < 90 {
			b.Fatalf("report by %s has %d rows", by, len(rows))
		}
	}
	for range reps {
		for _, by := range benchGroupings {
			t0 := time.Now()
			if _, err := db.Report(store.ReportFilter{From: "2000-01-01", To: "2100-01-01", By: by}); err != nil {
				b.Fatal(err)
			}
			per[by] = append(per[by], time.Since(t0))
		}
	}
	return per, cold
}

// BenchmarkReport times the KPI report (by day, store and campaign) over 1,000,000
// redemptions and over 10,000 redemptions spread over the same 90 days and 3 stores.
func BenchmarkReport(b *testing.B) {
	const reps = 20
	big := benchRedemptions1M.get(b, "redemptions1m", benchBuildRedemptions(b, 1_000_000))
	benchDropAfter(b, big)
	small := benchRedemptions10k.get(b, "redemptions10k", benchBuildRedemptions(b, 10_000))
	benchDropAfter(b, small)
	if benchRedemptions1M.build > 0 {
		b.Logf("fixture: 1,000,000 redemptions built through db.Redeem in %s", benchRedemptions1M.build.Round(time.Second))
	}
	b.ReportAllocs()
	b.ResetTimer()
	var bigAll, smallAll []time.Duration
	bigBy := map[string][]time.Duration{}
	var bigCold, smallCold time.Duration
	for i := 0; i < b.N; i++ {
		p, c := benchReportTimes(b, big, 1_000_000, reps)
		bigCold = max(bigCold, c)
		for by, d := range p {
			bigBy[by] = append(bigBy[by], d...)
			bigAll = append(bigAll, d...)
		}
		p, c = benchReportTimes(b, small, 10_000, reps)
		smallCold = max(smallCold, c)
		for _, d := range p {
			smallAll = append(smallAll, d...)
		}
	}
	b.StopTimer()
	mean := func(d []time.Duration) float64 { return benchMS(benchSum(d)) / float64(len(d)) }
	for _, by := range benchGroupings {
		b.ReportMetric(mean(bigBy[by]), "1M-"+by+"-ms")
	}
	b.ReportMetric(mean(bigAll), "1M-ms")
	b.ReportMetric(benchMS(slices.Max(bigAll)), "1M-max-ms")
	b.ReportMetric(benchMS(bigCold), "1M-cold-ms")
	b.ReportMetric(mean(smallAll), "10k-ms")
	b.ReportMetric(benchMS(smallCold), "10k-cold-ms")
	b.ReportMetric(mean(bigAll)/mean(smallAll), "ratio")
	if benchRedemptions1M.build > 0 {
		b.ReportMetric(benchRedemptions1M.build.Seconds(), "build-1M-s")
	}
}

// ---------------------------------------------------------------------------
// 5. Export

var benchCodesExport benchFixture

var benchExportHeader = []string{"券码", "状态", "已用次数", "余额", "手机", "发放时间", "有效期至", "创建时间"}

// benchCodeCells turns a code into the cells of an export row.
func benchCodeCells(f core.CodeFormat, loc *time.Location, k *core.Code, cells []string) []string {
	when := func(t int64) string {
		if t == 0 {
			return ""
		}
		return time.UnixMilli(t).In(loc).Format(time.DateTime)
	}
	return append(cells[:0], f.Display(k.Code), k.Status, strconv.Itoa(k.Uses), k.Balance.String(), k.Phone,
		when(k.Distributed), when(k.ValidTo), when(k.Created))
}

// benchMemPeak samples the Go heap and the memory obtained from the OS every 50 ms.
type benchMemPeak struct {
	stop           chan struct{}
	done           chan struct{}
	heapInuse, sys uint64
	startSys       uint64
	startHeapInuse uint64
	samples        int
}

func benchStartMemPeak() *benchMemPeak {
	runtime.GC()
	debug.FreeOSMemory()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	m := &benchMemPeak{stop: make(chan struct{}), done: make(chan struct{}), startSys: ms.Sys, startHeapInuse: ms.HeapInuse}
	go func() {
		defer close(m.done)
		t := time.NewTicker(50 * time.Millisecond)
		defer t.Stop()
		for {
			var s runtime.MemStats
			runtime.ReadMemStats(&s)
			m.heapInuse, m.sys = max(m.heapInuse, s.HeapInuse), max(m.sys, s.Sys)
			m.samples++
			select {
			case <-m.stop:
				return
			case <-t.C:
			}
		}
	}()
	return m
}

func (m *benchMemPeak) end() { close(m.stop); <-m.done }

func benchMB(v uint64) float64 { return float64(v) / (1 << 20) }

// BenchmarkExport exports 1,000,000 codes through db.EachCode to a CSV file and to an
// XLSX file with app/export. The baseline is a raw SELECT of the same columns written
// as plain comma-separated lines through a bufio.Writer.
func BenchmarkExport(b *testing.B) {
	const n = 1_000_000
	path := benchCodesExport.get(b, "codes1m-export", benchBuildCodes(b, n))
	benchDropAfter(b, path)
	if benchCodesExport.build > 0 {
		b.Logf("fixture: 1,000,000 codes built in %s", benchCodesExport.build.Round(time.Millisecond))
	}
	db, err := store.Open(path)
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	c, err := db.Campaign("c")
	if err != nil {
		b.Fatal(err)
	}
	loc := core.LoadLocation(core.DefaultTimeZone)
	raw := benchOpenRaw(b, path, true)
	defer raw.Close()

	export1 := func(file string, w func(f *os.File) export.Writer) (int, error) {
		f, err := os.Create(file)
		if err != nil {
			return 0, err
		}
		defer f.Close()
		ew := w(f)
		if err := ew.Header(benchExportHeader); err != nil {
			return 0, err
		}
		var cells []string
		rows := 0
		err = db.EachCode(store.CodeFilter{}, false, func(k *core.Code) error {
			rows++
			cells = benchCodeCells(c.Format, loc, k, cells)
			return ew.Row(cells)
		})
		if err != nil {
			return rows, err
		}
		if err := ew.Close(); err != nil {
			return rows, err
		}
		return rows, f.Close()
	}
	baseline := func(file string) (int, error) {
		f, err := os.Create(file)
		if err != nil {
			return 0, err
		}
		defer f.Close()
		w := bufio.NewWriter(f)
		rs, err := raw.Query(`SELECT code, status, uses, balance, distributed_ms, valid_to_ms, created_ms FROM code ORDER BY id`)
		if err != nil {
			return 0, err
		}
		defer rs.Close()
		var code, status string
		var uses, balance, dist, validTo, created int64
		rows := 0
		for rs.Next() {
			if err := rs.Scan(&code, &status, &uses, &balance, &dist, &validTo, &created); err != nil {
				return rows, err
			}
			rows++
			fmt.Fprintf(w, "%s,%s,%d,%d,,%d,%d,%d\r\n", code, status, uses, balance, dist, validTo, created)
		}
		if err := rs.Err(); err != nil {
			return rows, err
		}
		if err := w.Flush(); err != nil {
			return rows, err
		}
		return rows, f.Close()
	}

	b.ReportAllocs()
	b.ResetTimer()
	var csvD, baseD, xlsxD time.Duration
	var heapPeak, sysPeak, sysStart, rss, procHWM float64
	var csvSize, xlsxSize int64
	for i := 0; i < b.N; i++ {
		dir := benchScratch(b, "export")

		t0 := time.Now()
		rows, err := baseline(filepath.Join(dir, "raw.csv"))
		baseD += time.Since(t0)
		if err != nil || rows != n {
			b.Fatalf("baseline wrote %d rows: %v", rows, err)
		}

		t0 = time.Now()
		rows, err = export1(filepath.Join(dir, "codes.csv"), func(f *os.File) export.Writer { return export.NewCSV(f) })
		csvD += time.Since(t0)
		if err != nil || rows != n {
			b.Fatalf("CSV export wrote %d rows: %v", rows, err)
		}

		b.StopTimer()
		procHWM = max(procHWM, benchVmHWM())
		hwmReset := benchResetHWM()
		m := benchStartMemPeak()
		b.StartTimer()
		t0 = time.Now()
		rows, err = export1(filepath.Join(dir, "codes.xlsx"), func(f *os.File) export.Writer { return export.NewXLSX(f, "券码") })
		xlsxD += time.Since(t0)
		b.StopTimer()
		m.end()
		if err != nil || rows != n {
			b.Fatalf("XLSX export wrote %d rows: %v", rows, err)
		}
		heapPeak = max(heapPeak, benchMB(m.heapInuse))
		sysPeak = max(sysPeak, benchMB(m.sys))
		sysStart = benchMB(m.startSys)
		if hwmReset {
			rss = max(rss, benchVmHWM())
		}
		if st, err := os.Stat(filepath.Join(dir, "codes.csv")); err == nil {
			csvSize = st.Size()
		}
		if st, err := os.Stat(filepath.Join(dir, "codes.xlsx")); err == nil {
			xlsxSize = st.Size()
		}
		os.RemoveAll(dir)
		b.StartTimer()
	}
	b.StopTimer()
	N := time.Duration(b.N)
	b.ReportMetric((csvD / N).Seconds(), "csv-s")
	b.ReportMetric((baseD / N).Seconds(), "base-s")
	b.ReportMetric(csvD.Seconds()/baseD.Seconds(), "ratio")
	b.ReportMetric((xlsxD / N).Seconds(), "xlsx-s")
	b.ReportMetric(heapPeak, "xlsx-heap-MB")
	b.ReportMetric(sysPeak, "xlsx-sys-MB")
	b.ReportMetric(sysStart, "sys-before-MB")
	if rss > 0 {
		b.ReportMetric(rss, "xlsx-rss-MB")
	}
	b.ReportMetric(max(procHWM, benchVmHWM()), "proc-hwm-MB")
	b.Logf("files: CSV %.1f MB, XLSX %.1f MB", float64(csvSize)/1e6, float64(xlsxSize)/1e6)
}
