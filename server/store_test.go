package server

import (
	"encoding/json"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/kameng/kameng/core"
	"github.com/kameng/kameng/core/wire"
)

var t0 = time.Date(2026, 5, 1, 10, 0, 0, 0, time.UTC)

// ---- helpers ----

// tenant is one merchant on the server with its registered devices and the next
// mid of each.
type tenant struct {
	s     Store
	id    string
	epoch int64
	devs  []*Device
	mids  map[string]int64
}

// newTenant founds merchant id with a first device, and joins the others with a
// token of that merchant.
func newTenant(t *testing.T, s Store, id string, devices ...string) *tenant {
	t.Helper()
	tn := &tenant{s: s, id: id, mids: map[string]int64{}}
	founding, err := s.CreateToken("", "founding", time.Hour, t0)
	if err != nil {
		t.Fatal(err)
	}
	var join string
	for i, name := range devices {
		req := wire.RegisterRequest{Token: join, DeviceID: id + "-" + name, DeviceName: name}
		if i == 0 {
			req.Token, req.MerchantID, req.MerchantName = founding, id, "Shop "+id
		}
		resp, err := s.Register(req, t0)
		if err != nil {
			t.Fatalf("register %s: %v", name, err)
		}
		d, err := s.Authenticate(resp.DeviceToken, t0)
		if err != nil {
			t.Fatal(err)
		}
		tn.devs = append(tn.devs, d)
		tn.epoch = resp.Epoch
		if i == 0 {
			if join, err = s.CreateToken(id, "join", time.Hour, t0); err != nil {
				t.Fatal(err)
			}
		}
	}
	return tn
}

func (tn *tenant) dev(i int) *Device { return tn.devs[i] }

// mutation builds the device's next mutation (mids count per device).
func (tn *tenant) mutation(d *Device, name string, args any, now time.Time) wire.Mutation {
	tn.mids[d.ID]++
	b, err := json.Marshal(args)
	if err != nil {
		panic(err)
	}
	return wire.Mutation{MID: tn.mids[d.ID], UUID: core.NewID(), Name: name, Args: b,
		HLC: now.UnixMilli() << 16, WallMS: now.UnixMilli()}
}

// push sends the device's next mutations and returns the results.
func (tn *tenant) push(t *testing.T, d *Device, now time.Time, ms ...wire.Mutation) []wire.Result {
	t.Helper()
	resp, err := tn.s.Push(d, wire.PushRequest{Epoch: tn.epoch, ClientMS: now.UnixMilli(), Mutations: ms}, now)
	if err != nil {
		t.Fatalf("push: %v", err)
	}
	if len(resp.Results) != len(ms) {
		t.Fatalf("push: %d results for %d mutations", len(resp.Results), len(ms))
	}
	return resp.Results
}

// do pushes one mutation and returns its result.
func (tn *tenant) do(t *testing.T, d *Device, now time.Time, name string, args any) wire.Result {
	t.Helper()
	return tn.push(t, d, now, tn.mutation(d, name, args, now))[0]
}

// pullAll reads a whole stream from the start, page by page.
func (tn *tenant) pullAll(t *testing.T, d *Device, stream string) []wire.Change {
	t.Helper()
	var out []wire.Change
	var seq int64
	for range 1000 {
		resp, err := tn.s.Pull(d, wire.PullRequest{Epoch: tn.epoch, Cursors: []wire.Cursor{{Stream: stream, Seq: seq}}, Limit: 100}, t0)
		if err != nil {
			t.Fatal(err)
		}
		p := resp.Pages[0]
		out = append(out, p.Changes...)
		seq = p.Next
		if !p.More {
			return out
		}
	}
	t.Fatal("pull does not end")
	return nil
}

// serverEntries are the server's own log entries a device pulls, by name.
func (tn *tenant) serverEntries(t *testing.T, d *Device, name string) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, c := range tn.pullAll(t, d, wire.StreamLog) {
		if c.DeviceID == wire.ServerDevice && c.Mutation.Name == name {
			var m map[string]any
			if err := json.Unmarshal(c.Mutation.Args, &m); err != nil {
				t.Fatal(err)
			}
			out = append(out, m)
		}
	}
	return out
}

func (tn *tenant) cases(t *testing.T, kind string) []wire.Case {
	t.Helper()
	all, err := tn.s.Cases(tn.dev(0), "all")
	if err != nil {
		t.Fatal(err)
	}
	var out []wire.Case
	for _, c := range all {
		if c.Kind == kind {
			out = append(out, c)
		}
	}
	return out
}

func coupon(id string) *core.Campaign {
	return &core.Campaign{ID: id, Name: "Coupon " + id, Kind: core.KindAmountOff, Status: core.StatusActive, Currency: "CNY",
		AmountOff: 2000, Rules: core.Rules{UsesPerCode: 1}}
}

func giftCard(id string, face core.Amount) *core.Campaign {
	return &core.Campaign{ID: id, Name: "Gift " + id, Kind: core.KindGiftCard, Status: core.StatusActive, Currency: "CNY",
		FaceValue: face}
}

// campaignWithCodes pushes the campaign from the first device and uploads its codes.
func (tn *tenant) campaignWithCodes(t *testing.T, c *core.Campaign, codes ...string) {
	t.Helper()
	if r := tn.do(t, tn.dev(0), t0, "campaign.create@1", c); r.Status != wire.Applied {
		t.Fatalf("campaign.create: %+v", r)
	}
	up := wire.CodesUpload{BatchID: "batch-" + c.ID}
	for _, k := range codes {
		up.Codes = append(up.Codes, wire.Code{Code: k, CampaignID: c.ID, MaxUses: 99, Balance: 1})
	}
	res, err := tn.s.UploadCodes(tn.dev(0), up, t0)
	if err != nil {
		t.Fatal(err)
	}
	if res.Inserted != int64(len(codes)) {
		t.Fatalf("uploaded %d codes, want %d", res.Inserted, len(codes))
	}
}

func redemption(code, campaign, operator string, value core.Amount, at time.Time) map[string]any {
	return map[string]any{"redemption": core.Redemption{ID: core.NewID(), Code: code, CampaignID: campaign, OperatorID: operator,
		OrderRef: "order-" + operator, OrderAmount: 10000, Value: value, Status: core.RedemptionDone, Created: at.UnixMilli()}}
}

func errCode(err error) string {
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	if err == nil {
		return ""
	}
	return "other: " + err.Error()
}

