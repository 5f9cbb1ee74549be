package store_test

import (
	"encoding/json"
	"path/filepath"
	"testing"
	"time"

	"github.com/kameng/kameng/core"
	"github.com/kameng/kameng/core/store"
	"github.com/kameng/kameng/core/wire"
)

// hub holds a merchant's log and codes streams the way the server hands them out, so
// the device side can be tested on its own: every pushed mutation is logged in push
// order with the status the server would give it, codes are uploaded before their
// batch's mutation, and pulls are served in pages after each device's cursors.
// Single-use codes are decided as the server does: the first redemption to arrive
// stands, a later one is flagged with a case and a reversal entry for its device.
type hub struct {
	t     testing.TB
	epoch int64
	seq   int64
	log   []wire.Change
	codes []wire.Change
	now   func() int64

	redeemed map[string]string // code → the standing redemption (single-use)
	// singleUse tells whether a campaign's codes are used up by one redemption.
	singleUse func(campaignID string) bool
}

func newHub(t testing.TB) *hub {
	return &hub{t: t, epoch: 1, now: func() int64 { return t0.UnixMilli() }, redeemed: map[string]string{}}
}

func deviceOf(t testing.TB, db *store.DB) string {
	t.Helper()
	st, err := db.SyncState()
	if err != nil {
		t.Fatal(err)
	}
	return st.DeviceID
}

// register records a registration on the device, as the sync client does.
func (h *hub) register(db *store.DB, merchantID string) {
	h.t.Helper()
	if err := db.SetRegistration("http://127.0.0.1:9", "km_token_"+deviceOf(h.t, db), merchantID, h.epoch, 0); err != nil {
		h.t.Fatalf("register: %v", err)
	}
}

// server appends one of the server's own entries to the log.
func (h *hub) server(name string, args any) wire.Mutation {
	b, err := json.Marshal(args)
	if err != nil {
		h.t.Fatal(err)
	}
	h.seq++
	m := wire.Mutation{UUID: core.NewID(), Name: name, Args: b, WallMS: h.now()}
	h.log = append(h.log, wire.Change{Seq: h.seq, DeviceID: wire.ServerDevice, Status: wire.Applied, Mutation: &m})
	return m
}

// push sends a device's pending mutations in small batches and acknowledges them.
func (h *hub) push(db *store.DB) []wire.Mutation {
	h.t.Helper()
	dev := deviceOf(h.t, db)
	var all []wire.Mutation
	for {
		ms, err := db.PendingMutations(4, 1<<20)
		if err != nil {
			h.t.Fatalf("pending: %v", err)
		}
		if len(ms) == 0 {
			return all
		}
		for i := range ms {
			m := ms[i]
			if m.Name == "codes.generate@1" || m.Name == "codes.import@1" {
				var a struct {
					Batch core.Batch `json:"batch"`
				}
				if err := json.Unmarshal(m.Args, &a); err != nil {
					h.t.Fatal(err)
				}
				h.upload(db, a.Batch.ID)
			}
			status := wire.Applied
			if m.Name == "code.redeem@1" {
				status = h.redeem(dev, m)
			}
			h.seq++
			h.log = append(h.log, wire.Change{Seq: h.seq, DeviceID: dev, Status: status, Mutation: &m})
			if status == wire.Flagged {
				h.flagDouble(dev, m)
			}
		}
		if err := db.Ack(&wire.PushResponse{LastMID: ms[len(ms)-1].MID, ServerMS: h.now()}); err != nil {
			h.t.Fatalf("ack: %v", err)
		}
		all = append(all, ms...)
	}
}

type redeemArgs struct {
	Redemption core.Redemption `json:"redemption"`
}

func (h *hub) redeem(dev string, m wire.Mutation) string {
	var a redeemArgs
	if err := json.Unmarshal(m.Args, &a); err != nil {
		h.t.Fatal(err)
	}
	if h.singleUse == nil || !h.singleUse(a.Redemption.CampaignID) {
		return wire.Applied
	}
	if _, taken := h.redeemed[a.Redemption.Code]; taken {
		return wire.Flagged
	}
	h.redeemed[a.Redemption.Code] = a.Redemption.ID
	return wire.Applied
}

