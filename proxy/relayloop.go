package proxy

import (
	"errors"
	"fmt"
	"net"
	"os"
)

// eventLoop returns the server's event loop, starting it on first use; nil
// when it is off (limits.event_loop) or cannot run here, and every relay
// runs on goroutines.
func (s *Server) eventLoop() *eventLoop {
	s.loopOnce.Do(func() {
		if !s.cfg.Limits.EventLoop {
			return
		}
		l, err := newEventLoop(s.cfg.Limits.BatchSends)
		if err != nil {
			s.log.Warn("event loop unavailable: relaying on goroutines", "err", err)
			return
		}
		if l.ringErr != nil {
			s.log.Info("event loop sends one system call per write (limits.batch_sends needs io_uring)", "err", l.ringErr)
		}
		s.loop = l
	})
	return s.loop
}

// loopRelaysClient reports whether the event loop can relay the client's
// session-mode rounds: the loop runs and the client is a plain socket (a
// TLS client is relayed on goroutines).
func (s *session) loopRelaysClient() bool {
	if s.srv.eventLoop() == nil {
		return false
	}
	_, onLoop := loopFD(s.conn) // logged in on the loop (loopLogin)
	return onLoop || plainSocket(s.conn)
}

// relayOnLoop runs a session-mode relay round on the event loop for a client
// accepted on a goroutine (a plain socket, which it detaches for the round),
// and waits for the round's end; a client the loop logged in has its rounds
// started by startSessionRound, with no goroutine waiting. ok is false when
// the loop cannot take the round (see loopRelaysClient; a TLS server
// connection): the goroutine relay serves it instead.
func (s *session) relayOnLoop(sc *serverConn, st *relayState, ci *clientInspector, m *dbMetrics) (end roundEnd, err error, ok bool) {
	if !s.loopRelaysClient() {
		return 0, nil, false
	}
	l := s.srv.eventLoop()
	dirs := s.loopDirs(sc, st, ci, m)
	s.kickMu.Lock()
	if s.connClosed {
		s.kickMu.Unlock()
		end, err = classifyRound(net.ErrClosed, os.ErrDeadlineExceeded, false)
		return end, err, true
	}
	sfd, ok := sc.loopFD()
	if !ok {
		s.kickMu.Unlock()
		return 0, nil, false
	}
	cfds, ok, err := detach(s.conn)
	if !ok || err != nil {
		s.kickMu.Unlock()
		return 0, nil, false // the goroutine relay reports any trouble
	}
	cfd := cfds[0]
	r, err := l.startRelay([2]int{cfd, sfd}, dirs, nil)
	s.evr = r
	s.kickMu.Unlock()

	res := evResult{errs: [2]error{err, os.ErrDeadlineExceeded}}
	if r != nil {
		res = <-r.done
	}
	end, err = s.roundOver(r, res, sc, cfd)
	return end, err, true
}

// loopDirs are the two directions of a session-mode round on the loop.
func (s *session) loopDirs(sc *serverConn, st *relayState, ci *clientInspector, m *dbMetrics) [2]evDir {
	interest := fromClient
	if ci.guard != nil {
		interest = fromClientGuarded
	}
	return [2]evDir{
		{rd: s.clientRd, interest: interest, in: ci},
		{rd: sc.rd, interest: fromServer, in: serverInspector{st: st, sc: sc, m: m, log: s.log}},
	}
}

// roundOver takes the client back from a round on the loop (r; nil if the
// loop did not take it) that ended with res, and says how it ended. fd is
// the client's descriptor if detach made it (attached again now), else -1:
// the client is a pollConn and stays one.
func (s *session) roundOver(r *evRelay, res evResult, sc *serverConn, fd int) (roundEnd, error) {
	cerr, serr := res.errs[0], res.errs[1]
	if res.idleStop {
		s.kicked.Store(true)
	}
	if fd < 0 {
		s.kickMu.Lock()
		s.evr = nil
		s.relaying = false
		s.kickMu.Unlock()
		s.clientRd.src = s.conn
	} else if aerr := s.reattach(fd, clientFinished(cerr, serr)); aerr != nil && (cerr == nil || isDeadline(cerr)) {
		cerr = aerr
	}
	sc.rd.src = sc.conn
	if r != nil {
		cerr, serr = s.flushSpilled(r, sc, cerr, serr)
	}
	return classifyRound(cerr, serr, s.kicked.Load())
}

