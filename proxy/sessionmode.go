package proxy

import (
	"context"
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/jackc/pgx/v5/pgproto3"
)

// moveRetryInterval is how often a session on a rotated-out credential looks
// for an idle moment to move to the current one.
const moveRetryInterval = 500 * time.Millisecond

// serveSession leases a server connection for the client's life (session
// pooling) and relays until one side leaves. After a rotation the client is
// moved to a connection of the new generation at an idle moment.
func (s *session) serveSession(ctx context.Context, p *pool, params *startupParams) error {
	h := s.joinSessionPool(p)
	l, err := s.acquire(ctx, p)
	if err != nil {
		return err
	}
	h.l = l
	sc := l.Value()
	set := renderSettings(params.settings)
	if err := s.applySettings(ctx, sc, set); err != nil {
		h.reusable = isServerError(err) && sc.txStatus == 'I'
		return err
	}
	if err := s.enterSession(h, set, func() error { return s.greet(sc) }); err != nil {
		return err
	}
	return s.relayLoop(ctx, h, newSessionRelay(s, p, params.settings))
}

// held is the server connection a session-mode client holds, and how it is
// given back when the session ends (see giveBack).
type held struct {
	p *pool
	l *lease // nil: none yet, or a failed move closed it
	// reusable: the connection is idle at a message boundary, fit for the
	// next client once reset.
	reusable bool
	// running: the client left while the server ran one of its statements
	// (cancelled as the connection is closed, see cancelAbandoned).
	running bool
	applied *startupSettings // the settings release applies again
}

// joinSessionPool makes the authenticated client one of p's clients; the
// connection it will hold is given back as the session ends.
func (s *session) joinSessionPool(p *pool) *held {
	s.setState(stateConnecting)
	p.clients.Add(1)
	h := &held{p: p}
	s.atEnd = append(s.atEnd, func() { p.clients.Add(-1) }, h.giveBack)
	return h
}

// giveBack returns the held connection to the pool (see pool.release).
func (h *held) giveBack() {
	if h.l != nil {
		if !h.reusable && h.running {
			h.p.cancelAbandoned(h.l.Value())
		}
		h.p.release(h.l, h.reusable, h.applied)
		h.l = nil
	}
}

// enterSession starts the session on the held connection, which carries
// the client's settings set: the client gets its cancel key and is greeted
// (greet), and cancels and kicks reach it from then on.
func (s *session) enterSession(h *held, set *startupSettings, greet func() error) error {
	sc := h.l.Value()
	h.applied, h.reusable = set, true // idle, and fit for the next client
	s.server.Store(sc)
	s.atEnd = append(s.atEnd, func() { s.server.Store(nil) }, s.actedOnKick) // a client that leaves holds up no one
	if err := s.enter(greet); err != nil {
		return err
	}
	s.log.Debug("client session started", "role", sc.gen.Cred.Username, "generation", sc.gen.N, "server_pid", sc.pid)
	return nil
}

// sessionRelay is what the rounds of one session-mode relay share.
type sessionRelay struct {
	st *relayState
	ci *clientInspector
}

func newSessionRelay(s *session, p *pool, startup map[string]string) *sessionRelay {
	st := newRelayState()
	for name := range startup {
		st.custom.note(name)
	}
	ci := &clientInspector{st: st, log: s.log, m: p.m}
	if p.db.RoleGuardEnabled() {
		ci.guard = p.guard
	}
	return &sessionRelay{st: st, ci: ci}
}

// acquire waits for a server connection, up to query_wait_timeout.
func (s *session) acquire(ctx context.Context, p *pool) (*lease, error) {
	start := time.Now()
	if l := p.tryAcquire(); l != nil { // the common case: an idle connection, no timer
		p.m.poolWait.Observe(time.Since(start).Seconds())
		return l, nil
	}
	wait := p.db.QueryWaitTimeout.Duration
	wctx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	actx, leave := context.WithCancelCause(wctx)
	defer leave(nil)
	stopWatching := s.watchForLeaving(leave)
	p.goWaiters.Add(1)
	p.reclaimLoopIdle() // idle ones the loop keeps are as good
	l, err := p.acquireRetrying(actx)
	p.goWaiters.Add(-1)
	stopWatching()
	p.m.poolWait.Observe(time.Since(start).Seconds())
	switch {
	case err == nil:
		return l, nil
	case context.Cause(actx) == errClientLeft:
		return nil, &disconnect{errClientLeft}
	case errors.Is(err, errWaitExpired) && ctx.Err() == nil:
		return nil, p.waitTimeout(err)
	default:
		return nil, fmt.Errorf("acquiring server connection: %w", err)
	}
}