func check(t *testing.T, s Store, d *Device, code string, amount int64) *wire.RedeemResponse {
	t.Helper()
	r, err := s.Check(d, wire.RedeemRequest{Code: code, Amount: amount}, t0)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// sqlOf gives tests the store's database for checks the API does not expose.
func sqlOf(s Store) *sqlStore { return s.(*sqlStore) }

func scalar(t testing.TB, s Store, q string, args ...any) int64 {
	t.Helper()
	var v int64
	if err := sqlOf(s).w.QueryRow(sqlOf(s).bind(q), args...).Scan(&v); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	return v
}

// ---- registration ----

func TestRegister(t *testing.T) {
	eachStore(t, func(t *testing.T, s Store) {
		if _, err := s.Register(wire.RegisterRequest{Token: "km_nothing", DeviceID: "d1", MerchantID: "m1"}, t0); errCode(err) != wire.ErrUnauthorized {
			t.Fatalf("unknown token: %v", err)
		}
		founding, _ := s.CreateToken("", "founding", time.Hour, t0)
		if !strings.HasPrefix(founding, "km_") || len(founding) != 3+43 {
			t.Fatalf("token %q is not km_ + base64url of 32 bytes", founding)
		}
		if _, err := s.Register(wire.RegisterRequest{Token: founding, DeviceID: "d1"}, t0); errCode(err) != wire.ErrBadRequest {
			t.Fatalf("founding token without a merchant: %v", err)
		}
		if _, err := s.Register(wire.RegisterRequest{Token: founding, DeviceID: "d1", MerchantID: "m1"}, t0.Add(2*time.Hour)); errCode(err) != wire.ErrUnauthorized {
			t.Fatalf("expired token: %v", err)
		}
		first, err := s.Register(wire.RegisterRequest{Token: founding, DeviceID: "d1", DeviceName: "Counter 1", MerchantID: "m1", MerchantName: "Shop"}, t0)
		if err != nil {
			t.Fatal(err)
		}
		if first.MerchantID != "m1" || first.Epoch < 1 || first.LastMID != 0 || !strings.HasPrefix(first.DeviceToken, "kmd_") {
			t.Fatalf("first registration: %+v", first)
		}
		d1, err := s.Authenticate(first.DeviceToken, t0)
		if err != nil || d1.ID != "d1" || d1.MerchantID != "m1" {
			t.Fatalf("authenticate: %+v %v", d1, err)
		}
		// The founding token is now m1's: it cannot found m1 again or join another.
		if _, err := s.Register(wire.RegisterRequest{Token: founding, DeviceID: "d2", MerchantID: "m9"}, t0); errCode(err) != wire.ErrForbidden {
			t.Fatalf("bound token, other merchant: %v", err)
		}
		second, err := s.Register(wire.RegisterRequest{Token: founding, DeviceID: "d2"}, t0)
		if err != nil || second.MerchantID != "m1" {
			t.Fatalf("join with the bound token: %+v %v", second, err)
		}
		// A merchant that exists cannot be founded again with a fresh token.
		other, _ := s.CreateToken("", "founding 2", time.Hour, t0)
		if _, err := s.Register(wire.RegisterRequest{Token: other, DeviceID: "x1", MerchantID: "m1"}, t0); errCode(err) != wire.ErrForbidden {
			t.Fatalf("founding an existing merchant: %v", err)
		}
		if _, err := s.CreateToken("nope", "join", time.Hour, t0); errCode(err) != wire.ErrNotFound {
			t.Fatalf("token for an unknown merchant: %v", err)
		}
		// A device of m1 cannot register into m2.
		if _, err := s.Register(wire.RegisterRequest{Token: other, DeviceID: "m2-d1", MerchantID: "m2"}, t0); err != nil {
			t.Fatal(err)
		}
		join2, _ := s.CreateToken("m2", "join", time.Hour, t0)
		if _, err := s.Register(wire.RegisterRequest{Token: join2, DeviceID: "d1"}, t0); errCode(err) != wire.ErrForbidden {
			t.Fatalf("device of another merchant: %v", err)
		}
		// Re-registering issues a new token, says how far the server got, and the
		// old token stops working.
		tn := &tenant{s: s, id: "m1", epoch: first.Epoch, mids: map[string]int64{}}
		tn.push(t, d1, t0, tn.mutation(d1, "store.add@1", map[string]any{"id": "s2"}, t0), tn.mutation(d1, "operator.add@1", map[string]any{"id": "o2"}, t0))
		again, err := s.Register(wire.RegisterRequest{Token: founding, DeviceID: "d1", MerchantID: "m1"}, t0)
		if err != nil {
			t.Fatal(err)
		}
		if again.LastMID != 2 || again.DeviceToken == first.DeviceToken {
			t.Fatalf("re-registration: %+v", again)
		}
		if _, err := s.Authenticate(first.DeviceToken, t0); errCode(err) != wire.ErrUnauthorized {
			t.Fatalf("old token after re-registration: %v", err)
		}
		if _, err := s.Authenticate(again.DeviceToken, t0); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Authenticate("kmd_forged", t0); errCode(err) != wire.ErrUnauthorized {
			t.Fatalf("forged token: %v", err)
		}
	})
}

// ---- push: mids, duplicates, gaps, epochs ----

func TestPushMIDs(t *testing.T) {
	eachStore(t, func(t *testing.T, s Store) {
		tn := newTenant(t, s, "m1", "a", "b")
		a, b := tn.dev(0), tn.dev(1)
		ms := []wire.Mutation{
			tn.mutation(a, "member.add@1", map[string]any{"id": "mem1"}, t0),
			tn.mutation(a, "code.redeem@1", map[string]any{"nothing": true}, t0), // cannot apply: rejected, queue moves on
			tn.mutation(a, "member.edit@1", map[string]any{"id": "mem1"}, t0),
		}
		res := tn.push(t, a, t0, ms...)
		if res[0].Status != wire.Applied || res[1].Status != wire.Rejected || res[1].Reason != reasonBadArgs || res[2].Status != wire.Applied {
			t.Fatalf("results: %+v", res)
		}
		// A repeated push returns the stored results and applies the new one once.
		next := tn.mutation(a, "tier.set@1", map[string]any{"id": "gold"}, t0)
		resp, err := s.Push(a, wire.PushRequest{Epoch: tn.epoch, Mutations: []wire.Mutation{ms[1], ms[2], next}}, t0)
		if err != nil {
			t.Fatal(err)
		}
		if resp.LastMID != 4 || resp.Results[0].Status != wire.Rejected || resp.Results[0].MID != 2 || resp.Results[1].Status != wire.Applied || resp.Results[2].MID != 4 {
			t.Fatalf("repeat: %+v", resp)
		}
		if got := len(tn.pullAll(t, b, wire.StreamLog)); got != 4 {
			t.Fatalf("b sees %d log entries, want 4 (each mutation once)", got)
		}
		// A gap is refused with the expected mid, and nothing is written.
		tn.mids[a.ID]++ // skip mid 5
		gap := tn.mutation(a, "member.add@1", map[string]any{"id": "mem2"}, t0)
		_, err = s.Push(a, wire.PushRequest{Epoch: tn.epoch, Mutations: []wire.Mutation{gap}}, t0)
		var e *Error
		if !errors.As(err, &e) || e.Code != wire.ErrMIDGap || e.ExpectedMID != 5 {
			t.Fatalf("gap: %v", err)
		}
		if got := len(tn.pullAll(t, b, wire.StreamLog)); got != 4 {
			t.Fatalf("after a refused gap b sees %d entries", got)
		}
		// Mids out of order within one push are a bad request.
		_, err = s.Push(a, wire.PushRequest{Epoch: tn.epoch, Mutations: []wire.Mutation{{MID: 5, Name: "x@1", Args: []byte("{}")}, {MID: 7, Name: "x@1", Args: []byte("{}")}}}, t0)
		if errCode(err) != wire.ErrBadRequest {
			t.Fatalf("out of order: %v", err)
		}
		// Names without a version, server-only names and bad JSON are rejected, not wedged.
		res = tn.push(t, b, t0,
			wire.Mutation{MID: 1, Name: "noversion", Args: []byte(`{}`)},
			wire.Mutation{MID: 2, Name: "account.freeze@1", Args: []byte(`{}`)},
			wire.Mutation{MID: 3, Name: "member.add@1", Args: []byte(`{not json`)})
		for i, want := range []string{reasonBadName, reasonServerOnly, reasonBadArgs} {
			if res[i].Status != wire.Rejected || res[i].Reason != want {
				t.Fatalf("result %d: %+v, want rejected %s", i, res[i], want)
			}
		}
		// Another epoch is refused.
		if _, err := s.Push(a, wire.PushRequest{Epoch: tn.epoch + 1, Mutations: []wire.Mutation{{MID: 5, Name: "x@1", Args: []byte("{}")}}}, t0); errCode(err) != wire.ErrEpoch {
			t.Fatalf("wrong epoch: %v", err)
		}
		if len(res) > wire.MaxPushMutations {
			t.Fatal("unreachable")
		}
		big := make([]wire.Mutation, wire.MaxPushMutations+1)
		if _, err := s.Push(a, wire.PushRequest{Epoch: tn.epoch, Mutations: big}, t0); errCode(err) != wire.ErrTooLarge {
			t.Fatalf("too many: %v", err)
		}
	})
}

// ---- single-use codes ----

func TestDoubleRedemption(t *testing.T) {
	eachStore(t, func(t *testing.T, s Store) {
		tn := newTenant(t, s, "m1", "a", "b")
		a, b := tn.dev(0), tn.dev(1)
		tn.campaignWithCodes(t, coupon("c1"), "CODE-1", "CODE-2")
		if k := check(t, s, a, "CODE-1", 0); !k.OK || k.Uses != 0 {
			t.Fatalf("fresh code: %+v", k)
		}
		ra := redemption("CODE-1", "c1", "alice", 0, t0.Add(-time.Hour))
		rb := redemption("CODE-1", "c1", "bob", 0, t0.Add(-2*time.Hour)) // earlier, but reaches the server second
		if r := tn.do(t, a, t0, "code.redeem@1", ra); r.Status != wire.Applied {
			t.Fatalf("first redemption: %+v", r)
		}
		lost := tn.do(t, b, t0, "code.redeem@1", rb)
		if lost.Status != wire.Flagged || lost.Reason != reasonAlreadyRedeemed || lost.CaseID == "" {
			t.Fatalf("second redemption: %+v", lost)
		}
		// The same redemption pushed again (another mid) changes nothing.
		if r := tn.do(t, b, t0, "code.redeem@1", rb); r.Status != wire.Applied || r.CaseID != "" {
			t.Fatalf("replayed redemption: %+v", r)
		}
		if k := check(t, s, a, "CODE-1", 0); k.OK || k.Reason != "already_redeemed" || k.Uses != 1 {
			t.Fatalf("after the double: %+v", k)
		}
		if n := scalar(t, s, `SELECT COUNT(*) FROM redemption WHERE merchant_id = ? AND code = ? AND status = 'standing'`, "m1", "CODE-1"); n != 1 {
			t.Fatalf("%d standing redemptions, want 1", n)
		}
		cases := tn.cases(t, wire.CaseDoubleRedemption)
		if len(cases) != 1 || cases[0].ID != lost.CaseID || cases[0].Subject != "CODE-1" || cases[0].Status != "open" {
			t.Fatalf("cases: %+v", cases)
		}
		var detail struct {
			Winner, Loser side
			LoserID       string `json:"loser_redemption_id"`
		}
		json.Unmarshal(cases[0].Detail, &detail)
		if detail.Winner.DeviceID != a.ID || detail.Winner.OperatorID != "alice" || detail.Loser.DeviceID != b.ID ||
			detail.Loser.OperatorID != "bob" || detail.Loser.OrderRef != "order-bob" || detail.Loser.OrderAmount != 10000 ||
			detail.Loser.CreatedMS != t0.Add(-2*time.Hour).UnixMilli() || detail.LoserID != detail.Loser.RedemptionID {
			t.Fatalf("case detail: %s", cases[0].Detail)
		}
		// The losing device learns to undo its redemption; so does everyone else.
		rbID := rb["redemption"].(core.Redemption).ID
		for _, d := range []*Device{a, b} {
			rev := tn.serverEntries(t, d, mRedemptionReverse)
			if len(rev) != 1 || rev[0]["redemption_id"] != rbID || rev[0]["case_id"] != lost.CaseID {
				t.Fatalf("reverse entries for %s: %v", d.ID, rev)
			}
			if opened := tn.serverEntries(t, d, mCaseOpen); len(opened) != 1 {
				t.Fatalf("case.open entries: %v", opened)
			}
		}
		// Resolving: reverse, then the case is closed and logged.
		if _, err := s.Resolve(a, lost.CaseID, wire.ResolveRequest{Action: "shrug"}, t0); errCode(err) != wire.ErrBadRequest {
			t.Fatalf("unknown action: %v", err)
		}
		c, err := s.Resolve(a, lost.CaseID, wire.ResolveRequest{Action: wire.ActionReverse, OperatorID: "owner", Note: "told bob"}, t0)
		if err != nil || c.Status != "resolved" || c.Action != wire.ActionReverse || c.ResolvedBy != "owner" {
			t.Fatalf("resolve: %+v %v", c, err)
		}
		if k := check(t, s, a, "CODE-1", 0); k.Uses != 1 {
			t.Fatalf("after reverse the code has %d uses", k.Uses)
		}
		if _, err := s.Resolve(a, lost.CaseID, wire.ResolveRequest{Action: wire.ActionAccept}, t0); errCode(err) != wire.ErrConflict {
			t.Fatalf("resolving twice: %v", err)
		}
		if got := tn.serverEntries(t, b, mCaseResolve); len(got) != 1 || got[0]["action"] != wire.ActionReverse {
			t.Fatalf("case.resolve entries: %v", got)
		}
		if open, _ := s.Cases(a, "open"); len(open) != 0 {
			t.Fatalf("open cases: %+v", open)
		}
		// A voided code's offline redemption is refused and undone.
		tn.do(t, a, t0, "codes.void@1", map[string]any{"code": "CODE-2", "reason": "lost"})
		if r := tn.do(t, b, t0, "code.redeem@1", redemption("CODE-2", "c1", "bob", 0, t0)); r.Status != wire.Rejected || r.Reason != reasonVoided {
			t.Fatalf("voided code: %+v", r)
		}
		// A code the server has not seen yet: the first redemption creates it and
		// stands, the second is a double.
		if r := tn.do(t, a, t0, "code.redeem@1", redemption("NEW-1", "c1", "alice", 0, t0)); r.Status != wire.Applied {
			t.Fatalf("unknown code: %+v", r)
		}
		if r := tn.do(t, b, t0, "code.redeem@1", redemption("NEW-1", "c1", "bob", 0, t0)); r.Status != wire.Flagged || r.Reason != reasonAlreadyRedeemed {
			t.Fatalf("unknown code, second: %+v", r)
		}
		resp, err := s.Pull(b, wire.PullRequest{Epoch: tn.epoch, Cursors: []wire.Cursor{{Stream: wire.StreamCodes}}}, t0)
		if err != nil || resp.Pages[0].Total != 3 || len(resp.Pages[0].Changes) != 3 {
			t.Fatalf("codes after a push made one: %+v %v", resp, err)
		}
	})
}

func TestRollbackFreesTheCode(t *testing.T) {
	eachStore(t, func(t *testing.T, s Store) {
		tn := newTenant(t, s, "m1", "a", "b")
		a, b := tn.dev(0), tn.dev(1)
		tn.campaignWithCodes(t, coupon("c1"), "CODE-1")
		r1 := redemption("CODE-1", "c1", "alice", 0, t0)
		tn.do(t, a, t0, "code.redeem@1", r1)
		id := r1["redemption"].(core.Redemption).ID
		// The rollback may come from another device.
		if r := tn.do(t, b, t0, "code.rollback@1", map[string]any{"redemption_id": id, "reason": "mistake"}); r.Status != wire.Applied {
			t.Fatalf("rollback: %+v", r)
		}
		if r := tn.do(t, b, t0, "code.rollback@1", map[string]any{"redemption_id": id, "reason": "again"}); r.Status != wire.Applied {
			t.Fatalf("second rollback: %+v", r)
		}
		if k := check(t, s, a, "CODE-1", 0); !k.OK || k.Uses != 0 {
			t.Fatalf("after rollback: %+v", k)
		}
		if r := tn.do(t, b, t0, "code.redeem@1", redemption("CODE-1", "c1", "bob", 0, t0)); r.Status != wire.Applied {
			t.Fatalf("redeem after rollback: %+v", r)
		}
		if r := tn.do(t, b, t0, "code.rollback@1", map[string]any{"redemption_id": "nope"}); r.Status != wire.Rejected || r.Reason != reasonNotFound {
			t.Fatalf("rollback of nothing: %+v", r)
		}
	})
}

func TestOnlineClaimThenPushCountsOnce(t *testing.T) {
	eachStore(t, func(t *testing.T, s Store) {
		tn := newTenant(t, s, "m1", "a", "b")
		a, b := tn.dev(0), tn.dev(1)
		tn.campaignWithCodes(t, coupon("c1"), "CODE-1")
		req := wire.RedeemRequest{Code: "CODE-1", IdemKey: "key-1", OperatorID: "alice", OrderAmount: 5000}
		first, err := s.Redeem(a, req, t0)
		if err != nil || !first.OK || first.Uses != 1 || first.ClaimID == "" {
			t.Fatalf("claim: %+v %v", first, err)
		}
		again, err := s.Redeem(a, req, t0)
		if err != nil || *again != *first {
			t.Fatalf("same key again: %+v %v, want %+v", again, err, first)
		}
		other, err := s.Redeem(b, wire.RedeemRequest{Code: "CODE-1", IdemKey: "key-2"}, t0)
		if err != nil || other.OK || other.Reason != "already_redeemed" {
			t.Fatalf("another claim: %+v %v", other, err)
		}
		if r, _ := s.Redeem(a, wire.RedeemRequest{Code: "NOPE", IdemKey: "key-3"}, t0); r.OK || r.Reason != "not_found" {
			t.Fatalf("unknown code: %+v", r)
		}
		// The device commits the redemption with the same key and pushes it.
		red := redemption("CODE-1", "c1", "alice", 0, t0)
		r := red["redemption"].(core.Redemption)
		r.IdemKey = "key-1"
		red["redemption"] = r
		if res := tn.do(t, a, t0, "code.redeem@1", red); res.Status != wire.Applied {
			t.Fatalf("push after claim: %+v", res)
		}
		if k := check(t, s, a, "CODE-1", 0); k.Uses != 1 {
			t.Fatalf("uses %d after claim and push, want 1", k.Uses)
		}
		if cs := tn.cases(t, wire.CaseDoubleRedemption); len(cs) != 0 {
			t.Fatalf("cases: %+v", cs)
		}
		// The pull shows the code row with its use.
		var seen bool
		for _, c := range tn.pullAll(t, b, wire.StreamCodes) {
			if c.Code.Code == "CODE-1" {
				seen = c.Code.Uses == 1
			}
		}
		if !seen {
			t.Fatal("the codes stream does not show the claimed use")
		}
		// An offline redemption of the same code from another device is a double.
		if res := tn.do(t, b, t0, "code.redeem@1", redemption("CODE-1", "c1", "bob", 0, t0)); res.Status != wire.Flagged {
			t.Fatalf("offline after online: %+v", res)
		}
	})
}

func TestConcurrentOnlineRedeem(t *testing.T) {
	eachStore(t, func(t *testing.T, s Store) {
		tn := newTenant(t, s, "m1", "a")
		tn.campaignWithCodes(t, coupon("c1"), "HOT-1")
		tn.campaignWithCodes(t, giftCard("g1", 10000), "CARD-1")
		const n = 32
		var wg sync.WaitGroup
		var mu sync.Mutex
		oks, cardOKs := 0, 0
		errs := []error{}
		for i := range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				r, err := s.Redeem(tn.dev(0), wire.RedeemRequest{Code: "HOT-1", IdemKey: fmt.Sprintf("k%d", i)}, t0)
				c, err2 := s.Redeem(tn.dev(0), wire.RedeemRequest{Code: "CARD-1", IdemKey: fmt.Sprintf("g%d", i), Amount: 3000}, t0)
				mu.Lock()
				defer mu.Unlock()
				if err != nil || err2 != nil {
					errs = append(errs, errors.Join(err, err2))
					return
				}
				if r.OK {
					oks++
				}
				if c.OK {
					cardOKs++
				}
			}()
		}
		wg.Wait()
		if len(errs) > 0 {
			t.Fatal(errs)
		}
		if oks != 1 {
			t.Fatalf("%d of %d concurrent redemptions succeeded, want exactly 1", oks, n)
		}
		if cardOKs != 3 {
			t.Fatalf("%d gift card takes of ¥30 from ¥100 succeeded, want 3", cardOKs)
		}
		if k := check(t, s, tn.dev(0), "CARD-1", 0); k.Balance != 1000 {
			t.Fatalf("card balance %d, want 1000", k.Balance)
		}
	})
}

