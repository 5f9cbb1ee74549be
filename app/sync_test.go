package app

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kameng/kameng/core"
	"github.com/kameng/kameng/core/store"
	"github.com/kameng/kameng/core/wire"
	"github.com/kameng/kameng/server"
	"github.com/kameng/kameng/syncclient"
)

// syncServer is the real server handler on 127.0.0.1 over a temporary SQLite
// store, with switches that make it slow or silent.
type syncServer struct {
	st server.Store
	ts *httptest.Server

	mu   sync.Mutex
	slow map[string]time.Duration // path → delay before answering
	down bool                     // hang up on every request
}

func newSyncServer(t *testing.T) *syncServer {
	t.Helper()
	old := clientOptions
	clientOptions = syncclient.Options{RetryWait: 5 * time.Millisecond}
	t.Cleanup(func() { clientOptions = old })
	st, err := server.Open(filepath.Join(t.TempDir(), "server.db"))
	if err != nil {
		t.Fatalf("server store: %v", err)
	}
	t.Cleanup(func() { st.Close() })
	s := &syncServer{st: st, slow: map[string]time.Duration{}}
	api := server.NewHandler(st, server.Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), RateLimit: -1})
	s.ts = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		delay, down := s.slow[r.URL.Path], s.down
		s.mu.Unlock()
		if down {
			if conn, _, err := http.NewResponseController(w).Hijack(); err == nil {
				conn.Close()
			}
			return
		}
		if delay > 0 {
			// Reading the body first lets the server notice the client hanging up.
			b, _ := io.ReadAll(r.Body)
			r.Body = io.NopCloser(bytes.NewReader(b))
			select {
			case <-time.After(delay):
			case <-r.Context().Done():
				return
			}
		}
		api.ServeHTTP(w, r)
	}))
	t.Cleanup(s.ts.Close)
	return s
}

