//go:build linux

package proxy

import (
	"errors"
	"io"
	"net"
	"os"
	"runtime"
	"syscall"
	"time"
	"unsafe"
)

// eventLoop relays plaintext sessions without a goroutine per direction.
// One goroutine waits on epoll for every socket being relayed and moves the
// bytes with non-blocking reads and writes.
//
// Why: with a goroutine per direction, every message costs a speculative
// read that fails with EAGAIN (Go's netpoller reads before it waits), a park,
// a wake-up through the netpoller and often a futex hand-off between threads;
// measured, that is twice PgBouncer's CPU per transaction (DESIGN.md §6).
// Here a readable socket is read once, the bytes are inspected by the same
// inspectors the goroutine relay uses (frameReader.forward), and written
// once: two reads and two writes per round trip, with one epoll_wait shared
// by everything that became ready meanwhile.
//
// Besides relaying, the loop accepts plaintext clients and runs their
// login (loopAcceptor, loopLogin); a transaction-mode client then waits
// there for its first query. Everything else (TLS, md5, a session-mode
// client once authenticated, control queries, moves) runs in a session
// goroutine, which hands both sockets to the loop for a relay round and
// gets them back when the round ends (evRelay.done). The loop works on duplicates of the sockets'
// descriptors, so a descriptor number it holds can never be closed and
// reused under it.
type eventLoop struct {
	epfd int
	cmds jobQueue // what other goroutines post (see post); its eventfd is in epfd
	done chan struct{}

	// courier wakes the goroutines the loop hands work back to (see
	// courier for why the loop does not wake them itself).
	courier *courier

	// Owned by the loop goroutine.
	relays slotTable[*evRelay] // an epoll event names its relay's slot
	// conns are the transaction-mode server connections registered for
	// good (see txRelay.own); their events carry connTag.
	conns slotTable[*pollConn]
	// waitPools are the pools with clients waiting on the loop (see
	// txRelay.wait); while there are any, the loop wakes every
	// waitCheckInterval to expire them.
	waitPools map[*pool]struct{}
	// idlePools are the pools whose connections the loop keeps idle for
	// its transactions (see keepOnLoop).
	idlePools []*pool
	// logins are the clients logging in on the loop (see loopLogin);
	// while there are any, the loop wakes every waitCheckInterval to
	// expire them.
	logins slotTable[*loopLogin]
	// acceptors are the listeners the loop accepts on, by slot; while any
	// is paused (see loopAcceptor.pause), the loop wakes every
	// waitCheckInterval to resume it.
	acceptors    []*loopAcceptor
	acceptPaused int
	// scratch is where relays read when they hold nothing (fillShared).
	scratch []byte
	// handedOff is a login's socket, still registered under its login
	// slot for the round the login starts to take over (loopLogin.handOff);
	// -1: none.
	handedOff int
	// sends is what relays wrote since the loop last waited (sendQueue).
	sends sendQueue
	// ringErr says why sends are not batched (batching asked for, no
	// io_uring here); nil otherwise.
	ringErr error
}

// waitCheckInterval is how often clients waiting on the loop are checked
// against query_wait_timeout.
const waitCheckInterval = 50 * time.Millisecond

// rawWait bounds one epoll_wait that keeps the loop's P (see epollWait);
// a loop that had no event for idleAfter sleeps instead (see sleep). Gaps
// shorter than idleAfter are common under load (a login, a client's think
// time), and a sleep costs the loop its P: sleeping after 4 ms of quiet
// made a session-mode login (pgbench -C) ~10 % dearer.
const (
	rawWait   = 10 * time.Millisecond
	idleAfter = 100 * time.Millisecond
)

// procCheckEvery: a busy loop makes sure every so many waits that
// goroutines still have a P besides its own (procReserve.ensure); a quiet
// one does at every wait that times out.
const procCheckEvery = 1024

// connTag marks the epoll event of a registered server connection; a
// relay's events carry the side (0, 1) instead.
const connTag = 2