// ---- ledgers ----

func walletEntry(member string, amount core.Amount) core.WalletEntry {
	return core.WalletEntry{ID: core.NewID(), MemberID: member, Amount: amount, Kind: "pay"}
}

func TestOverdraftFreezes(t *testing.T) {
	eachStore(t, func(t *testing.T, s Store) {
		tn := newTenant(t, s, "m1", "a", "b")
		a, b := tn.dev(0), tn.dev(1)
		top := walletEntry("mem1", 10000)
		top.Kind = "topup"
		if r := tn.do(t, a, t0, "wallet.topup@1", map[string]any{"entry": top, "bonus": nil}); r.Status != wire.Applied {
			t.Fatalf("topup: %+v", r)
		}
		// Replaying an entry id (from another mid) is a no-op.
		if r := tn.do(t, a, t0, "wallet.topup@1", map[string]any{"entry": top}); r.Status != wire.Applied {
			t.Fatalf("replayed topup: %+v", r)
		}
		if r := tn.do(t, a, t0, "wallet.pay@1", walletEntry("mem1", -8000)); r.Status != wire.Applied {
			t.Fatalf("pay: %+v", r)
		}
		over := tn.do(t, b, t0, "wallet.pay@1", walletEntry("mem1", -5000))
		if over.Status != wire.Flagged || over.Reason != reasonOverdraft || over.CaseID == "" {
			t.Fatalf("overdraft: %+v", over)
		}
		if cs := tn.cases(t, wire.CaseOverdraft); len(cs) != 1 || cs[0].Subject != "mem1" {
			t.Fatalf("cases: %+v", cs)
		}
		freezes := tn.serverEntries(t, a, mAccountFreeze)
		if len(freezes) != 1 || freezes[0]["account_id"] != "mem1" || freezes[0]["kind"] != wire.AccountWallet || freezes[0]["case_id"] != over.CaseID {
			t.Fatalf("freeze entries: %v", freezes)
		}
		// A further overdraft joins the open case.
		if r := tn.do(t, b, t0, "wallet.pay@1", walletEntry("mem1", -100)); r.Status != wire.Flagged || r.CaseID != over.CaseID {
			t.Fatalf("second overdraft: %+v", r)
		}
		if bal, sum := scalar(t, s, `SELECT balance FROM account WHERE merchant_id = ? AND kind = 'wallet' AND id = ?`, "m1", "mem1"),
			scalar(t, s, `SELECT SUM(amount) FROM entry WHERE merchant_id = ? AND kind = 'wallet' AND account_id = ?`, "m1", "mem1"); bal != -3100 || sum != bal {
			t.Fatalf("balance %d, ledger %d, want -3100 both", bal, sum)
		}
		if al, err := s.GrantAllowance(a, wire.AllowanceRequest{Kind: wire.AccountWallet, AccountID: "mem1", Amount: 100}, t0); err != nil || al.Granted != 0 {
			t.Fatalf("allowance of a frozen wallet: %+v %v", al, err)
		}

		// Gift cards: the balance is on the code; an overdraft freezes the card.
		tn.campaignWithCodes(t, giftCard("g1", 10000), "CARD-1")
		if r := tn.do(t, a, t0, "code.redeem@1", redemption("CARD-1", "g1", "alice", 7000, t0)); r.Status != wire.Applied {
			t.Fatalf("card spend: %+v", r)
		}
		r := tn.do(t, b, t0, "code.redeem@1", redemption("CARD-1", "g1", "bob", 5000, t0))
		if r.Status != wire.Flagged || r.Reason != reasonOverdraft {
			t.Fatalf("card overdraft: %+v", r)
		}
		if k := check(t, s, a, "CARD-1", 0); k.OK || k.Reason != "frozen" || k.Balance != -2000 {
			t.Fatalf("frozen card: %+v", k)
		}
		if k, _ := s.Redeem(a, wire.RedeemRequest{Code: "CARD-1", IdemKey: "x", Amount: 1}, t0); k.OK || k.Reason != "frozen" {
			t.Fatalf("online spend of a frozen card: %+v", k)
		}
		if sum := scalar(t, s, `SELECT SUM(amount) FROM entry WHERE merchant_id = ? AND kind = 'gift_card' AND account_id = ?`, "m1", "CARD-1"); 10000+sum != -2000 {
			t.Fatalf("card ledger %d does not match the balance", sum)
		}
	})
}