func (s *syncServer) token(t *testing.T, merchantID string) string {
	t.Helper()
	tok, err := s.st.CreateToken(merchantID, "test", time.Hour, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func (s *syncServer) setSlow(path string, d time.Duration) {
	s.mu.Lock()
	s.slow[path] = d
	s.mu.Unlock()
}

func (s *syncServer) setDown(b bool) {
	s.mu.Lock()
	s.down = b
	s.mu.Unlock()
}

// kameng runs the command line in-process on a data directory and returns its
// exit code and output.
func kameng(t *testing.T, dir string, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	code := Run(append([]string{"--data", dir, "--lang", "en"}, args...), strings.NewReader(""), &out, &errb, Frontends{})
	return code, out.String(), errb.String()
}

func mustKameng(t *testing.T, dir string, args ...string) string {
	t.Helper()
	code, out, errs := kameng(t, dir, args...)
	if code != 0 {
		t.Fatalf("kameng %s: exit %d\n%s%s", strings.Join(args, " "), code, out, errs)
	}
	return out
}

func jsonOut(t *testing.T, s string, v any) {
	t.Helper()
	if err := json.Unmarshal([]byte(s), v); err != nil {
		t.Fatalf("not JSON: %v\n%s", err, s)
	}
}

// registeredApp initialises a data directory, registers it with the server and
// makes a campaign of single-use codes (offline redemption as given), synced.
func registeredApp(t *testing.T, s *syncServer, offline bool) (*App, []string) {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "data")
	a, err := Init(dir, InitOptions{Merchant: "测试", Store: "总店", Device: "pos-1", Owner: "boss", Password: "password1"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Close() })
	a.Lang = "en"
	if _, err := a.RegisterDevice(s.ts.URL, s.token(t, ""), ""); err != nil {
		t.Fatalf("register: %v", err)
	}
	c := &core.Campaign{Name: "满100减10", Kind: core.KindAmountOff, AmountOff: 1000, Format: core.DefaultCodeFormat(),
		Rules: core.Rules{UsesPerCode: 1, RollbackHours: 72, Offline: core.Offline{Allowed: offline}}}
	if err := a.DB.CreateCampaign(a.Actor, c); err != nil {
		t.Fatal(err)
	}
	b, err := a.DB.GenerateCodes(a.Actor, c.ID, 10, nil)
	if err != nil {
		t.Fatal(err)
	}
	var codes []string
	a.DB.EachCode(store.CodeFilter{Batch: b.ID}, false, func(k *core.Code) error { codes = append(codes, k.Code); return nil })
	if _, err := a.Sync(context.Background(), nil); err != nil {
		t.Fatalf("sync: %v", err)
	}
	return a, codes
}

func (a *App) testClient(t *testing.T) *syncclient.Client {
	t.Helper()
	s, err := a.syncer()
	if err != nil {
		t.Fatal(err)
	}
	return s.Client
}

func TestRedeemAsksTheServerFirst(t *testing.T) {
	s := newSyncServer(t)
	a, codes := registeredApp(t, s, false)
	order := OrderInput{Amount: "100"}

	// The server agrees: the local redemption carries the key it claimed under, and
	// pushing it later does not count it twice.
	res, err := a.Redeem(codes[0], order, "")
	if err != nil || !res.Verdict.OK || res.Redemption == nil || res.Redemption.IdemKey == "" {
		t.Fatalf("online redeem: %+v, %v", res, err)
	}
	key := res.Redemption.IdemKey
	again, err := a.Redeem(codes[0], order, key)
	if err != nil || !again.Replayed || again.Redemption.ID != res.Redemption.ID {
		t.Fatalf("repeat with the same key: %+v, %v", again, err)
	}
	rep, err := a.Sync(context.Background(), nil)
	if err != nil || rep.Flagged != 0 || rep.Rejected != 0 {
		t.Fatalf("sync after an online redeem: %+v, %v", rep, err)
	}
	cases, err := a.testClient(t).Cases(context.Background(), "all")
	if err != nil || len(cases.Cases) != 0 {
		t.Fatalf("cases after an online redeem pushed: %+v, %v", cases, err)
	}

	// The server says no (another till took the code): refused like a local
	// refusal, and nothing is written here.
	ans, err := a.testClient(t).Redeem(context.Background(), wire.RedeemRequest{Code: codes[1], IdemKey: "elsewhere", StoreID: a.Actor.Store.ID,
		OperatorID: a.Actor.Operator.ID, OrderAmount: 10000})
	if err != nil || !ans.OK {
		t.Fatalf("claim from elsewhere: %+v, %v", ans, err)
	}
	before, _ := a.DB.SyncState()
	res, err = a.Redeem(codes[1], order, "")
	if err != nil || res.Verdict.OK || res.Verdict.Reason != core.ReasonAlreadyRedeemed || res.Redemption != nil {
		t.Fatalf("redeem of a code the server gave away: %+v, %v", res, err)
	}
	after, _ := a.DB.SyncState()
	if after.Pending != before.Pending {
		t.Errorf("a refused redemption wrote %d outbox rows", after.Pending-before.Pending)
	}
	if rs, _ := a.DB.Redemptions(store.RedemptionFilter{Code: codes[1]}); len(rs) != 0 {
		t.Errorf("a refused redemption was kept: %+v", rs)
	}
	if txt := a.Lang.Reason(res.Verdict.Reason); txt != "Already redeemed" {
		t.Errorf("the refusal reads %q", txt)
	}

	// A code made here that has not gone up yet is unknown to the server: this
	// till decides.
	camp, _ := a.DB.Campaign("满100减10")
	b, err := a.DB.GenerateCodes(a.Actor, camp.ID, 1, nil)
	if err != nil {
		t.Fatal(err)
	}
	var fresh string
	a.DB.EachCode(store.CodeFilter{Batch: b.ID}, false, func(k *core.Code) error { fresh = k.Code; return nil })
	res, err = a.Redeem(fresh, order, "")
	if err != nil || !res.Verdict.OK {
		t.Fatalf("redeem of a code not uploaded yet: %+v, %v", res, err)
	}

	// An unknown code is the local path's verdict.
	res, err = a.Redeem("NOSUCHCODE", order, "")
	if err != nil || res.Verdict.OK || res.Verdict.Reason != core.ReasonNotFound {
		t.Fatalf("unknown code: %+v, %v", res, err)
	}
}

// No answer within the till's patience: the campaign's offline policy decides.
func TestRedeemFallsBackToOfflinePolicy(t *testing.T) {
	old := onlineTimeout
	onlineTimeout = 300 * time.Millisecond
	t.Cleanup(func() { onlineTimeout = old })
	s := newSyncServer(t)
	order := OrderInput{Amount: "100"}

	// Offline redemption not allowed: refused, quickly.
	a, codes := registeredApp(t, s, false)
	s.setSlow("/v1/codes/redeem", 3*time.Second)
	start := time.Now()
	res, err := a.Redeem(codes[0], order, "")
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("the till waited %v", d)
	}
	if err != nil || res.Verdict.OK || !strings.HasPrefix(res.Verdict.Reason, "offline") {
		t.Fatalf("offline redeem of a campaign that forbids it: %+v, %v", res, err)
	}
	if !Has("reason." + res.Verdict.Reason) {
		t.Errorf("reason %s has no text", res.Verdict.Reason)
	}

	// Allowed: redeemed here, waiting in the outbox, and it stands once pushed.
	s.setSlow("/v1/codes/redeem", 0)
	b, codes2 := registeredApp(t, s, true)
	s.setSlow("/v1/codes/redeem", 3*time.Second)
	before, _ := b.DB.SyncState()
	res, err = b.Redeem(codes2[0], order, "")
	if err != nil || !res.Verdict.OK {
		t.Fatalf("offline redeem: %+v, %v", res, err)
	}
	after, _ := b.DB.SyncState()
	if after.Pending != before.Pending+1 {
		t.Errorf("offline redeem left %d pending, want %d", after.Pending, before.Pending+1)
	}
	s.setSlow("/v1/codes/redeem", 0)
	rep, err := b.Sync(context.Background(), nil)
	if err != nil || rep.Pushed != 1 || rep.Flagged != 0 {
		t.Fatalf("sync after offline redeem: %+v, %v", rep, err)
	}
	ans, err := b.testClient(t).Check(context.Background(), wire.RedeemRequest{Code: codes2[0], IdemKey: "x", StoreID: b.Actor.Store.ID, OrderAmount: 10000})
	if err != nil || ans.OK || ans.Reason != core.ReasonAlreadyRedeemed {
		t.Errorf("the server's view of the offline redemption: %+v, %v", ans, err)
	}
}