// flagDouble logs the case and the reversal of a losing redemption.
func (h *hub) flagDouble(dev string, m wire.Mutation) {
	var a redeemArgs
	if err := json.Unmarshal(m.Args, &a); err != nil {
		h.t.Fatal(err)
	}
	r := a.Redemption
	caseID := core.NewID()
	detail, _ := json.Marshal(map[string]any{"code": r.Code, "first_redemption_id": h.redeemed[r.Code],
		"later_redemption_id": r.ID, "later": map[string]any{"device_id": dev, "operator_id": r.OperatorID, "order_amount": r.OrderAmount}})
	h.server("case.open@1", wire.Case{ID: caseID, Kind: wire.CaseDoubleRedemption, Status: "open", Subject: r.Code,
		Detail: detail, CreatedMS: h.now()})
	h.server("redemption.reverse@1", map[string]any{"redemption_id": r.ID, "code": r.Code, "reason": core.ReasonAlreadyRedeemed, "case_id": caseID})
}

// upload pages a batch's codes into the codes stream, as the client does before the
// batch's mutation.
func (h *hub) upload(db *store.DB, batchID string) {
	after := ""
	for {
		codes, err := db.BatchCodes(batchID, after, 3)
		if err != nil {
			h.t.Fatalf("batch codes: %v", err)
		}
		if len(codes) == 0 {
			return
		}
		for i := range codes {
			h.seq++
			h.codes = append(h.codes, wire.Change{Seq: h.seq, Code: &codes[i]})
		}
		after = codes[len(codes)-1].Code
	}
}

// page is the next page of a stream for a device after its cursor.
func (h *hub) page(stream, dev string, cursor int64, limit int) (*wire.Page, bool) {
	src := h.log
	if stream == wire.StreamCodes {
		src = h.codes
	}
	p := &wire.Page{Stream: stream, Next: cursor, Changes: []wire.Change{}, Total: int64(len(src))}
	for _, ch := range src {
		if ch.Seq <= cursor {
			continue
		}
		if len(p.Changes) == limit {
			p.More = true
			break
		}
		p.Next = ch.Seq
		if ch.DeviceID == dev {
			continue // a device's own mutations are not sent back to it
		}
		p.Changes = append(p.Changes, ch)
	}
	return p, p.Next > cursor
}

// pull applies the device's pages: codes first, then the log, each page in one
// transaction.
func (h *hub) pull(db *store.DB, limit int, streams ...string) int {
	h.t.Helper()
	if len(streams) == 0 {
		streams = []string{wire.StreamCodes, wire.StreamLog}
	}
	dev := deviceOf(h.t, db)
	pages := 0
	for _, stream := range streams {
		for {
			st, err := db.SyncState()
			if err != nil {
				h.t.Fatal(err)
			}
			p, any := h.page(stream, dev, st.Cursors[stream], limit)
			if !any {
				break
			}
			if err := db.ApplyPage(h.epoch, h.now(), p); err != nil {
				h.t.Fatalf("apply %s page after %d: %v", stream, st.Cursors[stream], err)
			}
			pages++
		}
	}
	return pages
}

// join opens an empty database beside a merchant's first device and joins it: key
// setup, registration, the first pull, FinishJoin; it returns the device's owner actor.
func (h *hub) join(merchantID, device, storeName string, clock core.Clock) (*store.DB, *store.Actor) {
	h.t.Helper()
	db, err := store.Open(filepath.Join(h.t.TempDir(), device+".db"))
	if err != nil {
		h.t.Fatal(err)
	}
	h.t.Cleanup(func() { db.Close() })
	db.Clock = clock
	if err := db.Join(store.JoinInput{Device: device, Store: storeName, KDF: "file", KEK: testKEK()}); err != nil {
		h.t.Fatalf("join: %v", err)
	}
	if ok, _ := db.Initialized(); ok {
		h.t.Fatal("a joining database counts as initialised before FinishJoin")
	}
	h.register(db, merchantID)
	h.pull(db, 3)
	d, err := db.FinishJoin()
	if err != nil {
		h.t.Fatalf("finish join: %v", err)
	}
	return db, actorOn(h.t, db, d, "boss")
}

