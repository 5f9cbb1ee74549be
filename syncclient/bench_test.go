package syncclient_test

// Benchmarks of sync over real HTTP on 127.0.0.1 (BENCHMARKS.md, "Sync"): a device
// pushing 100,000 redemptions, a new device's first pull of 1,000,000 codes, and 32
// tills redeeming online against PostgreSQL next to pgbench on the same cluster.
// Each does a fixed amount of work per iteration, so -benchtime 1x gives figures.

import (
	"bufio"
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/kameng/kameng/core"
	"github.com/kameng/kameng/core/store"
	"github.com/kameng/kameng/core/wire"
	"github.com/kameng/kameng/server"
	"github.com/kameng/kameng/syncclient"
)

// benchServe runs the API (server.Serve, as `kameng serve` does) on a free loopback
// port until the benchmark ends and returns its base URL. The per-device rate limit
// is off: one device pushing 500 mutations per request, or 32 tills redeeming flat
// out, is what is measured, not the throttle.
func benchServe(b *testing.B, st server.Store) string {
	b.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan string, 1)
	done := make(chan error, 1)
	go func() {
		done <- server.Serve(ctx, st, server.ServeOptions{
			Listen:  "127.0.0.1:0",
			Options: server.Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), RateLimit: -1},
			Ready:   func(addr string, _ bool) { ready <- addr },
		})
	}()
	select {
	case addr := <-ready:
		b.Cleanup(func() {
			cancel()
			if err := <-done; err != nil {
				b.Errorf("serve: %v", err)
			}
		})
		return "http://" + addr
	case err := <-done:
		cancel()
		b.Fatalf("serve: %v", err)
	}
	return ""
}

// benchSQLite opens the server's SQLite store (synchronous=FULL, as shipped).
func benchSQLite(b *testing.B) server.Store {
	b.Helper()
	st, err := server.Open(filepath.Join(b.TempDir(), "server.db"))
	if err != nil {
		b.Fatalf("server store: %v", err)
	}
	b.Cleanup(func() { st.Close() })
	return st
}

// benchDatabase creates a database of its own on the cluster KAMENG_TEST_POSTGRES
// names, dropped when the benchmark ends, and returns its URL.
func benchDatabase(b *testing.B, prefix string) string {
	b.Helper()
	admin := os.Getenv("KAMENG_TEST_POSTGRES")
	db, err := sql.Open("pgx", admin)
	if err != nil {
		b.Fatalf("postgres: %v", err)
	}
	buf := make([]byte, 6)
	rand.Read(buf)
	name := prefix + hex.EncodeToString(buf)
	if _, err := db.Exec("CREATE DATABASE " + name); err != nil {
		db.Close()
		b.Fatalf("create database: %v", err)
	}
	b.Cleanup(func() {
		if _, err := db.Exec("DROP DATABASE IF EXISTS " + name + " WITH (FORCE)"); err != nil {
			b.Logf("drop database %s: %v", name, err)
		}
		db.Close()
	})
	u, err := url.Parse(admin)
	if err != nil {
		b.Fatalf("KAMENG_TEST_POSTGRES: %v", err)
	}
	u.Path = "/" + name
	return u.String()
}

// benchPostgres opens the server's PostgreSQL store on a fresh database.
func benchPostgres(b *testing.B) (server.Store, string) {
	b.Helper()
	dsn := benchDatabase(b, "kameng_bench_")
	st, err := server.Open(dsn)
	if err != nil {
		b.Fatalf("server store: %v", err)
	}
	b.Cleanup(func() { st.Close() })
	return st, dsn
}

// merchant is a founding device registered with a server that holds its campaign
// and one batch of codes.
type merchant struct {
	db       *store.DB
	path     string
	actor    *store.Actor
	client   *syncclient.Client
	device   *server.Device
	id       string
	campaign *core.Campaign
	codes    []string // the batch, when asked to keep it
}

