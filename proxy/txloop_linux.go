//go:build linux

package proxy

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"slices"
	"syscall"
	"time"
)

// lease takes an idle server connection for the client's next transaction,
// without blocking. Loop goroutine only.
func (t *txRelay) lease() error {
	c := t.c
	if t.waiting {
		return errWait
	}
	l := c.p.tryIdle()
	if l == nil {
		if c.p.saturated() {
			t.wait()
			return errWait
		}
		return errPark // the client goroutine waits, and the pool opens a connection for it
	}
	c.p.m.poolWait.Observe(0) // an idle one: no wait worth a clock reading
	return t.take(l)
}

// take starts the client's transaction on l, attached to the relay. A
// connection the loop cannot relay, or one that needs the client's
// settings applied first, is parked with the client (errPark): its
// goroutine does that work. Loop goroutine only.
func (t *txRelay) take(l *lease) error {
	c, sc := t.c, l.Value()
	fd, ok := loopFD(sc.conn)
	if !ok || sc.appliedKey != c.settingsKey {
		c.parked = l
		return errPark
	}
	c.beginLease(l, nil)
	t.attach(l, fd)
	t.attached = true
	if err := t.own(); err != nil {
		t.r.fds[1] = -1
		return err
	}
	return nil
}

// epollET is EPOLLET as the uint32 an EpollEvent holds (the syscall
// package's constant is negative).
const epollET = 1 << 31

// own makes the relay the receiver of the attached connection's events.
// A server connection of a transaction-mode pool is registered with the
// loop once, edge-triggered, and stays registered while it is idle in the
// pool (its events then go nowhere): attaching it to the next transaction
// costs no system call. Loop goroutine only.
func (t *txRelay) own() error {
	pc := t.pc
	l := t.r.loop
	if pc.slot < 0 {
		pc.slot = l.conns.put(pc)
		ev := syscall.EpollEvent{
			Events: syscall.EPOLLIN | syscall.EPOLLOUT | syscall.EPOLLRDHUP | epollET,
			Fd:     pc.slot, Pad: connTag,
		}
		if err := epollCtl(l.epfd, syscall.EPOLL_CTL_ADD, pc.fd, &ev); err != nil {
			l.conns.drop(pc.slot)
			pc.slot = -1
			return os.NewSyscallError("epoll_ctl", err)
		}
		pc.loop.Store(l)
	}
	pc.owner = t.r
	pc.dirty = false
	return nil
}

// isDirty reports whether a leased connection holds bytes nobody asked for
// (see pollConn.dirty). An event while nobody held it on the loop is only a
// hint (a health check or a RESET ROLE read its own reply meanwhile); one
// peek at the socket tells. Loop goroutine only.
func isDirty(l *lease) bool {
	pc, ok := l.Value().conn.(*pollConn)
	if !ok || !pc.dirty {
		return false
	}
	pc.dirty = false
	return pc.pending()
}

// disown stops the attached connection's events from reaching the relay.
func (t *txRelay) disown() {
	if t.l != nil {
		t.pc.owner = nil
	}
}

// attach makes l's connection side 1 of the relay (not yet in epoll).
func (t *txRelay) attach(l *lease, fd int) {
	r, sc := t.r, l.Value()
	pc := sc.conn.(*pollConn)
	t.l, t.pc = l, pc
	r.fds[1] = fd
	pc.rdr.fd = fd
	sc.rd.src = &pc.rdr
	r.dirs[1].rd, r.dirs[1].interest, r.dirs[1].need = sc.rd, txFromServer, 1
	t.srvIn = loopServerInspector{txServerInspector{c: t.c, sc: sc}}
	r.dirs[1].in = &t.srvIn // a pointer: a struct in an interface is a heap copy per transaction
	r.dirs[0].out.fd = fd
}

// transactionEnded detaches the server connection after the ReadyForQuery
// that ended the transaction (the inspector has ended the lease) and gives
// it back to the pool. It reports whether the round goes on. Loop goroutine
// only.
func (t *txRelay) transactionEnded(r *evRelay) bool {
	if err := r.dirs[0].out.settle(); err != nil {
		// Nothing queued may follow the connection to its next client;
		// the round's end destroys it (leaseEndedUnpassed).
		r.end(0, &writeError{err}, false)
		return false
	}
	t.giveBack(r)
	if t.leaveWhenIdle || t.c.s.srv.isDraining() {
		t.c.s.kicked.Store(true)
		r.end(1, os.ErrDeadlineExceeded, false)
		return false
	}
	return true
}