// reattach puts the client connection back in the session's hands after a
// round on the loop; if Server.Close came meanwhile, it is closed at once.
// A round that finished the client (see clientFinished) closes the
// descriptor instead of handing it back to Go's netpoller only to close it
// (attach dups the descriptor, queries the socket and registers it with
// epoll: the same attach of the server socket is 6 % of a session-mode
// login's CPU in perf, pgbench -C).
func (s *session) reattach(fd int, finished bool) error {
	var c net.Conn
	var err error
	if finished {
		closeFD(fd)
	} else {
		c, err = attach(fd)
	}
	s.kickMu.Lock()
	defer s.kickMu.Unlock()
	s.evr = nil
	s.relaying = false
	if finished || err != nil {
		return err // the old connection, closed by detach, stays: everything on it fails
	}
	s.conn, s.raw = c, c
	s.clientRd.src = c
	if s.connClosed {
		_ = c.Close()
	}
	return nil
}

// clientFinished reports whether a round ended with nothing more to say to
// the client: it sent Terminate, or its connection failed or was closed
// (see classifyRound; a lost server, by contrast, is explained to it).
func clientFinished(cerr, serr error) bool {
	if serr != nil && !isDeadline(serr) && !isWriteErr(serr) {
		return false
	}
	return cerr == nil || !isDeadline(cerr) && !errors.Is(cerr, errFrameLength)
}

// loopFD returns the descriptor of the server connection for a relay on
// the event loop. Pools on the loop open their plaintext connections as
// pollConns, and a connection stays one after the round: a session no
// longer detaches it (a dup and a close) and attaches it back
// (net.FileConn: a dup, socket queries, a netpoller registration and a
// close); with that, a session-mode login (pgbench -C) makes 67 system
// calls instead of 86 (perf stat). A plain socket a TLS client's relay
// handed back (forGoroutines) is taken out of the netpoller again here.
// false: a TLS connection, relayed on goroutines.
func (sc *serverConn) loopFD() (int, bool) {
	if fd, ok := loopFD(sc.conn); ok {
		return fd, true
	}
	if !plainSocket(sc.conn) {
		return -1, false
	}
	sc.conn = toPollConn(sc.conn)
	sc.rd.src = sc.conn
	return loopFD(sc.conn)
}

// forGoroutines hands a pollConn server connection back to Go's netpoller
// before a goroutine relay (a TLS client) uses it for a whole session: a
// pollConn's blocking read holds a thread in poll(2), waking every
// pollSlice. The connection stays so until an event-loop round takes it
// (loopFD).
func (sc *serverConn) forGoroutines() error {
	pc, ok := sc.conn.(*pollConn)
	if !ok {
		return nil
	}
	c, err := pc.handBack()
	if err != nil {
		return fmt.Errorf("handing the server connection back to the netpoller: %w", err)
	}
	sc.conn = c
	sc.rd.src = c
	return nil
}

// flushSpilled writes, now blocking, what the loop accepted for a side but
// the side's socket had not taken yet when the round ended: towards the
// server while it is there, towards the client while it is there.
func (s *session) flushSpilled(r *evRelay, sc *serverConn, cerr, serr error) (error, error) {
	if b := r.dirs[0].out.spill; len(b) > 0 && isDeadline(serr) {
		if _, err := sc.conn.Write(b); err != nil {
			cerr = &writeError{err}
		}
	}
	if b := r.dirs[1].out.spill; len(b) > 0 && isDeadline(cerr) {
		if _, err := s.conn.Write(b); err != nil {
			serr = &writeError{err}
		}
	}
	return cerr, serr
}

// evResult is how a round on the loop ended, in the terms of the goroutine
// relay: the error each direction stopped with. A direction interrupted
// because the other ended reports os.ErrDeadlineExceeded, as it would
// under the read deadline the goroutine relay uses.
type evResult struct {
	errs [2]error
	// idleStop: the server direction stopped at an idle point on request
	// (relayState.stopWhenIdle).
	idleStop bool
}

// evDir is one direction of a relay on the loop.
type evDir struct {
	rd       *frameReader
	interest *typeSet
	in       inspector
	need     int // bytes that must be buffered before forward can go on
	out      evWriter
}

// evWriter writes without blocking to a socket and keeps what the socket
// did not take (spill) until it is writable again; a direction whose writer
// spilled stops reading.
type evWriter struct {
	fd    int
	spill []byte
	// On Linux the loop's relays queue small writes and the loop sends
	// them together before it waits again (sendQueue): queued is what
	// waits (nil: not in the queue), err how its send failed, owner and
	// dir the relay and direction to tell.
	queue  *sendQueue
	queued []byte
	err    error
	owner  *evRelay
	dir    int
}