// seedMerchant founds a merchant on the server from a new device: it creates a
// single-use campaign, generates n codes, uploads them (straight into the server's
// store through UploadCodes, 10,000 per call) and pushes the device's mutations
// (merchant, campaign, batch), acknowledged. The device database is built at
// synchronous=OFF and closed; benchmarks that use it reopen it as shipped.
func seedMerchant(b *testing.B, st server.Store, base string, n int64, keep bool) *merchant {
	b.Helper()
	ctx := context.Background()
	path := filepath.Join(b.TempDir(), "pos-a.db")
	db, err := store.OpenWith(path, store.Options{Synchronous: "OFF"})
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	a, err := db.Init(store.InitInput{Merchant: "压测商户", Store: "总店", Device: "pos-a", Owner: "boss",
		PasswordHash: pwHash(), KDF: "file", KEK: kek()})
	if err != nil {
		b.Fatalf("init: %v", err)
	}
	m, err := db.Merchant()
	if err != nil {
		b.Fatal(err)
	}
	c := syncclient.New(base, "", syncclient.Options{})
	tok, err := st.CreateToken("", "bench", time.Hour, time.Now())
	if err != nil {
		b.Fatal(err)
	}
	reg, err := c.Register(ctx, wire.RegisterRequest{Token: tok, DeviceID: a.Device.ID, DeviceName: "pos-a",
		MerchantID: m.ID, MerchantName: m.Name, StoreID: a.Store.ID})
	if err != nil {
		b.Fatalf("register: %v", err)
	}
	if err := db.SetRegistration(base, reg.DeviceToken, reg.MerchantID, reg.Epoch, reg.LastMID); err != nil {
		b.Fatal(err)
	}
	c.SetToken(reg.DeviceToken)
	dev, err := st.Authenticate(reg.DeviceToken, time.Now())
	if err != nil {
		b.Fatal(err)
	}
	camp := &core.Campaign{Name: "满100减5", Kind: core.KindAmountOff, AmountOff: 500, Format: core.DefaultCodeFormat(),
		Rules: core.Rules{UsesPerCode: 1, RollbackHours: 72, Offline: core.Offline{Allowed: true}}}
	if err := db.CreateCampaign(a, camp); err != nil {
		b.Fatalf("campaign: %v", err)
	}
	batch, err := db.GenerateCodes(a, camp.ID, n, nil)
	if err != nil {
		b.Fatalf("generate: %v", err)
	}
	out := &merchant{path: path, actor: a, client: c, device: dev, id: reg.MerchantID, campaign: camp}
	var uploaded int64
	for after := ""; ; {
		page, err := db.BatchCodes(batch.ID, after, wire.MaxCodesUpload)
		if err != nil {
			b.Fatal(err)
		}
		if len(page) == 0 {
			break
		}
		res, err := st.UploadCodes(dev, wire.CodesUpload{BatchID: batch.ID, Codes: page}, time.Now())
		if err != nil {
			b.Fatalf("upload: %v", err)
		}
		uploaded += res.Inserted
		if keep {
			for _, k := range page {
				out.codes = append(out.codes, k.Code)
			}
		}
		after = page[len(page)-1].Code
	}
	if uploaded != n {
		b.Fatalf("the server took %d codes of %d", uploaded, n)
	}
	state, err := db.SyncState()
	if err != nil {
		b.Fatal(err)
	}
	muts, err := db.PendingMutations(0, 0)
	if err != nil {
		b.Fatal(err)
	}
	pr, err := c.Push(ctx, wire.PushRequest{Epoch: state.Epoch, ClientMS: time.Now().UnixMilli(), Mutations: muts})
	if err != nil {
		b.Fatalf("push: %v", err)
	}
	for _, r := range pr.Results {
		if r.Status != wire.Applied {
			b.Fatalf("seed mutation %d: %+v", r.MID, r)
		}
	}
	if err := db.Ack(pr); err != nil {
		b.Fatal(err)
	}
	return out
}