// detach takes the server connection off the relay; the caller gives its
// lease back.
func (t *txRelay) detach(r *evRelay) *lease {
	l := t.l
	t.disown()
	r.fds[1], r.mask[1] = -1, 0
	r.dirs[1].rd, r.dirs[1].in = nil, nil
	r.dirs[0].out.fd = -1
	l.Value().rd.src = l.Value().conn
	t.l, t.pc = nil, nil
	return l
}

// giveBack detaches the server connection whose transaction ended and
// gives it back: to a waiting client, the loop's idle list or the pool.
func (t *txRelay) giveBack(r *evRelay) {
	c := t.c
	l := t.detach(r)
	sc := l.Value()
	switch {
	case sc.cancels.Load() > 0: // a cancel on its way: released once it arrived (releaseTx)
		c.p.releaseTx(l, sc.cleanup)
	case sc.cleanup != cleanNone:
		// A cleanup is a round trip: not on the loop.
		cleanup := sc.cleanup
		r.loop.courier.spawn(func() { c.p.releaseTx(l, cleanup) })
	case c.p.stale(sc):
		c.p.releaseTx(l, cleanNone) // retired, or back to puddle: never kept
	case c.p.handOff(l):
	default:
		c.p.keepOnLoop(l, r.loop)
	}
}

// leaseEndedUnpassed settles a round that ends after the server's
// ReadyForQuery ended the lease (txServerInspector) but before
// transactionEnded gave the connection back: the ReadyForQuery could not
// be written to a client that had gone, or what the client had queued for
// the server could not be written to it. Left attached, the connection
// was nobody's: finish sees no lease, and the pool counted it busy for
// good (every later client waited, and shutdown never ended). It is
// closed, as a connection whose client left mid-transaction is: such a
// client is rare, and a reconnect is the safe answer. Loop goroutine only.
func (t *txRelay) leaseEndedUnpassed(r *evRelay) {
	if t.l == nil || t.c.lease != nil {
		return
	}
	t.detach(r).Destroy()
}

// afterClient passes on what a connection attached during the client's
// step already holds. Loop goroutine only.
func (t *txRelay) afterClient(r *evRelay) bool {
	if !t.attached {
		return true
	}
	t.attached = false
	if r.fds[1] >= 0 && r.dirs[1].rd.buffered() {
		return r.forward(1)
	}
	return true
}

// toClient is where messages pgrotate answers itself go during a round.
func (t *txRelay) toClient() *evWriter { return &t.r.dirs[1].out }

// detachForLoop moves a transaction-pooling client onto the event loop for
// good: its socket leaves Go's netpoller (s.conn becomes a pollConn). It
// reports false, changing nothing, when the loop cannot serve the client:
// the loop is off, the client uses TLS, or the pool's server connections
// are not plain sockets (upstream TLS).
func (s *session) detachForLoop(p *pool) bool {
	if !p.relaysOnLoop() || s.srv.eventLoop() == nil {
		return false
	}
	s.kickMu.Lock()
	defer s.kickMu.Unlock()
	if s.connClosed {
		return false
	}
	pc := toPollConn(s.conn)
	if _, ok := loopFD(pc); !ok {
		return false // TLS
	}
	s.conn, s.raw = pc, pc
	s.clientRd.src = pc
	return true
}

// txOnLoop serves the client's transactions on the event loop: it takes
// the client back from the round that ended (ended, unless nil) and hands
// it to the loop for the next. errOnLoop means a round started: the
// caller's goroutine is done, and the round's end calls resumeTx on a new
// one, which passes it as ended. Otherwise the client left, a side failed
// or Shutdown asked the client to leave: cerr says which, as the goroutine
// relay's client direction would. fellBack means the client got a server
// connection the loop cannot relay (upstream TLS after a failover, say):
// the goroutine relay takes over.
func (s *session) txOnLoop(c *txClient, ended *roundEnded) (cerr error, fellBack bool) {
	if ended != nil {
		cerr, serr := s.endTxRound(c, ended.r, ended.res)
		c.loopSerr = serr
		if !errors.Is(cerr, errPark) {
			return cerr, false
		}
		if err, fellBack := c.unpark(); err != nil || fellBack {
			return err, fellBack
		}
	}
	if _, err := s.startTxRound(c, false); err != nil {
		return err, false
	}
	return errOnLoop, false
}

