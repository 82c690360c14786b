//go:build linux

package proxy

import (
	"bytes"
	"context"
	"net"
	"os"
	"sync"
	"syscall"
	"time"
	"unsafe"
)

// loopAcceptor is a TCP listener whose clients the event loop accepts, so
// that a client logging in on the loop (see loopLogin) never passes through
// Go's netpoller: accepting on a goroutine cost a wake-up of the
// netpoller's thread per client, a hand-off to the loop (an eventfd write
// and read) and a duplicate and a close of the socket to take it out of the
// netpoller again.
//
// The loop accepts on a duplicate of the listener's descriptor, and the
// listener itself is closed at once: left open, it stayed in Go's
// netpoller, whose thread woke for every client that connected (a context
// switch per login, for nothing). Closing the Server's listeners (Close,
// Shutdown) stops the loop's accepting (acceptingListener.Close). When
// accepting fails for want of descriptors or memory (EMFILE, ENFILE,
// ENOBUFS, ENOMEM), the loop stops accepting for acceptPause and tries again.
type loopAcceptor struct {
	srv  *Server
	ctx  context.Context
	l    *eventLoop
	fd   int
	slot int32
	addr net.Addr
	// pausedUntil: accepting failed, and the listener is out of the epoll
	// set until then. Loop goroutine only.
	pausedUntil time.Time
	// done is closed once the loop no longer accepts.
	done     chan struct{}
	stopOnce sync.Once
}

// acceptPause is how long the loop stops accepting after a failure.
const acceptPause = 100 * time.Millisecond

// acceptTag marks the epoll events of a listener; Fd holds its slot.
const acceptTag = 4

// acceptBatch bounds the clients accepted per event, so that relays are
// not held up by a burst of connections; the listener stays readable.
const acceptBatch = 64

// acceptOnLoop hands ln's accepting to the event loop if its clients would
// log in there anyway (loginOnLoop); nil leaves it to Serve.
func (s *Server) acceptOnLoop(ctx context.Context, ln net.Listener) *loopAcceptor {
	tl, ok := ln.(*net.TCPListener)
	if !ok {
		return nil
	}
	l := s.loginLoop()
	if l == nil {
		return nil
	}
	fd, err := dupSocket(tl)
	if err != nil {
		s.log.Warn("accepting clients on a goroutine: cannot hand the listener to the event loop", "err", err)
		return nil
	}
	noDelayForAll(fd)
	a := &loopAcceptor{srv: s, ctx: ctx, l: l, fd: fd, addr: ln.Addr(), done: make(chan struct{})}
	if !l.post(func() { l.startAccepting(a) }) {
		closeFD(fd)
		return nil
	}
	_ = ln.Close() // the socket stays open, and listening, through fd
	return a
}

// noDelayForAll sets TCP_NODELAY on a listening socket: the connections
// it accepts inherit it, which saves the setsockopt Go makes per client
// (TestAcceptedSocketsInheritNoDelay).
func noDelayForAll(fd int) {
	_ = syscall.SetsockoptInt(fd, syscall.IPPROTO_TCP, syscall.TCP_NODELAY, 1)
}

// startAccepting registers a's listener. Loop goroutine only.
func (l *eventLoop) startAccepting(a *loopAcceptor) {
	a.slot = int32(len(l.acceptors))
	l.acceptors = append(l.acceptors, a)
	ev := syscall.EpollEvent{Events: syscall.EPOLLIN, Fd: a.slot, Pad: acceptTag}
	if err := epollCtl(l.epfd, syscall.EPOLL_CTL_ADD, a.fd, &ev); err != nil {
		// Only a programming error gets here: the descriptor is a fresh
		// duplicate of a listening socket.
		a.srv.log.Error("cannot accept clients: registering the listener with the event loop failed", "err", os.NewSyscallError("epoll_ctl", err))
		a.stop()
	}
}

// ready accepts the clients waiting. Loop goroutine only.
func (a *loopAcceptor) ready() {
	for range acceptBatch {
		fd, remote, err := accept4(a.fd)
		switch {
		case err == syscall.EAGAIN:
			return
		case err == syscall.EINTR || err == syscall.ECONNABORTED:
			continue // a client that left before it was accepted
		case err != nil:
			a.pause(os.NewSyscallError("accept4", err))
			return
		}
		pc := &pollConn{fd: fd, local: a.addr, remote: remote, slot: -1}
		a.srv.newSession(a.ctx, pc, true)
	}
}

