//go:build linux

package daemon

import (
	"errors"
	"net"
	"os"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/pgrotate/pgrotate/configs"
)

// A client connection accepted on the listener Listen opens has TCP
// keepalive on with pgrotate's timings, although no option is set on it
// after accept: Linux copies them from the listening socket.
func TestAcceptedClientsHaveKeepalive(t *testing.T) {
	defer goleak.VerifyNone(t)
	ls := clientListener(t)
	defer ls.Close()
	client := dialClient(t, ls.Clients.Addr().String())
	defer client.Close()
	if _, err := client.Write([]byte{0}); err != nil { // accepted once it speaks
		t.Fatal(err)
	}
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

// The listener hands over a connection once its client has sent something:
// a PostgreSQL client speaks first, so the event loop finds the first packet
// there when it accepts. A client that connected earlier but is still silent
// waits in the kernel (for up to deferAcceptSecs).
func TestListenerAcceptsClientsOnceTheySpeak(t *testing.T) {
	defer goleak.VerifyNone(t)
	ls := clientListener(t)
	defer ls.Close()
	addr := ls.Clients.Addr().String()
	silent := dialClient(t, addr)
	defer silent.Close()
	speaker := dialClient(t, addr)
	defer speaker.Close()
	if _, err := speaker.Write([]byte("hello")); err != nil {
		t.Fatal(err)
	}

	tl := ls.Clients.(*net.TCPListener)
	_ = tl.SetDeadline(time.Now().Add(5 * time.Second))
	conn, err := tl.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if got, want := conn.RemoteAddr().String(), speaker.LocalAddr().String(); got != want {
		t.Fatalf("accepted %s first, want the client that spoke (%s)", got, want)
	}
	_ = tl.SetDeadline(time.Now().Add(300 * time.Millisecond))
	if c, err := tl.Accept(); !errors.Is(err, os.ErrDeadlineExceeded) {
		if c != nil {
			c.Close()
		}
		t.Fatalf("a client that sent nothing was accepted (err %v)", err)
	}
}

// clientListener is what Listen opens for clients, on a free port.
func clientListener(t *testing.T) Listeners {
	t.Helper()
	ls, err := Listen(&configs.Config{Listen: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	return ls
}

func dialClient(t *testing.T, addr string) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	return c
}