// queueRedemptions writes one code.redeem@1 per code straight into the device's
// outbox, in one transaction: the args are what db.Redeem journals (the redemption
// and member_ix), so the server does all of its work for each; only the local
// redemption rows, which a push never reads, are left out.
func queueRedemptions(b *testing.B, db *store.DB, a *store.Actor, campaignID string, codes []string) {
	b.Helper()
	tx, err := db.Raw().Begin()
	if err != nil {
		b.Fatal(err)
	}
	defer tx.Rollback()
	var last int64
	if err := tx.QueryRow(`SELECT COALESCE(max(hlc), 0) FROM outbox`).Scan(&last); err != nil {
		b.Fatal(err)
	}
	ins, err := tx.Prepare(`INSERT INTO outbox(uuid, device_id, name, args, hlc, wall_ms) VALUES (?,?,?,?,?,?)`)
	if err != nil {
		b.Fatal(err)
	}
	defer ins.Close()
	clock := core.NewHLC(last)
	now := time.Now().UnixMilli()
	for i, code := range codes {
		r := core.Redemption{ID: core.NewID(), Code: code, CampaignID: campaignID, StoreID: a.Store.ID, DeviceID: a.Device.ID,
			OperatorID: a.Operator.ID, OrderRef: fmt.Sprintf("POS-%06d", i), OrderAmount: 12800, Discount: 500,
			Status: core.RedemptionDone, Created: now}
		args, err := json.Marshal(map[string]any{"redemption": r, "member_ix": nil})
		if err != nil {
			b.Fatal(err)
		}
		if _, err := ins.Exec(core.NewID(), a.Device.ID, "code.redeem@1", string(args), clock.Now(now), now); err != nil {
			b.Fatal(err)
		}
	}
	if err := tx.Commit(); err != nil {
		b.Fatal(err)
	}
}

// BenchmarkPush100k pushes 100,000 code.redeem@1 mutations of distinct uploaded
// codes from one device to a local server with Syncer (one round: 200 pushes of
// 500, each acknowledged locally, then the pull of the 100,000 code rows the
// redemptions republished). push-s is the push alone, round-s the whole round.
// Bar: 100k pushed in under 20 s.
func BenchmarkPush100k(b *testing.B) {
	b.Run("sqlite", func(b *testing.B) { benchPush(b, func() server.Store { return benchSQLite(b) }) })
	if os.Getenv("KAMENG_TEST_POSTGRES") != "" {
		b.Run("postgres", func(b *testing.B) {
			benchPush(b, func() server.Store { st, _ := benchPostgres(b); return st })
		})
	}
}

func benchPush(b *testing.B, open func() server.Store) {
	const n = 100_000
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		setup := time.Now()
		st := open()
		base := benchServe(b, st)
		m := seedMerchant(b, st, base, n, true)
		seed, err := store.OpenWith(m.path, store.Options{Synchronous: "OFF"})
		if err != nil {
			b.Fatal(err)
		}
		queueRedemptions(b, seed, m.actor, m.campaign.ID, m.codes)
		seed.Close()
		db, err := store.Open(m.path) // synchronous=FULL, as a till runs
		if err != nil {
			b.Fatal(err)
		}
		if p := mustState(b, db).Pending; p != n {
			b.Fatalf("%d mutations pending, want %d", p, n)
		}
		b.Logf("setup (server, %d codes generated and uploaded, %d mutations queued): %s", n, n, time.Since(setup).Round(time.Millisecond))

		var pushEnd time.Time
		var pushed int64
		s := &syncclient.Syncer{DB: db, Client: m.client, Progress: func(stage string, done, total int64) {
			if stage == syncclient.StagePush {
				pushEnd, pushed = time.Now(), done
			}
		}}
		b.StartTimer()
		start := time.Now()
		rep, err := s.Once(context.Background())
		took := time.Since(start)
		b.StopTimer()
		if err != nil {
			b.Fatalf("sync: %v", err)
		}
		pushTook := pushEnd.Sub(start)
		if rep.Pushed != n || pushed != n || rep.Applied != n || rep.Rejected != 0 || rep.Flagged != 0 {
			b.Fatalf("round: %+v (push progress %d)", rep, pushed)
		}
		if st := mustState(b, db); st.Pending != 0 || st.Rejected != 0 {
			b.Fatalf("after the round: %d pending, %d rejected", st.Pending, st.Rejected)
		}
		// The server took every redemption: the codes are used up there.
		for _, code := range []string{m.codes[0], m.codes[n/2], m.codes[n-1]} {
			v, err := m.client.Check(context.Background(), wire.RedeemRequest{Code: code})
			if err != nil || v.OK || v.Reason != "already_redeemed" || v.Uses != 1 {
				b.Fatalf("server's check of pushed code %s: %+v, %v", code, v, err)
			}
		}
		db.Close()
		b.ReportMetric(pushTook.Seconds(), "push-s")
		b.ReportMetric(n/pushTook.Seconds(), "mutations/s")
		b.ReportMetric(took.Seconds(), "round-s")
		b.ReportMetric(float64(rep.PulledCodes), "pulled-codes")
		logBar(b, "push of 100k", pushTook <= 20*time.Second, "%.2f s against 20 s", pushTook.Seconds())
	}
}

