package syncclient_test

import (
	"context"
	"database/sql"
	"encoding/json"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/kameng/kameng/core"
	"github.com/kameng/kameng/core/store"
	"github.com/kameng/kameng/core/wire"
	"github.com/kameng/kameng/server"
)

// Reductions of what TestSimulation found, kept as plain tests.

// A redemption that reaches the server late stands there (LATE_OFFLINE, flagged)
// and must stand on every device, also on one that redeemed the same code apart and
// lost: that device still holds its own redemption when the late one arrives, and
// only undoes it with the reversal that follows in the log (simulation seed 6).
func TestLateOfflineRedemptionStandsOnTheLoser(t *testing.T) {
	h := newHub(t, openSQLite(t))
	a := h.found("pos-a", false)
	camp := &core.Campaign{Name: "迟到", Kind: core.KindAmountOff, AmountOff: 500, Format: core.DefaultCodeFormat(),
		Rules: core.Rules{UsesPerCode: 1, RollbackHours: 72, Offline: core.Offline{Allowed: true, MaxAgeMins: 30}}}
	if err := a.db.CreateCampaign(a.actor, camp); err != nil {
		t.Fatal(err)
	}
	code := a.codes(camp.ID, 3)[0]
	a.sync()
	b := h.join("pos-b", a.merchantID())

	offline := func(d *dev, clock core.Clock) *core.Redemption {
		t.Helper()
		d.db.Clock = clock
		defer func() { d.db.Clock = core.SystemClock }()
		off := *d.actor
		off.Offline = true
		res, err := d.db.Redeem(&off, code, core.Order{Amount: 10000}, core.NewID())
		if err != nil || !res.Verdict.OK {
			t.Fatalf("%s redeems offline: %+v %v", d.name(), res, err)
		}
		return res.Redemption
	}
	// A redeemed 40 minutes ago without a line; B redeems the same code now.
	ra := offline(a, &core.FixedClock{T: time.Now().Add(-40 * time.Minute)})
	rb := offline(b, core.SystemClock)

	if rep := a.sync(); rep.Flagged != 1 {
		t.Fatalf("A's late redemption: %+v", rep)
	}
	if rep := b.sync(); rep.Flagged != 1 {
		t.Fatalf("B's double redemption: %+v", rep)
	}
	a.sync()
	for _, d := range []*dev{a, b} {
		got, err := d.db.Redemption(ra.ID)
		if err != nil || got.Status != core.RedemptionDone {
			t.Errorf("%s: the late redemption that stands on the server is %+v (%v)", d.name(), got, err)
		}
		if n := d.countCodes(store.CodeFilter{Campaign: camp.ID, Status: "redeemed"}); n != 1 {
			t.Errorf("%s: %d redeemed codes, want 1", d.name(), n)
		}
	}
	if got, err := b.db.Redemption(rb.ID); err != nil || got.Status != core.RedemptionRolledBack {
		t.Errorf("B's losing redemption is %+v (%v)", got, err)
	}
	kinds := map[string]int{}
	cs, err := b.db.Cases("open")
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range cs {
		kinds[c.Kind]++
	}
	if kinds[wire.CaseLateOffline] != 1 || kinds[wire.CaseDoubleRedemption] != 1 {
		t.Errorf("B's cases: %v", kinds)
	}
}

// Two devices change different rules of one campaign: both changes stand, on the
// server and on both devices. An edit carries only the rules it changed and every
// copy merges them rule by rule; it once carried the whole rules object, which the
// devices took whole, losing the other device's rule (simulation, rule edits).
func TestConcurrentRuleEditsMerge(t *testing.T) {
	h, srv := hubOnFile(t)
	a := h.found("pos-a", false)
	camp := a.campaign("规则", false)
	a.sync()
	b := h.join("pos-b", a.merchantID())
	edit := func(d *dev, fn func(c *core.Campaign)) {
		t.Helper()
		if _, err := d.db.UpdateCampaign(d.actor, camp.ID, func(c *core.Campaign) error { fn(c); return nil }); err != nil {
			t.Fatal(err)
		}
	}
	edit(a, func(c *core.Campaign) { c.Rules.BudgetCount = 500 })
	edit(b, func(c *core.Campaign) { c.Rules.RollbackHours = 24 }) // the later clock
	b.sync()
	a.sync()
	b.sync()
	s := serverCampaign(t, srv, camp.ID)
	if s.Rules.BudgetCount != 500 || s.Rules.RollbackHours != 24 {
		t.Errorf("the server merged the rules into budget %d, rollback %dh", s.Rules.BudgetCount, s.Rules.RollbackHours)
	}
	for _, d := range []*dev{a, b} {
		c, err := d.db.Campaign(camp.ID)
		if err != nil {
			t.Fatal(err)
		}
		if c.Rules.BudgetCount != s.Rules.BudgetCount || c.Rules.RollbackHours != s.Rules.RollbackHours {
			t.Errorf("%s: budget %d, rollback %dh; the server has %d and %dh", d.name(), c.Rules.BudgetCount, c.Rules.RollbackHours,
				s.Rules.BudgetCount, s.Rules.RollbackHours)
		}
	}
}

