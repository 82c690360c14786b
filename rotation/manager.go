package rotation

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"
)

// Manager defaults.
const (
	DefaultMinBackoff      = time.Second
	DefaultMaxBackoff      = 30 * time.Second
	DefaultValidateTimeout = 30 * time.Second
)

// ManagerConfig configures a Manager.
type ManagerConfig struct {
	// Database names the database in logs.
	Database string
	// Validate checks a candidate before promotion. Required.
	Validate ValidateFunc
	// OnPromote is called after each promotion, from the Run goroutine,
	// without locks held and never concurrently. prev.N == 0 on the first.
	OnPromote func(prev, next Generation)
	// MinBackoff and MaxBackoff bound the exponential, jittered retry of a
	// failing candidate (default 1s .. 30s).
	MinBackoff, MaxBackoff time.Duration
	// ValidateTimeout bounds one validation attempt (default 30s), so that a
	// hung dial cannot stall rotation.
	ValidateTimeout time.Duration
	Logger          *slog.Logger
	// Now is the clock for PromotedAt and LastFailureAt; default time.Now.
	Now func() time.Time
}

// Manager holds the current generation of one database and promotes
// validated candidates: validate, then swap, keep the last good. A candidate
// that fails validation never replaces the current generation; it is
// retried with backoff until it passes or a newer one supersedes it.
type Manager struct {
	cfg   ManagerConfig
	log   *slog.Logger
	wake  chan struct{} // signalled by Offer when the candidate changes
	retry chan struct{} // signalled by RetryNow: end a backoff wait at once
	ready chan struct{} // closed at the first promotion

	// cur is the current generation, nil before the first promotion. It
	// is replaced (under mu, by promote) but read without a lock: the proxy
	// asks for it on every transaction.
	cur atomic.Pointer[Generation]

	mu       sync.Mutex // guards the fields below
	pending  *Credential
	seq      uint64             // bumped whenever pending changes
	cancel   context.CancelFunc // cancels the validation of pending, if running
	failures uint64
	lastErr  string
	lastAt   time.Time
}

// NewManager fills in defaults and returns a Manager; call Run to start it.
// It panics if cfg.Validate is nil: promoting unvalidated credentials is
// never what a caller wants.
func NewManager(cfg ManagerConfig) *Manager {
	if cfg.Validate == nil {
		panic("rotation.NewManager: Validate is nil")
	}
	if cfg.MinBackoff <= 0 {
		cfg.MinBackoff = DefaultMinBackoff
	}
	if cfg.MaxBackoff < cfg.MinBackoff {
		cfg.MaxBackoff = max(DefaultMaxBackoff, cfg.MinBackoff)
	}
	if cfg.ValidateTimeout <= 0 {
		cfg.ValidateTimeout = DefaultValidateTimeout
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Manager{
		cfg:   cfg,
		log:   log.With("database", cfg.Database),
		wake:  make(chan struct{}, 1),
		retry: make(chan struct{}, 1),
		ready: make(chan struct{}),
	}
}

// Offer hands a candidate to the manager. A candidate equal to the current
// generation's credential is ignored (and drops a pending one: the source
// was reverted). A newer Offer supersedes a candidate still being validated
// or retried, cancelling its validation.
func (m *Manager) Offer(c Credential) {
	m.mu.Lock()
	cur, ok := m.Current()
	switch {
	case ok && c.Equal(cur.Cred):
		if m.pending == nil {
			m.mu.Unlock()
			return
		}
		m.log.Info("credential source reverted to the current generation; dropping candidate",
			"role", c.Username, "dropped", m.pending.Username)
		m.pending = nil
	case m.pending != nil && c.Equal(*m.pending):
		m.mu.Unlock()
		return
	default:
		m.log.Info("credential change detected", "role", c.Username)
		m.pending = &c
	}
	m.seq++
	if m.cancel != nil {
		m.cancel()
		m.cancel = nil
	}
	m.mu.Unlock()
	select {
	case m.wake <- struct{}{}:
	default:
	}
}

// RetryNow ends the backoff wait of a candidate that failed validation, so
// it is validated again at once (SIGHUP: the operator may have fixed the
// role or the server). The source itself is unchanged, so Offer would
// ignore it.
func (m *Manager) RetryNow() {
	if _, _, ok := m.candidate(); !ok {
		return
	}
	select {
	case m.retry <- struct{}{}:
	default:
	}
}

// Current returns the current generation; ok is false before the first
// promotion.
func (m *Manager) Current() (Generation, bool) {
	g := m.cur.Load()
	if g == nil {
		return Generation{}, false
	}
	return *g, true
}

// WaitReady blocks until a generation exists or ctx is done.
func (m *Manager) WaitReady(ctx context.Context) error {
	select {
	case <-m.ready:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("waiting for the first credential of %s: %w", m.cfg.Database, ctx.Err())
	}
}

// Stats returns a snapshot for /status and metrics.
func (m *Manager) Stats() ManagerStats {
	m.mu.Lock()
	defer m.mu.Unlock()
	cur, _ := m.Current()
	s := ManagerStats{
		Generation:         cur.N,
		Role:               cur.Cred.Username,
		ValidationFailures: m.failures,
		LastFailure:        m.lastErr,
		LastFailureAt:      m.lastAt,
		Pending:            m.pending != nil,
	}
	if m.pending != nil {
		s.PendingRole = m.pending.Username
	}
	return s
}