// The command line end to end: register, sync, status, a second device joining
// an empty data directory, cases and allowances.
func TestSyncCommands(t *testing.T) {
	s := newSyncServer(t)
	root := t.TempDir()
	dirA, dirB := filepath.Join(root, "a"), filepath.Join(root, "b")
	pw := filepath.Join(root, "pw")
	writeFile(t, pw, "password1\n")

	code, _, errs := kameng(t, dirA, "sync")
	if code == 0 || !strings.Contains(errs, "init") {
		t.Errorf("sync without a database: exit %d, %s", code, errs)
	}
	mustKameng(t, dirA, "init", "--merchant", "测试", "--owner", "boss", "--password-file", pw)
	code, _, errs = kameng(t, dirA, "sync")
	if code != ExitConflict || !strings.Contains(errs, "device register") {
		t.Errorf("sync before registering: exit %d, %s", code, errs)
	}
	nobody := closedURL(t)
	code, _, errs = kameng(t, dirA, "device", "register", "--server", nobody, "--token", "km_x")
	if code != ExitOffline || !strings.Contains(errs, nobody) {
		t.Errorf("register against nothing: exit %d, %s", code, errs)
	}

	var reg Registration
	jsonOut(t, mustKameng(t, dirA, "--json", "device", "register", "--server", s.ts.URL, "--token", s.token(t, "")), &reg)
	if reg.MerchantID == "" || reg.Joined {
		t.Fatalf("registration: %+v", reg)
	}
	mustKameng(t, dirA, "campaign", "create", "--name", "春节", "--kind", "amount_off", "--amount-off", "5", "--offline", "yes")
	mustKameng(t, dirA, "codes", "generate", "春节", "-n", "20")
	var rep syncclient.Report
	jsonOut(t, mustKameng(t, dirA, "--json", "sync"), &rep)
	if rep.Pushed != 3 || rep.Uploaded != 20 {
		t.Errorf("sync: %+v", rep)
	}
	out := mustKameng(t, dirA, "sync", "status")
	for _, want := range []string{s.ts.URL, "Pending", "Last sync"} {
		if !strings.Contains(out, want) {
			t.Errorf("sync status lacks %q:\n%s", want, out)
		}
	}

	// B: an empty data directory joins the merchant and sees A's campaign.
	jsonOut(t, mustKameng(t, dirB, "--json", "device", "register", "--server", s.ts.URL, "--token", s.token(t, reg.MerchantID), "--device", "pos-b"), &reg)
	if !reg.Joined || reg.Report == nil || reg.Report.PulledCodes != 20 {
		t.Fatalf("join: %+v", reg)
	}
	var camps []core.Campaign
	jsonOut(t, mustKameng(t, dirB, "--json", "campaign", "list"), &camps)
	if len(camps) != 1 || camps[0].Name != "春节" || camps[0].Issued != 20 {
		t.Fatalf("B's campaigns: %+v", camps)
	}

	// The server goes silent: sync says so and fails.
	s.setDown(true)
	code, _, errs = kameng(t, dirB, "sync")
	if code != ExitOffline || !strings.Contains(errs, "did not answer") {
		t.Errorf("sync against a silent server: exit %d, %s", code, errs)
	}
	s.setDown(false)

	var cs []wire.Case
	jsonOut(t, mustKameng(t, dirB, "--json", "cases", "--status", "all"), &cs)
	if len(cs) != 0 {
		t.Errorf("cases: %+v", cs)
	}

	// A redeems a code online; B, cut off, redeems it too (the campaign allows
	// offline redemption). B's sync turns that into a case, which B settles.
	var codes struct {
		Codes []CodeRow `json:"codes"`
	}
	jsonOut(t, mustKameng(t, dirA, "--json", "codes", "list", "春节"), &codes)
	c0 := codes.Codes[0].Code.Code
	mustKameng(t, dirA, "redeem", c0, "--order", "100")
	s.setDown(true)
	mustKameng(t, dirB, "redeem", c0, "--order", "100")
	s.setDown(false)
	jsonOut(t, mustKameng(t, dirB, "--json", "sync"), &rep)
	if rep.Flagged != 1 {
		t.Fatalf("B's sync of a double redemption: %+v", rep)
	}
	jsonOut(t, mustKameng(t, dirB, "--json", "cases"), &cs)
	if len(cs) != 1 || cs[0].Kind != wire.CaseDoubleRedemption || cs[0].Subject != c0 {
		t.Fatalf("B's open cases: %+v", cs)
	}
	out = mustKameng(t, dirB, "cases", "show", cs[0].ID)
	if !strings.Contains(out, "Double redemption") || !strings.Contains(out, c0) {
		t.Errorf("cases show:\n%s", out)
	}
	// Both sides by name: the redemption that stood (A's) and B's, undone.
	if !regexp.MustCompile(`(?m)^Stands: .* · cashier boss · order ¥100\.00 \(redemption `).MatchString(out) ||
		!regexp.MustCompile(`(?m)^Undone: .* · device pos-b · cashier boss · order ¥100\.00 \(redemption `).MatchString(out) {
		t.Errorf("cases show does not name both sides:\n%s", out)
	}
	code2, _, errs := kameng(t, dirB, "cases", "resolve", cs[0].ID, "--action", "accept")
	if code2 != ExitInvalid || !strings.Contains(errs, "--yes") {
		t.Errorf("resolve without confirmation: exit %d, %s", code2, errs)
	}
	code2, _, _ = kameng(t, dirB, "cases", "resolve", cs[0].ID, "--action", "shrug", "--yes")
	if code2 != ExitInvalid {
		t.Errorf("resolve with an unknown action: exit %d", code2)
	}
	code2, _, _ = kameng(t, dirB, "--operator", "nobody", "cases", "resolve", cs[0].ID, "--action", "accept", "--yes")
	if code2 == 0 {
		t.Error("an unknown operator resolved a case")
	}
	out = mustKameng(t, dirB, "cases", "resolve", cs[0].ID, "--action", "accept", "--note", "顾客已补差价", "--yes")
	if !strings.Contains(out, cs[0].ID) {
		t.Errorf("resolve: %s", out)
	}
	mustKameng(t, dirB, "sync")
	mustKameng(t, dirA, "sync")
	jsonOut(t, mustKameng(t, dirA, "--json", "cases", "--status", "resolved"), &cs)
	if len(cs) != 1 || cs[0].Action != wire.ActionAccept || cs[0].Note != "顾客已补差价" {
		t.Errorf("A's resolved cases: %+v", cs)
	}
	code, _, _ = kameng(t, dirB, "cases", "resolve", "nope", "--action", "accept", "--yes")
	if code != ExitNotFound {
		t.Errorf("resolving an unknown case: exit %d", code)
	}
	code, _, _ = kameng(t, dirB, "allowance", "request", "--amount", "10")
	if code != ExitInvalid {
		t.Errorf("allowance without an account: exit %d", code)
	}
	code, out, errs = kameng(t, dirB, "sync", "loop", "--rounds", "2", "--interval", "10ms")
	if code != 0 || strings.Count(out, " synced: ") != 2 || !strings.Contains(errs, "Sync stopped") {
		t.Errorf("sync loop: exit %d\n%s%s", code, out, errs)
	}
	var lines []map[string]any
	_, out, _ = kameng(t, dirB, "--json", "sync", "loop", "--rounds", "1", "--interval", "10ms")
	for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
		var m map[string]any
		jsonOut(t, l, &m)
		lines = append(lines, m)
	}
	if len(lines) != 1 || lines[0]["report"] == nil || lines[0]["error"] != nil {
		t.Errorf("sync loop --json: %s", out)
	}
}

