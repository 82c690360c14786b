package proxy

import (
	"context"
	"sync"
	"time"

	"github.com/pgrotate/pgrotate/configs"
	"github.com/pgrotate/pgrotate/rotation"
)

// After a rotation every server connection of a pool logs in anew with the
// new credential. A login is the expensive part of a connection's life —
// PostgreSQL starts a backend for it, and the old one exits — and done for
// all connections at once it took most of the machine: measured with
// bench/run.sh on 2 cores, the worst second after a swap fell 70–90 %
// below the seconds before it, in both pool modes.
//
// So a replacer moves a pool over one connection at a time, and rests
// between steps: a step that took d (one login, or one session's move) is
// followed by replaceRest×d of rest, so rotation work takes a fifth of
// the time and the clients the rest. Until their turn, transaction-mode
// clients go on using the old generation's connections, which PostgreSQL
// keeps serving, and session-mode clients keep theirs; the old role is
// reported drained, as before, when its last connection closes. A slow
// server slows the replacer down with it; a fast one is done in a blink.

// replaceRest is the rest after a replacement step, as a multiple of the
// step's duration, which counts as at least minStep: closing an idle old
// connection takes pgrotate no time, but its backend's exit still costs
// the server.
const (
	replaceRest = 4
	minStep     = 25 * time.Millisecond
)

// moveStep bounds the wait for one session to act on its kick before the
// replacer goes on (a session busy in a transaction moves at its next
// idle moment, on its own).
const moveStep = 100 * time.Millisecond

// roomWait bounds the wait for a busy old connection to be released and
// closed when the pool is full (transaction mode).
const roomWait = time.Second

// replacers runs at most one replacer per pool: a newer rotation stops the
// running one and starts its own.
type replacers struct {
	mu      sync.Mutex
	running map[*pool]*replaceRun
	closed  bool
	wg      sync.WaitGroup
}

type replaceRun struct{ cancel context.CancelFunc }

// start runs replace for p in its own goroutine, stopping p's earlier one.
func (rs *replacers) start(p *pool, replace func(context.Context)) {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	if rs.closed {
		return
	}
	if rs.running == nil {
		rs.running = make(map[*pool]*replaceRun)
	}
	if old := rs.running[p]; old != nil {
		old.cancel()
	}
	ctx, cancel := context.WithCancel(context.Background())
	run := &replaceRun{cancel: cancel}
	rs.running[p] = run
	rs.wg.Add(1)
	go func() {
		defer rs.wg.Done()
		defer cancel()
		replace(ctx)
		rs.mu.Lock()
		if rs.running[p] == run {
			delete(rs.running, p)
		}
		rs.mu.Unlock()
	}()
}

// close stops every replacer and waits for them.
func (rs *replacers) close() {
	rs.mu.Lock()
	rs.closed = true
	for _, run := range rs.running {
		run.cancel()
	}
	rs.mu.Unlock()
	rs.wg.Wait()
}

// replacement marks p as moving to generation next and returns the
// replacer's work (replaceStale). The mark comes first, before the
// replacer's goroutine runs: from it on, the old generation's idle
// connections are the replacer's to close (leftToReplacer), and there is no
// moment in which upkeep or a client looking for a connection closes them
// all at once.
func (s *Server) replacement(p *pool, next rotation.Generation) func(context.Context) {
	p.retireQuota.Store(0)
	p.replacing.Store(next.N)
	return func(ctx context.Context) { s.replaceStale(ctx, p, next) }
}

// replaceStale moves p's connections to generation next, step by step,
// until none of an older generation is left to replace, Shutdown begins
// or a newer rotation takes over (ctx).
func (s *Server) replaceStale(ctx context.Context, p *pool, next rotation.Generation) {
	defer p.wakeLoopWaiters()
	defer p.replacing.CompareAndSwap(next.N, 0) // stale connections left now close at release
	var sessions []*session
	if p.db.PoolMode == configs.PoolSession {
		sessions = s.sessionsBefore(p, next.N)
	}
	for ctx.Err() == nil && !s.isDraining() {
		began := time.Now()
		var more bool
		if p.db.PoolMode == configs.PoolSession {
			more = p.sessionStep(ctx, next, &sessions)
		} else {
			more = p.txStep(ctx, next)
		}
		if !more {
			return
		}
		rest(ctx, replaceRest*max(time.Since(began), minStep))
	}
}

