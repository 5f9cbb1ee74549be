package syncclient_test

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"path/filepath"
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

// The deterministic sync simulation (DESIGN §8): one server and three devices of
// one merchant, a network that loses, duplicates and replays requests, devices that
// crash, go offline for a while and run on skewed clocks; people redeem single-use
// codes from a small pool and spend gift cards (online first, else offline under
// the campaign's policy and the device's allowance), roll back, top up and pay from
// wallets, earn points, edit campaigns from several devices and settle cases. After
// the run the network heals, every device syncs until nothing moves, and the
// invariants of DESIGN §8 are checked against the server's database. Every decision
// is a draw from the seed's generator, so a failing seed replays:
//
//	go test ./syncclient -run TestSimulation -sim.seed=N -v
var (
	simSeed  = flag.Uint64("sim.seed", 0, "TestSimulation: replay only this seed (verbose trace)")
	simSeeds = flag.Int("sim.seeds", 200, "TestSimulation: how many seeds to run")
	simFirst = flag.Uint64("sim.first", 1, "TestSimulation: the first seed")
	simSteps = flag.Int("sim.steps", 100, "TestSimulation: operations per seed")
	simRules = flag.Bool("sim.rule-edits", true, "TestSimulation: also edit a second campaign rule from several devices (=false: budget and description only)")
)

func TestSimulation(t *testing.T) {
	if *simSeed != 0 {
		runSim(t, *simSeed, *simSteps, true)
		return
	}
	n := *simSeeds
	if testing.Short() {
		n = min(n, 20)
	}
	simTotals.mu.Lock()
	simTotals.n = map[string]int{}
	simTotals.mu.Unlock()
	t.Run("seeds", func(t *testing.T) {
		for i := range n {
			seed := *simFirst + uint64(i)
			t.Run(fmt.Sprintf("seed=%d", seed), func(t *testing.T) {
				t.Parallel()
				runSim(t, seed, *simSteps, false)
			})
		}
	})
	simTotals.mu.Lock()
	defer simTotals.mu.Unlock()
	t.Logf("%d seeds of %d steps: %v", n, *simSteps, simTotals.n)
}

// A seed replays: the same draws meet the same outcomes, so -sim.seed=N shows what
// the failing run did.
func TestSimulationReplays(t *testing.T) {
	if *simSeed != 0 {
		t.Skip("replaying one seed")
	}
	a := runSim(t, 7, 40, false)
	b := runSim(t, 7, 40, false)
	for i := range max(len(a.trace), len(b.trace)) {
		if i >= len(a.trace) || i >= len(b.trace) || a.trace[i] != b.trace[i] {
			t.Fatalf("seed 7 ran differently the second time, from line %d:\n%s\n%s", i, traceLine(a.trace, i), traceLine(b.trace, i))
		}
	}
}

func traceLine(trace []string, i int) string {
	if i < len(trace) {
		return trace[i]
	}
	return "(end)"
}

// simTotals counts what the seeds ran into, so a run shows that the interesting
// paths (doubles, overdrafts, crashes…) were taken at all.
var simTotals = struct {
	mu sync.Mutex
	n  map[string]int
}{n: map[string]int{}}

func (s *sim) count(what string, n int) {
	simTotals.mu.Lock()
	simTotals.n[what] += n
	simTotals.mu.Unlock()
}

// Simulated time starts on a weekday morning in Shanghai.
var simEpoch = time.Date(2025, 3, 12, 9, 0, 0, 0, time.FixedZone("CST", 8*3600)).UnixMilli()

// simServerURL is never dialled: the transport hands requests to the handler.
const simServerURL = "http://127.0.0.1:8480"

var simPassword = sync.OnceValue(func() string { return core.HashPassword("sim-password") })

func simKEK() []byte {
	k := make([]byte, 32)
	for i := range k {
		k[i] = byte(7*i + 5)
	}
	return k
}