// errClientLeft: the client closed its connection while it waited.
var errClientLeft = errors.New("the client left while waiting for a server connection")

// leaveCheckInterval is how often a client waiting for a server connection
// is checked for having left.
const leaveCheckInterval = 250 * time.Millisecond

// watchForLeaving ends a wait for a server connection (leave) when the
// client closes its connection meanwhile: it does not count against
// max_client_conn, no login is made for it, and in transaction mode the
// statement it sent never runs, as PgBouncer drops it too. Served in its
// turn, it would take a connection from a client that stayed, to run what
// nobody reads: under load, clients that time out and leave (pgx, JDBC and
// libpq send a Terminate as they go) would keep the pool busy for nobody,
// and make more clients time out. A client that closed its side has left,
// whatever it sent before (see peerClosed). stop ends the watch and waits
// for it.
func (s *session) watchForLeaving(leave context.CancelCauseFunc) (stop func()) {
	done, exited := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(exited)
		t := time.NewTicker(leaveCheckInterval)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				if peerClosed(s.raw) || s.saidGoodbye() {
					leave(errClientLeft)
					return
				}
			}
		}
	}()
	return func() {
		close(done)
		<-exited
	}
}

// saidGoodbye reports whether a waiting plaintext client sent a Terminate
// after what it sent before: pgx, for one, sends it as it gives up on a
// timed-out query but keeps its connection open until pgrotate closes it.
// The client's goroutine waits meanwhile and leaves its reader alone, so
// the watch may look at what it holds; the socket's bytes are peeked, up to
// 8 KiB. (A TLS client's bytes cannot be read without taking them: it is
// found out when it closes.)
func (s *session) saidGoodbye() bool {
	if s.isTLS() {
		return false
	}
	var b [8 << 10]byte
	n, _, err := peekBytes(s.raw, b[:])
	if err != nil {
		n = 0
	}
	return s.clientRd.saysGoodbye(b[:n])
}

// waitTimeout is the error of a client that waited query_wait_timeout for
// a server connection in vain.
func (p *pool) waitTimeout(cause error) error {
	p.m.waitTimeouts.Inc()
	w := fatal(codeTooManyConnections, "no server connection of pool %q became free within query_wait_timeout (%s)", p.db.Name, p.db.QueryWaitTimeout.Duration)
	w.Hint = "All pool_size server connections stayed busy; raise pool_size or shorten transactions."
	return withCause(w, cause)
}

// relayLoop relays round after round; between rounds it acts on kicks.
// errOnLoop: a round runs on the event loop with no goroutine waiting for
// it (startSessionRound), and its end carries the session on.
func (s *session) relayLoop(ctx context.Context, h *held, sr *sessionRelay) error {
	for {
		switch started, err := s.startSessionRound(ctx, h, sr, false); {
		case err != nil:
			return err
		case started:
			return errOnLoop
		}
		end, err := s.relayRound(h.l.Value(), sr.st, sr.ci, h.p.m)
		if done, err := s.roundEnded(ctx, h, sr.st, end, err); done {
			return err
		}
	}
}

// roundEnded acts on the end of a relay round: on a kick, between rounds
// (done false: the relay goes on). Otherwise the session ends with err, and
// h says what becomes of its connection.
func (s *session) roundEnded(ctx context.Context, h *held, st *relayState, end roundEnd, err error) (done bool, _ error) {
	sc := h.l.Value()
	sc.txStatus = byte(st.status.Load())
	switch end {
	case endKicked:
		s.kicked.Store(false)
		h.l, err = s.onKick(ctx, h.p, h.l, st)
		if !st.stopWhenIdle.Load() || err != nil || h.l == nil {
			s.actedOnKick() // moved, or will not soon; not waiting for an idle moment
		}
		if err != nil || h.l == nil {
			h.reusable = false
			return true, err
		}
		return false, nil
	case endServerLost:
		h.reusable = false
		return true, s.serverLost(sc, err)
	default:
		// A client that left in the middle of a message (a CopyData outside
		// COPY, which PostgreSQL ignores) leaves the rest owed on the
		// connection: the reset would be read as its rest.
		h.reusable = st.idle() && sc.rd.atBoundary() && !s.clientRd.midMessage()
		h.running = st.pending.Load() > 0
		return true, err
	}
}