// actorOn signs an operator in on a device, checking the password hash arrived.
func actorOn(t testing.TB, db *store.DB, d *core.Device, login string) *store.Actor {
	t.Helper()
	op, hash, err := db.FindOperator(login)
	if err != nil {
		t.Fatalf("operator %s: %v", login, err)
	}
	if !core.CheckPassword(hash, "pw") {
		t.Fatalf("operator %s cannot sign in on device %s: password hash %q", login, d.Name, hash)
	}
	s, err := db.FindStore(d.StoreID)
	if err != nil {
		t.Fatal(err)
	}
	return &store.Actor{Operator: *op, Device: *d, Store: *s}
}

func syncState(t testing.TB, db *store.DB) *store.SyncState {
	t.Helper()
	st, err := db.SyncState()
	if err != nil {
		t.Fatal(err)
	}
	return st
}

func merchantOf(t testing.TB, db *store.DB) string {
	t.Helper()
	m, err := db.Merchant()
	if err != nil {
		t.Fatal(err)
	}
	return m.ID
}

func TestRegistrationTokenSealedAndState(t *testing.T) {
	e := newEnv(t)
	st := syncState(t, e.db)
	if st.Server != "" || st.DeviceID != e.owner.Device.ID || st.Pending != 1 {
		t.Fatalf("before registering: %+v", st)
	}
	if _, err := e.db.DeviceToken(); core.ErrorCode(err) != core.ErrNotFound {
		t.Fatalf("token before registering: %v", err)
	}
	h := newHub(t)
	h.register(e.db, e.owner.Operator.MerchantID)
	tok, err := e.db.DeviceToken()
	if err != nil || tok != "km_token_"+e.owner.Device.ID {
		t.Fatalf("token %q %v", tok, err)
	}
	var raw []byte
	if err := e.db.Raw().QueryRow(`SELECT value FROM meta WHERE key = 'sync_token'`).Scan(&raw); err != nil {
		t.Fatal(err)
	}
	if string(raw) == tok || len(raw) == 0 {
		t.Fatal("the device token is stored in plain text")
	}
	// Another handle without the key cannot read it.
	other := e.reopen()
	if _, err := other.DeviceToken(); core.ErrorCode(err) != core.ErrKey {
		t.Fatalf("token without the key: %v", err)
	}
	if err := e.db.SetRegistration("http://127.0.0.1:9", "t", "another-merchant", 1, 0); core.ErrorCode(err) != core.ErrConflict {
		t.Fatalf("registration to another merchant: %v", err)
	}

	c := e.create(amountOff("登记", 500, core.Rules{}))
	e.codes(c.ID, 3)
	st = syncState(t, e.db)
	if st.Server == "" || st.Epoch != 1 || st.AckedMID != 0 || st.Pending != 3 || st.MerchantID != e.owner.Operator.MerchantID {
		t.Fatalf("registered: %+v", st)
	}
	h.push(e.db)
	st = syncState(t, e.db)
	if st.AckedMID != 3 || st.Pending != 0 {
		t.Fatalf("after push: %+v", st)
	}
	if cnt := e.counts(); cnt.Pending != 0 {
		t.Fatalf("outbox rows still unpushed after the ack: %d", cnt.Pending)
	}
	// A mid gap answer moves the acknowledged mid back: those mutations go again.
	if err := e.db.Ack(&wire.PushResponse{LastMID: 1}); err != nil {
		t.Fatal(err)
	}
	ms, err := e.db.PendingMutations(10, 0)
	if err != nil || len(ms) != 2 || ms[0].MID != 2 {
		t.Fatalf("pending after moving back: %d %v", len(ms), err)
	}
	if err := e.db.Ack(&wire.PushResponse{LastMID: 99}); core.ErrorCode(err) != core.ErrConflict {
		t.Fatalf("ack beyond the outbox: %v", err)
	}
	// Rejected and flagged results are kept for the operator.
	if err := e.db.Ack(&wire.PushResponse{LastMID: 3, Results: []wire.Result{{MID: 2, Status: wire.Applied},
		{MID: 3, Status: wire.Rejected, Reason: "not_found", Message: "no such campaign"}}}); err != nil {
		t.Fatal(err)
	}
	res, err := e.db.SyncResults(10)
	if err != nil || len(res) != 1 || res[0].MID != 3 || res[0].Reason != "not_found" || res[0].Name != "codes.generate@1" {
		t.Fatalf("results %+v %v", res, err)
	}
	if st := syncState(t, e.db); st.Rejected != 1 {
		t.Fatalf("rejected %d", st.Rejected)
	}

	e.advance(time.Minute)
	if err := e.db.RecordSyncError(errFake("connection refused"), e.clock.Now()); err != nil {
		t.Fatal(err)
	}
	st = syncState(t, e.db)
	if st.LastError != "connection refused" || st.LastErrorMS != e.clock.Now().UnixMilli() || st.LastSyncMS != 0 {
		t.Fatalf("after an error: %+v", st)
	}
	if err := e.db.RecordSyncError(nil, e.clock.Now()); err != nil {
		t.Fatal(err)
	}
	st = syncState(t, e.db)
	if st.LastError != "" || st.LastSyncMS != e.clock.Now().UnixMilli() {
		t.Fatalf("after success: %+v", st)
	}
	if n, brk, err := e.db.VerifyAudit(); err != nil || brk != nil {
		t.Fatalf("audit after %d: %+v %v", n, brk, err)
	}
}

