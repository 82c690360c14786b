//go:build linux

package proxy

import (
	"context"
	"errors"
	"net"
	"os"

	"github.com/jackc/pgx/v5/pgproto3"
)

// Session-mode clients served on the event loop from their login on.
//
// A session-mode client the loop logged in used to go on on a goroutine
// of its own: started through the courier, it took a server connection,
// greeted the client and handed the relay back to the loop, then waited
// for the round's end and gave the connection back. That is four hand-offs
// between threads per login, each a wake-up (a context switch, costly on
// a VM), and a goroutine parked for every client for its whole session.
// When the pool has a connection ready for the client (idleNow), the loop
// now greets the client and relays it itself; when the client leaves, it
// gives the connection back and ends the session there too
// (loopSession.leftIdle). A goroutine only starts when the session needs
// one: a kick (rotation, shutdown), a lost server, an error to explain.
// A client no connection was ready for waits for one on a goroutine, which
// greets it and then hands it to the loop the same way (startSessionRound).

// enterSession serves an authenticated client of a session-mode pool on
// the loop, if a connection is ready for it (idleNow). false: nothing was
// done, and handOver serves the client.
func (lg *loopLogin) enterSession(saslFinal pgproto3.BackendMessage, p *pool) bool {
	s := lg.s
	if _, err := s.srv.poolFor(lg.params); err != nil {
		return false
	}
	set := renderSettings(lg.params.settings)
	l := p.idleNow(set.key)
	if l == nil {
		return false
	}
	lg.handOff()
	s.clientRd.src = s.conn
	s.clientRd.shed() // an idle client on the loop holds no buffer
	h := s.joinSessionPool(p)
	h.l = l
	sc := l.Value()
	err := s.enterSession(h, set, lg.greeter(saslFinal, sortedParams(sc.params), nil))
	ctx, sr, started := lg.ctx, newSessionRelay(s, p, lg.params.settings), false
	if err == nil {
		started, err = s.startSessionRound(ctx, h, sr, true)
	}
	lg.l.settleHandOff()
	switch {
	case err != nil:
		lg.l.courier.spawn(func() { s.end(err) })
	case !started: // a kick came during the login: a goroutine acts on it
		lg.l.courier.spawn(func() { s.endUnlessOnLoop(s.relayLoop(ctx, h, sr)) })
	}
	return true
}

// greetingSize holds a login's last authentication message and its
// greeting (565 bytes with PostgreSQL 15's reported parameters and a
// 63-byte application name: TestGreetingFitsItsBuffer), so that encoding
// them grows no buffer: growing one from empty took 4 of the greeter's 9
// allocations per login.
const greetingSize = 1024

// greeter writes AuthenticationSASLFinal and the greeting with the server
// parameters params and the client's settings (see queueGreeting), in one
// write.
func (lg *loopLogin) greeter(saslFinal pgproto3.BackendMessage, params reportedParams, settings map[string]string) func() error {
	return func() error {
		s := lg.s
		w := outbox{buf: make([]byte, 0, greetingSize)}
		s.queue(&w, saslFinal)
		s.queueGreeting(&w, params, settings)
		if w.err != nil {
			return w.err
		}
		return lg.writeAll(w.buf)
	}
}

// idleNow takes an idle connection of a session-mode pool for a client
// whose settings have the key key, if one is ready on the spot: of the
// current generation, a pollConn, with the client's settings in place, the
// replies to its reset already arrived (settleNow), and not closed by the
// server. nil: none is, and the client's goroutine gets one the blocking
// way (pool.acquire, session.applySettings). Loop goroutine only.
func (p *pool) idleNow(key string) *lease {
	l, err := p.res.TryAcquire(idleOnly)
	if err != nil {
		return nil
	}
	sc := l.Value()
	if _, ok := loopFD(sc.conn); !ok || p.retiring(sc) || sc.appliedKey != key {
		l.ReleaseUnused()
		return nil
	}
	in, err := sc.settleNow()
	switch {
	case err != nil:
		p.resetFailed(sc, err)
		l.Destroy()
		return nil
	case !in:
		l.ReleaseUnused()
		return nil
	case p.closedWhileIdle(l):
		l.Destroy()
		return nil
	}
	sc.state.Store(int32(connLeased))
	p.m.poolWait.Observe(0) // an idle one: no wait worth a clock reading
	return l
}

// errSpokeAfterReset is a connection that sent more than the replies to its
// reset while idle: a FATAL, most likely, from a terminated backend.
var errSpokeAfterReset = errors.New("the server sent more than the replies to the reset")