// unpark gets the client the server connection a round ended for
// (errPark), the blocking way: the one it was given, brought to its
// settings, or one it waits for. fellBack means the connection is one the
// loop cannot relay, and the goroutine relay now serves the client.
func (c *txClient) unpark() (err error, fellBack bool) {
	l := c.parked
	c.parked = nil
	if l != nil {
		err = c.applySettings(l)
	} else {
		l, err = c.lease1()
	}
	if err != nil {
		return err, false
	}
	if _, ok := loopFD(l.Value().conn); !ok {
		c.relayOnGoroutine(l)
		return nil, true
	}
	c.beginLease(l, nil)
	return nil, false
}

// startTxRound hands the client, and the server connection it holds if
// any, to the loop. os.ErrDeadlineExceeded means Shutdown asked the client
// to leave and it is between transactions; net.ErrClosed that Server.Close
// closed it.
// here: the caller is the loop goroutine itself (a login on the loop).
func (s *session) startTxRound(c *txClient, here bool) (*evRelay, error) {
	cfd, _ := loopFD(s.conn)
	fds := [2]int{cfd, -1}
	dirs := [2]evDir{{rd: s.clientRd, interest: txFromClient, in: loopClient{c}}}
	t := &txRelay{c: c}
	l := s.srv.loop
	s.kickMu.Lock()
	switch {
	case s.connClosed:
		s.kickMu.Unlock()
		return nil, net.ErrClosed
	case c.lease == nil && s.kicked.Load() && s.srv.isDraining():
		s.kickMu.Unlock()
		return nil, os.ErrDeadlineExceeded
	}
	r := l.newRelay(fds, dirs, func(r *evRelay) {
		r.tx, t.r = t, r
		r.then = func(res evResult) { s.resumeTx(c, &roundEnded{r, res}) }
		c.loop = t
		if c.lease != nil {
			fd, _ := loopFD(c.lease.Value().conn)
			t.attach(c.lease, fd)
		}
	})
	s.evr = r
	s.kickMu.Unlock()
	if err := l.launch(r, here); err != nil {
		s.kickMu.Lock()
		s.evr = nil
		s.kickMu.Unlock()
		c.loop = nil
		return nil, err
	}
	return r, nil
}

// leftBetween reports whether a round ended because the client left
// between transactions: Terminate or a closed connection, no server
// connection held or parked, nothing left to write to the client. Loop
// goroutine only.
func (t *txRelay) leftBetween(side int, err error) bool {
	c := t.c
	return side == 0 && (err == nil || isDisconnect(err)) &&
		t.l == nil && c.lease == nil && c.parked == nil && len(t.r.dirs[1].out.spill) == 0
}

// endOnLoop ends, on the loop, the session of a client that left between
// transactions (leftBetween). What is left to do is bookkeeping and a
// close, none of which blocks; handed to a new goroutine through the
// courier, as other ends of rounds are, it was an eventfd write, a wake-up
// of the courier and a goroutine per client that leaves (applications that
// connect per request: pgbench -C).
func (s *session) endOnLoop(c *txClient, cerr error) {
	s.kickMu.Lock()
	s.evr = nil
	s.kickMu.Unlock()
	c.loop = nil
	s.end(c.finish(cerr))
}

// resumeTx carries a transaction-mode session on from the end of a round on
// the loop (see errOnLoop), on a goroutine of its own.
func (s *session) resumeTx(c *txClient, ended *roundEnded) {
	s.endUnlessOnLoop(s.serveTxRounds(c, true, ended))
}

