package syncclient

import (
	"context"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/kameng/kameng/core/store"
)

// Loop defaults.
const (
	DefaultInterval   = 30 * time.Second
	DefaultBackoff    = 5 * time.Second // first wait after a failed round
	DefaultMaxBackoff = 5 * time.Minute
)

// Loop runs sync rounds in the background: on a timer, at once when Kick is called
// (after a local write), and after a failure only when its backoff has passed, so
// a server that is down is not hammered by every sale at the till.
type Loop struct {
	Syncer     *Syncer
	Interval   time.Duration // between successful rounds (default 30 s)
	Backoff    time.Duration // first wait after a failure; doubles with jitter (default 5 s)
	MaxBackoff time.Duration // cap of the wait after failures (default 5 min)
	// OnRound, when set, hears every round's outcome (the foreground loop logs it).
	OnRound func(rep *Report, err error)

	kick chan struct{}
	once sync.Once

	mu           sync.Mutex
	running      bool
	started      bool
	failures     int
	backoffUntil time.Time
	nextRun      time.Time
	last         *Report
	lastErr      error
}

// NewLoop makes a loop over a Syncer with the default timings.
func NewLoop(s *Syncer) *Loop { return &Loop{Syncer: s} }

func (l *Loop) init() {
	l.once.Do(func() { l.kick = make(chan struct{}, 1) })
}

// Kick asks for a round now (a local write is waiting in the outbox). It never
// blocks; while the loop backs off after a failure the request waits for the
// backoff to pass.
func (l *Loop) Kick() {
	l.init()
	select {
	case l.kick <- struct{}{}:
	default:
	}
}

// Run runs rounds until ctx is cancelled; it returns ctx's error.
func (l *Loop) Run(ctx context.Context) error {
	l.init()
	interval := l.Interval
	if interval <= 0 {
		interval = DefaultInterval
	}
	l.mu.Lock()
	l.started = true
	l.mu.Unlock()
	defer func() {
		l.mu.Lock()
		l.started = false
		l.mu.Unlock()
	}()
	for {
		select { // the round about to run covers any kick made before it
		case <-l.kick:
		default:
		}
		l.setRunning(true)
		rep, err := l.Syncer.Once(ctx)
		if ctx.Err() != nil {
			l.setRunning(false)
			return ctx.Err()
		}
		wait := l.record(rep, err, interval)
		if l.OnRound != nil {
			l.OnRound(rep, err)
		}
		timer := time.NewTimer(wait)
		kick := l.kick
		if err != nil {
			kick = nil // a kick does not cut a backoff short
		}
		select {
		case <-ctx.Done():
			timer.Stop()
			return ctx.Err()
		case <-timer.C:
		case <-kick:
			timer.Stop()
		}
	}
}

func (l *Loop) setRunning(b bool) {
	l.mu.Lock()
	l.running = b
	l.mu.Unlock()
}

// record keeps a round's outcome and returns how long to wait before the next.
func (l *Loop) record(rep *Report, err error, interval time.Duration) time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.running = false
	l.last, l.lastErr = rep, err
	now := time.Now()
	if err == nil {
		l.failures = 0
		l.backoffUntil = time.Time{}
		l.nextRun = now.Add(interval)
		return interval
	}
	l.failures++
	wait := BackoffDelay(l.failures, l.Backoff, l.MaxBackoff)
	l.backoffUntil = now.Add(wait)
	l.nextRun = l.backoffUntil
	return wait
}

// BackoffDelay is the wait after n consecutive failures: base·2^(n−1), capped,
// with "equal jitter" (half fixed, half random) so devices that failed together
// do not come back together.
func BackoffDelay(n int, base, limit time.Duration) time.Duration {
	if base <= 0 {
		base = DefaultBackoff
	}
	if limit <= 0 {
		limit = DefaultMaxBackoff
	}
	d := base
	for i := 1; i < n && d < limit; i++ {
		d *= 2
	}
	d = min(d, limit)
	half := d / 2
	return half + rand.N(half+1)
}

// Status is the loop's state as screens show it.
type Status struct {
	State        *store.SyncState `json:"state"`
	Looping      bool             `json:"looping"` // Run is active
	Running      bool             `json:"running"` // a round is under way
	BackingOff   bool             `json:"backing_off"`
	BackoffUntil time.Time        `json:"backoff_until,omitzero"`
	NextRun      time.Time        `json:"next_run,omitzero"`
	Failures     int              `json:"failures"`
	LastReport   *Report          `json:"last_report,omitempty"`
	LastError    string           `json:"last_error,omitempty"`
}

// Status returns the stored sync state with the loop's own.
func (l *Loop) Status() (*Status, error) {
	st, err := l.Syncer.DB.SyncState()
	if err != nil {
		return nil, err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	s := &Status{State: st, Looping: l.started, Running: l.running, Failures: l.failures,
		BackoffUntil: l.backoffUntil, NextRun: l.nextRun, LastReport: l.last}
	s.BackingOff = !l.backoffUntil.IsZero() && time.Now().Before(l.backoffUntil)
	if l.lastErr != nil {
		s.LastError = l.lastErr.Error()
	}
	return s, nil
}