func mustState(b *testing.B, db *store.DB) *store.SyncState {
	b.Helper()
	st, err := db.SyncState()
	if err != nil {
		b.Fatal(err)
	}
	return st
}

// logBar states a bar's outcome in the benchmark's log: the figures are the
// benchmark's output, a miss is reported, not turned into a failure.
func logBar(b *testing.B, what string, pass bool, format string, args ...any) {
	verdict := "pass"
	if !pass {
		verdict = "MISS"
	}
	b.Logf("bar %s: %s (%s)", what, verdict, fmt.Sprintf(format, args...))
}

// vmHWM is the process's peak resident set (VmHWM of /proc/self/status), in bytes.
func vmHWM() int64 {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return -1
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "VmHWM:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 10, 64)
			if err != nil {
				return -1
			}
			return kb << 10
		}
	}
	return -1
}

// memSampler records, every 10 ms until stopped, the peak of HeapInuse+StackInuse
// (live Go memory) and of Sys−HeapReleased (what the Go runtime holds from the
// system). SQLite's page caches are allocated outside the Go heap (modernc's libc)
// and show only in the resident set.
type memSampler struct {
	stop chan struct{}
	done chan struct{}
	peak uint64
	held uint64
}

func sampleMemory() *memSampler {
	s := &memSampler{stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(s.done)
		t := time.NewTicker(10 * time.Millisecond)
		defer t.Stop()
		var ms runtime.MemStats
		for {
			runtime.ReadMemStats(&ms)
			s.peak = max(s.peak, ms.HeapInuse+ms.StackInuse)
			s.held = max(s.held, ms.Sys-ms.HeapReleased)
			select {
			case <-s.stop:
				return
			case <-t.C:
			}
		}
	}()
	return s
}

func (s *memSampler) end() (inuse, held uint64) {
	close(s.stop)
	<-s.done
	return s.peak, s.held
}

const mb = 1 << 20