type errFake string

func (e errFake) Error() string { return string(e) }

func TestBatchCodesIssueState(t *testing.T) {
	e := newEnv(t)
	gc := e.create(giftCard("卡", 10000))
	codes := e.codes(gc.ID, 5)
	e.redeem(e.owner, codes[1], core.Order{Amount: 3000}, "")
	if err := e.db.Void(e.owner, codes[2], "lost"); err != nil {
		t.Fatal(err)
	}
	bs, err := e.db.Batches(gc.ID)
	if err != nil || len(bs) != 1 {
		t.Fatal(bs, err)
	}
	var got []wire.Code
	after := ""
	for {
		page, err := e.db.BatchCodes(bs[0].ID, after, 2)
		if err != nil {
			t.Fatal(err)
		}
		if len(page) == 0 {
			break
		}
		if len(page) > 2 {
			t.Fatalf("page of %d, limit 2", len(page))
		}
		got = append(got, page...)
		after = page[len(page)-1].Code
	}
	if len(got) != 5 {
		t.Fatalf("%d codes paged, want 5", len(got))
	}
	for i, k := range got {
		if k.Code != codes[i] || k.Uses != 0 || k.Balance != 10000 || k.Issued != 10000 || k.Status != core.CodeActive || k.MaxUses != 0 {
			t.Fatalf("code %d as uploaded: %+v", i, k)
		}
	}
	if _, err := e.db.BatchCodes("nope", "", 10); core.ErrorCode(err) != core.ErrNotFound {
		t.Fatalf("unknown batch: %v", err)
	}
}

