//go:build linux

package proxy

import (
	"io"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"
)

// pollConn is a server connection kept out of Go's netpoller, so that the
// event loop can relay it at every transaction (or, in session mode, every
// session) without a wake-up of the netpoller for each of its bytes and
// without detaching it each time (see detach). The blocking work done on it
// outside the loop (applying a client's settings, RESET ROLE, DISCARD ALL,
// the health check, closing) waits with poll(2).
//
// The loop uses the descriptor directly while a transaction holds the
// connection; the pool only closes a connection nobody holds, so the
// descriptor is never closed under the loop.
type pollConn struct {
	fd            int
	local, remote net.Addr
	readDL        atomic.Int64 // deadlines as Unix nanoseconds; 0: none
	writeDL       atomic.Int64

	mu     sync.Mutex
	refs   int // blocking calls in progress
	closed bool

	// Event loop registration (txRelay.own): the loop it is registered
	// with, if any. slot, owner and rdr belong to the loop goroutine.
	loop  atomic.Pointer[eventLoop]
	slot  int32
	owner *evRelay // the relay of the transaction holding it, if any
	rdr   fdReader
	// dirty: the socket had an event while no transaction on the loop held
	// it: maybe a FATAL from pg_terminate_backend or a notification of a
	// LISTEN some client left behind, maybe only the reply to a health
	// check. The loop looks (pending) before handing it out, and retires
	// it rather than pass such bytes to the next client.
	dirty bool
}

// toPollConn turns a plain TCP or Unix socket into a pollConn; anything
// else (TLS) is returned as it is and relayed on goroutines.
func toPollConn(c net.Conn) net.Conn {
	local, remote := c.LocalAddr(), c.RemoteAddr()
	fds, ok, err := detach(c)
	if !ok || err != nil {
		return c
	}
	return &pollConn{fd: fds[0], local: local, remote: remote, slot: -1}
}

// loopFD returns the descriptor the event loop may relay, if c is a pollConn.
func loopFD(c net.Conn) (int, bool) {
	pc, ok := c.(*pollConn)
	if !ok {
		return -1, false
	}
	return pc.fd, true
}

// poll(2) event bits (the syscall package does not name them).
const (
	pollIn  = 0x1
	pollOut = 0x4
)

// pollSlice bounds one poll(2) wait, so that a deadline moved by another
// goroutine (to interrupt a read) is seen soon.
const pollSlice = 100 * time.Millisecond

func (c *pollConn) Read(b []byte) (int, error) {
	if err := c.incref(); err != nil {
		return 0, err
	}
	defer c.decref()
	if expired(&c.readDL) {
		return 0, os.ErrDeadlineExceeded
	}
	for {
		n, err := rawRead(c.fd, b)
		switch {
		case err == nil && n == 0 && len(b) > 0:
			return 0, io.EOF
		case err == nil:
			return n, nil
		case err == syscall.EINTR:
		case err == syscall.EAGAIN:
			if err := c.wait(pollIn, &c.readDL); err != nil {
				return 0, err
			}
		default:
			return 0, &net.OpError{Op: "read", Net: c.remote.Network(), Addr: c.remote, Err: os.NewSyscallError("read", err)}
		}
	}
}

func (c *pollConn) Write(b []byte) (int, error) {
	if err := c.incref(); err != nil {
		return 0, err
	}
	defer c.decref()
	off := 0
	for off < len(b) {
		n, err := rawWrite(c.fd, b[off:])
		switch {
		case err == nil:
			off += n
		case err == syscall.EINTR:
		case err == syscall.EAGAIN:
			if err := c.wait(pollOut, &c.writeDL); err != nil {
				return off, err
			}
		default:
			return off, &net.OpError{Op: "write", Net: c.remote.Network(), Addr: c.remote, Err: os.NewSyscallError("write", err)}
		}
	}
	return off, nil
}

