package rotation

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// promotion is one OnPromote call.
type promotion struct{ prev, next Generation }

// managerHarness runs a Manager whose ValidateFunc is a test seam: it
// reports every credential it is asked about and answers with validate.
type managerHarness struct {
	m        *Manager
	seen     chan Credential
	promoted chan promotion
	logs     *logRecorder
}

var clock = time.Date(2026, 11, 29, 4, 0, 0, 0, time.UTC)

func startManager(t *testing.T, validate ValidateFunc, tweaks ...func(*ManagerConfig)) *managerHarness {
	t.Helper()
	logs, logger := newLogRecorder(t)
	h := &managerHarness{seen: make(chan Credential, 64), promoted: make(chan promotion, 64), logs: logs}
	cfg := ManagerConfig{
		Database: "bookstore",
		Validate: func(ctx context.Context, c Credential) error {
			h.seen <- c
			return validate(ctx, c)
		},
		OnPromote:  func(prev, next Generation) { h.promoted <- promotion{prev, next} },
		MinBackoff: time.Millisecond,
		MaxBackoff: 4 * time.Millisecond,
		Logger:     logger,
		Now:        func() time.Time { return clock },
	}
	for _, tweak := range tweaks {
		tweak(&cfg)
	}
	h.m = NewManager(cfg)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- h.m.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run returned %v after cancel, want nil", err)
		}
	})
	return h
}

func accept(context.Context, Credential) error { return nil }

// expectPromotion waits for the next promotion and checks it.
func (h *managerHarness) expectPromotion(t *testing.T, n uint64, want Credential) promotion {
	t.Helper()
	select {
	case p := <-h.promoted:
		if p.next.N != n || !p.next.Cred.Equal(want) || p.prev.N != n-1 {
			t.Fatalf("promoted %d→%d %s, want %d→%d %s", p.prev.N, p.next.N, p.next.Cred, n-1, n, want)
		}
		if cur, ok := h.m.Current(); !ok || cur != p.next {
			t.Fatalf("Current = %v %v after promoting generation %d", cur.N, ok, n)
		}
		return p
	case <-time.After(10 * time.Second):
		t.Fatalf("no promotion of %s", want)
	}
	return promotion{}
}

