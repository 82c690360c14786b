//go:build linux

package daemon

import (
	"net"
	"syscall"
	"testing"

	"go.uber.org/goleak"

	"github.com/pgrotate/pgrotate/configs"
)

// A client connection accepted on the listener Listen opens has TCP
// keepalive on with pgrotate's timings, although no option is set on it
// after accept: Linux copies them from the listening socket.
func TestAcceptedClientsHaveKeepalive(t *testing.T) {
	defer goleak.VerifyNone(t)
	ls, err := Listen(&configs.Config{Listen: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	defer ls.Close()
	client, err := net.Dial("tcp", ls.Clients.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	conn, err := ls.Clients.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()

	rc, err := conn.(*net.TCPConn).SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	want := []struct {
		name       string
		level, opt int
		value      int
	}{
		{"SO_KEEPALIVE", syscall.SOL_SOCKET, syscall.SO_KEEPALIVE, 1},
		{"TCP_KEEPIDLE", syscall.IPPROTO_TCP, syscall.TCP_KEEPIDLE, keepAliveIdleSecs},
		{"TCP_KEEPINTVL", syscall.IPPROTO_TCP, syscall.TCP_KEEPINTVL, keepAliveIntervalSecs},
		{"TCP_KEEPCNT", syscall.IPPROTO_TCP, syscall.TCP_KEEPCNT, keepAliveProbes},
		{"TCP_NODELAY", syscall.IPPROTO_TCP, syscall.TCP_NODELAY, 1},
	}
	for _, w := range want {
		var got int
		var gerr error
		if err := rc.Control(func(fd uintptr) { got, gerr = syscall.GetsockoptInt(int(fd), w.level, w.opt) }); err != nil {
			t.Fatal(err)
		}
		if gerr != nil {
			t.Fatalf("%s: %v", w.name, gerr)
		}
		if got != w.value {
			t.Errorf("%s = %d on the accepted connection, want %d", w.name, got, w.value)
		}
	}
}