// loopSupported: the event loop runs on Linux.
const loopSupported = true

// wakeSlot is the epoll tag of the eventfd; relays are tagged slot+1 (and
// their side), server connections their own slot and connTag.
const wakeSlot = 0

// newEventLoop starts a loop; batchSends: send what one wake-up wrote with
// one system call (limits.batch_sends), when the kernel lets it.
func newEventLoop(batchSends bool) (*eventLoop, error) {
	epfd, err := syscall.EpollCreate1(syscall.EPOLL_CLOEXEC)
	if err != nil {
		return nil, os.NewSyscallError("epoll_create1", err)
	}
	wakefd, err := newEventFD()
	if err != nil {
		_ = syscall.Close(epfd)
		return nil, err
	}
	l := &eventLoop{epfd: epfd, cmds: jobQueue{efd: wakefd}, done: make(chan struct{}), waitPools: make(map[*pool]struct{}), scratch: make([]byte, defaultBufSize), handedOff: -1}
	ev := syscall.EpollEvent{Events: syscall.EPOLLIN, Fd: wakeSlot}
	if err := epollCtl(epfd, syscall.EPOLL_CTL_ADD, wakefd, &ev); err != nil {
		l.closeFDs()
		return nil, os.NewSyscallError("epoll_ctl", err)
	}
	if l.courier, err = newCourier(); err != nil {
		l.closeFDs()
		return nil, err
	}
	if batchSends {
		l.sends.ring, l.ringErr = newSendRing(sendBatchSize)
	}
	loopProcs.reserve()
	go l.run()
	return l, nil
}

func (l *eventLoop) closeFDs() {
	if l.sends.ring != nil {
		l.sends.ring.close()
	}
	_ = syscall.Close(l.cmds.efd)
	_ = syscall.Close(l.epfd)
}

// close stops the loop once every relay has ended; no relay may start after.
func (l *eventLoop) close() {
	l.post(nil)
	<-l.done
	l.courier.stop()
	loopProcs.release()
}

// post runs cmd on the loop goroutine; nil asks the loop to stop. It reports
// false if the loop has stopped.
func (l *eventLoop) post(cmd func()) bool {
	return l.cmds.push(cmd)
}

func (l *eventLoop) run() {
	defer close(l.done)
	defer l.closeFDs()
	events := make([]syscall.EpollEvent, 128)
	var nextCheck time.Time
	var quietSince time.Time // zero while events come
	var iter uint
	for {
		if l.timed() {
			if now := time.Now(); !now.Before(nextCheck) {
				l.expireWaiters(now)
				l.expireLogins(now)
				l.resumeAccepting(now)
				nextCheck = now.Add(waitCheckInterval)
			}
		}
		l.sends.flush()
		n, err := epollWait(l.epfd, events, int(rawWait/time.Millisecond))
		if err != nil {
			if err == syscall.EINTR {
				// A signal: the runtime may be asking this goroutine to
				// stop for the garbage collector.
				runtime.Gosched()
				continue
			}
			panic(os.NewSyscallError("epoll_wait", err)) // only a programming error gets here
		}
		if iter++; n == 0 || iter%procCheckEvery == 0 {
			loopProcs.ensure()
		}
		if n == 0 && !l.timed() {
			switch {
			case quietSince.IsZero():
				quietSince = time.Now()
			case time.Since(quietSince) >= idleAfter:
				n = l.sleep(events)
				loopProcs.ensure() // however long it slept
			}
		}
		if n > 0 {
			quietSince = time.Time{}
		}
		woken := false
		for _, ev := range events[:n] {
			switch {
			case ev.Pad == connTag:
				if pc := l.conns.items[ev.Fd]; pc != nil && pc.owner != nil {
					pc.owner.serverReady(ev.Events)
				} else if pc != nil && ev.Events&^syscall.EPOLLOUT != 0 {
					pc.dirty = true // the server spoke (or left) while nobody held it
				}
			case ev.Pad == loginTag:
				if lg := l.logins.items[ev.Fd]; lg != nil {
					lg.ready()
				}
			case ev.Pad == acceptTag:
				if a := l.acceptors[ev.Fd]; a != nil {
					a.ready()
				}
			case ev.Fd == wakeSlot:
				woken = true
			default:
				if r := l.relays.items[ev.Fd-1]; r != nil {
					r.ready(int(ev.Pad), ev.Events)
				}
			}
		}
		if woken && !l.runCommands() {
			l.sends.flush()
			for _, p := range l.idlePools {
				p.flushLoopIdle()
			}
			return
		}
	}
}