// serverLost explains to the client why its session ends, when the client
// stands between messages (PostgreSQL usually has already sent a FATAL).
func (s *session) serverLost(sc *serverConn, err error) error {
	if sc.rd.passthrough != 0 {
		return &disconnect{err}
	}
	return withCause(fatal(codeConnectionFailure, "the database server closed the connection"), err)
}

// kick interrupts the relay so the session can act between rounds. Safe to
// call from any goroutine.
func (s *session) kick() {
	s.kickMu.Lock()
	defer s.kickMu.Unlock()
	s.kicked.Store(true)
	now := time.Now()
	if s.txMode {
		// Only the client direction: the transaction in progress is left
		// to finish (on the loop, the round ends after it).
		if s.evr != nil {
			s.evr.interrupt(nil)
			return
		}
		_ = s.conn.SetReadDeadline(now)
		return
	}
	if !s.relaying {
		return // a control query runs: the next relay round sees kicked
	}
	if s.evr != nil {
		s.evr.interrupt(nil)
		return
	}
	_ = s.conn.SetReadDeadline(now)
	if sc := s.server.Load(); sc != nil {
		_ = sc.conn.SetReadDeadline(now)
	}
}

// kickToMove kicks the session and returns a channel that is closed once
// it has acted on the kick: moved (a busy session first waits for its next
// idle moment), or found it cannot move yet and will try again later. Safe
// to call from any goroutine.
func (s *session) kickToMove() <-chan struct{} {
	done := make(chan struct{})
	s.kickMu.Lock()
	s.kickDone = done
	s.kickMu.Unlock()
	s.kick()
	return done
}

// actedOnKick closes the channel of kickToMove, if one waits.
func (s *session) actedOnKick() {
	s.kickMu.Lock()
	done := s.kickDone
	s.kickDone = nil
	s.kickMu.Unlock()
	if done != nil {
		close(done)
	}
}

// setRelaying marks whether relayRound runs, under the lock kick takes, so
// a kick interrupts only the relay and never a control query.
func (s *session) setRelaying(on bool, sc *serverConn) (kicked bool) {
	s.kickMu.Lock()
	defer s.kickMu.Unlock()
	s.relaying = on
	if on {
		_ = s.conn.SetReadDeadline(time.Time{})
		_ = sc.conn.SetReadDeadline(time.Time{})
	}
	return s.kicked.Load()
}

// closeConn closes the client connection from outside the session (Server
// Close). A relay round on the event loop works on duplicated descriptors,
// so it is ended too, and none may start after.
func (s *session) closeConn() {
	s.kickMu.Lock()
	s.connClosed = true
	r, c := s.evr, s.raw
	s.kickMu.Unlock()
	if r != nil {
		r.interrupt(net.ErrClosed)
	}
	if sh, ok := c.(interface{ shutdown() }); ok {
		// A pollConn the loop may be using: wake everyone, and leave the
		// closing to the session, once nothing uses the descriptor.
		sh.shutdown()
		return
	}
	_ = c.Close()
}

func (s *session) scheduleRetry(after time.Duration) {
	if s.retry == nil {
		s.retry = time.AfterFunc(after, s.kick)
		return
	}
	s.retry.Reset(after)
}

func (s *session) stopRetry() {
	if s.retry != nil {
		s.retry.Stop()
	}
}

// onKick moves the client to the current generation if its connection is of
// an older one. A busy client is moved at its next idle point (the server
// direction stops there by itself); one holding state pgrotate cannot carry
// is tried again shortly. Whoever has not moved by drain_timeout is
// disconnected with 57P01.
func (s *session) onKick(ctx context.Context, p *pool, l *lease, st *relayState) (*lease, error) {
	st.stopWhenIdle.Store(false)
	if s.srv.isDraining() {
		return l, s.leaveForShutdown(l, st)
	}
	if !p.stale(l.Value()) {
		s.drainBy = time.Time{}
		return l, nil
	}
	if s.drainBy.IsZero() {
		s.drainBy = time.Now().Add(p.db.DrainTimeout.Duration)
	}
	if !(st.idle() && l.Value().rd.atBoundary() && s.clientRd.atBoundary()) {
		if time.Now().After(s.drainBy) {
			p.m.drainTimeouts.Inc()
			return l, s.drainTimeout(l.Value(), "a transaction or request in progress")
		}
		s.log.Debug("client is busy: it moves at its next idle moment", "in_transaction", st.status.Load() != 'I', "unsynced_batch", st.batch)
		st.stopWhenIdle.Store(true)
		s.scheduleRetry(time.Until(s.drainBy) + time.Millisecond) // to enforce the timeout
		return l, nil
	}
	nl, err := s.move(ctx, p, l, st)
	switch {
	case err == nil:
		s.drainBy = time.Time{}
		return nl, nil
	case nl == nil: // the old connection is gone too
		return nil, moveFailed(err)
	case time.Now().After(s.drainBy):
		p.m.drainTimeouts.Inc()
		return l, s.drainTimeout(l.Value(), err.Error())
	}
	s.log.Debug("client cannot move to the new credential yet", "reason", err)
	s.scheduleRetry(moveRetryInterval)
	return l, nil
}