// wait blocks until the socket is ready for events, the deadline passes or
// the connection is closed.
func (c *pollConn) wait(events int16, deadline *atomic.Int64) error {
	slice := pollSlice
	if dl := deadline.Load(); dl != 0 {
		left := time.Until(time.Unix(0, dl))
		if left <= 0 {
			return os.ErrDeadlineExceeded
		}
		slice = min(slice, left)
	}
	c.mu.Lock()
	closed := c.closed
	c.mu.Unlock()
	if closed {
		return net.ErrClosed
	}
	pfd := struct {
		fd      int32
		events  int16
		revents int16
	}{int32(c.fd), events, 0}
	// ppoll(2) with no signal mask is poll(2), which arm64 does not have.
	ts := syscall.NsecToTimespec(int64(slice))
	_, _, errno := syscall.Syscall6(syscall.SYS_PPOLL, uintptr(unsafe.Pointer(&pfd)), 1, uintptr(unsafe.Pointer(&ts)), 0, 0, 0)
	if errno != 0 && errno != syscall.EINTR {
		return os.NewSyscallError("ppoll", errno)
	}
	return nil
}

func (c *pollConn) incref() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return net.ErrClosed
	}
	c.refs++
	return nil
}

func (c *pollConn) decref() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.refs--
	if c.closed && c.refs == 0 {
		_ = closeRaw(c.fd)
	}
}

// Close closes the socket; a blocking call in progress on another goroutine
// is woken (shutdown) and the descriptor is closed when it returns.
func (c *pollConn) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return net.ErrClosed
	}
	c.closed = true
	if l := c.loop.Load(); l != nil {
		// Closing the descriptor takes it out of the epoll set; its slot
		// is freed by the loop.
		l.post(func() {
			if c.slot >= 0 {
				l.conns.drop(c.slot)
				c.slot = -1
			}
		})
	}
	if c.refs > 0 {
		_ = syscall.Shutdown(c.fd, syscall.SHUT_RDWR)
		return nil
	}
	return closeRaw(c.fd)
}

// handBack turns the socket back into a connection served by Go's
// netpoller; c is closed, the socket lives on in the returned connection.
// Only for a connection nobody else uses and the loop does not hold.
func (c *pollConn) handBack() (net.Conn, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return nil, net.ErrClosed
	}
	c.closed = true
	return attach(c.fd)
}

// pending reports whether bytes or the end of the stream wait to be read,
// without reading them.
func (c *pollConn) pending() bool { return c.peek() != peekQuiet }

// peek looks at the socket without blocking or consuming (see peek).
func (c *pollConn) peek() peekState { return peekFD(c.fd) }

// peekFD looks at socket fd without blocking or consuming.
func peekFD(fd int) peekState {
	var b [1]byte
	n, err := peekInto(fd, b[:])
	return peekResult(n, err)
}

// peekInto copies what socket fd holds into b, without blocking or
// consuming it.
func peekInto(fd int, b []byte) (int, error) {
	n, _, errno := syscall.RawSyscall6(syscall.SYS_RECVFROM, uintptr(fd), uintptr(unsafe.Pointer(&b[0])), uintptr(len(b)),
		syscall.MSG_PEEK|syscall.MSG_DONTWAIT, 0, 0)
	if errno != 0 {
		return 0, errno
	}
	return int(n), nil
}

// shutdown ends the connection in both directions without closing the
// descriptor: the loop sees the end, and blocked calls return. A closed
// connection is left alone: its descriptor number may belong to another
// socket by now.
func (c *pollConn) shutdown() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.closed {
		_ = syscall.Shutdown(c.fd, syscall.SHUT_RDWR)
	}
}

func (c *pollConn) LocalAddr() net.Addr  { return c.local }
func (c *pollConn) RemoteAddr() net.Addr { return c.remote }

func (c *pollConn) SetDeadline(t time.Time) error {
	c.readDL.Store(unixNanos(t))
	c.writeDL.Store(unixNanos(t))
	return nil
}

func (c *pollConn) SetReadDeadline(t time.Time) error {
	c.readDL.Store(unixNanos(t))
	return nil
}

func (c *pollConn) SetWriteDeadline(t time.Time) error {
	c.writeDL.Store(unixNanos(t))
	return nil
}

func expired(deadline *atomic.Int64) bool {
	dl := deadline.Load()
	return dl != 0 && time.Now().UnixNano() >= dl
}

func unixNanos(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return max(t.UnixNano(), 1)
}

// peerHungUp reports whether the peer shut its side down (see hungUp).
func (c *pollConn) peerHungUp() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return !c.closed && hungUp(uintptr(c.fd))
}