// slotTable numbers what the loop registers with epoll: an event names its
// owner by slot, and a freed slot is used again. Loop goroutine only.
type slotTable[T comparable] struct {
	items []T // by slot; the zero value in a free one
	free  []int32
}

// put stores v in a free slot and returns the slot.
func (t *slotTable[T]) put(v T) int32 {
	if n := len(t.free); n > 0 {
		i := t.free[n-1]
		t.free = t.free[:n-1]
		t.items[i] = v
		return i
	}
	t.items = append(t.items, v)
	return int32(len(t.items) - 1)
}

// used is the number of slots in use.
func (t *slotTable[T]) used() int { return len(t.items) - len(t.free) }

// drop frees slot i.
func (t *slotTable[T]) drop(i int32) {
	var zero T
	t.items[i] = zero
	t.free = append(t.free, i)
}

// timed reports whether something on the loop has a deadline: a client
// waiting for a connection or logging in, or a paused listener.
func (l *eventLoop) timed() bool {
	return len(l.waitPools) > 0 || l.logins.used() > 0 || l.acceptPaused > 0
}

// sleep waits for events as a blocking system call, which gives the loop's
// P back to the scheduler: after idleAfter without any events the loop is
// idle, and an idle pgrotate then wakes for nothing. Waiting in epoll_wait
// holding the P, it was preempted with a signal every 20 ms, ~280 context
// switches a second with no client at all (perf stat), where PgBouncer has
// 4. Busy, the loop never gets here, so sysmon's hand-off of a P held in a
// system call happens once per idle spell, not per transaction. (Parking
// in the netpoller instead, with the epoll set registered there, woke the
// netpoller's thread at every event the loop handled: 50 % more CPU per
// transaction. Parking only now and then made the loop hop between threads
// under load, and with the set registered one-shot while parked it still
// made twice the context switches per transaction; see bench/README,
// "Client logins".)
func (l *eventLoop) sleep(events []syscall.EpollEvent) int {
	n, _, errno := syscall.Syscall6(syscall.SYS_EPOLL_PWAIT, uintptr(l.epfd),
		uintptr(unsafe.Pointer(&events[0])), uintptr(len(events)), ^uintptr(0), 0, 0)
	if errno != 0 {
		return 0 // EINTR; run waits again
	}
	return int(n)
}

// runCommands runs the posted commands; false means stop.
func (l *eventLoop) runCommands() bool {
	var buf [8]byte
	_, _ = eventfdRead(l.cmds.efd, buf[:])
	for _, cmd := range l.cmds.take() {
		if cmd == nil {
			return false
		}
		cmd()
	}
	return true
}

// add registers r's two sockets. Loop goroutine only.
func (l *eventLoop) add(r *evRelay) error {
	r.slot = l.relays.put(r)
	for side := range r.fds {
		if r.fds[side] < 0 {
			continue // transaction pooling: no server connection held
		}
		if side == 1 && r.tx != nil {
			if err := r.tx.own(); err != nil {
				r.fds[1] = -1
				l.remove(r)
				return err
			}
			continue
		}
		if err := r.register(side); err != nil {
			r.fds[side] = -1
			l.remove(r)
			return err
		}
	}
	return nil
}