// endTxRound takes the client back from the loop after a round and writes
// out what the loop had accepted for a side but not yet written.
func (s *session) endTxRound(c *txClient, r *evRelay, res evResult) (cerr, serr error) {
	s.kickMu.Lock()
	s.evr = nil
	s.kickMu.Unlock()
	c.loop = nil
	s.clientRd.src = s.conn
	cerr, serr = res.errs[0], res.errs[1]
	if l := c.lease; l != nil {
		sc := l.Value()
		sc.rd.src = sc.conn
		if b := r.dirs[0].out.spill; len(b) > 0 && isDeadline(serr) {
			if _, err := sc.conn.Write(b); err != nil {
				cerr = &writeError{err}
			}
		}
	}
	if b := r.dirs[1].out.spill; len(b) > 0 && (isDeadline(cerr) || errors.Is(cerr, errPark)) {
		if _, err := s.conn.Write(b); err != nil {
			serr = &writeError{err}
		}
	}
	return cerr, serr
}

// serverReady handles the edge-triggered events of the server connection
// a transaction holds. Loop goroutine only.
func (r *evRelay) serverReady(events uint32) {
	if r.ended || r.fds[1] < 0 {
		return
	}
	if events&(syscall.EPOLLOUT|syscall.EPOLLERR|syscall.EPOLLHUP) != 0 && len(r.dirs[0].out.spill) > 0 {
		if err := r.dirs[0].out.flush(); err != nil {
			r.end(0, &writeError{err}, false)
			return
		}
	}
	if events&(syscall.EPOLLIN|syscall.EPOLLRDHUP|syscall.EPOLLERR|syscall.EPOLLHUP) != 0 && !r.drainServer() {
		return
	}
	r.updateMasks()
}

// drainServer reads the transaction's server connection until the socket
// is empty (edge-triggered: no event comes for bytes already there), the
// client stops taking bytes, or the transaction ends. It reports whether
// the relay goes on.
func (r *evRelay) drainServer() bool {
	d := &r.dirs[1]
	for r.fds[1] >= 0 && len(d.out.spill) == 0 {
		if err := d.rd.fillShared(r.loop.scratch, d.need); err != nil {
			if err == errWouldBlock {
				return true
			}
			r.end(1, err, false)
			return false
		}
		short := r.tx.pc.rdr.short
		if !r.forward(1) {
			return false
		}
		if short {
			return true
		}
	}
	return true
}

// tryIdle takes an idle connection, the loop's own first (see keepOnLoop),
// retiring the ones that got bytes while idle. Loop goroutine only.
func (p *pool) tryIdle() *lease {
	for l := p.popLoopIdle(); l != nil; l = p.popLoopIdle() {
		switch {
		case p.retiring(l.Value()):
			l.Destroy()
		case isDirty(l):
			p.lostIdle(l.Value(), "the server spoke on it while idle")
			l.Destroy()
		default:
			l.Value().state.Store(int32(connLeased))
			return l
		}
	}
	l := p.tryAcquire()
	for l != nil && isDirty(l) {
		p.lostIdle(l.Value(), "the server spoke on it while idle")
		l.Destroy()
		l = p.tryAcquire()
	}
	return l
}

// wait queues the client for the next connection released on the loop:
// waiting there costs no goroutine wake-up, and loads with many more
// clients than connections spend most of their waits there. Loop goroutine
// only.
func (t *txRelay) wait() {
	p := t.c.p
	t.waiting = true
	t.waitStart = time.Now()
	t.c.s.waitStart.Store(t.waitStart.UnixNano())
	t.waitUntil = t.waitStart.Add(p.db.QueryWaitTimeout.Duration)
	p.loopWaiters = append(p.loopWaiters, t)
	p.loopWaiting.Store(int32(len(p.loopWaiters)))
	p.evloop.Store(t.r.loop)
	t.r.loop.waitPools[p] = struct{}{}
}

// unwait takes the client out of its pool's queue. Loop goroutine only.
func (t *txRelay) unwait() {
	if !t.waiting {
		return
	}
	t.waiting = false
	p := t.c.p
	if i := slices.Index(p.loopWaiters, t); i >= 0 {
		p.loopWaiters = slices.Delete(p.loopWaiters, i, i+1)
	}
	p.loopWaiting.Store(int32(len(p.loopWaiters)))
}