func TestPointsAndMerge(t *testing.T) {
	eachStore(t, func(t *testing.T, s Store) {
		tn := newTenant(t, s, "m1", "a")
		a := tn.dev(0)
		earn := core.PointsEntry{ID: core.NewID(), MemberID: "old", Kind: core.PointsEarn, Points: 300}
		tn.do(t, a, t0, "points.earn@1", earn)
		tn.do(t, a, t0, "points.earn@1", earn) // replay
		tn.do(t, a, t0, "points.spend@1", core.PointsEntry{ID: core.NewID(), MemberID: "old", Kind: core.PointsSpend, Points: -100})
		tn.do(t, a, t0, "points.expire@1", map[string]any{"until_ms": 1, "lots": []map[string]any{{"lot": "l1", "member_id": "old", "points": 50}}})
		top := walletEntry("old", 500)
		tn.do(t, a, t0, "wallet.topup@1", map[string]any{"entry": top})
		if r := tn.do(t, a, t0, "member.merge@1", map[string]any{"from": "old", "into": "new"}); r.Status != wire.Applied {
			t.Fatalf("merge: %+v", r)
		}
		for _, c := range []struct {
			kind, id string
			want     int64
		}{{"points", "old", 0}, {"points", "new", 150}, {"wallet", "old", 0}, {"wallet", "new", 500}} {
			if got := scalar(t, s, `SELECT balance FROM account WHERE merchant_id = ? AND kind = ? AND id = ?`, "m1", c.kind, c.id); got != c.want {
				t.Fatalf("%s %s: %d, want %d", c.kind, c.id, got, c.want)
			}
		}
		// Paying from the survivor finds the merged balance: no overdraft.
		if r := tn.do(t, a, t0, "wallet.pay@1", walletEntry("new", -500)); r.Status != wire.Applied {
			t.Fatalf("pay after merge: %+v", r)
		}
		// Points spent twice offline: a case, but nothing to freeze at a till.
		r := tn.do(t, a, t0, "points.spend@1", core.PointsEntry{ID: core.NewID(), MemberID: "new", Kind: core.PointsSpend, Points: -200})
		if r.Status != wire.Flagged || r.Reason != reasonOverdraft {
			t.Fatalf("points overdraft: %+v", r)
		}
		if f := tn.serverEntries(t, a, mAccountFreeze); len(f) != 0 {
			t.Fatalf("points frozen: %v", f)
		}
		if _, err := s.Resolve(a, r.CaseID, wire.ResolveRequest{Action: wire.ActionFreeze}, t0); errCode(err) != wire.ErrBadRequest {
			t.Fatalf("freeze of a points case: %v", err)
		}
		if _, err := s.Resolve(a, r.CaseID, wire.ResolveRequest{Action: wire.ActionWriteOff}, t0); err != nil {
			t.Fatal(err)
		}
	})
}

func TestAllowanceGrants(t *testing.T) {
	eachStore(t, func(t *testing.T, s Store) {
		tn := newTenant(t, s, "m1", "a", "b")
		a, b := tn.dev(0), tn.dev(1)
		top := walletEntry("mem1", 1000)
		tn.do(t, a, t0, "wallet.topup@1", map[string]any{"entry": top})
		grant := func(d *Device, amount int64, at time.Time) int64 {
			t.Helper()
			al, err := s.GrantAllowance(d, wire.AllowanceRequest{Kind: wire.AccountWallet, AccountID: "mem1", Amount: amount}, at)
			if err != nil {
				t.Fatal(err)
			}
			if al.ExpiresMS != at.Add(24*time.Hour).UnixMilli() {
				t.Fatalf("expires %d", al.ExpiresMS)
			}
			return al.Granted
		}
		if g := grant(a, 600, t0); g != 600 {
			t.Fatalf("a: %d", g)
		}
		if g := grant(b, 600, t0); g != 400 {
			t.Fatalf("b: %d, want what a left (400)", g)
		}
		// a spends 100 offline: the balance drops and a's reservation shrinks with it.
		tn.do(t, a, t0, "wallet.pay@1", walletEntry("mem1", -100))
		list, err := s.Allowances(a, t0)
		if err != nil || len(list) != 1 || list[0].Spent != 100 || list[0].Granted != 600 {
			t.Fatalf("a's allowances: %+v %v", list, err)
		}
		if g := grant(b, 600, t0); g != 400 {
			t.Fatalf("b again: %d, want 900 - 500 reserved by a = 400", g)
		}
		if g := grant(a, 2000, t0); g != 500 {
			t.Fatalf("a again: %d, want 900 - 400 reserved by b = 500", g)
		}
		// Expired reservations no longer count.
		if g := grant(b, 2000, t0.Add(25*time.Hour)); g != 900 {
			t.Fatalf("after expiry: %d", g)
		}
		if list, _ := s.Allowances(a, t0.Add(25*time.Hour)); len(list) != 0 {
			t.Fatalf("expired allowances listed: %+v", list)
		}
		if g := grant(a, 100, t0); g != 0 {
			t.Fatalf("with b holding all 900: %d", g)
		}
		if _, err := s.GrantAllowance(a, wire.AllowanceRequest{Kind: "cash", AccountID: "x", Amount: 1}, t0); errCode(err) != wire.ErrBadRequest {
			t.Fatalf("unknown kind: %v", err)
		}
		if al, err := s.GrantAllowance(a, wire.AllowanceRequest{Kind: wire.AccountPoints, AccountID: "nobody", Amount: 10}, t0); err != nil || al.Granted != 0 {
			t.Fatalf("empty account: %+v %v", al, err)
		}
		// Gift cards reserve from the card's balance.
		tn.campaignWithCodes(t, giftCard("g1", 5000), "CARD-1")
		al, err := s.GrantAllowance(a, wire.AllowanceRequest{Kind: wire.AccountGiftCard, AccountID: "CARD-1", Amount: 8000}, t0)
		if err != nil || al.Granted != 5000 {
			t.Fatalf("card: %+v %v", al, err)
		}
		tn.do(t, a, t0, "code.redeem@1", redemption("CARD-1", "g1", "alice", 1500, t0))
		if list, _ := s.Allowances(a, t0); len(list) != 1 || list[0].Kind != wire.AccountGiftCard || list[0].Spent != 1500 {
			t.Fatalf("card spent: %+v", list)
		}
	})
}

// ---- campaigns ----

func serverCampaign(t *testing.T, s Store, merchant, id string) *core.Campaign {
	t.Helper()
	var body string
	if err := sqlOf(s).w.QueryRow(sqlOf(s).bind(`SELECT body FROM campaign WHERE merchant_id = ? AND id = ?`), merchant, id).Scan(&body); err != nil {
		t.Fatal(err)
	}
	var c core.Campaign
	if err := json.Unmarshal([]byte(body), &c); err != nil {
		t.Fatal(err)
	}
	return &c
}

func TestCampaignEdits(t *testing.T) {
	eachStore(t, func(t *testing.T, s Store) {
		tn := newTenant(t, s, "m1", "a", "b")
		a, b := tn.dev(0), tn.dev(1)
		edit := func(d *Device, hlc int64, changes map[string]any) wire.Result {
			t.Helper()
			m := tn.mutation(d, "campaign.edit@1", map[string]any{"id": "c1", "changes": changes}, t0)
			m.HLC = hlc
			return tn.push(t, d, t0, m)[0]
		}
		c := coupon("c1")
		c.Rules.BudgetCount = 100
		c.Rules.Stores = []string{"s1"}
		m := tn.mutation(a, "campaign.create@1", c, t0)
		m.HLC = 10
		tn.push(t, a, t0, m)

		// Cosmetic fields: the higher HLC wins, whatever the arrival order.
		if r := edit(b, 30, map[string]any{"name": "From B"}); r.Status != wire.Applied {
			t.Fatalf("b's name: %+v", r)
		}
		if r := edit(a, 20, map[string]any{"name": "From A", "description": "A's words"}); r.Status != wire.Applied {
			t.Fatalf("a's older name: %+v", r)
		}
		got := serverCampaign(t, s, "m1", "c1")
		if got.Name != "From B" || got.Description != "A's words" {
			t.Fatalf("after LWW: name %q description %q", got.Name, got.Description)
		}
		// Value fields: a concurrent change is kept and becomes a case.
		if r := edit(b, 50, map[string]any{"amount_off": 3000}); r.Status != wire.Applied {
			t.Fatalf("b's value: %+v", r)
		}
		r := edit(a, 40, map[string]any{"amount_off": 2500, "description": "newer words?"})
		if r.Status != wire.Flagged || r.Reason != reasonCampaignEdit || r.CaseID == "" {
			t.Fatalf("concurrent value edit: %+v", r)
		}
		got = serverCampaign(t, s, "m1", "c1")
		if got.AmountOff != 3000 || got.Description != "newer words?" {
			t.Fatalf("server kept amount_off %d, description %q", got.AmountOff, got.Description)
		}
		cs := tn.cases(t, wire.CaseCampaignEdit)
		if len(cs) != 1 || cs[0].Subject != "c1" || !strings.Contains(string(cs[0].Detail), `"field":"amount_off"`) {
			t.Fatalf("campaign cases: %+v", cs)
		}
		// Rules are merged per field: b's store list and a's budget both stand;
		// a's later budget change conflicts with nobody.
		rules := c.Rules
		rules.Stores = []string{"s1", "s2"}
		edit(b, 60, map[string]any{"rules": rules})
		rules = c.Rules
		rules.BudgetCount = 200
		if r := edit(a, 70, map[string]any{"rules": rules}); r.Status != wire.Applied {
			t.Fatalf("a's budget: %+v", r)
		}
		got = serverCampaign(t, s, "m1", "c1")
		if got.Rules.BudgetCount != 200 {
			t.Fatalf("budget %d", got.Rules.BudgetCount)
		}
		// An older budget edit from b conflicts.
		rules.BudgetCount = 150
		if r := edit(b, 65, map[string]any{"rules": rules}); r.Status != wire.Flagged {
			t.Fatalf("b's older budget: %+v", r)
		}
		if got = serverCampaign(t, s, "m1", "c1"); got.Rules.BudgetCount != 200 {
			t.Fatalf("budget %d after a conflict", got.Rules.BudgetCount)
		}
		// Status: pause, and archiving is final.
		if r := tn.do(t, a, t0, "campaign.status@1", map[string]any{"id": "c1", "status": "archived"}); r.Status != wire.Applied {
			t.Fatalf("archive: %+v", r)
		}
		tn.do(t, b, t0, "campaign.status@1", map[string]any{"id": "c1", "status": "active"})
		if got = serverCampaign(t, s, "m1", "c1"); got.Status != core.StatusArchived {
			t.Fatalf("status %s", got.Status)
		}
		if r := edit(a, 80, map[string]any{"name": "x"}); r.Status != wire.Applied {
			t.Fatalf("edit: %+v", r)
		}
		if r := tn.do(t, a, t0, "campaign.edit@1", map[string]any{"id": "nope", "changes": map[string]any{"name": "x"}}); r.Status != wire.Rejected || r.Reason != reasonNotFound {
			t.Fatalf("edit of an unknown campaign: %+v", r)
		}
	})
}