func TestOfflineRedeemPolicy(t *testing.T) {
	e := newEnv(t)
	off := func(o core.Offline) core.Rules { return core.Rules{Offline: o} }
	no := e.create(amountOff("不可离线", 500, off(core.Offline{})))
	capped := e.create(amountOff("限额", 2000, off(core.Offline{Allowed: true, MaxValue: 1000})))
	stale := e.create(amountOff("限时", 500, off(core.Offline{Allowed: true, MaxAgeMins: 60})))
	counted := e.create(amountOff("限次", 500, off(core.Offline{Allowed: true, MaxCount: 2})))
	pct := e.create(&core.Campaign{Name: "折扣", Kind: core.KindPercentOff, PercentOff: 1000, Rules: off(core.Offline{Allowed: true, MaxValue: 1000})})
	noCode, capCode, staleCode := e.codes(no.ID, 1)[0], e.codes(capped.ID, 1)[0], e.codes(stale.ID, 1)[0]
	countCodes, pctCode := e.codes(counted.ID, 4), e.codes(pct.ID, 1)[0]
	now := e.clock.Now()

	// Not registered: there is no offline, every code goes.
	if err := e.db.OfflineRedeemAllowed(e.owner, noCode, now); err != nil {
		t.Fatalf("unregistered device: %v", err)
	}
	h := newHub(t)
	h.register(e.db, e.owner.Operator.MerchantID)
	if err := e.db.RecordSyncError(nil, now); err != nil {
		t.Fatal(err)
	}
	why := func(err error) string {
		t.Helper()
		if err == nil {
			return "ok"
		}
		ce := asError(t, err)
		if ce.Code != core.ErrForbidden || ce.Field != "offline" {
			t.Fatalf("refusal %+v", ce)
		}
		return ce.Params["why"]
	}
	cases := []struct {
		code, want string
	}{
		{noCode, store.OfflineNotAllowed},
		{capCode, store.OfflineValueCap},
		{pctCode, store.OfflineValueCap}, // a percentage off without a cap has no bound
		{staleCode, "ok"},
		{countCodes[0], "ok"},
	}
	for _, c := range cases {
		if got := why(e.db.OfflineRedeemAllowed(e.owner, c.code, now)); got != c.want {
			t.Errorf("%s: %s, want %s", c.code, got, c.want)
		}
	}
	if got := why(e.db.OfflineRedeemAllowed(e.owner, staleCode, now.Add(61*time.Minute))); got != store.OfflineStale {
		t.Errorf("an hour after the last sync: %s", got)
	}

	// Redeeming offline counts against the campaign's limit per device since the last sync.
	offline := *e.owner
	offline.Offline = true
	for _, code := range countCodes[:2] {
		if r := e.redeem(&offline, code, core.Order{}, ""); !r.Verdict.OK {
			t.Fatalf("offline redeem %s: %+v", code, r.Verdict)
		}
	}
	if got := why(e.db.OfflineRedeemAllowed(e.owner, countCodes[2], now)); got != store.OfflineCount {
		t.Fatalf("third offline redemption: %s", got)
	}
	_, err := e.db.Redeem(&offline, countCodes[2], core.Order{}, "")
	if got := why(err); got != store.OfflineCount {
		t.Fatalf("third offline redeem: %s", got)
	}
	if _, err := e.db.Redeem(&offline, noCode, core.Order{}, ""); why(err) != store.OfflineNotAllowed {
		t.Fatalf("offline redeem of a campaign that does not allow it: %v", err)
	}
	if k := e.code(noCode); k.Uses != 0 {
		t.Fatal("a refused offline redemption used the code")
	}
	// Online again: a sync starts a new count.
	h.push(e.db)
	e.advance(time.Second)
	if err := e.db.RecordSyncError(nil, e.clock.Now()); err != nil {
		t.Fatal(err)
	}
	if got := why(e.db.OfflineRedeemAllowed(e.owner, countCodes[2], e.clock.Now())); got != "ok" {
		t.Fatalf("after a sync: %s", got)
	}
}