// expectSeen waits for the next validation attempt and checks its candidate.
func (h *managerHarness) expectSeen(t *testing.T, want Credential) {
	t.Helper()
	select {
	case c := <-h.seen:
		if !c.Equal(want) {
			t.Fatalf("validated %s, want %s", c, want)
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("no validation of %s", want)
	}
}

// TestManagerFirstPromotion: before the first promotion there is no
// generation; the first valid candidate becomes generation 1.
func TestManagerFirstPromotion(t *testing.T) {
	h := startManager(t, accept)
	if _, ok := h.m.Current(); ok {
		t.Fatal("Current reports a generation before any Offer")
	}
	a := cred("bookstore_user_0001", secret)
	h.m.Offer(a)
	must(t, h.m.WaitReady(context.Background()))
	p := h.expectPromotion(t, 1, a)
	if p.prev.N != 0 || !p.next.PromotedAt.Equal(clock) {
		t.Errorf("first promotion = %+v, want prev.N 0 and PromotedAt from the injected clock", p)
	}
	h.logs.waitFor(t, 0, "credential promoted", "database=bookstore", "role=bookstore_user_0001", "generation=1")
}

// TestManagerRetriesRejectedCandidate: a failing candidate never replaces
// the current generation; it is retried with backoff until it passes.
func TestManagerRetriesRejectedCandidate(t *testing.T) {
	var failuresLeft atomic.Int32
	h := startManager(t, func(_ context.Context, c Credential) error {
		if c.Username == "bookstore_user_0002" && failuresLeft.Add(-1) >= 0 {
			return errors.New(`FATAL: permission denied to set role "bookstore_owner" (SQLSTATE 42501)`)
		}
		return nil
	})
	a, b := cred("bookstore_user_0001", secret), cred("bookstore_user_0002", secret)
	failuresLeft.Store(2)
	h.m.Offer(a)
	h.expectPromotion(t, 1, a)

	h.m.Offer(b)
	h.expectPromotion(t, 2, b)
	s := h.m.Stats()
	if s.ValidationFailures != 2 || !strings.Contains(s.LastFailure, "permission denied to set role") ||
		!s.LastFailureAt.Equal(clock) || s.Pending || s.Generation != 2 || s.Role != b.Username {
		t.Errorf("Stats = %+v, want 2 failures with the reason, nothing pending, generation 2", s)
	}
	h.logs.waitFor(t, 0, "candidate rejected", "role=bookstore_user_0002", "attempt=1", "next_retry=")
	h.logs.waitFor(t, 0, "candidate rejected", "attempt=2")
	h.logs.waitFor(t, 0, "candidate validated", "attempt=3")
}

// TestManagerKeepsCurrentWhileRejecting: while a candidate keeps failing,
// the current generation stays, and Stats shows the pending candidate.
func TestManagerKeepsCurrentWhileRejecting(t *testing.T) {
	h := startManager(t, func(_ context.Context, c Credential) error {
		if c.Username == "bookstore_user_0002" {
			return errors.New("password authentication failed (SQLSTATE 28P01), tried " + c.Password)
		}
		return nil
	})
	a, b, c := cred("bookstore_user_0001", secret), cred("bookstore_user_0002", secret), cred("bookstore_user_0003", secret)
	h.m.Offer(a)
	h.expectPromotion(t, 1, a)

	h.m.Offer(b)
	h.logs.waitFor(t, 0, "candidate rejected", "attempt=2")
	if cur, _ := h.m.Current(); cur.N != 1 || !cur.Cred.Equal(a) {
		t.Fatalf("Current = generation %d %s while the candidate fails, want 1 %s", cur.N, cur.Cred, a)
	}
	s := h.m.Stats()
	if !s.Pending || s.PendingRole != b.Username || s.ValidationFailures < 2 {
		t.Errorf("Stats = %+v, want %s pending with failures counted", s, b.Username)
	}
	if strings.Contains(s.LastFailure, secret) || !strings.Contains(s.LastFailure, "[redacted]") {
		t.Errorf("LastFailure = %q, want the password redacted", s.LastFailure)
	}

	h.m.Offer(c) // supersedes the failing candidate
	h.expectPromotion(t, 2, c)
}

// A candidate that failed waits out its backoff, up to 30 s. An operator
// who has fixed the role and sends SIGHUP (RetryNow) gets it validated at
// once; the source is unchanged, so re-reading it alone does nothing.
func TestManagerRetryNowEndsTheBackoff(t *testing.T) {
	var fixed atomic.Bool
	h := startManager(t, func(_ context.Context, c Credential) error {
		if c.Username == "bookstore_user_0002" && !fixed.Load() {
			return errors.New("role is not permitted to log in (SQLSTATE 28000)")
		}
		return nil
	}, func(cfg *ManagerConfig) { cfg.MinBackoff, cfg.MaxBackoff = time.Hour, time.Hour })
	a, b := cred("bookstore_user_0001", secret), cred("bookstore_user_0002", secret)
	h.m.Offer(a)
	h.expectPromotion(t, 1, a)
	h.m.Offer(b)
	h.logs.waitFor(t, 0, "candidate rejected", "attempt=1")
	fixed.Store(true)
	h.m.Offer(b) // the watcher's re-read: the same candidate, ignored
	h.m.RetryNow()
	h.expectPromotion(t, 2, b)
	h.logs.waitFor(t, 0, "retrying the candidate now")
}

// TestManagerSupersedeCancelsValidation: a newer Offer cancels a validation
// still in flight; the older candidate is never promoted and its
// cancellation is not counted as a failure.
func TestManagerSupersedeCancelsValidation(t *testing.T) {
	h := startManager(t, func(ctx context.Context, c Credential) error {
		if c.Username == "bookstore_user_0002" {
			<-ctx.Done() // a dial that hangs
			return ctx.Err()
		}
		return nil
	})
	a, b, c := cred("bookstore_user_0001", secret), cred("bookstore_user_0002", secret), cred("bookstore_user_0003", secret)
	h.m.Offer(a)
	h.expectPromotion(t, 1, a)
	h.expectSeen(t, a)

	h.m.Offer(b)
	h.expectSeen(t, b) // b's validation is now in flight
	h.m.Offer(c)
	h.expectPromotion(t, 2, c)
	if s := h.m.Stats(); s.ValidationFailures != 0 {
		t.Errorf("Stats = %+v, want no failures counted for a superseded candidate", s)
	}
}

// TestManagerIgnoresEqualCandidate: offering the current credential again
// (a re-read, a SIGHUP) validates nothing and promotes nothing.
func TestManagerIgnoresEqualCandidate(t *testing.T) {
	h := startManager(t, accept)
	a, b := cred("bookstore_user_0001", secret), cred("bookstore_user_0002", secret)
	h.m.Offer(a)
	h.expectSeen(t, a)
	h.expectPromotion(t, 1, a)

	h.m.Offer(a)
	h.m.Offer(b)
	h.expectSeen(t, b) // the next validation is b's: a was not validated again
	h.expectPromotion(t, 2, b)
}

// TestManagerRevertDropsCandidate: if the source goes back to the current
// credential while a candidate is failing, the candidate is dropped.
func TestManagerRevertDropsCandidate(t *testing.T) {
	h := startManager(t, func(_ context.Context, c Credential) error {
		if c.Username == "bookstore_user_0002" {
			return errors.New("role does not exist")
		}
		return nil
	})
	a, b := cred("bookstore_user_0001", secret), cred("bookstore_user_0002", secret)
	h.m.Offer(a)
	h.expectPromotion(t, 1, a)
	h.m.Offer(b)
	h.logs.waitFor(t, 0, "candidate rejected")
	h.m.Offer(a)
	if s := h.m.Stats(); s.Pending || s.Generation != 1 {
		t.Errorf("Stats = %+v after the revert, want nothing pending at generation 1", s)
	}
}

// TestManagerPasswordOnlyChange: the same role with a new password is a
// rotation too, and gets a new generation.
func TestManagerPasswordOnlyChange(t *testing.T) {
	h := startManager(t, accept)
	h.m.Offer(cred("bookstore_user_0001", secret+"1"))
	h.expectPromotion(t, 1, cred("bookstore_user_0001", secret+"1"))
	h.m.Offer(cred("bookstore_user_0001", secret+"2"))
	h.expectPromotion(t, 2, cred("bookstore_user_0001", secret+"2"))
}

// TestManagerWaitReadyHonoursContext: WaitReady gives up with ctx.
func TestManagerWaitReadyHonoursContext(t *testing.T) {
	m := NewManager(ManagerConfig{Database: "bookstore", Validate: accept})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := m.WaitReady(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("WaitReady = %v, want context.Canceled", err)
	}
}

// TestManagerBackoffBounds: every retry delay lies within [d/2, d] of the
// capped exponential d.
func TestManagerBackoffBounds(t *testing.T) {
	m := NewManager(ManagerConfig{Validate: accept})
	for attempt, want := range map[int]time.Duration{1: time.Second, 2: 2 * time.Second, 5: 16 * time.Second, 6: 30 * time.Second, 100: 30 * time.Second} {
		for range 50 {
			if d := m.backoff(attempt); d < want/2 || d > want {
				t.Fatalf("backoff(%d) = %v, want within [%v, %v]", attempt, d, want/2, want)
			}
		}
	}
}

// The reason a candidate was rejected reaches the log and /status with the
// password taken out where it stands on its own, and only there: a short
// or half-written password also occurs inside the message's words.
func TestRedact(t *testing.T) {
	for _, c := range []struct{ reason, password, want string }{
		{`tried s3cr3t! and failed`, "s3cr3t!", `tried [redacted] and failed`},
		{`password "s3cr3t"`, "s3cr3t", `password "[redacted]"`},
		{`connecting to upstream for database "bookstore_tx" as role "exec_d": failed`, "e",
			`connecting to upstream for database "bookstore_tx" as role "exec_d": failed`},
		{`pw=ab, again ab`, "ab", `pw=[redacted], again [redacted]`},
		{`nothing here`, "", `nothing here`},
	} {
		if got := redact(c.reason, c.password); got != c.want {
			t.Errorf("redact(%q, %q) = %q, want %q", c.reason, c.password, got, c.want)
		}
	}
}
