package app

import (
	"bytes"
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kameng/kameng/core/wire"
	"github.com/kameng/kameng/server"
)

// TestServerCommandsOnAKnownMerchant: tokens that join an existing merchant work at
// registration, and an epoch bump is what devices see next.
func TestServerCommandsOnAKnownMerchant(t *testing.T) {
	db := filepath.Join(t.TempDir(), "srv", "server.db")
	run := func(args ...string) (int, string, string) {
		var out, errw bytes.Buffer
		code := Run(append(args, "--db", db), strings.NewReader(""), &out, &errw, Frontends{})
		return code, out.String(), errw.String()
	}

	// The first till founds merchant m-1 with a token from the command line.
	code, out, errs := run("server", "token", "create", "--label", "first")
	if code != 0 {
		t.Fatalf("token create: %d %s", code, errs)
	}
	founding := strings.TrimSpace(out)
	s, err := server.Open(db)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	first, err := s.Register(wire.RegisterRequest{Token: founding, DeviceID: "d-1", DeviceName: "till 1", MerchantID: "m-1", MerchantName: "店"}, now)
	if err != nil {
		t.Fatalf("register with the printed token: %v", err)
	}
	s.Close()

	// A token for m-1 lets a second till join it.
	code, out, errs = run("--json", "server", "token", "create", "--merchant", "m-1", "--ttl", "1h")
	if code != 0 {
		t.Fatalf("token create --merchant: %d %s %s", code, out, errs)
	}
	var tok struct {
		Token      string `json:"token"`
		MerchantID string `json:"merchant_id"`
		ExpiresMS  int64  `json:"expires_ms"`
	}
	if err := json.Unmarshal([]byte(out), &tok); err != nil || tok.MerchantID != "m-1" || !strings.HasPrefix(tok.Token, "km_") {
		t.Fatalf("token JSON %s: %v", out, err)
	}
	if d := time.UnixMilli(tok.ExpiresMS).Sub(now); d < 59*time.Minute || d > 61*time.Minute {
		t.Fatalf("the token expires in %v, want 1h", d)
	}

	// Without --yes and without a terminal nothing changes.
	if code, _, errs := run("server", "epoch", "bump", "--merchant", "m-1"); code != ExitInvalid || !strings.Contains(errs, "--yes") {
		t.Fatalf("bump without --yes: %d %s", code, errs)
	}
	code, out, errs = run("--json", "server", "epoch", "bump", "--merchant", "m-1", "--yes")
	if code != 0 {
		t.Fatalf("epoch bump: %d %s", code, errs)
	}
	var bumped struct {
		Epoch int64 `json:"epoch"`
	}
	if err := json.Unmarshal([]byte(out), &bumped); err != nil || bumped.Epoch != first.Epoch+1 {
		t.Fatalf("bump answered %s (epoch before %d)", out, first.Epoch)
	}

	s, err = server.Open(db)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	second, err := s.Register(wire.RegisterRequest{Token: tok.Token, DeviceID: "d-2", DeviceName: "till 2"}, time.Now())
	if err != nil || second.MerchantID != "m-1" || second.Epoch != bumped.Epoch {
		t.Fatalf("joining with the second token: %+v %v", second, err)
	}
	// A till still at the old epoch is told to start over.
	d, err := s.Authenticate(first.DeviceToken, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	pull, err := s.Pull(d, wire.PullRequest{Epoch: first.Epoch, Cursors: []wire.Cursor{{Stream: wire.StreamLog, Seq: 1}}}, time.Now())
	if err != nil || !pull.Reset {
		t.Fatalf("pull at the old epoch: %+v %v", pull, err)
	}
}
