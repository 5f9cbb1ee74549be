package syncclient_test

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib"
	"github.com/kameng/kameng/core"
	"github.com/kameng/kameng/core/store"
	"github.com/kameng/kameng/core/wire"
	"github.com/kameng/kameng/server"
	"github.com/kameng/kameng/syncclient"
)

// Tests run the real server handler over real HTTP on 127.0.0.1, with a server
// store in a temporary SQLite file (and, when KAMENG_TEST_POSTGRES names an admin
// database, in a fresh PostgreSQL database as well), and real device databases.

// hub is one server under test with a wrapper that counts (and can disturb)
// requests.
type hub struct {
	t  *testing.T
	st server.Store
	ts *httptest.Server

	mu      sync.Mutex
	counts  map[string]int // path → requests seen
	disturb func(w http.ResponseWriter, r *http.Request) bool
	bodies  map[string][][]byte // path → request bodies, when keepBodies
	keep    bool
}

// forStores runs fn against SQLite, and PostgreSQL when configured.
func forStores(t *testing.T, fn func(t *testing.T, h *hub)) {
	t.Run("sqlite", func(t *testing.T) { fn(t, newHub(t, openSQLite(t))) })
	if os.Getenv("KAMENG_TEST_POSTGRES") != "" {
		t.Run("postgres", func(t *testing.T) { fn(t, newHub(t, openPostgres(t))) })
	}
}

func openSQLite(t *testing.T) server.Store {
	t.Helper()
	st, err := server.Open(filepath.Join(t.TempDir(), "server.db"))
	if err != nil {
		t.Fatalf("server store: %v", err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

// openPostgres creates a database of its own on the server KAMENG_TEST_POSTGRES
// names and drops it after the test.
func openPostgres(t *testing.T) server.Store {
	t.Helper()
	admin := os.Getenv("KAMENG_TEST_POSTGRES")
	db, err := sql.Open("pgx", admin)
	if err != nil {
		t.Fatalf("postgres: %v", err)
	}
	t.Cleanup(func() { db.Close() })
	b := make([]byte, 6)
	rand.Read(b)
	name := "kameng_sc_" + hex.EncodeToString(b)
	if _, err := db.Exec("CREATE DATABASE " + name); err != nil {
		t.Fatalf("create database: %v", err)
	}
	u, err := url.Parse(admin)
	if err != nil {
		t.Fatalf("KAMENG_TEST_POSTGRES: %v", err)
	}
	u.Path = "/" + name
	st, err := server.Open(u.String())
	if err != nil {
		t.Fatalf("server store: %v", err)
	}
	t.Cleanup(func() {
		st.Close()
		if _, err := db.Exec("DROP DATABASE IF EXISTS " + name + " WITH (FORCE)"); err != nil {
			t.Logf("drop database %s: %v", name, err)
		}
	})
	return st
}

func newHub(t *testing.T, st server.Store) *hub { return newHubAt(t, st, nil) }

// newHubAt is newHub with the server's clock given (nil: the wall clock).
func newHubAt(t *testing.T, st server.Store, now func() time.Time) *hub {
	h := &hub{t: t, st: st, counts: map[string]int{}, bodies: map[string][][]byte{}}
	api := server.NewHandler(st, server.Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), RateLimit: -1, Now: now})
	h.ts = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h.mu.Lock()
		h.counts[r.URL.Path]++
		d, keep := h.disturb, h.keep
		h.mu.Unlock()
		if keep && r.Body != nil {
			b, _ := io.ReadAll(r.Body)
			r.Body = io.NopCloser(strings.NewReader(string(b)))
			h.mu.Lock()
			h.bodies[r.URL.Path] = append(h.bodies[r.URL.Path], b)
			h.mu.Unlock()
		}
		if d != nil && d(w, r) {
			return
		}
		api.ServeHTTP(w, r)
	}))
	t.Cleanup(h.ts.Close)
	return h
}

func (h *hub) count(path string) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.counts[path]
}

func (h *hub) reset() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.counts = map[string]int{}
	h.bodies = map[string][][]byte{}
}

func (h *hub) setDisturb(d func(w http.ResponseWriter, r *http.Request) bool) {
	h.mu.Lock()
	h.disturb = d
	h.mu.Unlock()
}

func (h *hub) token(merchantID string) string {
	h.t.Helper()
	tok, err := h.st.CreateToken(merchantID, "test", time.Hour, time.Now())
	if err != nil {
		h.t.Fatalf("token: %v", err)
	}
	return tok
}

// fastRetry keeps retry waits short in tests.
var fastRetry = syncclient.Options{RetryWait: 5 * time.Millisecond, RetryMaxWait: 2 * time.Second}

func (h *hub) client(token string) *syncclient.Client {
	return syncclient.New(h.ts.URL, token, fastRetry)
}

// dev is one device database with its owner acting and its Syncer.
type dev struct {
	t     *testing.T
	h     *hub
	db    *store.DB
	actor *store.Actor
	s     *syncclient.Syncer
}

func kek() []byte {
	k := make([]byte, 32)
	for i := range k {
		k[i] = byte(3*i + 11)
	}
	return k
}

var pwHash = sync.OnceValue(func() string { return core.HashPassword("password1") })