// BenchmarkFirstPull1M: a server (SQLite) holds 1,000,000 codes of one merchant; a
// new device joins it and pulls the codes stream (200 pages of 5,000, each applied
// in one transaction at synchronous=FULL), then the log, in one Syncer round.
// The server runs in the same process, so the memory figures hold both sides.
// heap-peak-MB samples HeapInuse+StackInuse every 10 ms during the round only
// (go-held-MB: Sys−HeapReleased, what the Go runtime holds from the system);
// rss-pull-MB is VmHWM after resetting it (/proc/self/clear_refs) just before the
// round; rss-process-MB is VmHWM of the whole process, setup included.
// Bar: under 60 s and under 300 MB.
func BenchmarkFirstPull1M(b *testing.B) {
	const n = 1_000_000
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		setup := time.Now()
		st := benchSQLite(b)
		base := benchServe(b, st)
		m := seedMerchant(b, st, base, n, false)
		b.Logf("setup (1M codes generated on the founding device and uploaded): %s", time.Since(setup).Round(time.Millisecond))

		// The new device: an empty database joins the merchant and registers.
		db, err := store.Open(filepath.Join(b.TempDir(), "pos-b.db"))
		if err != nil {
			b.Fatal(err)
		}
		if err := db.Join(store.JoinInput{Device: "pos-b", KDF: "file", KEK: kek()}); err != nil {
			b.Fatalf("join: %v", err)
		}
		tok, err := st.CreateToken(m.id, "bench", time.Hour, time.Now())
		if err != nil {
			b.Fatal(err)
		}
		c := syncclient.New(base, "", syncclient.Options{})
		reg, err := c.Register(context.Background(), wire.RegisterRequest{Token: tok, DeviceID: mustState(b, db).DeviceID, DeviceName: "pos-b"})
		if err != nil {
			b.Fatalf("register: %v", err)
		}
		if err := db.SetRegistration(base, reg.DeviceToken, reg.MerchantID, reg.Epoch, reg.LastMID); err != nil {
			b.Fatal(err)
		}
		c.SetToken(reg.DeviceToken)
		s := &syncclient.Syncer{DB: db, Client: c}

		runtime.GC()
		debug.FreeOSMemory()
		rssBefore := vmHWM()
		reset := os.WriteFile("/proc/self/clear_refs", []byte("5"), 0) == nil
		rssAtStart := vmHWM()
		mem := sampleMemory()
		b.StartTimer()
		start := time.Now()
		rep, err := s.Once(context.Background())
		took := time.Since(start)
		b.StopTimer()
		peak, held := mem.end()
		rssPull := vmHWM()
		if err != nil {
			b.Fatalf("first pull: %v", err)
		}
		if _, err := db.FinishJoin(); err != nil {
			b.Fatalf("finish join: %v", err)
		}
		got, err := db.CountCodes(store.CodeFilter{Campaign: m.campaign.ID})
		if err != nil {
			b.Fatal(err)
		}
		if got != n || rep.PulledCodes != n {
			b.Fatalf("the device holds %d codes (pulled %d), want %d", got, rep.PulledCodes, n)
		}
		if c, err := db.Campaign(m.campaign.ID); err != nil || c.Name != m.campaign.Name {
			b.Fatalf("the joined device's campaign: %+v, %v", c, err)
		}
		db.Close()
		b.ReportMetric(took.Seconds(), "pull-s")
		b.ReportMetric(n/took.Seconds(), "codes/s")
		b.ReportMetric(float64(rep.Pages), "pages")
		b.ReportMetric(float64(peak)/mb, "heap-peak-MB")
		b.ReportMetric(float64(held)/mb, "go-held-MB")
		if reset {
			b.ReportMetric(float64(rssPull)/mb, "rss-pull-MB")
			b.ReportMetric(float64(rssAtStart)/mb, "rss-start-MB")
		} else {
			b.Logf("VmHWM could not be reset: rss figures include the setup")
		}
		b.ReportMetric(float64(max(rssBefore, rssPull))/mb, "rss-process-MB")
		logBar(b, "first pull of 1M, time", took <= 60*time.Second, "%.1f s against 60 s", took.Seconds())
		logBar(b, "first pull of 1M, memory", peak <= 300*mb && (!reset || rssPull <= 300*mb),
			"heap+stack peak %.0f MB, RSS peak during the pull %.0f MB, against 300 MB", float64(peak)/mb, float64(rssPull)/mb)
	}
}

