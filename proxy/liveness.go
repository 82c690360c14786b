package proxy

import (
	"crypto/tls"
	"net"
	"syscall"
)

// closedByServer reports whether PostgreSQL has sent anything on an idle
// connection: an idle session sends nothing until asked, except a FATAL
// before it closes (shutdown, failover, pg_terminate_backend) and then EOF.
// It peeks without blocking or consuming, one system call, so a client is
// not handed a connection that died while it sat in the pool.
func closedByServer(c net.Conn) bool { return peek(c) != peekQuiet }

// peekState is what a look at a connection's socket finds, without reading.
type peekState int

const (
	peekQuiet peekState = iota // nothing to read
	peekData                   // bytes wait (under TLS: any record, close_notify too)
	peekEnd                    // the peer closed or reset the connection
)

// peek looks at c's socket without blocking or consuming: one system call.
func peek(c net.Conn) peekState {
	if cc, ok := c.(*tls.Conn); ok {
		c = cc.NetConn()
	}
	if pc, ok := c.(*pollConn); ok {
		return pc.peek()
	}
	var b [1]byte
	n, ok, err := peekBytes(c, b[:])
	if !ok {
		return peekQuiet
	}
	return peekResult(n, err)
}

// peekBytes copies what c's socket holds into b, without blocking or
// consuming it; ok is false if c has no socket of its own to look at.
func peekBytes(c net.Conn, b []byte) (n int, ok bool, err error) {
	onSocket(c, func(fd uintptr) {
		n, _, err = syscall.Recvfrom(int(fd), b, syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
		ok = true
	})
	return n, ok, err
}

// onSocket calls f with the descriptor of c's socket, if it has one.
func onSocket(c net.Conn, f func(fd uintptr)) {
	if sc, ok := c.(syscall.Conn); ok {
		if rc, err := sc.SyscallConn(); err == nil {
			_ = rc.Control(f)
		}
	}
}

// peekResult reads the outcome of a MSG_PEEK receive.
func peekResult(n int, err error) peekState {
	switch {
	case err == syscall.EAGAIN:
		return peekQuiet
	case err == nil && n > 0:
		return peekData
	}
	return peekEnd // EOF, or an error such as ECONNRESET
}

// peerClosed reports whether the peer has closed its side of c: the end of
// the stream is there, maybe after bytes not read yet (a Terminate, which
// a peek finds first).
func peerClosed(c net.Conn) bool {
	if peek(c) == peekEnd {
		return true
	}
	if cc, ok := c.(*tls.Conn); ok {
		c = cc.NetConn()
	}
	if pc, ok := c.(*pollConn); ok {
		return pc.peerHungUp()
	}
	closed := false
	onSocket(c, func(fd uintptr) { closed = hungUp(fd) })
	return closed
}
