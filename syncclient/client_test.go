package syncclient_test

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kameng/kameng/core/wire"
	"github.com/kameng/kameng/syncclient"
)

// failFirst answers the first n requests to path itself (503, a dropped
// connection, …) and lets the rest through to the server.
func failFirst(n int64, path string, fail func(w http.ResponseWriter)) func(w http.ResponseWriter, r *http.Request) bool {
	var seen atomic.Int64
	return func(w http.ResponseWriter, r *http.Request) bool {
		if r.URL.Path != path || seen.Add(1) > n {
			return false
		}
		fail(w)
		return true
	}
}

func unavailable(w http.ResponseWriter) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusServiceUnavailable)
	w.Write([]byte(`{"code":"internal","message":"restarting"}`))
}

// hangUp drops the connection without an answer.
func hangUp(w http.ResponseWriter) {
	conn, _, err := http.NewResponseController(w).Hijack()
	if err == nil {
		conn.Close()
	}
}

func TestIdempotentCallsAreRetried(t *testing.T) {
	h := newHub(t, openSQLite(t))
	a := h.found("pos-a", false)
	ctx := context.Background()

	h.reset()
	h.setDisturb(failFirst(2, "/v1/health", unavailable))
	if _, err := a.s.Client.Health(ctx); err != nil {
		t.Fatalf("health after two 503s: %v", err)
	}
	if n := h.count("/v1/health"); n != 3 {
		t.Errorf("health: %d requests, want 3", n)
	}

	h.reset()
	h.setDisturb(failFirst(1, "/v1/sync/pull", hangUp))
	resp, err := a.s.Client.Pull(ctx, wire.PullRequest{Epoch: a.state().Epoch, Cursors: []wire.Cursor{{Stream: wire.StreamLog}}})
	if err != nil || resp.Epoch == 0 {
		t.Fatalf("pull after a dropped connection: %+v, %v", resp, err)
	}
	if n := h.count("/v1/sync/pull"); n != 2 {
		t.Errorf("pull: %d requests, want 2", n)
	}

	// A whole round survives a flaky line: push and pull both retried.
	a.campaign("重试", false)
	h.reset()
	h.setDisturb(failFirst(2, "/v1/sync/push", unavailable))
	rep := a.sync()
	if rep.Pushed != 2 || h.count("/v1/sync/push") != 3 {
		t.Errorf("round through 503s: pushed %d in %d requests", rep.Pushed, h.count("/v1/sync/push"))
	}

	// Retries are bounded: a server that keeps failing gets its answer back to the caller.
	h.reset()
	h.setDisturb(failFirst(100, "/v1/health", unavailable))
	_, err = a.s.Client.Health(ctx)
	ae := syncclient.AsAPIError(err)
	if ae == nil || ae.Status != http.StatusServiceUnavailable || !syncclient.Unreachable(err) {
		t.Fatalf("health against a failing server: %v", err)
	}
	if n := h.count("/v1/health"); n != 5 {
		t.Errorf("health: %d attempts, want 5 (one and four retries)", n)
	}
}

func TestRegisterIsNotRetried(t *testing.T) {
	h := newHub(t, openSQLite(t))
	tok := h.token("")
	req := wire.RegisterRequest{Token: tok, DeviceID: "0190f5a6-0000-7000-8000-000000000001", DeviceName: "pos",
		MerchantID: "0190f5a6-0000-7000-8000-0000000000aa", MerchantName: "m"}
	for _, fail := range []func(http.ResponseWriter){unavailable, hangUp} {
		h.reset()
		h.setDisturb(failFirst(1, "/v1/devices", fail))
		_, err := h.client("").Register(context.Background(), req)
		if err == nil {
			t.Fatal("register through a failure succeeded")
		}
		if n := h.count("/v1/devices"); n != 1 {
			t.Errorf("register: %d requests, want 1", n)
		}
	}
	h.setDisturb(nil)
	if _, err := h.client("").Register(context.Background(), req); err != nil {
		t.Fatalf("register: %v", err)
	}
}