// Two devices that observed the same HLC from a device whose clock runs ahead
// stamp their next edits with the same HLC. The server and the devices order the
// two by device id, so the edit of the greater id stands everywhere, whichever was
// pushed first. (The server once let the later push win while each device kept
// what it had: simulation seed 150.)
func TestEqualHLCEditsConverge(t *testing.T) {
	h, srv := hubOnFile(t)
	a := h.found("pos-a", false)
	camp := a.campaign("时钟", false)
	// A's clock ran an hour ahead once: every device that hears of that change
	// carries its clock from then on.
	a.db.Clock = &core.FixedClock{T: time.Now().Add(time.Hour)}
	if _, err := a.db.UpdateCampaign(a.actor, camp.ID, func(c *core.Campaign) error { c.Description = "快"; return nil }); err != nil {
		t.Fatal(err)
	}
	a.db.Clock = core.SystemClock
	a.sync()
	b := h.join("pos-b", a.merchantID())
	b.sync()
	a.sync() // A hears of B (device.add@1): both are at the same clock now
	hlc := func(d *dev) int64 {
		var n int64
		d.db.Raw().QueryRow(`SELECT max(COALESCE((SELECT CAST(value AS INTEGER) FROM meta WHERE key = 'hlc'), 0), COALESCE((SELECT max(hlc) FROM outbox), 0))`).Scan(&n)
		return n
	}
	if ha, hb := hlc(a), hlc(b); ha != hb {
		t.Fatalf("the clocks differ (%d, %d): no tie to show", ha, hb)
	}
	for _, x := range []struct {
		d *dev
		n int64
	}{{a, 700}, {b, 800}} {
		if _, err := x.d.db.UpdateCampaign(x.d.actor, camp.ID, func(c *core.Campaign) error { c.Rules.BudgetCount = x.n; return nil }); err != nil {
			t.Fatal(err)
		}
	}
	// The lesser device id pushes last: a rule of "the later push wins" would
	// keep its value.
	first, last := a, b
	if first.state().DeviceID < last.state().DeviceID {
		first, last = last, first
	}
	first.sync()
	last.sync()
	first.sync()
	want := serverCampaign(t, srv, camp.ID).Rules.BudgetCount
	if w := map[*dev]int64{a: 700, b: 800}[first]; want != w {
		t.Errorf("the server kept budget %d after the equal-clock edits, want %d (the greater device id)", want, w)
	}
	for _, d := range []*dev{a, b} {
		if c, err := d.db.Campaign(camp.ID); err != nil || c.Rules.BudgetCount != want {
			t.Errorf("%s: budget %d after the equal-clock edits, the server has %d (%v)", d.name(), c.Rules.BudgetCount, want, err)
		}
	}
}

// hubAt is a hub over a server SQLite file the test can read.
func hubOnFile(t *testing.T) (*hub, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "server.db")
	st, err := server.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return newHub(t, st), path
}

// serverCampaign reads the server's copy of a campaign from its database.
func serverCampaign(t *testing.T, path, id string) core.Campaign {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+path+"?_pragma=query_only(1)")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var body string
	if err := db.QueryRow(`SELECT body FROM campaign WHERE id = ?`, id).Scan(&body); err != nil {
		t.Fatal(err)
	}
	var c core.Campaign
	if err := json.Unmarshal([]byte(body), &c); err != nil {
		t.Fatal(err)
	}
	return c
}

// A till claims a code online, the answer is lost, the till falls back to the
// campaign's offline rules and they refuse (or the till dies before its own
// commit): no redemption ever matches the claim, so the server counts the code as
// used while no device has a redemption of it, and another till is refused
// online for a code that was never redeemed (simulation: "online claims never
// matched").
// An online claim no redemption matches (the answer was lost and this campaign may
// not be redeemed offline) holds the code on the server only for server.ClaimTTL:
// the next sync after that releases it, and another till may redeem the code.
func TestUnmatchedClaimIsReleased(t *testing.T) {
	var mu sync.Mutex
	serverNow := time.Now()
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return serverNow }
	h := newHubAt(t, openSQLite(t), clock)
	a := h.found("pos-a", false)
	camp := a.campaign("仅在线", false)
	code := a.codes(camp.ID, 3)[0]
	a.sync()
	b := h.join("pos-b", a.merchantID())
	ctx := context.Background()
	key := core.NewID()
	if _, err := a.s.Client.Redeem(ctx, wire.RedeemRequest{Code: code, IdemKey: key, StoreID: a.actor.Store.ID,
		OperatorID: a.actor.Operator.ID, OrderAmount: 10000}); err != nil {
		t.Fatal(err)
	}
	// The answer did not arrive: offline, this campaign may not be redeemed.
	off := *a.actor
	off.Offline = true
	if _, err := a.db.Redeem(&off, code, core.Order{Amount: 10000}, key); err == nil {
		t.Fatal("an online-only campaign redeemed offline")
	}
	a.sync()
	b.sync()
	if n := b.countCodes(store.CodeFilter{Campaign: camp.ID, Status: "redeemed"}); n != 0 {
		t.Fatalf("B sees %d redeemed codes", n)
	}
	redeemB := func() *wire.RedeemResponse {
		ans, err := b.s.Client.Redeem(ctx, wire.RedeemRequest{Code: code, IdemKey: core.NewID(), StoreID: b.actor.Store.ID,
			OperatorID: b.actor.Operator.ID, OrderAmount: 10000})
		if err != nil {
			t.Fatal(err)
		}
		return ans
	}
	if ans := redeemB(); ans.OK {
		t.Fatal("the claim was released before its time")
	}
	mu.Lock()
	serverNow = serverNow.Add(server.ClaimTTL + time.Minute)
	mu.Unlock()
	b.sync() // the pull sweeps the expired claim
	if ans := redeemB(); !ans.OK {
		t.Errorf("a code no device redeemed is refused online after the claim expired: %s", ans.Reason)
	}
}