func writeFile(t *testing.T, path, s string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(s), 0o600); err != nil {
		t.Fatal(err)
	}
}

// closedURL is an address on 127.0.0.1 where nothing listens.
func closedURL(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return "http://" + addr
}

// A wallet payment while the server is unreachable spends the allowance reserved
// for this device, and no more.
func TestPayOfflineSpendsTheAllowance(t *testing.T) {
	old := onlineTimeout
	onlineTimeout = 300 * time.Millisecond
	t.Cleanup(func() { onlineTimeout = old })
	s := newSyncServer(t)
	a, _ := registeredApp(t, s, false)
	phone := "13800138000"
	if _, err := a.AddMember(MemberForm{Phone: &phone}); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Topup(phone, "100", "", ""); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Sync(context.Background(), nil); err != nil {
		t.Fatal(err)
	}
	if _, err := a.RequestAllowance(wire.AccountGiftCard, "NOSUCHCARD", "10"); core.ErrorCode(err) != core.ErrNotFound {
		t.Errorf("allowance for an unknown card: %v", err)
	}
	al, err := a.RequestAllowance(wire.AccountWallet, phone, "30")
	if err != nil || al.Granted != 3000 || al.Kind != wire.AccountWallet {
		t.Fatalf("allowance: %+v, %v", al, err)
	}
	if list, err := a.Allowances(); err != nil || len(list) != 1 || list[0].Granted != 3000 {
		t.Fatalf("allowances kept: %+v, %v", list, err)
	}

	s.setDown(true)
	if _, err := a.Pay(phone, "20", "", ""); err != nil {
		t.Fatalf("offline payment within the allowance: %v", err)
	}
	_, err = a.Pay(phone, "20", "", "")
	var ce *core.Error
	if !errors.As(err, &ce) || ce.Params["why"] != "offline_allowance" {
		t.Fatalf("offline payment beyond the allowance: %v", err)
	}
	if txt := Lang("zh").ErrorText(err); !strings.Contains(txt, "¥10.00") || !strings.Contains(txt, "¥20.00") {
		t.Errorf("the refusal reads %q", txt)
	}
	if _, err := a.Sync(context.Background(), nil); core.ErrorCode(err) != ErrUnreachable {
		t.Errorf("sync while down: %v", err)
	}

	// Back online: payments are no longer bounded by the allowance.
	s.setDown(false)
	if _, err := a.Sync(context.Background(), nil); err != nil {
		t.Fatal(err)
	}
	res, err := a.Pay(phone, "40", "", "")
	if err != nil || res.Balance != 4000 {
		t.Fatalf("online payment: %+v, %v", res, err)
	}
}
