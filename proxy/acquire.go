package proxy

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
)

// errWaitExpired means a client's wait for a server connection ended while
// none became free (not while logins failed): for a client, its
// query_wait_timeout; for a moving session, the move's time.
var errWaitExpired = errors.New("no server connection became free in time")

// Backoff between logins a waiting client retries after a passing failure.
const (
	loginRetryFirst = 100 * time.Millisecond
	loginRetryMax   = time.Second
)

// acquireRetrying is acquire for a client that may wait while ctx lasts:
// a login that failed for a passing reason (a busy server took longer than
// connect_timeout to start a backend, a restart or failover refused it for
// a moment, max_connections was reached) is tried again with backoff
// instead of failing the client, as PgBouncer keeps its clients queued
// while it retries. While logins fail, one waiting client at a time tries
// them, for the whole pool (see retryLogin): a thousand waiting clients
// each retrying on its own would have a full server start and end a
// thousand backends a second. The connect failure itself is logged by the
// pool's constructor. When ctx ends, the error says why: errWaitExpired if
// the pool only stayed busy, else the last login failure.
func (p *pool) acquireRetrying(ctx context.Context) (*lease, error) {
	start := time.Now()
	for {
		turn := p.loginFailedSince(time.Time{}) != nil
		if turn && !p.loginTurn.CompareAndSwap(false, true) {
			if l := p.awaitLoginTurn(ctx); l != nil {
				return l, nil
			}
		} else if l, err, done := p.retryLogin(ctx, turn); done {
			return l, err
		}
		if ctx.Err() != nil {
			if failed := p.loginFailedSince(start); failed != nil {
				return nil, failed
			}
			return nil, fmt.Errorf("%w: %w", errWaitExpired, ctx.Err())
		}
	}
}

// retryLogin is one acquire that may log in, made while logins work or by
// the client whose turn it is while they fail (turn: it holds
// p.loginTurn). A passing failure keeps the turn through the pool's
// backoff, so that the next try comes after it, whoever makes it. done: l
// or err is the answer.
func (p *pool) retryLogin(ctx context.Context, turn bool) (l *lease, err error, done bool) {
	if turn {
		defer p.loginTurn.Store(false)
	}
	l, err = p.acquire(ctx)
	switch {
	case err == nil:
		return l, nil, true
	case ctx.Err() != nil:
		return nil, nil, false
	case !passingLoginFailure(err):
		return nil, err, true
	}
	p.lastLoginFailure.Store(&loginFailure{err: err, at: time.Now()})
	backoff := max(time.Duration(p.loginBackoff.Load()), loginRetryFirst)
	p.loginBackoff.Store(int64(min(2*backoff, loginRetryMax)))
	p.log.Debug("opening a server connection for a waiting client failed; trying again", "in", backoff, "err", err)
	rest(ctx, backoff)
	return nil, nil, false
}

// awaitLoginTurn waits while another client tries logins for the pool: for
// a connection released meanwhile (which it returns), for the logins to
// work again or the turn to come free, or for ctx to end (nil).
func (p *pool) awaitLoginTurn(ctx context.Context) *lease {
	for ctx.Err() == nil && p.loginFailedSince(time.Time{}) != nil && p.loginTurn.Load() {
		if l := p.tryAcquire(); l != nil {
			return l
		}
		rest(ctx, loginTurnWatch)
	}
	return nil
}

// loginTurnWatch is how often a client waiting while another tries logins
// looks for a released connection.
const loginTurnWatch = 50 * time.Millisecond

// loginFailure is a passing login failure and when it happened.
type loginFailure struct {
	err error
	at  time.Time
}

// loginFailedSince returns the last passing login failure of the pool's
// waiting clients if it happened after since and no login succeeded after
// it (loginsWork).
func (p *pool) loginFailedSince(since time.Time) error {
	if f := p.lastLoginFailure.Load(); f != nil && f.at.After(since) {
		return f.err
	}
	return nil
}

// passingLoginFailure reports whether a failed login may succeed when tried
// again: not a refused credential, a missing database or a missing
// privilege (PostgreSQL's classes 28, 3D and 42), nor no credential at all.
func passingLoginFailure(err error) bool {
	if errors.Is(err, errNoCredential) {
		return false
	}
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		switch pe.Code[:min(2, len(pe.Code))] {
		case "28", "3D", "42":
			return false
		}
	}
	return true
}

// loginsWork records that a login succeeded: the pool's failing state and
// its backoff end.
func (p *pool) loginsWork() {
	if p.lastLoginFailure.Load() != nil {
		p.lastLoginFailure.Store(nil)
	}
	p.loginBackoff.Store(0) // loginRetryFirst
}
