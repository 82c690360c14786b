package rotation

import (
	"context"
	"math/rand/v2"
	"strings"
	"time"
)

// Run validates and promotes candidates until ctx is done, then returns nil.
// Only one Run may be active per Manager.
func (m *Manager) Run(ctx context.Context) error {
	for {
		c, seq, ok := m.candidate()
		if !ok {
			select {
			case <-ctx.Done():
				return nil
			case <-m.wake:
				continue
			}
		}
		m.pursue(ctx, c, seq)
		if ctx.Err() != nil {
			return nil
		}
	}
}

// candidate returns the pending candidate and its sequence number.
func (m *Manager) candidate() (Credential, uint64, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.pending == nil {
		return Credential{}, 0, false
	}
	return *m.pending, m.seq, true
}

// pursue validates candidate seq until it is promoted, superseded, or ctx is
// done, retrying a failure after an exponential, jittered backoff.
func (m *Manager) pursue(ctx context.Context, c Credential, seq uint64) {
	for attempt := 1; ; attempt++ {
		current, err := m.validate(ctx, c, seq)
		if !current || ctx.Err() != nil {
			return // superseded: the newer candidate is pursued instead
		}
		if err == nil {
			m.log.Info("candidate validated", "role", c.Username, "attempt", attempt)
			m.promote(c, seq)
			return
		}
		delay := m.backoff(attempt)
		reason := redact(err.Error(), c.Password)
		m.recordFailure(reason)
		m.log.Warn("candidate rejected; keeping the current generation",
			"role", c.Username, "reason", reason, "attempt", attempt, "next_retry", delay)
		if !m.waitRetry(ctx, delay, seq) {
			return
		}
	}
}

// validate runs one validation attempt with a timeout, cancellable by a
// newer Offer. current reports whether seq is still the pending candidate
// afterwards; if not, the result is stale and must not be acted on.
func (m *Manager) validate(ctx context.Context, c Credential, seq uint64) (current bool, err error) {
	vctx, cancel := context.WithTimeout(ctx, m.cfg.ValidateTimeout)
	defer cancel()
	m.mu.Lock()
	if seq != m.seq {
		m.mu.Unlock()
		return false, nil
	}
	m.cancel = cancel
	m.mu.Unlock()

	err = m.cfg.Validate(vctx, c)

	m.mu.Lock()
	defer m.mu.Unlock()
	if seq != m.seq {
		return false, err
	}
	m.cancel = nil
	return true, err
}

// waitRetry sleeps for delay; it returns false if ctx is done or a newer
// candidate arrived meanwhile.
func (m *Manager) waitRetry(ctx context.Context, delay time.Duration, seq uint64) bool {
	t := time.NewTimer(delay)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return false
		case <-t.C:
			return true
		case <-m.retry:
			if c, s, ok := m.candidate(); ok && s == seq {
				m.log.Info("retrying the candidate now, as asked", "role", c.Username)
				return true
			}
		case <-m.wake:
			if _, s, ok := m.candidate(); !ok || s != seq {
				// Leave a signal for Run, which re-reads the candidate.
				select {
				case m.wake <- struct{}{}:
				default:
				}
				return false
			}
		}
	}
}

// promote makes c the next generation, unless a newer Offer superseded it
// after it was validated.
func (m *Manager) promote(c Credential, seq uint64) {
	m.mu.Lock()
	if seq != m.seq {
		m.mu.Unlock()
		return
	}
	prev, _ := m.Current()
	next := Generation{N: prev.N + 1, Cred: c, PromotedAt: m.cfg.Now()}
	m.cur.Store(&next)
	m.pending = nil
	m.mu.Unlock()

	if prev.N == 0 {
		close(m.ready)
	}
	m.log.Info("credential promoted", "role", c.Username, "generation", next.N, "previous_role", prev.Cred.Username)
	if m.cfg.OnPromote != nil {
		m.cfg.OnPromote(prev, next)
	}
}

// recordFailure counts a rejection for Stats.
func (m *Manager) recordFailure(reason string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.failures++
	m.lastErr = reason
	m.lastAt = m.cfg.Now()
}

// backoff returns MinBackoff·2^(attempt-1), capped at MaxBackoff, with
// jitter in its upper half so that replicas rotating together do not retry
// in lockstep.
func (m *Manager) backoff(attempt int) time.Duration {
	d := m.cfg.MaxBackoff
	if shift := attempt - 1; shift < 32 {
		d = min(m.cfg.MinBackoff<<shift, m.cfg.MaxBackoff)
	}
	if d <= 0 {
		d = m.cfg.MaxBackoff
	}
	half := d / 2
	return half + rand.N(d-half+1)
}

// redact removes the password from a validation error's text. pgconn's
// errors do not carry it, but a ValidateFunc's own wrapping might; the
// reason reaches logs and /status.
//
// Only an occurrence that stands on its own counts: a short password, or a
// half-written one read mid-write (a single letter), also occurs inside
// the message's words, and replacing it there garbled the one line that
// explains the failure while showing where the password's letters are.
func redact(reason, password string) string {
	if password == "" {
		return reason
	}
	var b strings.Builder
	for {
		i := strings.Index(reason, password)
		if i < 0 {
			b.WriteString(reason)
			return b.String()
		}
		end := i + len(password)
		b.WriteString(reason[:i])
		if wordChar(reason, i-1) || wordChar(reason, end) {
			b.WriteString(reason[i:end])
		} else {
			b.WriteString("[redacted]")
		}
		reason = reason[end:]
	}
}

// wordChar reports whether s[i] is a letter or digit; false outside s.
func wordChar(s string, i int) bool {
	if i < 0 || i >= len(s) {
		return false
	}
	c := s[i] | 0x20
	return c >= 'a' && c <= 'z' || s[i] >= '0' && s[i] <= '9'
}
