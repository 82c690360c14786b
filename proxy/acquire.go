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
// a moment) is tried again with backoff instead of failing the client, as
// PgBouncer keeps its clients queued while it retries. The connect failure
// itself is logged by the pool's constructor. When ctx ends, the error says
// why: errWaitExpired if the pool only stayed busy, else the last login
// failure.
func (p *pool) acquireRetrying(ctx context.Context) (*lease, error) {
	var failed error
	backoff := loginRetryFirst
	for {
		l, err := p.acquire(ctx)
		switch {
		case err == nil:
			if failed != nil {
				p.lastLoginFailure.Store(nil)
			}
			return l, nil
		case ctx.Err() != nil && failed != nil:
			return nil, failed
		case ctx.Err() != nil:
			return nil, fmt.Errorf("%w: %w", errWaitExpired, err)
		case !passingLoginFailure(err):
			return nil, err
		}
		failed = err
		p.lastLoginFailure.Store(&loginFailure{err: err, at: time.Now()})
		p.log.Debug("opening a server connection for a waiting client failed; trying again", "in", backoff, "err", err)
		rest(ctx, backoff)
		backoff = min(2*backoff, loginRetryMax)
	}
}

// loginFailure is a passing login failure and when it happened.
type loginFailure struct {
	err error
	at  time.Time
}

// loginFailedSince returns the last passing login failure of the pool's
// waiting clients if it happened after since and no login succeeded after
// it.
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