func TestOfflineAllowance(t *testing.T) {
	e := newEnv(t)
	h := newHub(t)
	h.register(e.db, e.owner.Operator.MerchantID)
	m, err := e.db.AddMember(e.owner, store.MemberInput{Phone: "13800000001"})
	if err != nil {
		t.Fatal(err)
	}
	id := m.Member.ID
	if _, err := e.db.Topup(e.owner, id, 50000, "", ""); err != nil {
		t.Fatal(err)
	}
	gift := giftCard("储值", 10000)
	gift.Rules.Offline = core.Offline{Allowed: true}
	gc := e.create(gift)
	card := e.codes(gc.ID, 1)[0]
	h.push(e.db)
	why := func(err error) string {
		t.Helper()
		if err == nil {
			return "ok"
		}
		return asError(t, err).Params["why"]
	}
	if got := why(e.db.OfflineSpendAllowed(wire.AccountWallet, id, 100)); got != store.OfflineAllowance {
		t.Fatalf("without an allowance: %s", got)
	}
	expires := e.clock.Now().Add(24 * time.Hour).UnixMilli()
	if err := e.db.SetAllowances([]wire.Allowance{{Kind: wire.AccountWallet, AccountID: id, Granted: 10000, Spent: 1000, ExpiresMS: expires},
		{Kind: wire.AccountGiftCard, AccountID: card, Granted: 4000, ExpiresMS: expires}}); err != nil {
		t.Fatal(err)
	}
	if got := why(e.db.OfflineSpendAllowed(wire.AccountWallet, "13800000001", 9000)); got != "ok" {
		t.Fatalf("within the allowance, by phone: %s", got)
	}
	if got := why(e.db.OfflineSpendAllowed(wire.AccountWallet, id, 9001)); got != store.OfflineAllowance {
		t.Fatalf("over the allowance: %s", got)
	}
	offline := *e.owner
	offline.Offline = true
	if _, err := e.db.Pay(&offline, id, 6000, "t1", ""); err != nil {
		t.Fatalf("offline pay within the allowance: %v", err)
	}
	_, err = e.db.Pay(&offline, id, 3001, "t2", "")
	ce := wantErr(t, err, core.ErrForbidden, "offline")
	if ce.Params["why"] != store.OfflineAllowance || ce.Params["have"] != "¥30.00" {
		t.Fatalf("second offline pay: %+v", ce)
	}
	// Gift card: a debit offline fits the card's allowance.
	if r := e.redeem(&offline, card, core.Order{Amount: 3000}, ""); !r.Verdict.OK {
		t.Fatalf("offline gift card debit: %+v", r.Verdict)
	}
	if _, err := e.db.Redeem(&offline, card, core.Order{Amount: 2000}, ""); why(err) != store.OfflineAllowance {
		t.Fatalf("gift card debit over the allowance: %v", err)
	}
	list, err := e.db.Allowances()
	if err != nil || len(list) != 2 {
		t.Fatal(list, err)
	}
	spent := map[string]int64{}
	for _, a := range list {
		spent[a.Kind] = a.Spent
	}
	if spent[wire.AccountWallet] != 7000 || spent[wire.AccountGiftCard] != 3000 {
		t.Fatalf("spent with offline payments: %v", spent)
	}
	// After the push the server counts them; a refresh takes its figures.
	h.push(e.db)
	if err := e.db.SetAllowances([]wire.Allowance{{Kind: wire.AccountWallet, AccountID: id, Granted: 10000, Spent: 7000, ExpiresMS: expires}}); err != nil {
		t.Fatal(err)
	}
	list, _ = e.db.Allowances()
	if len(list) != 1 || list[0].Spent != 7000 {
		t.Fatalf("after refresh: %+v", list)
	}
	// An expired allowance lets nothing through.
	e.advance(25 * time.Hour)
	if got := why(e.db.OfflineSpendAllowed(wire.AccountWallet, id, 1)); got != store.OfflineAllowance {
		t.Fatalf("expired allowance: %s", got)
	}
	// Online payments are not limited by it.
	if _, err := e.db.Pay(e.owner, id, 20000, "t3", ""); err != nil {
		t.Fatalf("online pay: %v", err)
	}
}