// handOff gives a connection released on the loop, of the current
// generation, straight to the first client waiting there. While
// goroutines wait too (a client whose pool was growing, a TLS client),
// every other connection is left to them instead. Loop goroutine only.
//
// Loop clients never queue behind goroutines: once some waited on a
// goroutine, every client arriving after them used to park there too, and
// a busy pool stayed in that costly mode (a futex wake-up and two
// goroutine switches per transaction) for as long as clients kept queuing.
func (p *pool) handOff(l *lease) bool {
	if len(p.loopWaiters) == 0 {
		return false
	}
	if p.goWaiters.Load() > 0 && p.goTurns.Add(1)%2 == 1 {
		return false
	}
	p.loopWaiters[0].serve(l)
	return true
}

// shareRelease gives a connection released on a goroutine to the clients
// waiting on the loop, every other time while clients wait both there and
// on goroutines. puddle hands a connection released to it to a goroutine
// waiter first: TLS clients, relayed on goroutines, took every connection
// they gave back among themselves, and plaintext clients waiting on the
// loop got a turn only at the loop's own releases (handOff), or at none
// (a pool of mostly TLS clients: 53300 after query_wait_timeout). It
// reports whether the loop took l.
func (p *pool) shareRelease(l *lease) bool {
	if p.loopWaiting.Load() == 0 || p.goWaiters.Load() == 0 || p.goTurns.Add(1)%2 == 1 {
		return false
	}
	loop := p.evloop.Load()
	return loop != nil && loop.post(func() { p.serveReleased(l) })
}

// serveReleased hands l, released on a goroutine, to the first client
// waiting on the loop, or back to puddle if none waits any more. Loop
// goroutine only.
func (p *pool) serveReleased(l *lease) {
	if len(p.loopWaiters) == 0 {
		l.Release()
		return
	}
	l.Value().state.Store(int32(connLeased))
	p.loopWaiters[0].serve(l)
}

// serveLoopWaiters hands idle connections to the clients waiting on the
// loop; when none is idle but the pool has room (a connection was closed),
// the first waiter's goroutine is asked to open one. Loop goroutine only.
func (p *pool) serveLoopWaiters() {
	for len(p.loopWaiters) > 0 {
		l := p.tryIdle()
		if l == nil {
			break
		}
		p.loopWaiters[0].serve(l)
	}
	if len(p.loopWaiters) > 0 && p.goWaiters.Load() == 0 && !p.saturated() {
		t := p.loopWaiters[0]
		t.unwait()
		t.r.end(0, errPark, false)
	}
}

// serve resumes a waiting client with the connection l. Loop goroutine only.
func (t *txRelay) serve(l *lease) {
	t.unwait()
	t.c.p.m.poolWait.Observe(time.Since(t.waitStart).Seconds())
	if err := t.take(l); err != nil {
		t.r.end(0, err, false)
		return
	}
	if t.r.forward(0) {
		t.r.updateMasks()
	}
}

// expireWaiters ends the rounds of clients that waited on the loop for
// query_wait_timeout: they get 53300, as a client waiting on its goroutine
// does, or, if logins failed while they waited (PostgreSQL down), the
// last failure (08006), as that client gets too. The others are served if
// the pool has an idle connection or room for one. Loop goroutine only.
func (l *eventLoop) expireWaiters(now time.Time) {
	for p := range l.waitPools {
		for len(p.loopWaiters) > 0 && now.After(p.loopWaiters[0].waitUntil) {
			t := p.loopWaiters[0]
			t.unwait()
			p.m.poolWait.Observe(now.Sub(t.waitStart).Seconds())
			err := p.waitTimeout(context.DeadlineExceeded)
			if failed := p.loginFailedSince(t.waitStart); failed != nil {
				err = fmt.Errorf("acquiring server connection: %w", failed)
			}
			t.r.end(0, err, false)
		}
		if len(p.loopWaiters) > 0 {
			// Room a closed connection left makes no release to wake
			// them (puddle counts it gone only once its close is done).
			p.serveLoopWaiters()
		}
		if len(p.loopWaiters) == 0 {
			delete(l.waitPools, p)
		}
	}
}
