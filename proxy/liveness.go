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
func closedByServer(c net.Conn) bool {
	switch cc := c.(type) {
	case *tls.Conn:
		c = cc.NetConn()
	case *pollConn:
		return cc.pending()
	}
	sc, ok := c.(syscall.Conn)
	if !ok {
		return false
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return false
	}
	closed := false
	var b [1]byte
	_ = rc.Read(func(fd uintptr) bool {
		n, _, err := syscall.Recvfrom(int(fd), b[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
		closed = err == nil && n >= 0 // data or EOF; EAGAIN means all quiet
		return true
	})
	return closed
}