// ---- late offline, clock skew ----

func TestLateOfflineAndClockSkew(t *testing.T) {
	eachStore(t, func(t *testing.T, s Store) {
		tn := newTenant(t, s, "m1", "a", "b")
		a, b := tn.dev(0), tn.dev(1)
		tn.campaignWithCodes(t, coupon("c1"), "A1", "A2")
		hourly := coupon("c2")
		hourly.Rules.Offline = core.Offline{Allowed: true, MaxAgeMins: 60}
		tn.campaignWithCodes(t, hourly, "B1", "B2")
		at := func(d *Device, code, camp string, made time.Time) wire.Result {
			t.Helper()
			m := tn.mutation(d, "code.redeem@1", redemption(code, camp, "op", 0, made), made)
			return tn.push(t, d, t0, m)[0]
		}
		if r := at(a, "A1", "c1", t0.Add(-23*time.Hour)); r.Status != wire.Applied {
			t.Fatalf("23 h old: %+v", r)
		}
		late := at(a, "A2", "c1", t0.Add(-25*time.Hour))
		if late.Status != wire.Flagged || late.Reason != reasonLateOffline {
			t.Fatalf("25 h old: %+v", late)
		}
		if r := at(a, "B1", "c2", t0.Add(-30*time.Minute)); r.Status != wire.Applied {
			t.Fatalf("30 min old, limit 60: %+v", r)
		}
		if r := at(a, "B2", "c2", t0.Add(-2*time.Hour)); r.Status != wire.Flagged || r.Reason != reasonLateOffline {
			t.Fatalf("2 h old, limit 60 min: %+v", r)
		}
		if cs := tn.cases(t, wire.CaseLateOffline); len(cs) != 2 {
			t.Fatalf("late cases: %+v", cs)
		}
		// The late redemption still stands.
		if k := check(t, s, a, "A2", 0); k.Uses != 1 {
			t.Fatalf("late redemption uses %d", k.Uses)
		}

		skewPush := func(d *Device, client time.Time) {
			t.Helper()
			m := tn.mutation(d, "member.add@1", map[string]any{"id": core.NewID()}, client)
			if _, err := s.Push(d, wire.PushRequest{Epoch: tn.epoch, ClientMS: client.UnixMilli(), Mutations: []wire.Mutation{m}}, t0); err != nil {
				t.Fatal(err)
			}
		}
		skewPush(a, t0.Add(4*time.Minute))
		if cs := tn.cases(t, wire.CaseClockSkew); len(cs) != 0 {
			t.Fatalf("4 minutes is no skew: %+v", cs)
		}
		skewPush(a, t0.Add(10*time.Minute))
		skewPush(a, t0.Add(11*time.Minute))
		skewPush(b, t0.Add(-time.Hour))
		cs := tn.cases(t, wire.CaseClockSkew)
		if len(cs) != 2 || cs[0].Subject == cs[1].Subject {
			t.Fatalf("skew cases: %+v", cs)
		}
		// Once resolved, a new skew opens a new case.
		if _, err := s.Resolve(a, cs[0].ID, wire.ResolveRequest{Action: wire.ActionAccept}, t0); err != nil {
			t.Fatal(err)
		}
		skewPush(a, t0.Add(10*time.Minute))
		if cs := tn.cases(t, wire.CaseClockSkew); len(cs) != 3 {
			t.Fatalf("skew cases after resolving: %d", len(cs))
		}
	})
}

// ---- pull ----

func TestPullPagingAndEpoch(t *testing.T) {
	eachStore(t, func(t *testing.T, s Store) {
		tn := newTenant(t, s, "m1", "a", "b")
		a, b := tn.dev(0), tn.dev(1)
		var ms []wire.Mutation
		for i := range 25 {
			ms = append(ms, tn.mutation(a, "member.add@1", map[string]any{"id": fmt.Sprint("mem", i)}, t0))
		}
		tn.push(t, a, t0, ms...)
		tn.do(t, b, t0, "member.add@1", map[string]any{"id": "from-b"})

		pull := func(d *Device, epoch int64, cursors ...wire.Cursor) *wire.PullResponse {
			t.Helper()
			resp, err := s.Pull(d, wire.PullRequest{Epoch: epoch, Cursors: cursors, Limit: 10}, t0)
			if err != nil {
				t.Fatal(err)
			}
			return resp
		}
		var seq int64
		var sizes []int
		var mids []int64
		for {
			p := pull(b, tn.epoch, wire.Cursor{Stream: wire.StreamLog, Seq: seq}).Pages[0]
			if p.Total != 26 {
				t.Fatalf("total %d, want 26", p.Total)
			}
			sizes = append(sizes, len(p.Changes))
			for _, c := range p.Changes {
				if c.DeviceID != a.ID || c.Status != wire.Applied || c.Seq <= seq {
					t.Fatalf("change %+v", c)
				}
				mids = append(mids, c.Mutation.MID)
			}
			seq = p.Next
			if !p.More {
				break
			}
		}
		if fmt.Sprint(sizes) != "[10 10 5]" {
			t.Fatalf("page sizes %v", sizes)
		}
		for i, m := range mids {
			if m != int64(i+1) {
				t.Fatalf("mids out of order: %v", mids)
			}
		}
		// Nothing new: the same cursor comes back with nothing.
		if p := pull(b, tn.epoch, wire.Cursor{Stream: wire.StreamLog, Seq: seq}).Pages[0]; len(p.Changes) != 0 || p.More || p.Next != seq {
			t.Fatalf("empty page %+v", p)
		}
		// a sees only b's entry, never its own.
		if own := tn.pullAll(t, a, wire.StreamLog); len(own) != 1 || own[0].DeviceID != b.ID {
			t.Fatalf("a pulls %+v", own)
		}
		// Codes come in pages too, and a changed code comes again.
		codes := make([]string, 15)
		for i := range codes {
			codes[i] = fmt.Sprintf("K%02d", i)
		}
		tn.campaignWithCodes(t, coupon("c1"), codes...)
		if again, _ := s.UploadCodes(a, wire.CodesUpload{Codes: []wire.Code{{Code: "K00", CampaignID: "c1"}}}, t0); again.Inserted != 0 {
			t.Fatalf("repeated upload inserted %d", again.Inserted)
		}
		resp := pull(b, 0, wire.Cursor{Stream: wire.StreamCodes}, wire.Cursor{Stream: wire.StreamLog})
		if resp.Epoch != tn.epoch || resp.Reset || len(resp.Pages) != 2 {
			t.Fatalf("first pull: %+v", resp)
		}
		cp := resp.Pages[0]
		if len(cp.Changes) != 10 || !cp.More || cp.Total != 15 || cp.Changes[0].Code.Code != "K00" || cp.Changes[0].Code.MaxUses != 1 || cp.Changes[0].Code.Balance != 0 {
			t.Fatalf("codes page %+v", cp)
		}
		tn.do(t, a, t0, "code.redeem@1", redemption("K00", "c1", "op", 0, t0))
		rest := pull(b, tn.epoch, wire.Cursor{Stream: wire.StreamCodes, Seq: cp.Next}).Pages[0]
		if len(rest.Changes) != 6 || rest.More || rest.Changes[5].Code.Code != "K00" || rest.Changes[5].Code.Uses != 1 {
			t.Fatalf("rest of codes %+v", rest)
		}
		// Gift cards open with the value they were issued with, else the face value.
		tn.do(t, a, t0, "campaign.create@1", giftCard("g1", 5000))
		if _, err := s.UploadCodes(a, wire.CodesUpload{Codes: []wire.Code{{Code: "G1", CampaignID: "g1", Issued: 3000, Balance: 100}, {Code: "G2", CampaignID: "g1"}}}, t0); err != nil {
			t.Fatal(err)
		}
		cards := pull(b, tn.epoch, wire.Cursor{Stream: wire.StreamCodes, Seq: rest.Next}).Pages[0].Changes
		if len(cards) != 2 || cards[0].Code.Balance != 3000 || cards[0].Code.Issued != 3000 || cards[1].Code.Balance != 5000 || cards[1].Code.MaxUses != 0 {
			t.Fatalf("gift cards %+v %+v", cards[0].Code, cards[len(cards)-1].Code)
		}
		if _, err := s.Pull(b, wire.PullRequest{Cursors: []wire.Cursor{{Stream: "members"}}}, t0); errCode(err) != wire.ErrBadRequest {
			t.Fatalf("unknown stream: %v", err)
		}
		// A restore bumps the epoch: pulls with the old one reset, pushes are refused.
		epoch, err := s.BumpEpoch("m1")
		if err != nil || epoch != tn.epoch+1 {
			t.Fatalf("bump: %d %v", epoch, err)
		}
		if resp := pull(b, tn.epoch, wire.Cursor{Stream: wire.StreamLog, Seq: seq}); !resp.Reset || len(resp.Pages) != 0 || resp.Epoch != epoch {
			t.Fatalf("after bump: %+v", resp)
		}
		if _, err := s.Push(a, wire.PushRequest{Epoch: tn.epoch, Mutations: []wire.Mutation{tn.mutation(a, "x@1", 1, t0)}}, t0); errCode(err) != wire.ErrEpoch {
			t.Fatalf("push with the old epoch: %v", err)
		}
		if _, err := s.BumpEpoch("nope"); errCode(err) != wire.ErrNotFound {
			t.Fatalf("bump unknown: %v", err)
		}
	})
}

// ---- tenants ----