// register adds one side's socket to the loop's epoll set, readable; a
// socket a login handed off (loopLogin.handOff) is registered already, and
// its registration is changed to name the round instead.
func (r *evRelay) register(side int) error {
	r.mask[side] = syscall.EPOLLIN
	ev := syscall.EpollEvent{Events: r.mask[side], Fd: r.slot + 1, Pad: int32(side)}
	l, fd, op := r.loop, r.fds[side], syscall.EPOLL_CTL_ADD
	if fd == l.handedOff {
		op, l.handedOff = syscall.EPOLL_CTL_MOD, -1
	}
	if err := epollCtl(l.epfd, op, fd, &ev); err != nil {
		if op == syscall.EPOLL_CTL_MOD {
			_ = epollCtl(l.epfd, syscall.EPOLL_CTL_DEL, fd, nil) // nothing may name the login's slot
		}
		return os.NewSyscallError("epoll_ctl", err)
	}
	return nil
}

// remove unregisters r; its descriptors go back to the session (attach).
// Loop goroutine only.
func (l *eventLoop) remove(r *evRelay) {
	for side, fd := range r.fds {
		switch {
		case fd < 0:
		case side == 1 && r.tx != nil:
			r.tx.disown() // registered for good
		default:
			_ = epollCtl(l.epfd, syscall.EPOLL_CTL_DEL, fd, nil)
		}
	}
	l.relays.drop(r.slot)
}

// evRelay is one relay round on the event loop: side 0 is the client, side
// 1 the server; direction i reads side i and writes side 1-i.
type evRelay struct {
	loop  *eventLoop
	slot  int32
	fds   [2]int
	mask  [2]uint32 // epoll interest of each side
	dirs  [2]evDir
	rdrs  [2]fdReader // each side's reader (a transaction's server side uses its pollConn's)
	ended bool
	done  chan evResult // receives the round's end, once; nil when then is set
	// then, if set, is run on a new goroutine with the round's end instead:
	// nobody waits for it (see errOnLoop).
	then func(evResult)
	// tx is set for a transaction-pooling client: side 1 is the server
	// connection it holds for the current transaction (fds[1] is -1 between
	// transactions); see txloop_linux.go.
	tx *txRelay
	// sess is set for a session-mode client whose round the loop started
	// itself (see sessionloop_linux.go).
	sess *loopSession
}

func (w *evWriter) Write(b []byte) (int, error) {
	if len(w.spill) == 0 && w.queue.queue(w, b) {
		return len(b), nil
	}
	if err := w.settle(); err != nil {
		return 0, err
	}
	if len(w.spill) > 0 {
		w.spill = append(w.spill, b...)
		return len(b), nil
	}
	return w.writeNow(b)
}

// writeNow writes b with one call (or more, if interrupted); what the
// socket does not take is spilled. w has nothing spilled or queued.
func (w *evWriter) writeNow(b []byte) (int, error) {
	for off := 0; off < len(b); {
		n, err := rawWrite(w.fd, b[off:])
		switch {
		case err == syscall.EAGAIN:
			w.spill = append(w.spill[:0], b[off:]...)
			return len(b), nil
		case err == syscall.EINTR:
			continue
		case err != nil:
			return off, os.NewSyscallError("write", err)
		}
		off += n
	}
	return len(b), nil
}

// flush writes what was spilled, as far as the socket takes it.
func (w *evWriter) flush() error {
	for len(w.spill) > 0 {
		n, err := rawWrite(w.fd, w.spill)
		switch {
		case err == syscall.EAGAIN:
			return nil
		case err == syscall.EINTR:
			continue
		case err != nil:
			return os.NewSyscallError("write", err)
		}
		w.spill = w.spill[n:]
	}
	w.spill = w.spill[:0]
	if cap(w.spill) > defaultBufSize {
		w.spill = nil // do not keep a large result's worth for good
	}
	return nil
}