// BenchmarkOnlineRedeemPG: 32 tills (devices of one merchant, each a goroutine with
// its own syncclient.Client and connection) redeem online through a server on
// PostgreSQL for 10 s. One attempt in eight goes to a contested code that eight
// tills try at about the same time; the rest to distinct codes. In the same run,
// pgbench's simple-update with as many clients runs on a fresh database of the same
// cluster. The figure is answered redeem requests per second against pgbench's tps.
// Bar: ratio ≥ 0.5, and no single-use code redeemed twice.
func BenchmarkOnlineRedeemPG(b *testing.B) {
	if os.Getenv("KAMENG_TEST_POSTGRES") == "" {
		b.Skip("KAMENG_TEST_POSTGRES is not set: run it under scripts/with-postgres.sh (make bench does)")
	}
	pgbench, err := findPgbench()
	if err != nil {
		b.Fatal(err)
	}
	const (
		tills    = 32
		group    = 8 // tills trying each contested code
		every    = 8 // one attempt in every is contested
		distinct = 60_000
		contests = 4_000
		runFor   = 10 * time.Second
	)
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		setup := time.Now()
		st, dsn := benchPostgres(b)
		base := benchServe(b, st)
		m := seedMerchant(b, st, base, distinct+contests, true)
		clients := make([]*syncclient.Client, tills)
		for w := range clients {
			tok, err := st.CreateToken(m.id, "till", time.Hour, time.Now())
			if err != nil {
				b.Fatal(err)
			}
			// Every till is its own machine: its own transport and keep-alive connection.
			hc := &http.Client{Transport: http.DefaultTransport.(*http.Transport).Clone()}
			c := syncclient.New(base, "", syncclient.Options{HTTPClient: hc})
			reg, err := c.Register(context.Background(), wire.RegisterRequest{Token: tok, DeviceID: core.NewID(),
				DeviceName: fmt.Sprintf("till-%02d", w), StoreID: m.actor.Store.ID})
			if err != nil {
				b.Fatalf("register till %d: %v", w, err)
			}
			c.SetToken(reg.DeviceToken)
			clients[w] = c
		}
		b.Logf("setup (PostgreSQL store, %d codes, %d tills): %s", distinct+contests, tills, time.Since(setup).Round(time.Millisecond))

		free, contested := m.codes[:distinct], m.codes[distinct:]
		var next atomic.Int64 // next free code
		wins := make([]atomic.Int32, contests)
		tried := make([]atomic.Int32, contests)
		var attempts, oks, refusedFree, failures atomic.Int64
		var firstErr atomic.Value
		var ranOut atomic.Bool
		ctx, cancel := context.WithTimeout(context.Background(), runFor)
		var wg sync.WaitGroup
		cpu0 := processCPU()
		b.StartTimer()
		start := time.Now()
		for w := range tills {
			wg.Add(1)
			go func(w int, c *syncclient.Client) {
				defer wg.Done()
				for j := 0; ctx.Err() == nil; j++ {
					code, k := "", -1
					if j%every == every-1 {
						if k = (j/every)*(tills/group) + w%(tills/group); k < contests {
							code = contested[k]
						} else {
							k = -1
						}
					}
					if code == "" {
						x := next.Add(1) - 1
						if x >= int64(len(free)) {
							ranOut.Store(true)
							return
						}
						code = free[x]
					}
					resp, err := c.Redeem(context.Background(), wire.RedeemRequest{Code: code, IdemKey: core.NewID(),
						StoreID: m.actor.Store.ID, OperatorID: m.actor.Operator.ID, OrderAmount: 12800})
					attempts.Add(1)
					if err != nil {
						failures.Add(1)
						firstErr.CompareAndSwap(nil, err.Error())
						continue
					}
					if resp.OK {
						oks.Add(1)
					}
					if k >= 0 {
						tried[k].Add(1)
						if resp.OK {
							wins[k].Add(1)
						} else if resp.Reason != "already_redeemed" {
							failures.Add(1)
							firstErr.CompareAndSwap(nil, "contested code answered "+resp.Reason)
						}
					} else if !resp.OK {
						refusedFree.Add(1)
						firstErr.CompareAndSwap(nil, "a fresh code answered "+resp.Reason)
					}
				}
			}(w, clients[w])
		}
		wg.Wait()
		took := time.Since(start)
		b.StopTimer()
		cpu := processCPU() - cpu0
		cancel()
		if ranOut.Load() {
			b.Logf("the %d distinct codes ran out before %s", distinct, runFor)
		}
		if failures.Load() > 0 || refusedFree.Load() > 0 {
			b.Errorf("%d failed calls, %d fresh codes refused; first: %v", failures.Load(), refusedFree.Load(), firstErr.Load())
		}

		// Exactly one till won each contested code that was tried, and the server's
		// rows agree: no code used more than it may be, one claim per win.
		var contestedTried, doubles, unwon, contestedAttempts int64
		for k := range contests {
			t, w := tried[k].Load(), wins[k].Load()
			if t == 0 {
				continue
			}
			contestedTried++
			contestedAttempts += int64(t)
			switch {
			case w > 1:
				doubles++
			case w == 0:
				unwon++
			}
		}
		if doubles > 0 || unwon > 0 {
			b.Errorf("contested codes: %d won more than once, %d never won (of %d tried)", doubles, unwon, contestedTried)
		}
		over, multi, claims := serverRedeemRows(b, dsn)
		if over != 0 || multi != 0 || claims != oks.Load() {
			b.Errorf("server rows: %d codes over their max uses, %d codes with several claims, %d claims for %d ok answers",
				over, multi, claims, oks.Load())
		}

		rate := float64(attempts.Load()) / took.Seconds()
		okRate := float64(oks.Load()) / took.Seconds()
		tps, pgbenchOut := runPgbench(b, pgbench, benchDatabase(b, "kameng_pgbench_"), tills)
		b.Logf("pgbench: %s", pgbenchOut)
		b.ReportMetric(rate, "redeems/s")
		b.ReportMetric(okRate, "ok-redeems/s")
		b.ReportMetric(float64(contestedTried), "contested-codes")
		b.ReportMetric(float64(contestedAttempts), "contested-attempts")
		b.ReportMetric(float64(doubles), "double-redemptions")
		b.ReportMetric(tps, "pgbench-tps")
		b.ReportMetric(rate/tps, "ratio")
		// CPU of this process (tills and server) per answered redeem; the rest of the
		// machine's two cores went to PostgreSQL and the kernel.
		b.ReportMetric(float64(cpu.Microseconds())/float64(attempts.Load()), "go-cpu-us/redeem")
		b.ReportMetric(cpu.Seconds()/(took.Seconds()*float64(runtime.NumCPU())), "go-cpu-share")
		b.ReportMetric(okRate/tps, "ok-ratio")
		logBar(b, "online redeem on PostgreSQL against pgbench", rate/tps >= 0.5, "%.0f redeems/s, %.0f tps, ratio %.3f against 0.5",
			rate, tps, rate/tps)
	}
}

