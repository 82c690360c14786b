package proxy

import (
	"net"
	"syscall"
	"testing"
	"time"
)

// The loop sets TCP_NODELAY once, on the listening socket, and not on each
// client it accepts: Linux gives an accepted socket the listener's option.
// The client's address comes from accept4 itself, with no getpeername.
func TestAcceptedSocketsInheritNoDelay(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
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
	var sa syscall.Sockaddr
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(time.Millisecond) {
		nfd, sa, err = syscall.Accept4(fd, syscall.SOCK_NONBLOCK|syscall.SOCK_CLOEXEC)
		if err != syscall.EAGAIN || time.Now().After(deadline) {
			break
		}
	}
	mustOK(t, err)
	defer closeFD(nfd)

	if v, err := syscall.GetsockoptInt(nfd, syscall.IPPROTO_TCP, syscall.TCP_NODELAY); err != nil || v == 0 {
		t.Errorf("accepted socket: TCP_NODELAY %d, %v; want it inherited from the listener", v, err)
	}
	if got, want := sockaddrAddr(sa).String(), c.LocalAddr().String(); got != want {
		t.Errorf("client address %s, want %s", got, want)
	}
}
