//go:build linux

package daemon

import (
	"context"
	"net"
	"syscall"
)

// Client sockets get Go's TCP keepalive (probe after 15 s idle, every 15 s,
// give up after 9): a client that vanished without a FIN is noticed in
// minutes, not the kernel's two hours, and a session-mode server connection
// it held goes back to the pool.
const (
	keepAliveIdleSecs     = 15
	keepAliveIntervalSecs = 15
	keepAliveProbes       = 9
)

// deferAcceptSecs bounds how long the kernel holds a new connection whose
// client has sent nothing yet (TCP_DEFER_ACCEPT): a PostgreSQL client always
// speaks first (SSLRequest, StartupMessage, CancelRequest, or a TLS
// ClientHello), so a connection is accepted with its first packet already
// there, and the event loop reads it at once instead of waiting for it in
// one more epoll round (a context switch per login). A client silent for
// longer is accepted then, and auth_timeout applies. PgBouncer's
// tcp_defer_accept does the same, with the same default.
const deferAcceptSecs = 45

// listenTCP listens for clients with keepalive and deferred accepts set
// once, on the listening socket. Linux copies a listening socket's options
// to every connection it accepts, so Go need not set them again per
// connection (KeepAlive -1): that was four setsockopt calls per login, out
// of ~59 system calls a session-mode login (pgbench -C) makes.
func listenTCP(addr string) (net.Listener, error) {
	lc := net.ListenConfig{KeepAlive: -1, Control: setListenerOptions}
	return lc.Listen(context.Background(), "tcp", addr)
}

func setListenerOptions(_, _ string, rc syscall.RawConn) error {
	var serr error
	err := rc.Control(func(fd uintptr) {
		opts := []struct{ level, name, value int }{
			{syscall.SOL_SOCKET, syscall.SO_KEEPALIVE, 1},
			{syscall.IPPROTO_TCP, syscall.TCP_KEEPIDLE, keepAliveIdleSecs},
			{syscall.IPPROTO_TCP, syscall.TCP_KEEPINTVL, keepAliveIntervalSecs},
			{syscall.IPPROTO_TCP, syscall.TCP_KEEPCNT, keepAliveProbes},
			{syscall.IPPROTO_TCP, syscall.TCP_DEFER_ACCEPT, deferAcceptSecs},
		}
		for _, o := range opts {
			if serr = syscall.SetsockoptInt(int(fd), o.level, o.name, o.value); serr != nil {
				return
			}
		}
	})
	if err != nil {
		return err
	}
	return serr
}
