package syncclient_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/kameng/kameng/syncclient"
)

func TestBackoffDelay(t *testing.T) {
	base, limit := time.Second, 30*time.Second
	for n := 1; n <= 12; n++ {
		want := base << (n - 1)
		if want > limit || n > 6 {
			want = limit
		}
		for i := 0; i < 50; i++ {
			d := syncclient.BackoffDelay(n, base, limit)
			if d < want/2 || d > want {
				t.Fatalf("failure %d: waited %v, want within [%v, %v]", n, d, want/2, want)
			}
		}
	}
	// Jitter: devices that failed together do not all come back together.
	seen := map[time.Duration]bool{}
	for i := 0; i < 20; i++ {
		seen[syncclient.BackoffDelay(3, base, limit)] = true
	}
	if len(seen) < 5 {
		t.Errorf("only %d distinct delays in 20", len(seen))
	}
	if d := syncclient.BackoffDelay(50, 0, 0); d > syncclient.DefaultMaxBackoff || d < syncclient.DefaultMaxBackoff/2 {
		t.Errorf("default cap: %v", d)
	}
}

// rounds records a loop's rounds.
type rounds struct {
	mu   sync.Mutex
	errs []error
	ch   chan struct{}
}

func newRounds() *rounds { return &rounds{ch: make(chan struct{}, 100)} }

func (r *rounds) on(_ *syncclient.Report, err error) {
	r.mu.Lock()
	r.errs = append(r.errs, err)
	r.mu.Unlock()
	r.ch <- struct{}{}
}

func (r *rounds) wait(t *testing.T, d time.Duration) bool {
	t.Helper()
	select {
	case <-r.ch:
		return true
	case <-time.After(d):
		return false
	}
}

func (r *rounds) last() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.errs[len(r.errs)-1]
}

func TestLoopRunsOnKickAndBacksOff(t *testing.T) {
	h := newHub(t, openSQLite(t))
	a := h.found("pos-a", false)
	r := newRounds()
	l := syncclient.NewLoop(a.s)
	l.Interval, l.Backoff, l.MaxBackoff, l.OnRound = time.Hour, time.Hour, 2*time.Hour, r.on
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- l.Run(ctx) }()

	// The first round runs at once.
	if !r.wait(t, 5*time.Second) || r.last() != nil {
		t.Fatalf("first round: %v", r.last())
	}
	if st, err := l.Status(); err != nil || !st.Looping || st.BackingOff || st.State.Pending != 0 {
		t.Fatalf("status after a good round: %+v, %v", st, err)
	}
	// A local write and a kick: the round comes long before the hour is up.
	a.campaign("踢一下", false)
	l.Kick()
	if !r.wait(t, 5*time.Second) || r.last() != nil {
		t.Fatalf("kicked round did not run: %v", r.last())
	}
	if st := a.state(); st.Pending != 0 {
		t.Errorf("kicked round left %d pending", st.Pending)
	}

	// The server goes away: the round fails and the loop backs off; a kick does not
	// cut the backoff short.
	h.ts.CloseClientConnections()
	h.ts.Close()
	a.campaign("离线", false)
	l.Kick()
	if !r.wait(t, 10*time.Second) || r.last() == nil {
		t.Fatalf("round against a closed server: %v", r.last())
	}
	st, err := l.Status()
	if err != nil || !st.BackingOff || st.Failures != 1 || st.LastError == "" || time.Until(st.BackoffUntil) < 20*time.Minute {
		t.Fatalf("status after a failure: %+v, %v", st, err)
	}
	if st.State.Pending != 1 || st.State.LastError == "" {
		t.Errorf("stored state after a failure: %+v", st.State)
	}
	l.Kick()
	if r.wait(t, 300*time.Millisecond) {
		t.Error("a kick cut the backoff short")
	}
	cancel()
	select {
	case err := <-done:
		if err != context.Canceled {
			t.Errorf("Run returned %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not stop")
	}
	if st, _ := l.Status(); st.Looping {
		t.Error("status says looping after Run returned")
	}
}