func openDevDB(t *testing.T, name string, fast bool) *store.DB {
	t.Helper()
	opt := store.Options{}
	if fast {
		opt.Synchronous = "OFF"
	}
	db, err := store.OpenWith(filepath.Join(t.TempDir(), name+".db"), opt)
	if err != nil {
		t.Fatalf("open %s: %v", name, err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// found initialises a device database and registers it, founding the server's
// copy of its merchant.
func (h *hub) found(name string, fast bool) *dev {
	t := h.t
	t.Helper()
	db := openDevDB(t, name, fast)
	a, err := db.Init(store.InitInput{Merchant: "测试商户", Store: "总店", Device: name, Owner: "boss",
		PasswordHash: pwHash(), KDF: "file", KEK: kek()})
	if err != nil {
		t.Fatalf("init: %v", err)
	}
	m, err := db.Merchant()
	if err != nil {
		t.Fatal(err)
	}
	c := h.client("")
	resp, err := c.Register(context.Background(), wire.RegisterRequest{Token: h.token(""), DeviceID: a.Device.ID, DeviceName: name,
		MerchantID: m.ID, MerchantName: m.Name, StoreID: a.Store.ID})
	if err != nil {
		t.Fatalf("register %s: %v", name, err)
	}
	if err := db.SetRegistration(h.ts.URL, resp.DeviceToken, resp.MerchantID, resp.Epoch, resp.LastMID); err != nil {
		t.Fatalf("set registration: %v", err)
	}
	c.SetToken(resp.DeviceToken)
	return &dev{t: t, h: h, db: db, actor: a, s: &syncclient.Syncer{DB: db, Client: c}}
}

// joinStart makes an empty database join merchantID and registers it, without
// pulling yet.
func (h *hub) joinStart(name, merchantID string) *dev {
	t := h.t
	t.Helper()
	db := openDevDB(t, name, false)
	if err := db.Join(store.JoinInput{Device: name, KDF: "file", KEK: kek()}); err != nil {
		t.Fatalf("join: %v", err)
	}
	st, err := db.SyncState()
	if err != nil {
		t.Fatal(err)
	}
	c := h.client("")
	resp, err := c.Register(context.Background(), wire.RegisterRequest{Token: h.token(merchantID), DeviceID: st.DeviceID, DeviceName: name})
	if err != nil {
		t.Fatalf("register %s: %v", name, err)
	}
	if resp.MerchantID != merchantID {
		t.Fatalf("joined merchant %s, want %s", resp.MerchantID, merchantID)
	}
	if err := db.SetRegistration(h.ts.URL, resp.DeviceToken, resp.MerchantID, resp.Epoch, resp.LastMID); err != nil {
		t.Fatalf("set registration: %v", err)
	}
	c.SetToken(resp.DeviceToken)
	return &dev{t: t, h: h, db: db, s: &syncclient.Syncer{DB: db, Client: c}}
}

// finish creates the joined device's row and signs its owner in.
func (d *dev) finish() *dev {
	t := d.t
	t.Helper()
	dv, err := d.db.FinishJoin()
	if err != nil {
		t.Fatalf("finish join: %v", err)
	}
	owner, err := d.db.OwnerName()
	if err != nil {
		t.Fatal(err)
	}
	op, _, err := d.db.FindOperator(owner)
	if err != nil {
		t.Fatal(err)
	}
	st, err := d.db.FindStore(dv.StoreID)
	if err != nil {
		t.Fatal(err)
	}
	d.actor = &store.Actor{Operator: *op, Device: *dv, Store: *st}
	return d
}

// join is joinStart, a first sync, and finish.
func (h *hub) join(name, merchantID string) *dev {
	d := h.joinStart(name, merchantID)
	d.sync()
	return d.finish()
}

func (d *dev) sync() *syncclient.Report {
	d.t.Helper()
	rep, err := d.s.Once(context.Background())
	if err != nil {
		d.t.Fatalf("sync %s: %v", d.name(), err)
	}
	return rep
}

func (d *dev) name() string {
	if d.actor != nil {
		return d.actor.Device.Name
	}
	return "joining device"
}

func (d *dev) merchantID() string {
	st, err := d.db.SyncState()
	if err != nil {
		d.t.Fatal(err)
	}
	return st.MerchantID
}

func (d *dev) state() *store.SyncState {
	d.t.Helper()
	st, err := d.db.SyncState()
	if err != nil {
		d.t.Fatal(err)
	}
	return st
}

func (d *dev) campaign(name string, offline bool) *core.Campaign {
	d.t.Helper()
	c := &core.Campaign{Name: name, Kind: core.KindAmountOff, AmountOff: 500, Format: core.DefaultCodeFormat(),
		Rules: core.Rules{UsesPerCode: 1, RollbackHours: 72, Offline: core.Offline{Allowed: offline}}}
	if err := d.db.CreateCampaign(d.actor, c); err != nil {
		d.t.Fatalf("campaign: %v", err)
	}
	return c
}

func (d *dev) codes(campaignID string, n int64) []string {
	d.t.Helper()
	b, err := d.db.GenerateCodes(d.actor, campaignID, n, nil)
	if err != nil {
		d.t.Fatalf("generate: %v", err)
	}
	var out []string
	if err := d.db.EachCode(store.CodeFilter{Batch: b.ID}, false, func(k *core.Code) error {
		out = append(out, k.Code)
		return nil
	}); err != nil {
		d.t.Fatal(err)
	}
	return out
}

func (d *dev) redeem(code string) *store.RedeemResult {
	d.t.Helper()
	res, err := d.db.Redeem(d.actor, code, core.Order{Amount: 10000}, "")
	if err != nil {
		d.t.Fatalf("redeem %s: %v", code, err)
	}
	return res
}

func (d *dev) countCodes(f store.CodeFilter) int64 {
	d.t.Helper()
	n, err := d.db.CountCodes(f)
	if err != nil {
		d.t.Fatal(err)
	}
	return n
}