// fdReader reads a socket without blocking; EAGAIN is errWouldBlock.
type fdReader struct {
	fd int
	// short: the last read returned less than asked for, so the socket
	// held no more (what an edge-triggered side needs to know).
	short bool
}

var errWouldBlock = errors.New("read would block")

func (f *fdReader) Read(b []byte) (int, error) {
	for {
		n, err := rawRead(f.fd, b)
		f.short = n < len(b)
		switch {
		case err == syscall.EINTR:
			continue
		case err == syscall.EAGAIN:
			return 0, errWouldBlock
		case err != nil:
			return 0, os.NewSyscallError("read", err)
		case n == 0 && len(b) > 0:
			return 0, io.EOF
		}
		return n, nil
	}
}

// ready handles the epoll events of one side. Loop goroutine only.
func (r *evRelay) ready(side int, events uint32) {
	if r.ended || r.fds[side] < 0 {
		return
	}
	if side == 0 && r.tx != nil && r.tx.waiting {
		// Nothing is read while the client waits: only its leaving is
		// looked for (see watchForLeaving).
		if events&(syscall.EPOLLRDHUP|syscall.EPOLLHUP|syscall.EPOLLERR) != 0 ||
			events&syscall.EPOLLIN != 0 && r.saidGoodbye() {
			r.end(0, &disconnect{errClientLeft}, false)
			return
		}
		events &^= syscall.EPOLLIN
	}
	trouble := events&(syscall.EPOLLERR|syscall.EPOLLHUP) != 0
	if events&syscall.EPOLLOUT != 0 || trouble {
		// The direction writing to this side may go on.
		d := &r.dirs[1-side]
		if len(d.out.spill) > 0 {
			if err := d.out.flush(); err != nil {
				r.end(1-side, &writeError{err}, false)
				return
			}
			if side == 0 && r.tx != nil && len(d.out.spill) == 0 && !r.drainServer() {
				return
			}
		}
	}
	if events&syscall.EPOLLIN != 0 || trouble {
		if !r.step(side) {
			return
		}
	}
	r.updateMasks()
}

// saidGoodbye reports whether the waiting client sent a Terminate after its
// statement: pgx, for one, sends it as it gives up on a timed-out query
// but keeps its connection open until pgrotate closes it. What the socket
// holds is peeked, up to the loop's scratch buffer. Loop goroutine only.
func (r *evRelay) saidGoodbye() bool {
	n, err := peekInto(r.fds[0], r.loop.scratch)
	return err == nil && r.dirs[0].rd.saysGoodbye(r.loop.scratch[:n])
}

// step reads side once and forwards what can be forwarded. It reports
// whether the relay goes on.
func (r *evRelay) step(side int) bool {
	d := &r.dirs[side]
	if err := d.rd.fillShared(r.loop.scratch, d.need); err != nil {
		if err == errWouldBlock {
			return true
		}
		r.end(side, err, false)
		return false
	}
	return r.forward(side)
}

// forward passes on what side's reader holds. It reports whether the relay
// goes on.
func (r *evRelay) forward(side int) bool {
	d := &r.dirs[side]
	need, stop, err := d.rd.forward(&d.out, d.interest, d.in)
	d.rd.unshare()
	switch {
	case r.tx != nil && err == nil && stop && side == 1:
		return r.tx.transactionEnded(r)
	case err == errWait:
		return true // not read again until a connection is handed over (txRelay.serve)
	case err != nil || stop:
		r.end(side, err, stop && err == nil && side == 1)
		return false
	}
	d.need = need
	d.rd.release()
	if r.tx != nil && side == 0 {
		return r.tx.afterClient(r)
	}
	return true
}