func TestCrossTenant(t *testing.T) {
	eachStore(t, func(t *testing.T, s Store) {
		ta := newTenant(t, s, "mA", "a")
		tb := newTenant(t, s, "mB", "b")
		a, b := ta.dev(0), tb.dev(0)
		tb.campaignWithCodes(t, coupon("cB"), "B-CODE")
		tb.campaignWithCodes(t, giftCard("gB", 5000), "B-CARD")
		tb.do(t, b, t0, "wallet.topup@1", map[string]any{"entry": walletEntry("memB", 1000)})
		tb.do(t, b, t0, "code.redeem@1", redemption("B-CODE", "cB", "bob", 0, t0))
		dbl := tb.do(t, b, t0, "code.redeem@1", redemption("B-CODE", "cB", "bob", 0, t0))
		if dbl.CaseID == "" {
			t.Fatal("no case in B")
		}

		// Reads.
		if r := check(t, s, a, "B-CARD", 0); r.OK || r.Reason != "not_found" {
			t.Fatalf("A checks B's card: %+v", r)
		}
		if log := ta.pullAll(t, a, wire.StreamLog); len(log) != 0 {
			t.Fatalf("A pulls B's log: %+v", log)
		}
		if codes := ta.pullAll(t, a, wire.StreamCodes); len(codes) != 0 {
			t.Fatalf("A pulls B's codes: %+v", codes)
		}
		if cs, _ := s.Cases(a, "all"); len(cs) != 0 {
			t.Fatalf("A lists B's cases: %+v", cs)
		}
		if al, _ := s.Allowances(a, t0); len(al) != 0 {
			t.Fatalf("A lists allowances: %+v", al)
		}
		// Writes.
		if r, _ := s.Redeem(a, wire.RedeemRequest{Code: "B-CARD", IdemKey: "k", Amount: 100}, t0); r.OK || r.Reason != "not_found" {
			t.Fatalf("A redeems B's card: %+v", r)
		}
		if _, err := s.Resolve(a, dbl.CaseID, wire.ResolveRequest{Action: wire.ActionAccept}, t0); errCode(err) != wire.ErrNotFound {
			t.Fatalf("A resolves B's case: %v", err)
		}
		if r := ta.do(t, a, t0, mCaseResolve, map[string]any{"id": dbl.CaseID, "action": "accept"}); r.Status != wire.Rejected || r.Reason != reasonNotFound {
			t.Fatalf("A pushes a resolution of B's case: %+v", r)
		}
		if _, err := s.GrantAllowance(a, wire.AllowanceRequest{Kind: wire.AccountGiftCard, AccountID: "B-CARD", Amount: 100}, t0); errCode(err) != wire.ErrNotFound {
			t.Fatalf("A reserves B's card: %v", err)
		}
		if al, _ := s.GrantAllowance(a, wire.AllowanceRequest{Kind: wire.AccountWallet, AccountID: "memB", Amount: 100}, t0); al.Granted != 0 {
			t.Fatalf("A reserves B's wallet: %+v", al)
		}
		// Pushes naming B's campaign, codes and accounts touch A's own rows only.
		ta.do(t, a, t0, "code.redeem@1", redemption("B-CARD", "gB", "eve", 5000, t0))
		ta.do(t, a, t0, "codes.void@1", map[string]any{"code": "B-CODE"})
		ta.do(t, a, t0, "campaign.edit@1", map[string]any{"id": "cB", "changes": map[string]any{"name": "pwned"}})
		ta.do(t, a, t0, "wallet.pay@1", walletEntry("memB", -1000))
		if _, err := s.UploadCodes(a, wire.CodesUpload{Codes: []wire.Code{{Code: "B-CODE", CampaignID: "cB"}}}, t0); err != nil {
			t.Fatal(err)
		}
		if r := check(t, s, b, "B-CARD", 0); !r.OK || r.Balance != 5000 || r.Uses != 0 {
			t.Fatalf("B's card after A's pushes: %+v", r)
		}
		if r := check(t, s, b, "B-CODE", 0); r.Reason != "already_redeemed" || r.Uses != 1 {
			t.Fatalf("B's code after A's pushes: %+v", r)
		}
		if got := serverCampaign(t, s, "mB", "cB"); got.Name != "Coupon cB" {
			t.Fatalf("B's campaign renamed to %q", got.Name)
		}
		if al, _ := s.GrantAllowance(b, wire.AllowanceRequest{Kind: wire.AccountWallet, AccountID: "memB", Amount: 5000}, t0); al.Granted != 1000 {
			t.Fatalf("B's wallet after A's payment: %+v", al)
		}
		for _, c := range tb.pullAll(t, b, wire.StreamLog) {
			if c.DeviceID == a.ID {
				t.Fatalf("B pulls A's entry %+v", c)
			}
		}
		for _, c := range tb.pullAll(t, b, wire.StreamCodes) {
			if c.Code.Code == "B-CODE" && c.Code.Status != core.CodeActive {
				t.Fatalf("B's code status %q", c.Code.Status)
			}
		}
		if cs, _ := s.Cases(b, "open"); len(cs) != 1 {
			t.Fatalf("B's open cases: %+v", cs)
		}
	})
}

// ---- throughput ----

// TestPushThroughput pushes a day of a busy counter (redemptions, payments, points
// and plain records) in batches of 500 and checks every one is recorded once.
func TestPushThroughput(t *testing.T) {
	if testing.Short() {
		t.Skip("short")
	}
	s := newSQLiteStore(t)
	n := 20000
	elapsed := pushMany(t, s, n)
	t.Logf("sqlite: %d mutations in %v (%.0f/s)", n, elapsed, float64(n)/elapsed.Seconds())
	// 100,000 must take well under 20 s: at this rate 20,000 take under 4 s.
	if elapsed > 8*time.Second {
		t.Fatalf("%d mutations took %v", n, elapsed)
	}
}

func BenchmarkPush100k(b *testing.B) {
	for range b.N {
		s := newSQLiteStore(b)
		elapsed := pushMany(b, s, 100000)
		b.ReportMetric(float64(100000)/elapsed.Seconds(), "mutations/s")
	}
}

func pushMany(t testing.TB, s Store, n int) time.Duration {
	founding, _ := s.CreateToken("", "f", time.Hour, t0)
	reg, err := s.Register(wire.RegisterRequest{Token: founding, DeviceID: "d1", MerchantID: "m1"}, t0)
	if err != nil {
		t.Fatal(err)
	}
	d, _ := s.Authenticate(reg.DeviceToken, t0)
	mk := func(mid int64, name string, args any) wire.Mutation {
		b, _ := json.Marshal(args)
		return wire.Mutation{MID: mid, UUID: core.NewID(), Name: name, Args: b, HLC: t0.UnixMilli() << 16, WallMS: t0.UnixMilli()}
	}
	var mid int64
	push := func(ms []wire.Mutation) {
		resp, err := s.Push(d, wire.PushRequest{Epoch: reg.Epoch, Mutations: ms}, t0)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range resp.Results {
			if r.Status != wire.Applied {
				t.Fatalf("result %+v", r)
			}
		}
	}
	mid++
	push([]wire.Mutation{mk(mid, "campaign.create@1", coupon("c1"))})
	codes := make([]wire.Code, 0, wire.MaxCodesUpload)
	for i := range n / 4 {
		codes = append(codes, wire.Code{Code: fmt.Sprintf("C%07d", i), CampaignID: "c1"})
		if len(codes) == cap(codes) {
			s.UploadCodes(d, wire.CodesUpload{Codes: codes}, t0)
			codes = codes[:0]
		}
	}
	s.UploadCodes(d, wire.CodesUpload{Codes: codes}, t0)

	start := time.Now()
	batch := make([]wire.Mutation, 0, wire.MaxPushMutations)
	for i := range n {
		mid++
		var m wire.Mutation
		switch i % 4 {
		case 0:
			m = mk(mid, "code.redeem@1", redemption(fmt.Sprintf("C%07d", i/4), "c1", "op", 0, t0))
		case 1:
			m = mk(mid, "wallet.topup@1", map[string]any{"entry": walletEntry(fmt.Sprint("mem", i%500), 1000)})
		case 2:
			m = mk(mid, "points.earn@1", core.PointsEntry{ID: core.NewID(), MemberID: fmt.Sprint("mem", i%500), Points: 10})
		default:
			m = mk(mid, "member.edit@1", map[string]any{"id": fmt.Sprint("mem", i%500), "name": "x"})
		}
		batch = append(batch, m)
		if len(batch) == cap(batch) {
			push(batch)
			batch = batch[:0]
		}
	}
	if len(batch) > 0 {
		push(batch)
	}
	elapsed := time.Since(start)
	if got := scalar(t, s, `SELECT COUNT(*) FROM log WHERE merchant_id = ? AND device_id = ?`, "m1", "d1"); got != int64(n)+1 {
		t.Fatalf("%d log rows, want %d", got, n+1)
	}
	return elapsed
}

// BenchmarkRedeemParallel is the online redemption path under 32 concurrent
// callers, each on codes of its own (compare with pgbench -N -c 32 on the same
// server: KAMENG_TEST_POSTGRES).
func BenchmarkRedeemParallel(b *testing.B) {
	for _, kind := range []string{"sqlite", "postgres"} {
		b.Run(kind, func(b *testing.B) {
			var s Store
			if kind == "sqlite" {
				s = newSQLiteStore(b)
			} else {
				s = newPostgresStore(b)
			}
			founding, _ := s.CreateToken("", "f", time.Hour, t0)
			reg, err := s.Register(wire.RegisterRequest{Token: founding, DeviceID: "d1", MerchantID: "m1"}, t0)
			if err != nil {
				b.Fatal(err)
			}
			d, _ := s.Authenticate(reg.DeviceToken, t0)
			const codes = 10000
			up := wire.CodesUpload{}
			for i := range codes {
				// No campaign on the server: uses come from the upload, 0 = unlimited.
				up.Codes = append(up.Codes, wire.Code{Code: fmt.Sprintf("P%05d", i), CampaignID: "none", MaxUses: 0})
			}
			if _, err := s.UploadCodes(d, up, t0); err != nil {
				b.Fatal(err)
			}
			var next sync.Mutex
			n := 0
			b.SetParallelism(max(1, 32/runtime.GOMAXPROCS(0)))
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					next.Lock()
					n++
					i := n
					next.Unlock()
					r, err := s.Redeem(d, wire.RedeemRequest{Code: fmt.Sprintf("P%05d", i%codes), IdemKey: fmt.Sprint("k", i)}, t0)
					if err != nil || !r.OK {
						b.Errorf("redeem: %+v %v", r, err)
						return
					}
				}
			})
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "redeems/s")
		})
	}
}