// processCPU is the user and system CPU time this process has used.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// serverRedeemRows reads the server's own tables: codes used more often than they
// may be, codes with more than one claim, and all claims.
func serverRedeemRows(b *testing.B, dsn string) (over, multi, claims int64) {
	b.Helper()
	db, err := sql.Open("pgx", dsn)
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	err = db.QueryRow(`SELECT
		(SELECT count(*) FROM code WHERE max_uses > 0 AND uses > max_uses),
		(SELECT count(*) FROM (SELECT 1 FROM redemption WHERE status = 'claim' GROUP BY merchant_id, code HAVING count(*) > 1) x),
		(SELECT count(*) FROM redemption WHERE status = 'claim')`).Scan(&over, &multi, &claims)
	if err != nil {
		b.Fatalf("server rows: %v", err)
	}
	return over, multi, claims
}

// findPgbench looks for pgbench on PATH and beside the PostgreSQL server binaries.
func findPgbench() (string, error) {
	if p, err := exec.LookPath("pgbench"); err == nil {
		return p, nil
	}
	found, _ := filepath.Glob("/usr/lib/postgresql/*/bin/pgbench")
	if len(found) > 0 {
		return found[len(found)-1], nil
	}
	if _, err := os.Stat("/usr/local/bin/pgbench"); err == nil {
		return "/usr/local/bin/pgbench", nil
	}
	return "", fmt.Errorf("pgbench not found (it comes with the postgresql packages)")
}

var tpsLine = regexp.MustCompile(`(?m)^tps = ([0-9.]+)`)

// runPgbench initialises scale 10 on dsn, runs simple-update with clients
// connections on 2 threads for 10 s, and returns its tps with its summary lines.
func runPgbench(b *testing.B, pgbench, dsn string, clients int) (float64, string) {
	b.Helper()
	if out, err := exec.Command(pgbench, "-i", "-s", "10", "-q", dsn).CombinedOutput(); err != nil {
		b.Fatalf("pgbench -i: %v\n%s", err, out)
	}
	out, err := exec.Command(pgbench, "-c", strconv.Itoa(clients), "-j", "2", "-T", "10", "-b", "simple-update", "-n", dsn).CombinedOutput()
	if err != nil {
		b.Fatalf("pgbench: %v\n%s", err, out)
	}
	m := tpsLine.FindSubmatch(out)
	if m == nil {
		b.Fatalf("no tps in pgbench's output:\n%s", out)
	}
	tps, err := strconv.ParseFloat(string(m[1]), 64)
	if err != nil || tps <= 0 {
		b.Fatalf("pgbench tps %q: %v", m[1], err)
	}
	var summary []string
	for _, line := range strings.Split(string(out), "\n") {
		if strings.HasPrefix(line, "tps = ") || strings.HasPrefix(line, "latency average") || strings.HasPrefix(line, "number of transactions actually processed") {
			summary = append(summary, strings.TrimSpace(line))
		}
	}
	return tps, strings.Join(summary, "; ")
}
