package syncclient_test

import (
	"context"
	"encoding/json"
	"errors"
	"testing"

	"github.com/kameng/kameng/core"
	"github.com/kameng/kameng/core/store"
	"github.com/kameng/kameng/core/wire"
	"github.com/kameng/kameng/syncclient"
)

// Two devices of one merchant converge through the server: what one does the
// other sees, and a single-use code redeemed on both while apart stands once,
// with a case on both and the loser's redemption undone.
func TestTwoDevicesConverge(t *testing.T) {
	forStores(t, func(t *testing.T, h *hub) {
		a := h.found("pos-a", false)
		camp := a.campaign("满50减5", false)
		codes := a.codes(camp.ID, 30)
		a.redeem(codes[0])
		rep := a.sync()
		if rep.Pushed < 4 || rep.Rejected != 0 || rep.Flagged != 0 {
			t.Fatalf("first push: %+v", rep)
		}
		if rep.Uploaded != 30 {
			t.Errorf("uploaded %d codes, want 30", rep.Uploaded)
		}
		if st := a.state(); st.Pending != 0 || st.LastSyncMS == 0 || st.LastError != "" {
			t.Errorf("after sync: %+v", st)
		}

		b := h.join("pos-b", a.merchantID())
		if n := b.countCodes(store.CodeFilter{Campaign: camp.ID}); n != 30 {
			t.Fatalf("joined device has %d codes, want 30", n)
		}
		if c, err := b.db.Campaign(camp.ID); err != nil || c.Name != camp.Name || c.Redeemed != 1 {
			t.Fatalf("joined device's campaign: %+v, %v", c, err)
		}
		v, err := b.db.Check(b.actor, codes[0], core.Order{Amount: 10000})
		if err != nil || v.OK || v.Reason != core.ReasonAlreadyRedeemed {
			t.Fatalf("code redeemed on A checks on B as %+v, %v", v, err)
		}

		// B's redemption reaches A.
		b.redeem(codes[1])
		b.sync()
		a.sync()
		rs, err := a.db.Redemptions(store.RedemptionFilter{Code: codes[1]})
		if err != nil || len(rs) != 1 || rs[0].DeviceID != b.actor.Device.ID {
			t.Fatalf("A sees B's redemption as %+v, %v", rs, err)
		}

		// Both redeem codes[2] while apart: A reaches the server first and stands.
		a.redeem(codes[2])
		b.redeem(codes[2])
		a.sync()
		rep = b.sync()
		if rep.Flagged != 1 {
			t.Fatalf("B's double redemption: %+v", rep)
		}
		a.sync()
		b.sync()
		for _, d := range []*dev{a, b} {
			cs, err := d.db.Cases("open")
			if err != nil {
				t.Fatal(err)
			}
			found := false
			for _, c := range cs {
				found = found || (c.Kind == wire.CaseDoubleRedemption && c.Subject == codes[2])
			}
			if !found {
				t.Errorf("%s has no DOUBLE_REDEMPTION case for %s: %+v", d.name(), codes[2], cs)
			}
			standing := 0
			rs, err := d.db.Redemptions(store.RedemptionFilter{Code: codes[2]})
			if err != nil {
				t.Fatal(err)
			}
			for _, r := range rs {
				if r.Status == core.RedemptionDone {
					standing++
					if r.DeviceID != a.actor.Device.ID {
						t.Errorf("%s: the standing redemption is %s's, want A's", d.name(), r.DeviceID)
					}
				}
			}
			if standing != 1 {
				t.Errorf("%s: %d standing redemptions of %s, want 1 (%+v)", d.name(), standing, codes[2], rs)
			}
			if c, err := d.db.Campaign(camp.ID); err != nil || c.Redeemed != 3 {
				t.Errorf("%s: campaign redeemed %d, want 3 (%v)", d.name(), c.Redeemed, err)
			}
			if n, brk, err := d.db.VerifyAudit(); err != nil || brk != nil {
				t.Errorf("%s: audit chain after sync: %d entries, break %+v, %v", d.name(), n, brk, err)
			}
		}
	})
}

