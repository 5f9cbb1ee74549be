package app_test

// End-to-end sync tests: the real kameng binary as a sync server (`kameng serve`)
// and as several devices, each a separate data directory, talking real HTTP on
// 127.0.0.1. They check what only shows with whole processes: a server that goes
// away and comes back, two tills redeeming the same code while cut off, and a sync
// killed (SIGKILL) at the worst moments (a proxy on 127.0.0.1 in front of the real
// server holds the push at the chosen point). Every test runs against the SQLite server
// store, and against PostgreSQL too when KAMENG_TEST_POSTGRES names an admin
// database (each test then gets a fresh database of its own).

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // database/sql driver "pgx", to look into the server's PostgreSQL
	"github.com/kameng/kameng/core/wire"
)

// lockedBuffer collects a process's output while the test reads it.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// eachServerStore runs fn once per server store: a SQLite file, and a fresh
// PostgreSQL database when KAMENG_TEST_POSTGRES is set.
func eachServerStore(t *testing.T, fn func(t *testing.T, dsn string)) {
	t.Run("sqlite", func(t *testing.T) {
		fn(t, filepath.Join(t.TempDir(), "server.db"))
	})
	t.Run("postgres", func(t *testing.T) {
		admin := os.Getenv("KAMENG_TEST_POSTGRES")
		if admin == "" {
			t.Skip("KAMENG_TEST_POSTGRES is not set (scripts/with-postgres.sh sets it)")
		}
		fn(t, freshPostgres(t, admin))
	})
}

// freshPostgres creates an empty database next to the admin one and returns its
// URL; it is dropped when the test ends (after the server process is gone).
func freshPostgres(t *testing.T, admin string) string {
	t.Helper()
	db, err := sql.Open("pgx", admin)
	if err != nil {
		t.Fatal(err)
	}
	name := fmt.Sprintf("kameng_e2e_%d_%d", os.Getpid(), time.Now().UnixNano())
	if _, err := db.Exec(`CREATE DATABASE ` + name); err != nil {
		db.Close()
		t.Fatalf("create database: %v", err)
	}
	t.Cleanup(func() {
		if _, err := db.Exec(`DROP DATABASE IF EXISTS ` + name + ` WITH (FORCE)`); err != nil {
			t.Logf("drop database %s: %v", name, err)
		}
		db.Close()
	})
	u, err := url.Parse(admin)
	if err != nil {
		t.Fatal(err)
	}
	u.Path = "/" + name
	return u.String()
}

// ksrv is one `kameng serve` process over one server database. It can be stopped
// and started again on the same address, as a server that went away comes back.
type ksrv struct {
	t    *testing.T
	dsn  string // SQLite file or postgres:// URL
	data string // the --data directory of the server's commands
	addr string // host:port, fixed after the first start

	cmd    *exec.Cmd
	exited chan struct{}
	logs   lockedBuffer // JSON log lines of every run, for failure messages
}

func startServer(t *testing.T, dsn string) *ksrv {
	t.Helper()
	s := &ksrv{t: t, dsn: dsn, data: filepath.Join(t.TempDir(), "srv"), addr: "127.0.0.1:0"}
	t.Cleanup(func() {
		s.stop()
		if t.Failed() {
			t.Logf("server log:\n%s", s.logs.String())
		}
	})
	s.start()
	return s
}

func (s *ksrv) url() string { return "http://" + s.addr }

