package proxy

import (
	"net"
	"syscall"
	"testing"
	"time"
)

// The loop sets TCP_NODELAY once, on the listening socket, and not on each
// client it accepts: Linux gives an accepted socket the listener's option.
// The client's address, IPv4 or IPv6, comes from accept4 itself, with no
// getpeername, and the socket comes non-blocking, as the loop needs it.
func TestAcceptedSocketsInheritNoDelay(t *testing.T) {
	for _, addr := range []string{"127.0.0.1:0", "[::1]:0"} {
		t.Run(addr, func(t *testing.T) {
			ln, err := net.Listen("tcp", addr)
			if err != nil && addr == "[::1]:0" {
				t.Skipf("no IPv6 loopback here: %v", err)
			}
			mustOK(t, err)
			defer ln.Close()
			fd, err := dupSocket(ln.(*net.TCPListener))
			mustOK(t, err)
			defer closeFD(fd)
			noDelayForAll(fd)

			c, err := net.Dial("tcp", ln.Addr().String())
			mustOK(t, err)
			defer c.Close()
			var nfd int
			var remote net.Addr
			for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(time.Millisecond) {
				nfd, remote, err = accept4(fd)
				if err != syscall.EAGAIN || time.Now().After(deadline) {
					break
				}
			}
			mustOK(t, err)
			defer closeFD(nfd)

			if v, err := syscall.GetsockoptInt(nfd, syscall.IPPROTO_TCP, syscall.TCP_NODELAY); err != nil || v == 0 {
				t.Errorf("accepted socket: TCP_NODELAY %d, %v; want it inherited from the listener", v, err)
			}
			if got, want := remote.String(), c.LocalAddr().String(); got != want {
				t.Errorf("client address %s, want %s", got, want)
			}
			if flags, err := fcntlFlags(nfd); err != nil || flags&syscall.O_NONBLOCK == 0 {
				t.Errorf("accepted socket: flags %#x, %v; want it non-blocking", flags, err)
			}
		})
	}
}

func fcntlFlags(fd int) (int, error) {
	r, _, errno := syscall.Syscall(syscall.SYS_FCNTL, uintptr(fd), syscall.F_GETFL, 0)
	if errno != 0 {
		return 0, errno
	}
	return int(r), nil
}