// updateMasks sets each side's epoll interest: readable unless its
// direction is waiting for the other side to take spilled bytes, writable
// while the opposite direction has spilled bytes for it.
func (r *evRelay) updateMasks() {
	for side := range r.fds {
		if r.fds[side] < 0 || side == 1 && r.tx != nil {
			continue // a transaction's server side is edge-triggered for good
		}
		var m uint32
		switch {
		case side == 0 && r.tx != nil && r.tx.waiting:
			// Its statement waits: only its leaving is looked for, a
			// FIN or a Terminate among new bytes (edge-triggered: each
			// arrival is looked at once).
			m = syscall.EPOLLRDHUP | syscall.EPOLLIN | epollET
		case len(r.dirs[side].out.spill) == 0:
			m = syscall.EPOLLIN
		}
		if len(r.dirs[1-side].out.spill) > 0 {
			m |= syscall.EPOLLOUT
		}
		if m == r.mask[side] {
			continue
		}
		r.mask[side] = m
		ev := syscall.EpollEvent{Events: m, Fd: r.slot + 1, Pad: int32(side)}
		if err := epollCtl(r.loop.epfd, syscall.EPOLL_CTL_MOD, r.fds[side], &ev); err != nil {
			r.end(side, os.NewSyscallError("epoll_ctl", err), false)
			return
		}
	}
}

// end finishes the round: direction side stopped with err, the other is
// interrupted. Loop goroutine only.
func (r *evRelay) end(side int, err error, idleStop bool) {
	if r.ended {
		return
	}
	r.ended = true
	for i := range r.dirs {
		// What a direction queued goes out before the sockets change
		// hands; a socket that fails here fails its next use as well.
		_ = r.dirs[i].out.settle()
	}
	if r.tx != nil {
		r.tx.leaseEndedUnpassed(r)
		r.tx.unwait()
	}
	r.loop.remove(r)
	var res evResult
	res.errs[side] = err
	res.errs[1-side] = os.ErrDeadlineExceeded
	res.idleStop = idleStop
	if r.tx != nil && r.tx.leftBetween(side, err) {
		r.tx.c.s.endOnLoop(r.tx.c, err)
		return
	}
	if r.sess != nil && r.sess.leftIdle(r, side, err) {
		r.sess.endOnLoop(r, err)
		return
	}
	r.loop.courier.handBack(func() { r.deliver(res) })
}

// deliver hands the round's end over: to then on a new goroutine, or to
// whoever waits on done. Courier goroutine only.
func (r *evRelay) deliver(res evResult) {
	if r.then != nil {
		go r.then(res)
		return
	}
	r.done <- res
}

// interrupt ends the round from outside the loop with both directions
// interrupted (a kick), or with the client direction failing with err.
func (r *evRelay) interrupt(err error) {
	r.loop.post(func() {
		switch {
		case r.ended:
		case err == nil && r.tx != nil && r.fds[1] >= 0:
			r.tx.leaveWhenIdle = true // a transaction is open: leave after it
		case err == nil:
			r.end(1, os.ErrDeadlineExceeded, false)
		default:
			r.end(0, err, false)
		}
	})
}

// startRelay hands a relay round on the sockets fds (client, server; see
// detach) to the loop. setup, if set, completes the relay before the loop
// sees it.
func (l *eventLoop) startRelay(fds [2]int, dirs [2]evDir, setup func(*evRelay)) (*evRelay, error) {
	r := l.newRelay(fds, dirs, setup)
	if err := l.launch(r, false); err != nil {
		return nil, err
	}
	return r, nil
}

// launch hands a round newRelay made to the loop: begun at once when the
// caller is the loop goroutine itself (here), else posted. A session that
// starts a round here must not hold kickMu: the round may end as it begins
// (a Terminate the client sent along with its login), and its end on the
// loop takes kickMu (endOnLoop).
func (l *eventLoop) launch(r *evRelay, here bool) error {
	if here {
		l.begin(r)
		return nil
	}
	if !l.post(func() { l.begin(r) }) {
		return errors.New("event loop stopped")
	}
	return nil
}