// leaveForShutdown disconnects the client with 57P01 when it is idle, and
// otherwise asks to be kicked again at its next idle point.
func (s *session) leaveForShutdown(l *lease, st *relayState) error {
	if st.idle() && l.Value().rd.atBoundary() && s.clientRd.atBoundary() {
		return shutdownError()
	}
	st.stopWhenIdle.Store(true)
	s.scheduleRetry(shutdownRetry)
	return nil
}

// moveFailed is the error of a session whose move failed after its old
// connection was given up: 57P01, on which pools and drivers reconnect,
// with the reason in pgrotate's log (session.fail).
func moveFailed(err error) error {
	w := fatal(codeAdminShutdown, "terminating connection because the database credential was rotated")
	w.Detail = "Moving the session to a server connection of the new credential failed."
	return withCause(w, err)
}

// drainTimeout ends a session that could not be moved off a rotated-out
// credential in time.
func (s *session) drainTimeout(sc *serverConn, why string) error {
	s.log.Warn("drain timeout: disconnecting a client that could not move to the new credential",
		"role", sc.gen.Cred.Username, "generation", sc.gen.N, "reason", why)
	w := fatal(codeAdminShutdown, "terminating connection because the database credential was rotated")
	w.Detail = "The session held state that cannot move to a new server connection (" + why + ") until drain_timeout."
	if sc.rd.passthrough != 0 {
		return &disconnect{errors.New(w.Message)}
	}
	return w
}

// move carries the client's session over to a connection of the current
// generation, with what the relay knows of it (st): the body of the
// client's last Parse of the unnamed statement (empty: none) and the names
// of the custom settings it may have set. On success it returns the new lease, and
// the old connection is closed. When it fails, it returns the lease the
// client still holds: the old one if the session can go on there, nil if it
// cannot.
func (s *session) move(ctx context.Context, p *pool, old *lease, st *relayState) (*lease, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	osc := old.Value()
	unnamed, err := keptUnnamed(ctx, osc, st.unnamed)
	if err != nil {
		p.release(old, false, nil)
		return nil, err
	}
	cs, err := readCarriedState(ctx, osc, st.custom)
	if errors.Is(err, errUnmovable) && osc.txStatus == 'I' {
		// Reading the state was a simple Query, which dropped the unnamed
		// statement: the client stays, so it gets it back.
		if perr := parseUnnamed(ctx, osc, unnamed); perr != nil {
			p.release(old, false, nil)
			return nil, perr
		}
		return old, err
	}
	if err != nil {
		p.release(old, false, nil)
		return nil, err
	}
	cs.unnamed = unnamed
	nl, err := p.replace(ctx, old)
	if err != nil {
		return nil, err
	}
	nsc := nl.Value()
	if err := cs.restore(ctx, nsc); err != nil {
		p.release(nl, isServerError(err) && nsc.txStatus == 'I', nil)
		return nil, fmt.Errorf("moving session: %w", err)
	}
	s.server.Store(nsc)
	s.announceChanges(osc.params, nsc.params)
	p.m.clientMoves.Inc()
	s.log.Info("client moved to the new credential",
		"from_role", osc.gen.Cred.Username, "from_generation", osc.gen.N,
		"role", nsc.gen.Cred.Username, "generation", nsc.gen.N,
		"settings", len(cs.settings), "prepared_statements", len(cs.prepared))
	return nl, nil
}

// announceChanges sends the client ParameterStatus for every reported
// parameter that differs on its new connection (session_authorization, at
// least, names the new executing role). PostgreSQL sends these at any time.
func (s *session) announceChanges(before, after map[string]string) {
	var msgs []pgproto3.BackendMessage
	for k, v := range after {
		if before[k] != v {
			msgs = append(msgs, &pgproto3.ParameterStatus{Name: k, Value: v})
		}
	}
	if len(msgs) > 0 {
		_ = s.send(msgs...)
	}
}