// sim is one seed's world.
type sim struct {
	t       *testing.T
	seed    uint64
	steps   int
	verbose bool
	rng     *rand.Rand
	dir     string
	now     int64 // the true time, ms; each device reads it through its own offset
	step    int
	faults  bool

	srvPath string
	st      server.Store
	api     http.Handler
	srvLog  *bytes.Buffer // the server's warnings and errors
	devs    []*simDev
	kept    []*simCall

	merchantID string
	campOff    *core.Campaign // offline redemption allowed (30 minutes since the last sync)
	campOn     *core.Campaign // online only
	campGift   *core.Campaign // gift cards: offline within an allowance
	codes      []string       // the pool of single-use codes
	gifts      []string       // the gift cards
	label      map[string]string
	members    []string

	made      map[string]string // redemption id → how it was made (every local redemption)
	requests  int
	trace     []string
	broken    []string
	ops       map[string]int
	crashes   int
	replays   int
	healRound int
}

// simDev is one device: its database file, its clock offset and its process state.
type simDev struct {
	s      *sim
	name   string
	path   string
	offset int64 // ms ahead of the true time (negative: behind)
	clock  *simClock

	db     *store.DB
	actor  *store.Actor
	client *syncclient.Client
	syncer *syncclient.Syncer

	offlineUntil int  // partitioned while s.step < offlineUntil
	dead         bool // the process died during the current call; reopened after it
}

type simClock struct {
	s      *sim
	offset int64
}

func (c *simClock) Now() time.Time { return time.UnixMilli(c.s.now + c.offset) }

func (d *simDev) partitioned() bool { return d.s.step < d.offlineUntil }

func runSim(t *testing.T, seed uint64, steps int, verbose bool) *sim {
	s := &sim{t: t, seed: seed, steps: steps, verbose: verbose, rng: rand.New(rand.NewPCG(seed, 0x6b616d656e67)),
		dir: t.TempDir(), now: simEpoch, label: map[string]string{}, made: map[string]string{}, ops: map[string]int{},
		srvLog: &bytes.Buffer{}}
	defer s.close()
	if !s.setup() {
		s.report()
		return s
	}
	s.faults = true
	for s.step = 1; s.step <= steps; s.step++ {
		s.now += 1000 + s.rng.Int64N(119_000)
		s.act()
	}
	s.faults = false
	for _, d := range s.devs {
		d.offlineUntil = 0
	}
	if s.heal() {
		s.check()
	}
	s.report()
	if s.verbose && len(s.broken) > 0 {
		s.t.Log(s.dump())
	}
	return s
}

func (s *sim) close() {
	for _, d := range s.devs {
		if d.db != nil {
			d.db.Close()
		}
	}
	if s.st != nil {
		s.st.Close()
	}
}

// note adds a line to the trace.
func (s *sim) note(format string, args ...any) {
	s.trace = append(s.trace, fmt.Sprintf("%3d %s", s.step, fmt.Sprintf(format, args...)))
}

// net notes what the network did.
func (s *sim) net(format string, args ...any) { s.note("    ~ "+format, args...) }

// violate records a broken invariant or an unexpected failure.
func (s *sim) violate(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	if s.step > 0 && s.healRound == 0 {
		msg = fmt.Sprintf("step %d: %s", s.step, msg)
	}
	s.broken = append(s.broken, msg)
	s.note("!! %s", msg)
}