func (l *eventLoop) newRelay(fds [2]int, dirs [2]evDir, setup func(*evRelay)) *evRelay {
	r := &evRelay{loop: l, fds: fds, dirs: dirs}
	if setup != nil {
		setup(r)
	}
	if r.then == nil {
		r.done = make(chan evResult, 1)
	}
	for i := range r.dirs {
		d := &r.dirs[i]
		if d.rd != nil && r.fds[i] >= 0 && (i == 0 || r.tx == nil) {
			r.rdrs[i].fd = r.fds[i]
			d.rd.src = &r.rdrs[i]
		}
		d.out.fd = r.fds[1-i]
		d.out.queue, d.out.owner, d.out.dir = &l.sends, r, i
		d.need = 1
	}
	return r
}

// begin adds r to the loop. Loop goroutine only.
func (l *eventLoop) begin(r *evRelay) {
	if err := l.add(r); err != nil {
		r.ended = true
		l.courier.handBack(func() { r.deliver(evResult{errs: [2]error{err, os.ErrDeadlineExceeded}}) })
		return
	}
	// Bytes buffered before the round (a pipelined request behind the
	// one that ended the last round, or one sent with the login's last
	// message) must not wait for the socket to be readable again.
	r.kickBuffered()
}

// kickBuffered forwards what the readers already hold. Loop goroutine only.
func (r *evRelay) kickBuffered() {
	for side := range r.dirs {
		if r.ended || r.fds[side] < 0 || !r.dirs[side].rd.buffered() {
			continue
		}
		if !r.forward(side) {
			return
		}
	}
	if !r.ended && r.tx != nil && r.fds[1] >= 0 && !r.drainServer() {
		return // bytes may have come while no round ran: no edge announces them
	}
	if !r.ended {
		r.updateMasks()
	}
}

// detach takes plain TCP or Unix sockets away from Go's netpoller, which
// would otherwise be woken for every byte the loop relays: it duplicates
// each descriptor and closes the original connection. ok is false, and
// nothing is changed, when a connection is not a plain socket (TLS).
func detach(conns ...net.Conn) (fds []int, ok bool, err error) {
	for _, c := range conns {
		if !plainSocket(c) {
			return nil, false, nil
		}
	}
	for _, c := range conns {
		fd, err := dupSocket(c.(syscall.Conn))
		if err != nil {
			for _, fd := range fds {
				_ = syscall.Close(fd)
			}
			return nil, false, err
		}
		fds = append(fds, fd)
	}
	for _, c := range conns {
		_ = c.Close()
	}
	return fds, true, nil
}

// plainSocket reports whether detach can take c: a TCP or Unix socket
// served by Go's netpoller (not TLS, not already a pollConn).
func plainSocket(c net.Conn) bool {
	switch c.(type) {
	case *net.TCPConn, *net.UnixConn:
		return true
	}
	return false
}

// attach turns a descriptor detach made back into a connection served by
// Go's netpoller. The descriptor is closed either way.
func attach(fd int) (net.Conn, error) {
	f := os.NewFile(uintptr(fd), "")
	defer f.Close()
	return net.FileConn(f)
}

// closeFD closes a descriptor detach made, without handing it back.
func closeFD(fd int) { _ = closeRaw(fd) }

func dupSocket(c syscall.Conn) (fd int, err error) {
	rc, err := c.SyscallConn()
	if err != nil {
		return -1, err
	}
	var dupErr error
	cerr := rc.Control(func(orig uintptr) {
		r, _, errno := syscall.Syscall(syscall.SYS_FCNTL, orig, syscall.F_DUPFD_CLOEXEC, 0)
		if errno != 0 {
			dupErr = os.NewSyscallError("fcntl", errno)
			return
		}
		fd = int(r)
	})
	if cerr != nil {
		return -1, cerr
	}
	return fd, dupErr
}