// TestConcurrentPushes has several devices push at once (each also sending some of
// its batches twice, as a client does after a lost answer) and redeem the same codes
// offline: every mutation is recorded once, in one seq order without holes a puller
// could fall into, and each code has exactly one standing redemption.
func TestConcurrentPushes(t *testing.T) {
	eachStore(t, func(t *testing.T, s Store) {
		tn := newTenant(t, s, "m1", "a", "b", "c", "d")
		codes := make([]string, 20)
		for i := range codes {
			codes[i] = fmt.Sprintf("X%02d", i)
		}
		tn.campaignWithCodes(t, coupon("c1"), codes...)
		const batches, size = 6, 20
		work := map[string][][]wire.Mutation{}
		for _, d := range tn.devs {
			for range batches {
				var ms []wire.Mutation
				for i := range size {
					if i < len(codes) && i%2 == 0 {
						ms = append(ms, tn.mutation(d, "code.redeem@1", redemption(codes[(i+len(work[d.ID]))%len(codes)], "c1", d.ID, 0, t0), t0))
					} else {
						ms = append(ms, tn.mutation(d, "member.add@1", map[string]any{"id": core.NewID()}, t0))
					}
				}
				work[d.ID] = append(work[d.ID], ms)
			}
		}
		var wg sync.WaitGroup
		errs := make(chan error, 100)
		for _, d := range tn.devs {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i, ms := range work[d.ID] {
					for range 1 + i%2 {
						resp, err := s.Push(d, wire.PushRequest{Epoch: tn.epoch, Mutations: ms}, t0)
						if err != nil {
							errs <- err
							return
						}
						if resp.LastMID != ms[len(ms)-1].MID {
							errs <- fmt.Errorf("%s: last mid %d", d.ID, resp.LastMID)
						}
					}
				}
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatal(err)
		}
		// A fresh device pulls everything, in pages, in seq order.
		join, _ := s.CreateToken("m1", "join", time.Hour, t0)
		reg, err := s.Register(wire.RegisterRequest{Token: join, DeviceID: "m1-reader"}, t0)
		if err != nil {
			t.Fatal(err)
		}
		reader, _ := s.Authenticate(reg.DeviceToken, t0)
		log := tn.pullAll(t, reader, wire.StreamLog)
		seen := map[string]bool{}
		var last int64
		device := 0
		for _, c := range log {
			if c.Seq <= last {
				t.Fatalf("seq %d after %d", c.Seq, last)
			}
			last = c.Seq
			if c.DeviceID == wire.ServerDevice {
				continue
			}
			key := fmt.Sprint(c.DeviceID, "/", c.Mutation.MID)
			if seen[key] {
				t.Fatalf("%s recorded twice", key)
			}
			seen[key] = true
			device++
		}
		if want := len(tn.devs)*batches*size + 1; device != want { // + the campaign
			t.Fatalf("%d device entries, want %d", device, want)
		}
		standing := scalar(t, s, `SELECT COUNT(*) FROM redemption WHERE merchant_id = ? AND status = 'standing'`, "m1")
		doubles := len(tn.cases(t, wire.CaseDoubleRedemption))
		redeems := len(tn.devs) * batches * (size / 2)
		if standing != int64(len(codes)) || doubles != redeems-len(codes) {
			t.Fatalf("%d standing, %d double cases; want %d and %d", standing, doubles, len(codes), redeems-len(codes))
		}
		for _, k := range codes {
			if r := check(t, s, reader, k, 0); r.Uses != 1 {
				t.Fatalf("code %s has %d uses", k, r.Uses)
			}
		}
	})
}

// TestOpenMigrates: opening again keeps the data and the schema version; a database
// from a newer build is refused rather than written.
func TestOpenMigrates(t *testing.T) {
	dsns := map[string]func(t *testing.T) string{
		"sqlite":   func(t *testing.T) string { return "file:" + t.TempDir() + "/server.db" },
		"postgres": func(t *testing.T) string { return newPostgresDatabase(t) },
	}
	for _, kind := range []string{"sqlite", "postgres"} {
		t.Run(kind, func(t *testing.T) {
			dsn := dsns[kind](t)
			s, err := Open(dsn)
			if err != nil {
				t.Fatal(err)
			}
			if s.Kind() != kind {
				t.Fatalf("kind %s", s.Kind())
			}
			tn := newTenant(t, s, "m1", "a")
			s.Close()
			s, err = Open(dsn)
			if err != nil {
				t.Fatal(err)
			}
			tn.s = s
			if r := check(t, s, tn.dev(0), "none", 0); r.Reason != "not_found" {
				t.Fatalf("check after reopen: %+v", r)
			}
			if v := scalar(t, s, `SELECT MAX(version) FROM schema_version`); v != 1 {
				t.Fatalf("schema version %d", v)
			}
			if _, err := sqlOf(s).w.Exec(sqlOf(s).bind(`INSERT INTO schema_version(version, applied_ms) VALUES (?, 0)`), 99); err != nil {
				t.Fatal(err)
			}
			s.Close()
			if s, err := Open(dsn); err == nil {
				s.Close()
				t.Fatal("a newer schema was opened")
			}
		})
	}
	if _, err := Open(""); errCode(err) != wire.ErrBadRequest {
		t.Fatalf("empty path: %v", err)
	}
}

func TestRetryableErrors(t *testing.T) {
	for code, want := range map[string]bool{"40001": true, "40P01": true, "23505": false} {
		err := fmt.Errorf("push: %w", &pgconn.PgError{Code: code})
		if retryable(err) != want {
			t.Errorf("%s: retryable %v", code, !want)
		}
		if isUnique(err) != (code == "23505") {
			t.Errorf("%s: unique %v", code, !want)
		}
	}
	if retryable(errors.New("database is locked")) {
		t.Error("SQLite errors are not retried")
	}
}

// A claim nothing ever matches (the till lost the answer and then refused, or
// crashed before committing) holds the code only for ClaimTTL; the till's own
// redemption, should it arrive later, is then an ordinary one.
func TestUnmatchedClaimIsReleased(t *testing.T) {
	eachStore(t, func(t *testing.T, s Store) {
		tn := newTenant(t, s, "m1", "a", "b")
		a, b := tn.dev(0), tn.dev(1)
		tn.campaignWithCodes(t, coupon("c1"), "LOST-1", "SWEPT-1")
		tn.campaignWithCodes(t, giftCard("g1", 10000), "CARD-1")
		if r, err := s.Redeem(a, wire.RedeemRequest{Code: "LOST-1", IdemKey: "k-a"}, t0); err != nil || !r.OK {
			t.Fatalf("claim: %+v %v", r, err)
		}
		if r, err := s.Redeem(a, wire.RedeemRequest{Code: "CARD-1", IdemKey: "k-card", Amount: 3000}, t0); err != nil || !r.OK || r.Balance != 7000 {
			t.Fatalf("gift-card claim: %+v %v", r, err)
		}
		early := t0.Add(ClaimTTL - time.Second)
		if r, _ := s.Redeem(b, wire.RedeemRequest{Code: "LOST-1", IdemKey: "k-b"}, early); r.OK || r.Reason != "already_redeemed" {
			t.Fatalf("before the claim expired: %+v", r)
		}
		late := t0.Add(ClaimTTL + time.Second)
		if r, err := s.Redeem(b, wire.RedeemRequest{Code: "LOST-1", IdemKey: "k-b"}, late); err != nil || !r.OK || r.Uses != 1 {
			t.Fatalf("after the claim expired: %+v %v", r, err)
		}
		if r, err := s.Redeem(b, wire.RedeemRequest{Code: "CARD-1", IdemKey: "k-card-b", Amount: 10000}, late); err != nil || !r.OK || r.Balance != 0 {
			t.Fatalf("gift card after its claim expired: %+v %v", r, err)
		}
		if got := scalar(t, s, `SELECT sum(amount) FROM entry WHERE merchant_id = ? AND account_id = ?`, "m1", "CARD-1"); got != -10000 {
			t.Fatalf("gift-card entries sum to %d after release and a new claim, want -10000", got)
		}
		// Device a's own redemption under the released key arrives now: it does not
		// match the released claim, and b's claim holds the code, so it is a double.
		red := redemption("LOST-1", "c1", "alice", 0, t0)
		r := red["redemption"].(core.Redemption)
		r.IdemKey = "k-a"
		red["redemption"] = r
		if res := tn.do(t, a, late, "code.redeem@1", red); res.Status != wire.Flagged || res.Reason != "already_redeemed" {
			t.Fatalf("the released claim's redemption: %+v", res)
		}
		if k := check(t, s, a, "LOST-1", 0); k.Uses != 1 {
			t.Fatalf("uses %d, want 1", k.Uses)
		}
		// A push sweeps a merchant's expired claims even when nobody asks for the code.
		if r, err := s.Redeem(a, wire.RedeemRequest{Code: "SWEPT-1", IdemKey: "k-s"}, late); err != nil || !r.OK {
			t.Fatalf("claim: %+v %v", r, err)
		}
		tn.do(t, b, late.Add(ClaimTTL+time.Minute), "member.tier@1", map[string]any{"id": "x"})
		if k := check(t, s, a, "SWEPT-1", 0); !k.OK || k.Uses != 0 {
			t.Fatalf("after a push past the claim's expiry: %+v", k)
		}
	})
}

