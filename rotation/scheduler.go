package rotation

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"
)

// Scheduler rotates one database's executing role every Interval from
// inside `pgrotate serve`, with the same code as `pgrotate rotate`.
//
// Several replicas may run a Scheduler for the same database. Only one
// rotates at a time: each run holds the PostgreSQL advisory lock
// pg_try_advisory_lock(hashtext('pgrotate:' || dbname)) on a dedicated
// connection for its whole length, and a replica that cannot take it skips
// that tick. The lock dies with its session, so a crashed replica never
// leaves it behind. After taking the lock a replica rotates only when the
// current role is older than Interval (from the creation time pgrotate
// records in the role's comment), so N replicas still rotate once per
// Interval, not N times.
type Scheduler struct {
	// Lifecycle does the rotation; its Admin pool also holds the lock.
	Lifecycle *Lifecycle
	// AdminURL, when set and Lifecycle.Admin is nil, is opened by Run for
	// its duration (OpenAdmin) and closed when Run returns.
	AdminURL string
	// Interval is the age at which the current role is replaced; the
	// scheduler looks every Interval/10 (at least 10ms, at most a minute).
	Interval time.Duration
	// Logger receives the rotation's report lines and outcome.
	Logger *slog.Logger
	// OnRun, if set, is called with each rotation's result (tests).
	OnRun func(RotateResult, error)
	// Started, if set, is called when a rotation starts under the lock
	// (tests use it with OnRun to prove runs never overlap).
	Started func()
}

// Run rotates whenever due, until ctx is done. It returns nil then.
func (s *Scheduler) Run(ctx context.Context) error {
	if s.Lifecycle.Admin == nil {
		pool, err := OpenAdmin(ctx, s.AdminURL, s.Lifecycle.DBName)
		if err != nil {
			return err
		}
		defer pool.Close()
		s.Lifecycle.Admin = pool
	}
	t := time.NewTicker(s.tick())
	defer t.Stop()
	for {
		if err := s.runOnce(ctx); err != nil && ctx.Err() == nil {
			s.Logger.Warn("scheduled rotation failed; retrying at the next tick", "err", err)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// tick is how often the scheduler looks whether a rotation is due.
func (s *Scheduler) tick() time.Duration {
	return min(max(s.Interval/10, 10*time.Millisecond), time.Minute)
}

// runOnce takes the lock without waiting and rotates if due.
func (s *Scheduler) runOnce(ctx context.Context) (err error) {
	l := s.Lifecycle
	conn, err := l.Admin.Acquire(ctx)
	if err != nil {
		return fmt.Errorf("connecting for the rotation lock: %w", err)
	}
	defer conn.Release()
	var locked bool
	const key = "hashtext('pgrotate:' || $1::text)"
	if err := conn.QueryRow(ctx, "SELECT pg_try_advisory_lock("+key+")", l.DBName).Scan(&locked); err != nil {
		return fmt.Errorf("taking the rotation lock: %w", err)
	}
	if !locked {
		return nil // another replica is rotating
	}
	defer func() {
		_, uerr := conn.Exec(context.WithoutCancel(ctx), "SELECT pg_advisory_unlock("+key+")", l.DBName)
		if uerr != nil { // never hand a connection holding the lock back to the pool
			_ = conn.Conn().Close(context.WithoutCancel(ctx))
			err = errors.Join(err, fmt.Errorf("releasing the rotation lock: %w", uerr))
		}
	}()
	due, err := s.due(ctx)
	if err != nil || !due {
		return err
	}
	if s.Started != nil {
		s.Started()
	}
	res, err := l.Rotate(ctx)
	if s.OnRun != nil {
		s.OnRun(res, err)
	}
	if err == nil {
		s.Logger.Info("scheduled rotation done", "current_role", res.Current, "retired", res.Retired)
	}
	return err
}

// due reports whether the current role is older than Interval, or an
// interrupted rotation is waiting to be finished.
func (s *Scheduler) due(ctx context.Context) (bool, error) {
	l := s.Lifecycle
	p, roles, err := l.derivePlan(ctx, false)
	if err != nil {
		return false, err
	}
	if p.changes() {
		return true, nil
	}
	for _, r := range roles {
		if r.Name == p.target {
			return r.Created.IsZero() || l.now().Sub(r.Created) >= s.Interval, nil
		}
	}
	return true, nil
}
