package proxy

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"
)

// Pool upkeep: connections idle past server_idle_timeout are closed (down to
// min_pool_size), connections older than server_lifetime are replaced, a
// connection idle for long is checked before a client can get a dead one,
// and the pool is topped up to min_pool_size.

// maintainEvery is how often pools are looked after: every 5 s, or more
// often when a timeout is short enough to need it.
func (s *Server) maintainEvery() time.Duration {
	every := 5 * time.Second
	for _, p := range s.pools {
		d := p.db
		every = min(every, d.ServerIdleTimeout.Duration/4, d.ServerLifetime.Duration/4, d.ServerCheckDelay.Duration/4)
	}
	return max(every, 100*time.Millisecond)
}

// lifetimeJitter spreads server_lifetime so connections opened together are
// not all replaced at the same moment.
const lifetimeJitter = 0.2

// Maintain looks after every pool until ctx is done.
func (s *Server) Maintain(ctx context.Context) {
	tick := time.NewTicker(s.maintainEvery())
	defer tick.Stop()
	for {
		for _, p := range s.pools {
			p.maintain(ctx)
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// maintain runs one round of upkeep on p.
func (p *pool) maintain(ctx context.Context) {
	// While upkeep holds idle connections, and until it opened new ones,
	// clients may queue on the event loop for one; puddle wakes only
	// goroutines.
	defer p.wakeLoopWaiters()
	p.reclaimLoopIdle()
	total := int(p.res.Stat().TotalResources())
	var due []*lease
	for _, l := range p.res.AcquireAllIdle() {
		switch {
		case p.leftToReplacer(l.Value()):
			l.ReleaseUnused()
		case p.outlived(l, total):
			l.Destroy()
			total--
		case p.checkDue(l):
			due = append(due, l)
		default:
			l.ReleaseUnused()
		}
	}
	p.wakeLoopWaiters()
	total -= p.checkAll(ctx, due)
	for ; total < p.db.MinPoolSize && ctx.Err() == nil; total++ {
		if err := p.res.CreateResource(ctx); err != nil {
			p.log.Debug("topping up to min_pool_size failed", "err", err)
			return
		}
	}
}

// checkWorkers is how many health checks run at once: few, since a check
// on a pollConn blocks its thread in poll(2) while it waits; enough that
// one that hangs leaves the others working.
const checkWorkers = 4

// checkAll checks the connections in due, after every other idle one was
// given back, and gives each back as soon as it passed: a check that hangs
// (a frozen host answers nothing for the 5 s of its timeout) holds up no
// connection but its own. It returns how many failed and were closed.
func (p *pool) checkAll(ctx context.Context, due []*lease) int {
	var closed atomic.Int32
	var wg sync.WaitGroup
	next := make(chan *lease)
	for range min(checkWorkers, len(due)) {
		wg.Go(func() {
			for l := range next {
				if !p.checkOne(ctx, l) {
					closed.Add(1)
				}
			}
		})
	}
	for _, l := range due {
		next <- l
	}
	close(next)
	wg.Wait()
	return int(closed.Load())
}

// checkOne checks one idle connection: given back if it passed, closed if
// not.
func (p *pool) checkOne(ctx context.Context, l *lease) bool {
	err := p.check(ctx, l.Value())
	if err == nil {
		l.ReleaseUnused()
		p.wakeLoopWaiters()
		return true
	}
	p.lostIdle(l.Value(), "health check: "+err.Error())
	l.Destroy()
	return false
}

// outlived reports whether an idle connection is to be closed: of an old
// credential generation, past server_lifetime, or idle past
// server_idle_timeout while the pool holds total connections, more than
// min_pool_size.
func (p *pool) outlived(l *lease, total int) bool {
	sc := l.Value()
	switch {
	case p.stale(sc):
		return true
	case time.Since(sc.createdAt) > sc.lifetime:
		p.log.Debug("closing a server connection past server_lifetime", "pid", sc.pid)
		return true
	default:
		return l.IdleDuration() > p.db.ServerIdleTimeout.Duration && total > p.db.MinPoolSize
	}
}

// checkDue reports whether an idle connection is due a health check: idle
// for server_check_delay, and not checked within it. Idle time counts from
// the last use, which upkeep's own check does not renew; without the second
// condition every connection idle for long was checked at every upkeep
// round, 51 round trips a second for 256 idle connections.
func (p *pool) checkDue(l *lease) bool {
	delay := p.db.ServerCheckDelay.Duration
	return l.IdleDuration() > delay && time.Since(l.Value().checkedAt) > delay
}

// check runs the health check on sc and counts its result.
func (p *pool) check(ctx context.Context, sc *serverConn) error {
	err := p.healthy(ctx, sc)
	sc.checkedAt = time.Now()
	if err == nil {
		p.m.healthOK.Inc()
	} else {
		p.m.healthFailed.Inc()
	}
	return err
}

// healthy checks that the server answers — and, when the pool wants a
// primary (target_session_attrs read-write or primary), that it still is one:
// after a failover a demoted primary's connections are retired.
func (p *pool) healthy(ctx context.Context, sc *serverConn) error {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	var rows [][]string
	var err error
	switch p.up.cfg.TargetSessionAttrs {
	case "read-write", "primary":
		rows, err = sc.query(ctx, "SELECT pg_catalog.pg_is_in_recovery()")
	default:
		err = sc.exec(ctx, "")
	}
	switch {
	case err != nil:
		return err
	case sc.txStatus != 'I':
		return fmt.Errorf("transaction status %q after the check", sc.txStatus)
	case rows != nil && (len(rows) != 1 || rows[0][0] != "f"):
		return errors.New("the server is in recovery (a standby), and the pool wants a primary")
	}
	return nil
}

// jitteredLifetime is server_lifetime less up to lifetimeJitter of it.
func jitteredLifetime(base time.Duration) time.Duration {
	return base - time.Duration(rand.Float64()*lifetimeJitter*float64(base))
}