// The outbox goes up in requests of at most 500 mutations, every one of them
// acknowledged.
func TestPushBatchesOf500(t *testing.T) {
	forStores(t, func(t *testing.T, h *hub) {
		a := h.found("pos-a", true)
		camp := a.campaign("作废测试", false)
		codes := a.codes(camp.ID, 1001)
		for _, c := range codes {
			if err := a.db.Void(a.actor, c, "test"); err != nil {
				t.Fatal(err)
			}
		}
		total := a.state().Pending
		if total != 1004 {
			t.Fatalf("pending %d, want 1004 (init, campaign, batch, 1001 voids)", total)
		}
		h.mu.Lock()
		h.keep = true
		h.mu.Unlock()
		var stages []int64
		a.s.Progress = func(stage string, done, total int64) {
			if stage == "push" {
				stages = append(stages, done)
			}
		}
		rep := a.sync()
		if rep.Pushed != total || rep.Applied != total {
			t.Fatalf("pushed %d applied %d, want %d: %+v", rep.Pushed, rep.Applied, total, rep)
		}
		if n := h.count("/v1/sync/push"); n != 3 {
			t.Errorf("%d push requests, want 3", n)
		}
		for i, body := range h.bodies["/v1/sync/push"] {
			var req wire.PushRequest
			if err := json.Unmarshal(body, &req); err != nil {
				t.Fatal(err)
			}
			if len(req.Mutations) > wire.MaxPushMutations {
				t.Errorf("push %d carried %d mutations", i, len(req.Mutations))
			}
			for j := 1; j < len(req.Mutations); j++ {
				if req.Mutations[j].MID != req.Mutations[j-1].MID+1 {
					t.Fatalf("push %d is not in mid order at %d", i, j)
				}
			}
		}
		if len(stages) == 0 || stages[len(stages)-1] != total {
			t.Errorf("push progress %v, want it to end at %d", stages, total)
		}
		if st := a.state(); st.Pending != 0 || st.AckedMID != total {
			t.Errorf("after sync: pending %d acked %d", st.Pending, st.AckedMID)
		}
		// Nothing left: a second round pushes nothing.
		h.reset()
		if rep := a.sync(); rep.Pushed != 0 || h.count("/v1/sync/push") != 0 {
			t.Errorf("second round pushed %d in %d requests", rep.Pushed, h.count("/v1/sync/push"))
		}
	})
}

// When the server expects another mid than the device sends, the device carries
// on from the one the server names and nothing is lost.
func TestMIDGapRecovery(t *testing.T) {
	forStores(t, func(t *testing.T, h *hub) {
		a := h.found("pos-a", false)
		camp := a.campaign("缺口", false)
		codes := a.codes(camp.ID, 5)
		for _, c := range codes[:3] {
			if err := a.db.Void(a.actor, c, "test"); err != nil {
				t.Fatal(err)
			}
		}
		// The server gets mids 1–2 (init, the campaign) only …
		first, err := a.db.PendingMutations(2, wire.MaxPushBytes)
		if err != nil || len(first) != 2 {
			t.Fatalf("pending: %d, %v", len(first), err)
		}
		st := a.state()
		if _, err := a.s.Client.Push(context.Background(), wire.PushRequest{Epoch: st.Epoch, Mutations: first}); err != nil {
			t.Fatal(err)
		}
		// … while the device believes 5 went up (the server lost what it had
		// acknowledged, or the device's acknowledgement ran ahead).
		tok, err := a.db.DeviceToken()
		if err != nil {
			t.Fatal(err)
		}
		if err := a.db.SetRegistration(st.Server, tok, st.MerchantID, st.Epoch, 5); err != nil {
			t.Fatal(err)
		}
		rep := a.sync()
		if rep.MIDGaps != 1 {
			t.Errorf("mid gaps %d, want 1", rep.MIDGaps)
		}
		if st := a.state(); st.Pending != 0 || st.AckedMID != 6 {
			t.Fatalf("after repair: pending %d acked %d, want 0 and 6", st.Pending, st.AckedMID)
		}
		b := h.join("pos-b", a.merchantID())
		if n := b.countCodes(store.CodeFilter{Campaign: camp.ID, Status: "voided"}); n != 3 {
			t.Errorf("B sees %d voided codes, want 3", n)
		}
	})
}