// report prints the outcome: the trace when replaying one seed, and for a seed that
// broke something the broken invariants, the command that replays it and the last
// operations.
func (s *sim) report() {
	if s.srvLog.Len() > 0 {
		s.violate("the server logged errors:\n%s", strings.TrimSpace(s.srvLog.String()))
	}
	s.count("requests", s.requests)
	s.count("crashes", s.crashes)
	s.count("stale replays", s.replays)
	s.count("redemptions", len(s.made))
	if len(s.broken) > 0 {
		s.count("failed seeds", 1)
	}
	if s.verbose {
		s.t.Logf("seed %d: %d steps, %d requests, %d crashes, %d stale replays, %d heal rounds; operations %v\n%s",
			s.seed, s.steps, s.requests, s.crashes, s.replays, s.healRound, s.ops, strings.Join(s.trace, "\n"))
	}
	if len(s.broken) == 0 {
		return
	}
	last := s.trace
	if !s.verbose && len(last) > 60 {
		last = last[len(last)-60:]
	}
	extra := ""
	if !*simRules {
		extra += " -sim.rule-edits=false"
	}
	s.t.Errorf("simulation seed %d broke %d invariant(s):\n  - %s\nreplay: go test ./syncclient -run TestSimulation -sim.seed=%d -sim.steps=%d%s -v\nlast operations:\n%s",
		s.seed, len(s.broken), strings.Join(s.broken, "\n  - "), s.seed, s.steps, extra, strings.Join(last, "\n"))
}

// ---------------------------------------------------------------------------
// Setting up: a server, a founder that creates the merchant, two devices that join

func (s *sim) setup() bool {
	s.srvPath = filepath.Join(s.dir, "server.db")
	st, err := server.Open(s.srvPath)
	if err != nil {
		s.violate("open the server: %v", err)
		return false
	}
	s.st = st
	logger := slog.New(slog.NewTextHandler(s.srvLog, &slog.HandlerOptions{Level: slog.LevelError}))
	s.api = server.NewHandler(st, server.Options{Logger: logger, RateLimit: -1, Now: s.time})

	// One device runs minutes off (a CLOCK_SKEW case), the others within seconds.
	skewed := s.rng.IntN(3)
	names := []string{"pos-1", "pos-2", "pos-3"}
	for i, name := range names {
		off := s.rng.Int64N(6001) - 3000
		if i == skewed {
			off = (6 + s.rng.Int64N(55)) * 60_000
			if s.rng.IntN(2) == 0 {
				off = -off
			}
		}
		d := &simDev{s: s, name: name, path: filepath.Join(s.dir, name+".db"), offset: off}
		d.clock = &simClock{s: s, offset: off}
		s.devs = append(s.devs, d)
	}
	s.note("clocks: %s %+ds, %s %+ds, %s %+ds", names[0], s.devs[0].offset/1000, names[1], s.devs[1].offset/1000, names[2], s.devs[2].offset/1000)
	return s.found(s.devs[0]) && s.join(s.devs[1], "") && s.join(s.devs[2], "分店") && s.settle()
}

func (s *sim) time() time.Time { return time.UnixMilli(s.now) }

func (d *simDev) open() error {
	db, err := store.OpenWith(d.path, store.Options{Synchronous: "OFF"})
	if err != nil {
		return err
	}
	db.Clock = d.clock
	d.db = db
	return nil
}

func (d *simDev) connect(token string) {
	d.client = syncclient.New(simServerURL, token, syncclient.Options{
		HTTPClient: &http.Client{Transport: simNet{d}},
		// One quick retry, as the client does after a lost request; the simulation
		// decides the rest.
		Retries: 1, RetryWait: time.Millisecond, RetryMaxWait: 2 * time.Millisecond,
	})
	d.syncer = &syncclient.Syncer{DB: d.db, Client: d.client, Now: d.clock.Now}
}