// start runs the server and waits until it listens. The first start takes a free
// port; later ones reuse it, since the devices keep the server's address.
func (s *ksrv) start() {
	s.t.Helper()
	if s.cmd != nil {
		s.t.Fatal("the server is already running")
	}
	var out lockedBuffer
	c := exec.Command(kamengBin, "--data", s.data, "--json", "serve", "--listen", s.addr, "--db", s.dsn, "--rate", "0")
	c.Env = kenv()
	c.Stdout, c.Stderr = &out, &s.logs
	if err := c.Start(); err != nil {
		s.t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() {
		c.Wait()
		close(exited)
	}()
	s.cmd, s.exited = c, exited
	deadline := time.After(30 * time.Second)
	for {
		var ready struct {
			Listen string `json:"listen"`
			Store  string `json:"store"`
		}
		if json.Unmarshal([]byte(out.String()), &ready) == nil && ready.Listen != "" {
			want := "sqlite"
			if strings.HasPrefix(s.dsn, "postgres") {
				want = "postgres"
			}
			if ready.Store != want {
				s.t.Fatalf("the server runs on %q, want %q", ready.Store, want)
			}
			s.addr = ready.Listen
			return
		}
		select {
		case <-exited:
			s.cmd = nil
			s.t.Fatalf("kameng serve ended before listening (%v)\nstdout: %s\nstderr: %s", c.ProcessState, out.String(), s.logs.String())
		case <-deadline:
			s.t.Fatalf("kameng serve did not say it listens within 30 s\nstdout: %s", out.String())
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// stop ends the server as an operator would (Ctrl-C: SIGINT), killing it if it hangs.
func (s *ksrv) stop() {
	if s.cmd == nil {
		return
	}
	s.cmd.Process.Signal(os.Interrupt)
	select {
	case <-s.exited:
	case <-time.After(10 * time.Second):
		s.t.Errorf("kameng serve did not stop within 10 s of SIGINT; killing it")
		s.cmd.Process.Kill()
		<-s.exited
	}
	s.cmd = nil
}

// token issues an enrolment token: founding a merchant ("") or joining one.
func (s *ksrv) token(merchant string) string {
	s.t.Helper()
	args := []string{"--data", s.data, "--json", "server", "token", "create", "--db", s.dsn}
	if merchant != "" {
		args = append(args, "--merchant", merchant)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c := exec.CommandContext(ctx, kamengBin, args...)
	c.Env = kenv()
	r := finish(s.t, c, args)
	if r.code != 0 {
		s.t.Fatalf("want exit 0:\n%s", r)
	}
	var out struct {
		Token string `json:"token"`
	}
	decode(s.t, r, &out)
	if !strings.HasPrefix(out.Token, "km_") {
		s.t.Fatalf("token create printed no token:\n%s", r)
	}
	return out.Token
}

// db opens the server's database directly, as an administrator would look into it.
func (s *ksrv) db() *sql.DB {
	s.t.Helper()
	var db *sql.DB
	if strings.HasPrefix(s.dsn, "postgres") {
		var err error
		if db, err = sql.Open("pgx", s.dsn); err != nil {
			s.t.Fatal(err)
		}
	} else {
		db = sqlOpen(s.t, s.dsn)
	}
	s.t.Cleanup(func() { db.Close() })
	return db
}

// sqlText quotes a value the test made or read (ids, codes) as an SQL literal.
func sqlText(v string) string { return "'" + strings.ReplaceAll(v, "'", "''") + "'" }

func queryText(t *testing.T, db *sql.DB, q string) string {
	t.Helper()
	var s string
	if err := db.QueryRow(q).Scan(&s); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	return s
}

// syncState is the part of `kameng sync status --json` the tests read.
type syncState struct {
	State struct {
		MerchantID string `json:"merchant_id"`
		DeviceID   string `json:"device_id"`
		AckedMID   int64  `json:"acked_mid"`
		Pending    int64  `json:"pending"`
		OpenCases  int64  `json:"open_cases"`
	} `json:"state"`
}

func (k *kdir) syncState() syncState {
	k.t.Helper()
	var s syncState
	k.okJSON(&s, "sync", "status")
	return s
}

// syncReport is the --json form of `kameng sync`.
type syncReport struct {
	Pushed   int64 `json:"pushed"`
	Applied  int64 `json:"applied"`
	Rejected int64 `json:"rejected"`
	Flagged  int64 `json:"flagged"`
	MIDGaps  int   `json:"mid_gaps"`
}

func (k *kdir) sync() syncReport {
	k.t.Helper()
	var r syncReport
	k.okJSON(&r, "sync")
	return r
}

// registration is the --json form of `kameng device register`.
type registration struct {
	MerchantID string `json:"merchant_id"`
	DeviceID   string `json:"device_id"`
	Joined     bool   `json:"joined"`
}

// redemptionRow is one line of `kameng redemptions --json`.
type redemptionRow struct {
	ID       string `json:"id"`
	Code     string `json:"code"`
	DeviceID string `json:"device_id"`
	Status   string `json:"status"`
	Value    int64  `json:"value"`
}

func (k *kdir) redemptionsOf(code string) []redemptionRow {
	k.t.Helper()
	var rs []redemptionRow
	k.okJSON(&rs, "redemptions", "--code", code)
	return rs
}

// codeShown is the --json form of `kameng codes show`.
type codeShown struct {
	Code struct {
		Uses    int   `json:"uses"`
		Balance int64 `json:"balance"`
	} `json:"code"`
}

func (k *kdir) showCode(code string) codeShown {
	k.t.Helper()
	var c codeShown
	k.okJSON(&c, "codes", "show", code)
	return c
}

func (k *kdir) cases(status string) []wire.Case {
	k.t.Helper()
	var cs []wire.Case
	k.okJSON(&cs, "cases", "--status", status)
	return cs
}

func (k *kdir) redeem(args ...string) redeemOut {
	k.t.Helper()
	var out redeemOut
	k.okJSON(&out, append([]string{"redeem"}, args...)...)
	if !out.Verdict.OK || out.Redemption == nil {
		k.t.Fatalf("redeem %v was refused: %+v", args, out.Verdict)
	}
	return out
}

// Where a faultProxy holds a device's push.
const (
	holdBeforeServer = "before-server" // the push left the device but never reaches the server
	holdAfterServer  = "after-server"  // the server applied the push; its answer never reaches the device
)

// faultProxy stands between a device and the real server on 127.0.0.1. Armed, it
// holds the next push at one point until the device goes away, so the test can kill
// the device exactly there; otherwise it passes everything through.
type faultProxy struct {
	t      *testing.T
	target *url.URL
	ts     *httptest.Server
	pass   *httputil.ReverseProxy

	mu    sync.Mutex
	point string        // armed hold point, "" when passing through
	held  chan struct{} // closed when the push is held
	quit  chan struct{} // closed when the test ends: let go of everything
}

func newFaultProxy(t *testing.T, server string) *faultProxy {
	t.Helper()
	u, err := url.Parse(server)
	if err != nil {
		t.Fatal(err)
	}
	p := &faultProxy{t: t, target: u, pass: httputil.NewSingleHostReverseProxy(u), quit: make(chan struct{})}
	p.ts = httptest.NewServer(http.HandlerFunc(p.serve))
	t.Cleanup(func() {
		close(p.quit)
		p.ts.Close()
	})
	return p
}

func (p *faultProxy) url() string { return p.ts.URL }

// arm makes the proxy hold the next push at point; the channel closes when it does.
func (p *faultProxy) arm(point string) <-chan struct{} {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.point, p.held = point, make(chan struct{})
	return p.held
}

func (p *faultProxy) serve(w http.ResponseWriter, r *http.Request) {
	p.mu.Lock()
	point, held := p.point, p.held
	if r.URL.Path == "/v1/sync/push" {
		p.point = "" // one push is held, the next ones pass
	} else {
		point = ""
	}
	p.mu.Unlock()
	if point == "" {
		p.pass.ServeHTTP(w, r)
		return
	}
	body, err := io.ReadAll(r.Body)
	if err != nil {
		return
	}
	if point == holdAfterServer {
		// Forward the push and read the server's whole answer: it has committed.
		req, err := http.NewRequest(r.Method, p.target.String()+r.URL.RequestURI(), bytes.NewReader(body))
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		req.Header = r.Header.Clone()
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		answer, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			p.t.Errorf("the held push was refused: %d %s", resp.StatusCode, answer)
		}
	}
	close(held)
	// Hold until the device is gone (killed) or the test ends; answer nothing.
	select {
	case <-r.Context().Done():
	case <-p.quit:
	}
}

// killedSync starts `kameng sync`, waits until the proxy holds its push at point,
// and kills the process there (SIGKILL).
func (k *kdir) killedSync(p *faultProxy, point string) {
	k.t.Helper()
	held := p.arm(point)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	c := k.cmd(ctx, "sync")
	var out, errb lockedBuffer
	c.Stdout, c.Stderr = &out, &errb
	if err := c.Start(); err != nil {
		k.t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- c.Wait() }()
	select {
	case <-held:
	case err := <-exited:
		k.t.Fatalf("kameng sync ended (%v) before its push was held %s\nstdout: %s\nstderr: %s", err, point, out.String(), errb.String())
	case <-time.After(30 * time.Second):
		c.Process.Kill()
		k.t.Fatalf("kameng sync never pushed")
	}
	if err := c.Process.Kill(); err != nil {
		k.t.Fatal(err)
	}
	<-exited
	if c.ProcessState.Exited() {
		k.t.Fatalf("kameng sync held %s exited by itself (%v) instead of being killed", point, c.ProcessState)
	}
}

// 1. Two tills, cut off from the server, redeem the same single-use code. When the
// server is back and both have synced (A, B, then A and B again), exactly one
// redemption stands everywhere, both tills have the DOUBLE_REDEMPTION case, and both
// audit chains are intact.
func TestE2EDoubleRedemptionOffline(t *testing.T) {
	eachServerStore(t, func(t *testing.T, dsn string) {
		srv := startServer(t, dsn)

		a := newKDir(t)
		a.init()
		a.ok("campaign", "create", "--name", "离线券", "--kind", "amount_off", "--amount-off", "5", "--uses", "1", "--offline", "yes")
		a.ok("codes", "generate", "离线券", "--count", "3")
		codes := a.codeStrings("离线券", 10)
		if len(codes) != 3 {
			t.Fatalf("want 3 codes, got %v", codes)
		}
		code := codes[0]
		var regA registration
		a.okJSON(&regA, "device", "register", "--server", srv.url(), "--token", srv.token(""))
		if regA.MerchantID == "" || regA.Joined {
			t.Fatalf("A's registration: %+v", regA)
		}
		if rep := a.sync(); rep.Pushed == 0 || rep.Rejected+rep.Flagged != 0 {
			t.Fatalf("A's first sync: %+v", rep)
		}

		// B is an empty data directory joining A's merchant: it pulls the campaign and codes.
		b := newKDir(t)
		var regB registration
		b.okJSON(&regB, "device", "register", "--server", srv.url(), "--token", srv.token(regA.MerchantID), "--device", "pos-b")
		if !regB.Joined || regB.MerchantID != regA.MerchantID || regB.DeviceID == regA.DeviceID {
			t.Fatalf("B's registration: %+v (A: %+v)", regB, regA)
		}
		if got := b.codeStrings("离线券", 10); len(got) != 3 {
			t.Fatalf("B pulled codes %v, want A's 3", got)
		}

		// The line drops: both tills redeem the same code on their own.
		srv.stop()
		ra := a.redeem(code)
		rb := b.redeem(code)
		if ra.Redemption.ID == rb.Redemption.ID {
			t.Fatalf("two tills made one redemption id %s", ra.Redemption.ID)
		}
		for name, k := range map[string]*kdir{"A": a, "B": b} {
			if st := k.syncState(); st.State.Pending != 1 {
				t.Fatalf("%s holds %d pending mutations after the offline redemption, want 1", name, st.State.Pending)
			}
		}

		// The server comes back; A reaches it first, so A's redemption stands.
		srv.start()
		if rep := a.sync(); rep.Pushed != 1 || rep.Applied != 1 || rep.Flagged != 0 {
			t.Fatalf("A's sync after the outage: %+v", rep)
		}
		if rep := b.sync(); rep.Pushed != 1 || rep.Flagged != 1 {
			t.Fatalf("B's sync of the second redemption must be flagged: %+v", rep)
		}
		a.sync()
		b.sync()

		for name, k := range map[string]*kdir{"A": a, "B": b} {
			standing := 0
			for _, r := range k.redemptionsOf(code) {
				switch {
				case r.Status == "done":
					standing++
					if r.ID != ra.Redemption.ID {
						t.Errorf("%s: the standing redemption is %s, want A's %s", name, r.ID, ra.Redemption.ID)
					}
				case r.ID != rb.Redemption.ID:
					t.Errorf("%s: unexpected redemption %+v", name, r)
				}
			}
			if standing != 1 {
				t.Errorf("%s has %d standing redemptions of %s, want 1: %+v", name, standing, code, k.redemptionsOf(code))
			}
			if uses := k.showCode(code).Code.Uses; uses != 1 {
				t.Errorf("%s counts %d uses of %s, want 1", name, uses, code)
			}
			if st := k.syncState(); st.State.Pending != 0 {
				t.Errorf("%s still has %d pending mutations", name, st.State.Pending)
			}
		}
		// B's own redemption was undone on B, not deleted: the record stays.
		var bOwn *redemptionRow
		for _, r := range b.redemptionsOf(code) {
			if r.ID == rb.Redemption.ID {
				bOwn = &r
			}
		}
		if bOwn == nil || bOwn.Status == "done" {
			t.Errorf("B's losing redemption should be kept and undone, got %+v", bOwn)
		}

		// The server: one standing redemption (A's), the code used once, B's push
		// flagged, one case and one reversal.
		db := srv.db()
		q := func(format string, args ...any) int64 { return queryInt(t, db, fmt.Sprintf(format, args...)) }
		if n := q(`SELECT count(*) FROM redemption WHERE code = %s AND status = 'standing'`, sqlText(code)); n != 1 {
			t.Errorf("the server has %d standing redemptions of %s, want 1", n, code)
		}
		if id := queryText(t, db, `SELECT id FROM redemption WHERE code = `+sqlText(code)+` AND status = 'standing'`); id != ra.Redemption.ID {
			t.Errorf("the server's standing redemption is %s, want A's %s", id, ra.Redemption.ID)
		}
		if n := q(`SELECT uses FROM code WHERE code = %s`, sqlText(code)); n != 1 {
			t.Errorf("the server counts %d uses of %s, want 1", n, code)
		}
		if n := q(`SELECT count(*) FROM log WHERE device_id = %s AND name = 'code.redeem@1' AND status = 'flagged' AND reason = 'already_redeemed'`, sqlText(regB.DeviceID)); n != 1 {
			t.Errorf("B's redemption is flagged already_redeemed %d times in the server's log, want 1", n)
		}
		if n := q(`SELECT count(*) FROM log WHERE device_id = 'server' AND name = 'redemption.reverse@1'`); n != 1 {
			t.Errorf("%d redemption.reverse@1 entries in the server's log, want 1", n)
		}
		serverCase := queryText(t, db, `SELECT id FROM sync_case WHERE kind = 'DOUBLE_REDEMPTION' AND subject = `+sqlText(code))
		if n := q(`SELECT count(*) FROM sync_case`); n != 1 {
			t.Errorf("the server has %d cases, want 1", n)
		}

		// The case reached both tills, and names both devices.
		for name, k := range map[string]*kdir{"A": a, "B": b} {
			cs := k.cases("open")
			if len(cs) != 1 || cs[0].Kind != wire.CaseDoubleRedemption || cs[0].Subject != code || cs[0].ID != serverCase {
				t.Errorf("%s's open cases: %+v, want the DOUBLE_REDEMPTION %s of %s", name, cs, serverCase, code)
				continue
			}
			for _, dev := range []string{regA.DeviceID, regB.DeviceID} {
				if !strings.Contains(string(cs[0].Detail), dev) {
					t.Errorf("%s: the case's detail does not name device %s: %s", name, dev, cs[0].Detail)
				}
			}
			k.ok("audit", "verify")
		}
	})
}

// 2. A sync killed after the local commit but before its push reached the server,
// and another killed after the server applied a push but before the device heard
// (and recorded) the answer: after a restart and `kameng sync`, every mutation took
// effect exactly once.
func TestE2ESyncKilled(t *testing.T) {
	eachServerStore(t, func(t *testing.T, dsn string) {
		srv := startServer(t, dsn)
		proxy := newFaultProxy(t, srv.url())
		a := newKDir(t)
		a.init()
		a.ok("campaign", "create", "--name", "单次券", "--kind", "amount_off", "--amount-off", "5", "--uses", "1")
		a.ok("codes", "generate", "单次券", "--count", "2")
		a.ok("campaign", "create", "--name", "礼品卡", "--kind", "gift_card", "--face-value", "100")
		a.ok("codes", "generate", "礼品卡", "--count", "1")
		coupons := a.codeStrings("单次券", 10)
		cards := a.codeStrings("礼品卡", 10)
		if len(coupons) != 2 || len(cards) != 1 {
			t.Fatalf("codes: %v %v", coupons, cards)
		}
		card := cards[0]
		var reg registration
		a.okJSON(&reg, "device", "register", "--server", proxy.url(), "--token", srv.token(""))
		if rep := a.sync(); rep.Rejected+rep.Flagged != 0 {
			t.Fatalf("first sync: %+v", rep)
		}
		db := srv.db()
		dev := sqlText(reg.DeviceID)
		serverMutations := func(after int64) int64 {
			return queryInt(t, db, fmt.Sprintf(`SELECT count(*) FROM log WHERE device_id = %s AND mid > %d`, dev, after))
		}

		var redemptions []string // every redemption this device made, by id
		for i, point := range []string{holdBeforeServer, holdAfterServer} {
			// A sale with a coupon and a part payment from the gift card, both
			// committed here (the server claims them online first).
			before := a.syncState().State
			redemptions = append(redemptions, a.redeem(coupons[i]).Redemption.ID, a.redeem(card, "--amount", "30").Redemption.ID)
			st := a.syncState().State
			if st.Pending != 2 || st.AckedMID != before.AckedMID {
				t.Fatalf("%s: after two redemptions: pending %d acked %d, want 2 and %d", point, st.Pending, st.AckedMID, before.AckedMID)
			}

			a.killedSync(proxy, point)

			// The kill landed where it was meant to.
			want := int64(0) // the server has not seen them
			if point == holdAfterServer {
				want = 2 // the server has applied both
			}
			if n := serverMutations(st.AckedMID); n != want {
				t.Fatalf("%s: the server has %d of the device's new mutations, want %d", point, n, want)
			}
			if after := a.syncState().State; after.Pending != 2 || after.AckedMID != st.AckedMID {
				t.Fatalf("%s: after the kill: pending %d acked %d, want 2 and %d (the answer was never recorded)",
					point, after.Pending, after.AckedMID, st.AckedMID)
			}

			rep := a.sync()
			if rep.Pushed != 2 || rep.Rejected != 0 || rep.Flagged != 0 {
				t.Fatalf("%s: the sync after the kill: %+v", point, rep)
			}
			if after := a.syncState().State; after.Pending != 0 || after.AckedMID != st.AckedMID+2 {
				t.Fatalf("%s: after the sync: pending %d acked %d, want 0 and %d", point, after.Pending, after.AckedMID, st.AckedMID+2)
			}
		}

		// Each (device, mid) once in the server's log, none missing.
		acked := a.syncState().State.AckedMID
		if n := queryInt(t, db, `SELECT count(*) FROM log WHERE device_id = `+dev); n != acked {
			t.Errorf("the server's log has %d entries of the device, want %d (one per mid)", n, acked)
		}
		if n := queryInt(t, db, `SELECT count(DISTINCT mid) FROM log WHERE device_id = `+dev); n != acked {
			t.Errorf("the server's log has %d distinct mids of the device, want %d", n, acked)
		}
		if n := queryInt(t, db, `SELECT max(mid) FROM log WHERE device_id = `+dev); n != acked {
			t.Errorf("the server's last mid of the device is %d, want %d", n, acked)
		}
		if n := queryInt(t, db, `SELECT count(*) FROM log WHERE device_id = `+dev+` AND status <> 'applied'`); n != 0 {
			t.Errorf("%d of the device's mutations were not applied", n)
		}
		if n := queryInt(t, db, `SELECT count(*) FROM sync_case`); n != 0 {
			t.Errorf("the server opened %d cases", n)
		}

		// Each redemption once, on the server and here: the coupons used once, the
		// gift card debited twice (100 − 30 − 30 = 40).
		for _, c := range coupons {
			if n := queryInt(t, db, `SELECT count(*) FROM redemption WHERE code = `+sqlText(c)); n != 1 {
				t.Errorf("the server has %d redemptions of %s, want 1", n, c)
			}
			if n := queryInt(t, db, `SELECT uses FROM code WHERE code = `+sqlText(c)); n != 1 {
				t.Errorf("the server counts %d uses of %s, want 1", n, c)
			}
			if rs := a.redemptionsOf(c); len(rs) != 1 || rs[0].Status != "done" {
				t.Errorf("the device's redemptions of %s: %+v, want one", c, rs)
			}
			if uses := a.showCode(c).Code.Uses; uses != 1 {
				t.Errorf("the device counts %d uses of %s, want 1", uses, c)
			}
		}
		if n := queryInt(t, db, `SELECT count(*) FROM redemption WHERE code = `+sqlText(card)+` AND status = 'standing'`); n != 2 {
			t.Errorf("the server has %d standing debits of the gift card, want 2", n)
		}
		if n := queryInt(t, db, `SELECT balance FROM code WHERE code = `+sqlText(card)); n != 4000 {
			t.Errorf("the server's gift card balance is %d, want 4000", n)
		}
		if rs := a.redemptionsOf(card); len(rs) != 2 {
			t.Errorf("the device has %d debits of the gift card, want 2: %+v", len(rs), rs)
		}
		if bal := a.showCode(card).Code.Balance; bal != 4000 {
			t.Errorf("the device's gift card balance is %d, want 4000", bal)
		}
		for _, id := range redemptions {
			if n := queryInt(t, db, `SELECT count(*) FROM redemption WHERE id = `+sqlText(id)+` AND status = 'standing'`); n != 1 {
				t.Errorf("redemption %s stands %d times on the server, want 1", id, n)
			}
		}
		if cs := a.cases("all"); len(cs) != 0 {
			t.Errorf("the device has cases: %+v", cs)
		}
		var doc doctorOut
		a.okJSON(&doc, "doctor")
		if good, detail := doc.check(t, "ledger"); !good {
			t.Errorf("doctor's ledger check: %s", detail)
		}
		a.ok("audit", "verify")
	})
}