// A server restored from a backup bumps its epoch: the device pulls from the
// start and pushes again, keeping its outbox.
func TestEpochReset(t *testing.T) {
	forStores(t, func(t *testing.T, h *hub) {
		a := h.found("pos-a", false)
		camp := a.campaign("纪元", false)
		codes := a.codes(camp.ID, 10)
		a.sync()
		b := h.join("pos-b", a.merchantID())
		epoch0 := a.state().Epoch
		epoch, err := h.st.BumpEpoch(a.merchantID())
		if err != nil || epoch == epoch0 {
			t.Fatalf("bump epoch: %d, %v", epoch, err)
		}
		if err := a.db.Void(a.actor, codes[0], "after restore"); err != nil {
			t.Fatal(err)
		}
		rep := a.sync()
		if rep.Resets < 1 || rep.Pushed != 1 {
			t.Errorf("A's round after the restore: %+v", rep)
		}
		if st := a.state(); st.Epoch != epoch || st.Pending != 0 {
			t.Errorf("A after reset: epoch %d (want %d), pending %d", st.Epoch, epoch, st.Pending)
		}
		rep = b.sync()
		if rep.Resets < 1 {
			t.Errorf("B's round after the restore: %+v", rep)
		}
		if n := b.countCodes(store.CodeFilter{Status: "voided"}); n != 1 {
			t.Errorf("B sees %d voided codes, want 1", n)
		}
	})
}

// A first pull cut short resumes from the cursor committed with the last page:
// only the rest comes down.
func TestInterruptedFirstPullResumes(t *testing.T) {
	forStores(t, func(t *testing.T, h *hub) {
		a := h.found("pos-a", true)
		camp := a.campaign("大批量", false)
		a.codes(camp.ID, 2000)
		a.sync()

		b := h.joinStart("pos-b", a.merchantID())
		b.s.PullLimit = 100
		ctx, cancel := context.WithCancel(context.Background())
		b.s.Progress = func(stage string, done, total int64) {
			if stage == "codes" && done >= 300 {
				cancel()
			}
		}
		h.reset()
		_, err := b.s.Once(ctx)
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("interrupted round: %v", err)
		}
		have := b.countCodes(store.CodeFilter{})
		if have != 300 {
			t.Fatalf("after the interruption %d codes, want 300", have)
		}
		if st := b.state(); st.Cursors[wire.StreamCodes] == 0 || st.LastError == "" {
			t.Errorf("state after the interruption: %+v", st)
		}
		b.s.Progress = nil
		rep := b.sync()
		if rep.PulledCodes != 2000-have {
			t.Errorf("resumed pull fetched %d codes, want %d", rep.PulledCodes, 2000-have)
		}
		if n := b.countCodes(store.CodeFilter{}); n != 2000 {
			t.Errorf("after resuming %d codes, want 2000", n)
		}
		b.finish()
		if n := b.countCodes(store.CodeFilter{Campaign: camp.ID}); n != 2000 {
			t.Errorf("campaign has %d codes on B", n)
		}
	})
}

// A round on a device that is not registered says so and talks to no one.
func TestNotRegistered(t *testing.T) {
	h := newHub(t, openSQLite(t))
	db := openDevDB(t, "lonely", false)
	if _, err := db.Init(store.InitInput{Merchant: "m", Store: "s", Device: "d", Owner: "o", PasswordHash: pwHash(), KDF: "file", KEK: kek()}); err != nil {
		t.Fatal(err)
	}
	s := &syncclient.Syncer{DB: db, Client: h.client("")}
	_, err := s.Once(context.Background())
	if !errors.Is(err, syncclient.ErrNotRegistered) {
		t.Fatalf("round without registration: %v", err)
	}
	if n := h.count("/v1/sync/push") + h.count("/v1/sync/pull"); n != 0 {
		t.Errorf("%d requests without registration", n)
	}
}