func TestResolveCaseWritesAuditAndOutbox(t *testing.T) {
	e := newEnv(t)
	h := newHub(t)
	h.register(e.db, e.owner.Operator.MerchantID)
	m, err := e.db.AddMember(e.owner, store.MemberInput{Phone: "13800000002"})
	if err != nil {
		t.Fatal(err)
	}
	id := m.Member.ID
	if _, err := e.db.Topup(e.owner, id, 1000, "", ""); err != nil {
		t.Fatal(err)
	}
	h.push(e.db)
	detail, _ := json.Marshal(map[string]any{"kind": wire.AccountWallet, "account_id": id, "balance": -500})
	over := wire.Case{ID: core.NewID(), Kind: wire.CaseOverdraft, Status: "open", Subject: id, Detail: detail, CreatedMS: h.now()}
	h.server("case.open@1", over)
	accept := wire.Case{ID: core.NewID(), Kind: wire.CaseLateOffline, Status: "open", Subject: "X", CreatedMS: h.now()}
	h.server("case.open@1", accept)
	h.pull(e.db, 10)

	open, err := e.db.Cases("open")
	if err != nil || len(open) != 2 {
		t.Fatalf("open cases %d %v", len(open), err)
	}
	if st := syncState(t, e.db); st.OpenCases != 2 {
		t.Fatalf("open cases in the state: %d", st.OpenCases)
	}
	if _, err := e.db.ResolveCase(e.owner, over.ID, "shrug", ""); core.ErrorCode(err) != core.ErrInvalid {
		t.Fatalf("unknown action: %v", err)
	}
	before := e.auditActions()["case.resolve"]
	c, err := e.db.ResolveCase(e.owner, over.ID, wire.ActionFreeze, "客户已联系")
	if err != nil {
		t.Fatal(err)
	}
	if c.Status != "resolved" || c.Action != wire.ActionFreeze || c.ResolvedBy != e.owner.Operator.ID || c.Note != "客户已联系" {
		t.Fatalf("resolved case %+v", c)
	}
	if got := e.auditActions()["case.resolve"]; got != before+1 {
		t.Fatalf("case.resolve audit entries %d, want %d", got, before+1)
	}
	ms, err := e.db.PendingMutations(10, 0)
	if err != nil || len(ms) != 1 || ms[0].Name != "case.resolve@1" {
		t.Fatalf("outbox after resolving: %+v %v", ms, err)
	}
	var args map[string]string
	json.Unmarshal(ms[0].Args, &args)
	if args["case_id"] != over.ID || args["action"] != wire.ActionFreeze || args["operator_id"] != e.owner.Operator.ID {
		t.Fatalf("case.resolve@1 args %v", args)
	}
	// The freeze is local at once: the wallet refuses payment.
	_, err = e.db.Pay(e.owner, id, 100, "", "")
	if ce := wantErr(t, err, core.ErrConflict, "member"); ce.Params["why"] != store.ReasonFrozen {
		t.Fatalf("pay from a frozen wallet: %+v", ce)
	}
	if _, err := e.db.ResolveCase(e.owner, over.ID, wire.ActionAccept, ""); core.ErrorCode(err) != core.ErrConflict {
		t.Fatalf("resolving twice: %v", err)
	}
	if _, err := e.db.ResolveCase(e.owner, "nope", wire.ActionAccept, ""); core.ErrorCode(err) != core.ErrNotFound {
		t.Fatalf("unknown case: %v", err)
	}
	// The server's copy of the case, opened again by a late page, does not reopen it;
	// its resolution of the other case arrives as case.resolve@1.
	h.server("case.open@1", over)
	accept.Status, accept.Action, accept.ResolvedBy, accept.ResolvedMS = "resolved", wire.ActionAccept, "op-x", h.now()
	h.server("case.resolve@1", accept)
	h.pull(e.db, 10)
	if open, _ := e.db.Cases("open"); len(open) != 0 {
		t.Fatalf("open after the server's entries: %+v", open)
	}
	got, err := e.db.Case(accept.ID)
	if err != nil || got.Action != wire.ActionAccept || got.ResolvedBy != "op-x" {
		t.Fatalf("case resolved by the server: %+v %v", got, err)
	}
	if all, _ := e.db.Cases("all"); len(all) != 2 {
		t.Fatalf("all cases: %d", len(all))
	}
	if n, brk, err := e.db.VerifyAudit(); err != nil || brk != nil {
		t.Fatalf("audit after %d: %+v %v", n, brk, err)
	}
}

func TestJoinRefusesInitialisedAndInitRefusesJoining(t *testing.T) {
	e := newEnv(t)
	if err := e.db.Join(store.JoinInput{Device: "x", KDF: "file", KEK: testKEK()}); core.ErrorCode(err) != core.ErrConflict {
		t.Fatalf("join an initialised database: %v", err)
	}
	db, err := store.Open(filepath.Join(t.TempDir(), "j.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if err := db.Join(store.JoinInput{Device: "pos-9", KDF: "file", KEK: testKEK()}); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Init(store.InitInput{Merchant: "m", Store: "s", Device: "d", Owner: "o", PasswordHash: passwordHash(), KDF: "file", KEK: testKEK()}); core.ErrorCode(err) != core.ErrConflict {
		t.Fatalf("init while joining: %v", err)
	}
	if _, err := db.FinishJoin(); core.ErrorCode(err) != core.ErrNotFound {
		t.Fatalf("finish before the merchant arrived: %v", err)
	}
	if st := syncState(t, db); st.DeviceID == "" {
		t.Fatal("a joining device has no id")
	}
	// The key was set up as init does: another handle unlocks it with the same KEK.
	other, err := store.Open(db.Path)
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	if err := other.Unlock(testKEK()); err != nil {
		t.Fatalf("unlock the joined key: %v", err)
	}
}