// TestOnlineRedeemSameKeyRace has 32 callers redeem one code at once, with the same
// idempotency key (a till retrying a lost answer while the first try still runs) and
// with different keys: exactly one use is taken, one claim recorded, and every
// answer under one key is the same answer.
func TestOnlineRedeemSameKeyRace(t *testing.T) {
	eachStore(t, func(t *testing.T, s Store) {
		tn := newTenant(t, s, "m1", "a", "b")
		multi := coupon("c5")
		multi.Rules.UsesPerCode = 5 // a use left after the first: only the key guards it
		tn.campaignWithCodes(t, coupon("c1"), "ONE-1", "ONE-2", "ONE-3")
		tn.campaignWithCodes(t, multi, "MULTI-1")
		tn.campaignWithCodes(t, giftCard("g1", 10000), "CARD-1")

		const n = 32
		// race redeems code from n goroutines released together; keyOf names each
		// one's key. It returns the answers in goroutine order.
		race := func(code string, amount int64, keyOf func(i int) string) []*wire.RedeemResponse {
			out := make([]*wire.RedeemResponse, n)
			errs := make([]error, n)
			start := make(chan struct{})
			var wg sync.WaitGroup
			for i := range n {
				wg.Add(1)
				go func() {
					defer wg.Done()
					<-start
					out[i], errs[i] = s.Redeem(tn.dev(i%2), wire.RedeemRequest{Code: code, IdemKey: keyOf(i), Amount: amount}, t0)
				}()
			}
			close(start)
			wg.Wait()
			if err := errors.Join(errs...); err != nil {
				t.Fatalf("%s: %v", code, err)
			}
			return out
		}
		// sameAnswers checks that the answers of one key are all identical.
		sameAnswers := func(code string, answers []*wire.RedeemResponse, keyOf func(i int) string) {
			t.Helper()
			first := map[string]*wire.RedeemResponse{}
			for i, r := range answers {
				k := keyOf(i)
				if f, ok := first[k]; !ok {
					first[k] = r
				} else if *r != *f {
					t.Fatalf("%s, key %s: answers differ: %+v and %+v", code, k, f, r)
				}
			}
		}
		stored := func(code string) (uses, claims int64) {
			t.Helper()
			uses = scalar(t, s, `SELECT uses FROM code WHERE merchant_id = ? AND code = ?`, "m1", code)
			claims = scalar(t, s, `SELECT COUNT(*) FROM redemption WHERE merchant_id = ? AND code = ?`, "m1", code)
			return uses, claims
		}
		same := func(int) string { return "same-key" }

		for _, code := range []string{"ONE-1", "MULTI-1"} {
			answers := race(code, 0, same)
			sameAnswers(code, answers, same)
			if r := answers[0]; !r.OK || r.Uses != 1 || r.ClaimID == "" {
				t.Fatalf("%s, one key from %d callers: %+v, want ok with 1 use", code, n, r)
			}
			if uses, claims := stored(code); uses != 1 || claims != 1 {
				t.Fatalf("%s, one key from %d callers: %d uses and %d claims stored, want 1 and 1", code, n, uses, claims)
			}
		}

		answers := race("CARD-1", 3000, same)
		sameAnswers("CARD-1", answers, same)
		if r := answers[0]; !r.OK || r.Balance != 7000 {
			t.Fatalf("gift card, one key from %d callers: %+v, want ok with ¥70 left", n, r)
		}
		if k := check(t, s, tn.dev(0), "CARD-1", 0); k.Balance != 7000 || k.Uses != 1 {
			t.Fatalf("gift card after one key from %d callers: %+v, want ¥70 left and 1 use", n, k)
		}
		if got := scalar(t, s, `SELECT COUNT(*) FROM entry WHERE merchant_id = ? AND account_id = ?`, "m1", "CARD-1"); got != 1 {
			t.Fatalf("gift card: %d entries, want 1", got)
		}

		distinct := func(i int) string { return fmt.Sprint("key-", i) }
		answers = race("ONE-2", 0, distinct)
		oks := 0
		for _, r := range answers {
			switch {
			case r.OK:
				oks++
			case r.Reason != "already_redeemed" || r.Uses != 1:
				t.Fatalf("ONE-2, a loser's answer: %+v", r)
			}
		}
		if uses, claims := stored("ONE-2"); oks != 1 || uses != 1 || claims != 1 {
			t.Fatalf("ONE-2, %d keys: %d ok, %d uses, %d claims; want 1 of each", n, oks, uses, claims)
		}

		// Half the callers share a key, the others have one each.
		mixed := func(i int) string {
			if i%2 == 0 {
				return "shared"
			}
			return distinct(i)
		}
		answers = race("ONE-3", 0, mixed)
		sameAnswers("ONE-3", answers, mixed)
		winners := map[string]bool{}
		for i, r := range answers {
			if r.OK {
				winners[mixed(i)] = true
			}
		}
		if uses, claims := stored("ONE-3"); len(winners) != 1 || uses != 1 || claims != 1 {
			t.Fatalf("ONE-3, mixed keys: winning keys %v, %d uses, %d claims; want one of each", winners, uses, claims)
		}
	})
}

// TestPushBatchOutcomes pushes every outcome of a redemption in one batch, so the
// log rows written together at the end of the push are checked in their seq order:
// each mutation, then the server entries it caused, then the next mutation. Both
// stores must write the same log (same seqs, names, statuses, reasons).
func TestPushBatchOutcomes(t *testing.T) {
	logs := map[string][]string{}
	eachStore(t, func(t *testing.T, s Store) {
		tn := newTenant(t, s, "m1", "a", "b")
		a, b := tn.dev(0), tn.dev(1)
		tn.campaignWithCodes(t, coupon("c1"), "K1", "K2", "K3", "K4")
		tn.campaignWithCodes(t, giftCard("g1", 10000), "G1")
		if r := tn.do(t, b, t0, "code.redeem@1", redemption("K1", "c1", "bob", 0, t0)); r.Status != wire.Applied {
			t.Fatalf("b's redemption: %+v", r)
		}
		k2 := redemption("K2", "c1", "alice", 0, t0)
		old := t0.Add(-48 * time.Hour)
		ms := []wire.Mutation{
			tn.mutation(a, "code.redeem@1", k2, t0),
			tn.mutation(a, "code.redeem@1", redemption("K1", "c1", "alice", 0, t0), t0), // double
			tn.mutation(a, "code.redeem@1", k2, t0),                                     // replayed redemption id
			tn.mutation(a, "codes.void@1", map[string]any{"code": "K3", "reason": "lost"}, t0),
			tn.mutation(a, "code.redeem@1", redemption("K3", "c1", "alice", 0, t0), t0), // voided
			tn.mutation(a, "code.redeem@1", redemption("X9", "c1", "alice", 0, t0), t0), // not uploaded
			tn.mutation(a, "code.redeem@1", redemption("K4", "c1", "alice", 0, old), old),
			tn.mutation(a, "member.add@1", map[string]any{"id": "mem1"}, t0),
			tn.mutation(a, "code.redeem@1", redemption("G1", "g1", "alice", 12000, t0), t0), // overdraft
			tn.mutation(a, "code.redeem@1", map[string]any{"redemption": nil}, t0),
		}
		want := []string{"applied", "flagged already_redeemed", "applied", "applied", "rejected voided", "applied",
			"flagged late_offline", "applied", "flagged overdraft", "rejected bad_args"}
		res := tn.push(t, a, t0, ms...)
		for i, r := range res {
			if got := strings.TrimSpace(r.Status + " " + r.Reason); got != want[i] {
				t.Fatalf("mid %d: %s, want %s (%+v)", r.MID, got, want[i], r)
			}
		}
		if res[2].Message != "the redemption is already recorded" {
			t.Fatalf("replay: %+v", res[2])
		}

		// The log as b sees it (a's entries and the server's), from b's own push on.
		var got []string
		var last int64
		for _, c := range tn.pullAll(t, b, wire.StreamLog) {
			if c.Seq <= last {
				t.Fatalf("seq %d after %d", c.Seq, last)
			}
			last = c.Seq
			if c.Mutation.Name == "campaign.create@1" {
				continue
			}
			e := fmt.Sprintf("%s %d %s %s %s", c.DeviceID, c.Mutation.MID, c.Mutation.Name, c.Status, c.Reason)
			got = append(got, strings.TrimSpace(e))
			logs[s.Kind()] = append(logs[s.Kind()], fmt.Sprintf("%d %s", c.Seq, strings.TrimSpace(e)))
		}
		sv := "server 0 "
		caused := map[int][]string{ // server entries after the mutation at each index
			1: {sv + "case.open@1 applied", sv + "redemption.reverse@1 applied"},
			4: {sv + "redemption.reverse@1 applied"},
			6: {sv + "case.open@1 applied"},
			8: {sv + "case.open@1 applied", sv + "account.freeze@1 applied"},
		}
		var wantLog []string
		for i, m := range ms {
			wantLog = append(wantLog, strings.TrimSpace(fmt.Sprintf("m1-a %d %s %s", m.MID, m.Name, want[i])))
			wantLog = append(wantLog, caused[i]...)
		}
		if strings.Join(got, "\n") != strings.Join(wantLog, "\n") {
			t.Fatalf("log:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(wantLog, "\n"))
		}
		// The merchant's counters count what was written.
		if n, c := scalar(t, s, `SELECT log_count FROM merchant WHERE id = ?`, "m1"), scalar(t, s, `SELECT COUNT(*) FROM log WHERE merchant_id = ?`, "m1"); n != c {
			t.Fatalf("log_count %d, log rows %d", n, c)
		}
		if n := scalar(t, s, `SELECT seq FROM merchant WHERE id = ?`, "m1"); n < last {
			t.Fatalf("merchant seq %d behind the log's %d", n, last)
		}
		// The outcomes on the code rows.
		for code, uses := range map[string]int64{"K1": 1, "K2": 1, "K3": 0, "X9": 1, "K4": 1} {
			if n := scalar(t, s, `SELECT uses FROM code WHERE merchant_id = ? AND code = ?`, "m1", code); n != uses {
				t.Fatalf("%s has %d uses, want %d", code, n, uses)
			}
		}
		if n := scalar(t, s, `SELECT COUNT(*) FROM redemption WHERE merchant_id = ? AND status = 'standing'`, "m1"); n != 5 {
			t.Fatalf("%d standing redemptions, want 5 (K1 b, K2, X9, K4, G1)", n)
		}

		// A push of nothing but a replayed redemption takes one seq: its log row.
		before := scalar(t, s, `SELECT seq FROM merchant WHERE id = ?`, "m1")
		if r := tn.do(t, a, t0, "code.redeem@1", k2); r.Status != wire.Applied {
			t.Fatalf("replay alone: %+v", r)
		}
		if after := scalar(t, s, `SELECT seq FROM merchant WHERE id = ?`, "m1"); after != before+1 {
			t.Fatalf("a replay moved the counter from %d to %d", before, after)
		}

		// A push longer than one multi-row statement: every row arrives whole, in order.
		var many []wire.Mutation
		for i := range 250 {
			many = append(many, tn.mutation(a, "member.add@1", map[string]any{"id": fmt.Sprint("m", i)}, t0))
		}
		tn.push(t, a, t0, many...)
		all := tn.pullAll(t, b, wire.StreamLog)
		tail := all[len(all)-len(many):]
		for i, c := range tail {
			m := many[i]
			if c.DeviceID != a.ID || c.Mutation.MID != m.MID || c.Mutation.UUID != m.UUID || string(c.Mutation.Args) != string(m.Args) ||
				c.Mutation.HLC != m.HLC || c.Mutation.WallMS != m.WallMS || c.Status != wire.Applied || (i > 0 && c.Seq != tail[i-1].Seq+1) {
				t.Fatalf("row %d: %+v %+v, want %+v", i, c, c.Mutation, m)
			}
		}
	})
	if sq, pg := logs["sqlite"], logs["postgres"]; sq != nil && pg != nil && strings.Join(sq, "\n") != strings.Join(pg, "\n") {
		t.Fatalf("the stores wrote different logs:\nsqlite:\n%s\npostgres:\n%s", strings.Join(sq, "\n"), strings.Join(pg, "\n"))
	}
}