// pause takes the listener out of the epoll set for acceptPause after a
// failure to accept; clients wait in the listen backlog meanwhile. Loop
// goroutine only.
func (a *loopAcceptor) pause(err error) {
	a.srv.log.Warn("cannot accept clients; trying again shortly", "err", err, "pause", acceptPause)
	_ = epollCtl(a.l.epfd, syscall.EPOLL_CTL_DEL, a.fd, nil)
	a.pausedUntil = time.Now().Add(acceptPause)
	a.l.acceptPaused++
}

// resumeAccepting puts paused listeners back once their pause is over.
// Loop goroutine only.
func (l *eventLoop) resumeAccepting(now time.Time) {
	for _, a := range l.acceptors {
		if a == nil || a.pausedUntil.IsZero() || now.Before(a.pausedUntil) {
			continue
		}
		a.pausedUntil = time.Time{}
		l.acceptPaused--
		ev := syscall.EpollEvent{Events: syscall.EPOLLIN, Fd: a.slot, Pad: acceptTag}
		if err := epollCtl(l.epfd, syscall.EPOLL_CTL_ADD, a.fd, &ev); err != nil {
			a.pause(os.NewSyscallError("epoll_ctl", err))
		}
	}
}

// stop ends accepting on the loop. Loop goroutine only.
func (a *loopAcceptor) stop() {
	a.stopOnce.Do(func() {
		if !a.pausedUntil.IsZero() {
			a.pausedUntil = time.Time{}
			a.l.acceptPaused--
		}
		_ = epollCtl(a.l.epfd, syscall.EPOLL_CTL_DEL, a.fd, nil)
		if int(a.slot) < len(a.l.acceptors) && a.l.acceptors[a.slot] == a {
			a.l.acceptors[a.slot] = nil
		}
		closeFD(a.fd)
		close(a.done)
	})
}

// accept4 accepts a client on a non-blocking listener as a non-blocking,
// close-on-exec socket, and returns its address. It is raw, like the loop's
// other system calls (see rawIO).
func accept4(fd int) (int, net.Addr, error) {
	var sa syscall.RawSockaddrAny
	size := uint32(syscall.SizeofSockaddrAny)
	r, _, errno := syscall.RawSyscall6(syscall.SYS_ACCEPT4, uintptr(fd), uintptr(unsafe.Pointer(&sa)),
		uintptr(unsafe.Pointer(&size)), syscall.SOCK_NONBLOCK|syscall.SOCK_CLOEXEC, 0, 0)
	if errno != 0 {
		return -1, nil, errno
	}
	return int(r), sockaddrAddr(&sa), nil
}

// sockaddrAddr is the client address accept4 returned.
func sockaddrAddr(sa *syscall.RawSockaddrAny) net.Addr {
	switch sa.Addr.Family {
	case syscall.AF_INET:
		in := (*syscall.RawSockaddrInet4)(unsafe.Pointer(sa))
		a := in.Addr
		return &net.TCPAddr{IP: net.IPv4(a[0], a[1], a[2], a[3]), Port: networkPort(in.Port)}
	case syscall.AF_INET6:
		in := (*syscall.RawSockaddrInet6)(unsafe.Pointer(sa))
		return &net.TCPAddr{IP: net.IP(bytes.Clone(in.Addr[:])), Port: networkPort(in.Port), Zone: zoneName(in.Scope_id)}
	}
	return &net.TCPAddr{}
}

// networkPort reads a port stored in network byte order.
func networkPort(p uint16) int {
	b := (*[2]byte)(unsafe.Pointer(&p))
	return int(b[0])<<8 | int(b[1])
}

func zoneName(id uint32) string {
	if id == 0 {
		return ""
	}
	if ifi, err := net.InterfaceByIndex(int(id)); err == nil {
		return ifi.Name
	}
	return ""
}

// acceptingListener is a listener the loop accepts on: closing it stops
// the loop's accepting before it closes the listener.
type acceptingListener struct {
	net.Listener
	a *loopAcceptor
}

// Close does not wait for the loop to stop accepting: its callers hold
// Server.mu, which the loop takes for each session it starts or ends. A
// client the loop accepts meanwhile is turned away as after Close, or
// told to leave as during Shutdown. (The listener itself was closed when
// the loop took it over.)
func (ln acceptingListener) Close() error {
	a := ln.a
	if !a.l.post(a.stop) {
		a.stopOnce.Do(func() { closeFD(a.fd); close(a.done) })
	}
	return nil
}

// serveOnLoop waits while the loop accepts a's clients.
func (s *Server) serveOnLoop(a *loopAcceptor) { <-a.done }