func (s *sim) found(d *simDev) bool {
	if err := d.open(); err != nil {
		s.violate("open %s: %v", d.name, err)
		return false
	}
	a, err := d.db.Init(store.InitInput{Merchant: "模拟商户", Store: "总店", Device: d.name, Owner: "boss",
		PasswordHash: simPassword(), KDF: "file", KEK: simKEK()})
	if err != nil {
		s.violate("init %s: %v", d.name, err)
		return false
	}
	d.actor = a
	m, err := d.db.Merchant()
	if err != nil {
		s.violate("merchant: %v", err)
		return false
	}
	s.merchantID = m.ID
	d.connect("")
	tok, err := s.st.CreateToken("", "sim", time.Hour, s.time())
	if err != nil {
		s.violate("token: %v", err)
		return false
	}
	resp, err := d.client.Register(context.Background(), wire.RegisterRequest{Token: tok, DeviceID: a.Device.ID, DeviceName: d.name,
		MerchantID: m.ID, MerchantName: m.Name, StoreID: a.Store.ID})
	if err != nil {
		s.violate("register %s: %v", d.name, err)
		return false
	}
	if err := d.db.SetRegistration(simServerURL, resp.DeviceToken, resp.MerchantID, resp.Epoch, resp.LastMID); err != nil {
		s.violate("set registration: %v", err)
		return false
	}
	d.client.SetToken(resp.DeviceToken)

	// The merchant: a second store, two single-use campaigns with a small pool of
	// codes each, two members with money in their wallets.
	if _, err := d.db.AddStore(a, "分店", ""); err != nil {
		s.violate("add store: %v", err)
		return false
	}
	mk := func(name string, offline bool) *core.Campaign {
		c := &core.Campaign{Name: name, Kind: core.KindAmountOff, AmountOff: 500, Format: core.DefaultCodeFormat(),
			Rules: core.Rules{UsesPerCode: 1, RollbackHours: 72, BudgetCount: 1000, Offline: core.Offline{Allowed: offline, MaxAgeMins: 30}}}
		if err := d.db.CreateCampaign(a, c); err != nil {
			s.violate("campaign %s: %v", name, err)
			return nil
		}
		return c
	}
	if s.campOff, s.campOn = mk("离线可用", true), mk("仅在线", false); s.campOff == nil || s.campOn == nil {
		return false
	}
	s.campGift = &core.Campaign{Name: "礼品卡", Kind: core.KindGiftCard, FaceValue: 10000, Format: core.DefaultCodeFormat(),
		Rules: core.Rules{RollbackHours: 72, Offline: core.Offline{Allowed: true, MaxAgeMins: 30}}}
	if err := d.db.CreateCampaign(a, s.campGift); err != nil {
		s.violate("gift card campaign: %v", err)
		return false
	}
	s.label[s.campOff.ID], s.label[s.campOn.ID], s.label[s.campGift.ID] = "campaign-off", "campaign-on", "campaign-gift"
	for _, c := range []struct {
		camp *core.Campaign
		n    int64
	}{{s.campOff, 6}, {s.campOn, 4}, {s.campGift, 3}} {
		b, err := d.db.GenerateCodes(a, c.camp.ID, c.n, nil)
		if err != nil {
			s.violate("generate: %v", err)
			return false
		}
		// In the order they were made, not by their (random) text, so the draws
		// replay.
		rows, err := d.db.Raw().Query(`SELECT code FROM code WHERE batch_id = ? ORDER BY id`, b.ID)
		if err != nil {
			s.violate("codes: %v", err)
			return false
		}
		for rows.Next() {
			var k string
			rows.Scan(&k)
			if c.camp == s.campGift {
				s.label[k] = fmt.Sprintf("g%d", len(s.gifts))
				s.gifts = append(s.gifts, k)
				continue
			}
			s.label[k] = fmt.Sprintf("c%d", len(s.codes))
			s.codes = append(s.codes, k)
		}
		rows.Close()
	}
	for i := range 2 {
		m, err := d.db.AddMember(a, store.MemberInput{Phone: fmt.Sprintf("1380013%04d", 1000+i), Name: fmt.Sprintf("会员%d", i)})
		if err != nil {
			s.violate("member: %v", err)
			return false
		}
		s.label[m.Member.ID] = fmt.Sprintf("m%d", i)
		s.members = append(s.members, m.Member.ID)
		if _, err := d.db.Topup(a, m.Member.ID, 20000, "开卡", ""); err != nil {
			s.violate("topup: %v", err)
			return false
		}
	}
	if _, err := d.syncer.Once(context.Background()); err != nil {
		s.violate("first sync of %s: %v", d.name, err)
		return false
	}
	s.note("%s founded the merchant: %d codes, %d gift cards, %d members", d.name, len(s.codes), len(s.gifts), len(s.members))
	return true
}