// txStep replaces one connection of a transaction-mode pool: one login of
// the new generation, one old connection closed — an idle one now, or the
// next one released. A pool without clients only closes: logging in for
// nobody would cost the server for nothing. It reports false when nothing
// is left to replace.
func (p *pool) txStep(ctx context.Context, next rotation.Generation) bool {
	if p.conns.countBefore(next.N)-int(p.retireQuota.Load()) <= 0 {
		return false
	}
	if p.clients.Load() == 0 {
		// Nobody to serve: close, and let the next client log in.
		if !p.retireIdleStale() {
			p.retireQuota.Add(1)
		}
		return true
	}
	if p.full() {
		if !p.retireIdleStale() {
			p.retireQuota.Add(1)
			p.awaitRoom(ctx)
		}
		p.prewarm(ctx, next)
		return true
	}
	p.prewarm(ctx, next)
	if !p.retireIdleStale() {
		p.retireQuota.Add(1)
	}
	return true
}

// sessionStep closes one idle old connection of a session-mode pool (no
// client uses it: a new client would log in anew anyway) and moves one
// session: a new connection is opened for it first, then it is asked to
// move (see session.onKick), and the step waits until it has. It reports
// false when nothing is left to replace.
func (p *pool) sessionStep(ctx context.Context, next rotation.Generation, sessions *[]*session) bool {
	closed := p.retireIdleStale()
	for len(*sessions) > 0 {
		sess := (*sessions)[0]
		*sessions = (*sessions)[1:]
		if sc := sess.server.Load(); sc == nil || sc.gen.N >= next.N {
			continue // gone, or moved already
		}
		if !p.full() {
			p.prewarm(ctx, next) // the move takes it; a full pool makes room as it moves
		}
		done := sess.kickToMove()
		t := time.NewTimer(moveStep)
		select {
		case <-done:
		case <-t.C:
		case <-ctx.Done():
		}
		t.Stop()
		return true
	}
	return closed
}

// sessionsBefore lists p's session-mode clients whose connection is of a
// generation older than n.
func (s *Server) sessionsBefore(p *pool, n uint64) []*session {
	var out []*session
	s.cancels.each(func(sess *session) {
		if sc := sess.server.Load(); sc != nil && sc.db == p.db.Name && sc.gen.N < n {
			out = append(out, sess)
		}
	})
	return out
}

// retireIdleStale closes one idle connection of an older generation, if
// there is one. Clients that queued meanwhile are woken.
func (p *pool) retireIdleStale() bool {
	retired := false
	p.reclaimLoopIdle()
	for _, l := range p.res.AcquireAllIdle() {
		if !retired && p.stale(l.Value()) {
			l.Destroy()
			retired = true
			continue
		}
		l.ReleaseUnused()
	}
	p.wakeLoopWaiters()
	return retired
}

// awaitRoom waits, up to roomWait, until the pool holds fewer than
// pool_size connections.
func (p *pool) awaitRoom(ctx context.Context) {
	deadline := time.Now().Add(roomWait)
	for p.full() && time.Now().Before(deadline) && ctx.Err() == nil {
		rest(ctx, 5*time.Millisecond)
	}
}

// leftToReplacer reports whether sc is an old connection that the running
// replacer closes in its turn, paced, rather than whoever meets it idle.
func (p *pool) leftToReplacer(sc *serverConn) bool {
	return p.replacing.Load() != 0 && p.stale(sc)
}

// retiring reports whether sc is to be closed rather than used again: it
// is of an older generation, and — in transaction mode while a replacer
// runs — its replacement is open (one unit of retireQuota is taken).
// Session-mode pools never hand out an old connection.
func (p *pool) retiring(sc *serverConn) bool {
	if !p.stale(sc) {
		return false
	}
	if p.db.PoolMode == configs.PoolSession || p.replacing.Load() == 0 {
		return true
	}
	for {
		q := p.retireQuota.Load()
		if q <= 0 {
			return false
		}
		if p.retireQuota.CompareAndSwap(q, q-1) {
			return true
		}
	}
}

// rest sleeps for d or until ctx ends.
func rest(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
}