// epollWait waits for events without telling the scheduler: the loop keeps
// its P while it waits (loopProcs makes sure goroutines have another), and
// sysmon does not wake every 20 µs to take it back, which measured as a
// context switch per transaction. The runtime's preemption signal (sysmon
// preempts a goroutine that ran 10 ms, and the garbage collector stops the
// world) interrupts the wait with EINTR, and run yields then. Waits are
// short (rawWait): an idle loop sleeps in a blocking system call instead
// (sleep), which no signal needs to interrupt.
//
// epollWait and sleep make epoll_pwait(2) with no signal mask, which is
// epoll_wait(2): arm64 and the other newer Linux ports have only
// epoll_pwait, as they have only ppoll (see pollConn.wait).
func epollWait(epfd int, events []syscall.EpollEvent, timeoutMs int) (int, error) {
	n, _, errno := syscall.RawSyscall6(syscall.SYS_EPOLL_PWAIT, uintptr(epfd),
		uintptr(unsafe.Pointer(&events[0])), uintptr(len(events)), uintptr(timeoutMs), 0, 0)
	if errno != 0 {
		return 0, errno
	}
	return int(n), nil
}

// rawRead and rawWrite are recv(2) and send(2) on non-blocking sockets.
// They never block, so they skip the scheduler's syscall bookkeeping; and
// as socket calls they skip the file layer read(2) and write(2) go through
// (perf, select-only transactions: vfs_read, vfs_write and the socket's
// iterator functions were 3.5 % of pgrotate's samples; __sys_recvfrom and
// __sys_sendto are 1.1 %, as in PgBouncer, which calls them too).
// MSG_NOSIGNAL: a peer that left is EPIPE, without a SIGPIPE to deliver.
func rawRead(fd int, b []byte) (int, error) {
	return rawIO(syscall.SYS_RECVFROM, fd, b, 0)
}

func rawWrite(fd int, b []byte) (int, error) {
	return rawIO(syscall.SYS_SENDTO, fd, b, syscall.MSG_NOSIGNAL)
}

// eventfdRead and eventfdWrite are read(2) and write(2) on the loop's
// eventfd, which is no socket.
func eventfdRead(fd int, b []byte) (int, error)  { return rawIO(syscall.SYS_READ, fd, b, 0) }
func eventfdWrite(fd int, b []byte) (int, error) { return rawIO(syscall.SYS_WRITE, fd, b, 0) }

// epollCtl and closeRaw are epoll_ctl(2) and close(2), raw like the calls
// above. None of the loop's system calls blocks (a socket is closed without
// lingering), so none needs the scheduler's syscall bookkeeping. Made
// through syscall.Syscall, each marked the loop's P as in a system call:
// when sysmon's check for a goroutine that ran 10 ms without a break lands
// on one, it takes the P from the loop (runtime.retake), and after taking a
// P it polls every 20 µs for about a millisecond. During pgbench -C that was
// 16–23 such short sleeps a second against ~1 with raw calls (perf trace),
// and 0.25 more context switches per login (7.44 against 7.19, 8 pairs).
func epollCtl(epfd, op, fd int, ev *syscall.EpollEvent) error {
	_, _, errno := syscall.RawSyscall6(syscall.SYS_EPOLL_CTL, uintptr(epfd), uintptr(op), uintptr(fd), uintptr(unsafe.Pointer(ev)), 0, 0)
	if errno != 0 {
		return errno
	}
	return nil
}

func closeRaw(fd int) error {
	_, _, errno := syscall.RawSyscall(syscall.SYS_CLOSE, uintptr(fd), 0, 0)
	if errno != 0 {
		return errno
	}
	return nil
}

// rawIO makes one of the calls above: a descriptor, a buffer and, for the
// socket calls, flags (recvfrom's and sendto's address arguments are nil).
func rawIO(trap uintptr, fd int, b []byte, flags int) (int, error) {
	if len(b) == 0 {
		return 0, nil
	}
	n, _, errno := syscall.RawSyscall6(trap, uintptr(fd), uintptr(unsafe.Pointer(&b[0])), uintptr(len(b)), uintptr(flags), 0, 0)
	if errno != 0 {
		return 0, errno
	}
	return int(n), nil
}