// join makes an empty database a device of the merchant the way kameng device join
// does: Join, register with an enrolment token, pull everything, FinishJoin, and a
// round that tells the others about the device.
func (s *sim) join(d *simDev, storeName string) bool {
	if err := d.open(); err != nil {
		s.violate("open %s: %v", d.name, err)
		return false
	}
	if err := d.db.Join(store.JoinInput{Device: d.name, Store: storeName, KDF: "file", KEK: simKEK()}); err != nil {
		s.violate("join %s: %v", d.name, err)
		return false
	}
	st, err := d.db.SyncState()
	if err != nil {
		s.violate("sync state: %v", err)
		return false
	}
	d.connect("")
	tok, err := s.st.CreateToken(s.merchantID, "sim", time.Hour, s.time())
	if err != nil {
		s.violate("token: %v", err)
		return false
	}
	resp, err := d.client.Register(context.Background(), wire.RegisterRequest{Token: tok, DeviceID: st.DeviceID, DeviceName: d.name})
	if err != nil {
		s.violate("register %s: %v", d.name, err)
		return false
	}
	if err := d.db.SetRegistration(simServerURL, resp.DeviceToken, resp.MerchantID, resp.Epoch, resp.LastMID); err != nil {
		s.violate("set registration: %v", err)
		return false
	}
	d.client.SetToken(resp.DeviceToken)
	if _, err := d.syncer.Once(context.Background()); err != nil {
		s.violate("first pull of %s: %v", d.name, err)
		return false
	}
	if _, err := d.db.FinishJoin(); err != nil {
		s.violate("finish join of %s: %v", d.name, err)
		return false
	}
	if err := d.signIn(); err != nil {
		s.violate("sign in on %s: %v", d.name, err)
		return false
	}
	if _, err := d.syncer.Once(context.Background()); err != nil {
		s.violate("sync of %s: %v", d.name, err)
		return false
	}
	s.note("%s joined", d.name)
	return true
}

// settle lets every device learn about every other before the faults start.
func (s *sim) settle() bool {
	for range 2 {
		for _, d := range s.devs {
			if _, err := d.syncer.Once(context.Background()); err != nil {
				s.violate("settling sync of %s: %v", d.name, err)
				return false
			}
		}
	}
	return true
}

// signIn builds the actor the way the app does on start: this device, its store,
// the owner.
func (d *simDev) signIn() error {
	dv, err := d.db.ThisDevice()
	if err != nil {
		return err
	}
	owner, err := d.db.OwnerName()
	if err != nil {
		return err
	}
	op, _, err := d.db.FindOperator(owner)
	if err != nil {
		return err
	}
	st, err := d.db.FindStore(dv.StoreID)
	if err != nil {
		return err
	}
	d.actor = &store.Actor{Operator: *op, Device: *dv, Store: *st}
	return nil
}

// crash ends the device's process: the database is closed and opened again from its
// file, and everything the process held in memory (the client, the syncer's record of
// uploaded batches, caches) is gone.
func (d *simDev) crash(why string) {
	s := d.s
	s.crashes++
	d.db.Close()
	d.db, d.dead = nil, false
	if err := d.open(); err != nil {
		s.violate("reopen %s after a crash: %v", d.name, err)
		return
	}
	if err := d.db.Unlock(simKEK()); err != nil {
		s.violate("unlock %s: %v", d.name, err)
		return
	}
	if err := d.signIn(); err != nil {
		s.violate("sign in on %s after a crash: %v", d.name, err)
		return
	}
	tok, err := d.db.DeviceToken()
	if err != nil {
		s.violate("device token of %s: %v", d.name, err)
		return
	}
	d.connect(tok)
	s.note("%s crashed (%s) and restarted", d.name, why)
}