// settleNow is settle on the event loop, which must not block: it reads
// what the socket holds, and settles when that is every reply to the
// reset. in is false when some are still to come: what was read stays
// buffered, for the goroutine that settles the connection instead.
func (sc *serverConn) settleNow() (in bool, err error) {
	if sc.unread == 0 {
		return true, nil
	}
	pc, ok := sc.conn.(*pollConn)
	if !ok {
		return false, nil
	}
	pc.rdr.fd = pc.fd
	sc.rd.src = &pc.rdr
	defer func() { sc.rd.src = sc.conn }()
	for !sc.rd.holdsReadies(sc.unread) {
		if err := sc.rd.fillMore(); err != nil {
			if err == errWouldBlock {
				return false, nil
			}
			return false, err
		}
	}
	if err := sc.readReset(); err != nil {
		return false, err
	}
	if sc.rd.buffered() {
		return false, errSpokeAfterReset
	}
	return true, nil
}

// loopSession is the session-mode client of a round the loop started
// itself (startSessionRound).
type loopSession struct {
	s  *session
	h  *held
	sr *sessionRelay
}

// startSessionRound starts a relay round on the loop, with no goroutine
// waiting for it: its end is resumeSession's, on a new goroutine, unless
// the client left while idle (loopSession.leftIdle). here: the caller is
// the loop goroutine (a client it has just greeted); otherwise the caller's
// goroutine is done with the session once the round started (errOnLoop).
// started is false when the loop cannot take the round as it is — a client
// the loop did not log in (not a pollConn), a TLS server connection — or a
// kick is to be acted on first: the goroutine relay serves that round.
func (s *session) startSessionRound(ctx context.Context, h *held, sr *sessionRelay, here bool) (started bool, err error) {
	sc := h.l.Value()
	s.kickMu.Lock()
	cfd, clientOK := loopFD(s.conn) // a pollConn: the server's loop runs
	if !clientOK {
		s.kickMu.Unlock()
		return false, nil
	}
	sfd, serverOK := sc.loopFD()
	switch {
	case s.connClosed:
		s.kickMu.Unlock()
		return false, &disconnect{net.ErrClosed}
	case s.kicked.Load() || !serverOK:
		s.kickMu.Unlock()
		return false, nil
	}
	l := s.srv.loop
	r := l.newRelay([2]int{cfd, sfd}, s.loopDirs(sc, sr.st, sr.ci, h.p.m), func(r *evRelay) {
		r.sess = &loopSession{s: s, h: h, sr: sr}
		r.then = func(res evResult) { s.resumeSession(ctx, h, sr, r, res) }
	})
	s.evr, s.relaying = r, true
	s.kickMu.Unlock()
	if err := l.launch(r, here); err != nil {
		s.kickMu.Lock()
		s.evr, s.relaying = nil, false
		s.kickMu.Unlock()
		return false, err
	}
	return true, nil
}

// resumeSession carries a session on from the end of a round the loop
// started, on a goroutine of its own.
func (s *session) resumeSession(ctx context.Context, h *held, sr *sessionRelay, r *evRelay, res evResult) {
	end, err := s.roundOver(r, res, h.l.Value(), -1)
	done, err := s.roundEnded(ctx, h, sr.st, end, err)
	if !done {
		err = s.relayLoop(ctx, h, sr)
	}
	s.endUnlessOnLoop(err)
}

// leftIdle reports whether a round ended because the client left (side 0
// ended with Terminate or a closed connection) while its server connection
// was idle, with nothing left to write either way: what is left to do is
// bookkeeping, a reset written to the server and a close, none of which
// blocks. Loop goroutine only.
func (ls *loopSession) leftIdle(r *evRelay, side int, err error) bool {
	sc := ls.h.l.Value()
	return side == 0 && (err == nil || isDisconnect(err)) &&
		ls.sr.st.idle() && sc.rd.atBoundary() && !ls.s.clientRd.midMessage() &&
		len(r.dirs[0].out.spill) == 0 && len(r.dirs[1].out.spill) == 0
}

// endOnLoop ends, on the loop, the session of a client that left while
// idle (leftIdle); handed to a goroutine through the courier, it was a
// wake-up of the courier and of a goroutine per client that leaves.
func (ls *loopSession) endOnLoop(r *evRelay, err error) {
	s := ls.s
	end, err := s.roundOver(r, evResult{errs: [2]error{err, os.ErrDeadlineExceeded}}, ls.h.l.Value(), -1)
	_, err = s.roundEnded(context.Background(), ls.h, ls.sr.st, end, err)
	s.end(err)
}