// A refusal is an answer: it is not retried and comes back with its code.
func TestRefusalsAreNotRetried(t *testing.T) {
	h := newHub(t, openSQLite(t))
	a := h.found("pos-a", false)
	h.reset()
	_, err := h.client("not-a-token").Pull(context.Background(), wire.PullRequest{Cursors: []wire.Cursor{{Stream: wire.StreamLog}}})
	if !syncclient.IsCode(err, wire.ErrUnauthorized) || syncclient.Unreachable(err) {
		t.Fatalf("pull with a bad token: %v", err)
	}
	if n := h.count("/v1/sync/pull"); n != 1 {
		t.Errorf("unauthorized pull: %d requests, want 1", n)
	}
	// A gap in mids is refused with the mid the server expects.
	ms, err := a.db.PendingMutations(2, wire.MaxPushBytes)
	if err != nil || len(ms) != 1 {
		t.Fatalf("pending: %v, %v", ms, err)
	}
	ms[0].MID = 7
	_, err = a.s.Client.Push(context.Background(), wire.PushRequest{Epoch: a.state().Epoch, Mutations: ms})
	ae := syncclient.AsAPIError(err)
	if ae == nil || ae.Body.Code != wire.ErrMIDGap || ae.Body.ExpectedMID != 1 || ae.Status != http.StatusConflict {
		t.Fatalf("push with a gap: %v", err)
	}
}

// 429 waits as long as the server asks; a longer wait than the client allows is
// handed back instead of blocking.
func TestRetryAfterHonoured(t *testing.T) {
	h := newHub(t, openSQLite(t))
	a := h.found("pos-a", false)
	limited := func(retryAfter string) func(w http.ResponseWriter) {
		return func(w http.ResponseWriter) {
			w.Header().Set("Content-Type", "application/json")
			w.Header().Set("Retry-After", retryAfter)
			w.WriteHeader(http.StatusTooManyRequests)
			w.Write([]byte(`{"code":"rate_limited","message":"slow down"}`))
		}
	}
	h.reset()
	h.setDisturb(failFirst(1, "/v1/health", limited("1")))
	start := time.Now()
	if _, err := a.s.Client.Health(context.Background()); err != nil {
		t.Fatalf("health after 429: %v", err)
	}
	if d := time.Since(start); d < time.Second {
		t.Errorf("retried after %v, the server asked for 1s", d)
	}
	h.reset()
	h.setDisturb(failFirst(1, "/v1/health", limited("60")))
	_, err := a.s.Client.Health(context.Background())
	ae := syncclient.AsAPIError(err)
	if ae == nil || ae.Body.Code != wire.ErrRateLimited || ae.Body.RetryAfter != 60000 {
		t.Fatalf("health asked to wait a minute: %v", err)
	}
	if n := h.count("/v1/health"); n != 1 {
		t.Errorf("%d requests, want 1", n)
	}
}

// Every call has a deadline: a server that does not answer is given up on.
func TestTimeout(t *testing.T) {
	h := newHub(t, openSQLite(t))
	release := make(chan struct{})
	t.Cleanup(func() { close(release) })
	h.setDisturb(func(w http.ResponseWriter, r *http.Request) bool {
		if r.URL.Path == "/v1/health" {
			select {
			case <-release:
			case <-r.Context().Done():
			}
			return true
		}
		return false
	})
	c := syncclient.New(h.ts.URL, "", syncclient.Options{Timeout: 100 * time.Millisecond, Retries: 1, RetryWait: 5 * time.Millisecond})
	start := time.Now()
	_, err := c.Health(context.Background())
	if err == nil || !syncclient.Unreachable(err) || syncclient.AsAPIError(err) != nil {
		t.Fatalf("health against a silent server: %v", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("gave up after %v", d)
	}
	if n := h.count("/v1/health"); n != 2 {
		t.Errorf("%d attempts, want 2", n)
	}
	// The caller's deadline bounds the retries too.
	c = syncclient.New(h.ts.URL, "", syncclient.Options{Timeout: time.Minute})
	ctx, cancel := context.WithTimeout(context.Background(), 150*time.Millisecond)
	defer cancel()
	start = time.Now()
	_, err = c.Health(ctx)
	if !errors.Is(err, context.DeadlineExceeded) && !strings.Contains(err.Error(), "deadline") {
		t.Errorf("health past the caller's deadline: %v", err)
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("gave up after %v", d)
	}
}