// ---------------------------------------------------------------------------
// The run

// act runs one step: perhaps a stale request arrives, then one device does one thing.
func (s *sim) act() {
	if s.rng.Float64() < 0.05 {
		s.replays++
		s.replayStale()
	}
	d := s.devs[s.rng.IntN(len(s.devs))]
	ruleEdits := 0
	if *simRules {
		ruleEdits = 3
	}
	ops := []struct {
		name   string
		weight int
		fn     func(*simDev)
	}{
		{"sync", 22, (*simDev).sync},
		{"redeem", 24, (*simDev).redeem},
		{"gift card", 10, (*simDev).spendGift},
		{"rollback", 5, (*simDev).rollback},
		{"topup", 4, (*simDev).topup},
		{"pay", 10, (*simDev).pay},
		{"allowance", 8, (*simDev).allowance},
		{"earn", 4, (*simDev).earn},
		{"edit", 3, (*simDev).editCosmetic},
		{"edit-value", 3, (*simDev).editValue},
		{"edit-rules", ruleEdits, (*simDev).editRules},
		{"resolve", 6, (*simDev).resolve},
		{"partition", 5, (*simDev).partition},
		{"crash", 3, func(d *simDev) { d.crash("killed") }},
	}
	total := 0
	for _, o := range ops {
		total += o.weight
	}
	x := s.rng.IntN(total)
	for _, o := range ops {
		if x -= o.weight; x < 0 {
			s.ops[o.name]++
			o.fn(d)
			break
		}
	}
	if d.dead {
		d.crash("while waiting for an answer")
	}
}

// heal ends the faults: every device syncs, round after round, until a whole round
// moves nothing. A round that fails now is a defect.
func (s *sim) heal() bool {
	const maxRounds = 10
	s.note("-- healed: no faults, every device online")
	// Time passes before the line is back for good, so claims no redemption matched
	// expire and the first sync releases them.
	s.now += (server.ClaimTTL + time.Minute).Milliseconds()
	for s.healRound = 1; s.healRound <= maxRounds; s.healRound++ {
		s.now += 1000
		moved := int64(0)
		for _, d := range s.devs {
			rep, err := d.syncer.Once(context.Background())
			if err != nil {
				s.violate("heal round %d: sync of %s failed: %v", s.healRound, d.name, err)
				return false
			}
			s.note("%s heal round %d: pushed %d, pulled %d log, %d codes", d.name, s.healRound, rep.Pushed, rep.PulledLog, rep.PulledCodes)
			moved += rep.Pushed + rep.PulledLog + rep.PulledCodes
		}
		if moved == 0 {
			return true
		}
	}
	s.violate("still moving after %d heal rounds", maxRounds)
	return false
}

// ---------------------------------------------------------------------------
// Small helpers

// simExpected reports whether err is a refusal a person would see (a business rule, a
// policy, the network), as opposed to a defect.
func simExpected(err error) bool {
	if err == nil {
		return true
	}
	switch core.ErrorCode(err) {
	case core.ErrInvalid, core.ErrNotFound, core.ErrConflict, core.ErrForbidden:
		return true
	}
	return false
}

func (s *sim) name(id string) string {
	if l, ok := s.label[id]; ok {
		return l
	}
	return "?" + id
}

// simWhy is the short reason of a refusal for the trace.
func simWhy(err error) string {
	if e := syncclient.AsAPIError(err); e != nil {
		return fmt.Sprintf("server %d %s", e.Status, e.Body.Code)
	}
	var ce *core.Error
	if errors.As(err, &ce) {
		if w := ce.Params["why"]; w != "" {
			return ce.Code + "/" + w
		}
		return ce.Code
	}
	msg := err.Error()
	if i := strings.Index(msg, "sim: "); i >= 0 {
		return msg[i+5:]
	}
	return msg
}
