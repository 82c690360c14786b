package proxy

import (
	"fmt"
	"maps"
	"os"
	"strings"
	"syscall"
	"testing"

	"github.com/jackc/pgx/v5/pgproto3"
)

// A login that starts a relay round hands its socket's registration over:
// the round changes it to name itself (one EPOLL_CTL_MOD) rather than the
// login deleting it and the round adding it again. A registration no round
// took over is deleted, so no event names the login's old slot.
func TestLoginHandsItsRegistrationToTheRound(t *testing.T) {
	epfd, err := syscall.EpollCreate1(syscall.EPOLL_CLOEXEC)
	mustOK(t, err)
	defer syscall.Close(epfd)
	l := &eventLoop{epfd: epfd, handedOff: -1}
	client := loginSocket(t)

	lg := &loopLogin{l: l, fd: client}
	lg.slot = l.logins.put(lg)
	ev := syscall.EpollEvent{Events: syscall.EPOLLIN | syscall.EPOLLRDHUP, Fd: lg.slot, Pad: loginTag}
	mustOK(t, syscall.EpollCtl(epfd, syscall.EPOLL_CTL_ADD, client, &ev))

	lg.handOff()
	if l.logins.used() != 0 {
		t.Fatalf("the login still holds a slot after handOff")
	}
	r := &evRelay{loop: l, slot: 6, fds: [2]int{client, -1}}
	mustOK(t, r.register(0))
	l.settleHandOff() // the round took it: nothing left to delete
	if got, want := registrations(t, epfd), map[int]uint64{client: 7}; !maps.Equal(got, want) {
		t.Errorf("after the round took over: registrations %v, want %v (the round's slot + 1, side 0)", got, want)
	}
	if l.handedOff != -1 {
		t.Errorf("handedOff = %d after the round took it, want -1", l.handedOff)
	}

	// A second login whose greeting fails: nothing takes its registration.
	other := loginSocket(t)
	lg2 := &loopLogin{l: l, fd: other}
	lg2.slot = l.logins.put(lg2)
	ev = syscall.EpollEvent{Events: syscall.EPOLLIN | syscall.EPOLLRDHUP, Fd: lg2.slot, Pad: loginTag}
	mustOK(t, syscall.EpollCtl(epfd, syscall.EPOLL_CTL_ADD, other, &ev))
	lg2.handOff()
	l.settleHandOff()
	if got, want := registrations(t, epfd), map[int]uint64{client: 7}; !maps.Equal(got, want) {
		t.Errorf("after a hand-off nobody took: registrations %v, want only the round's %v", got, want)
	}
}

// loginSocket is one end of a connected socket pair, the other closed with
// the test.
func loginSocket(t *testing.T) int {
	t.Helper()
	fds, err := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_STREAM|syscall.SOCK_NONBLOCK|syscall.SOCK_CLOEXEC, 0)
	mustOK(t, err)
	t.Cleanup(func() { syscall.Close(fds[0]); syscall.Close(fds[1]) })
	return fds[0]
}

// registrations reads the descriptors registered in the epoll set epfd and
// the data of each, from /proc/self/fdinfo.
func registrations(t *testing.T, epfd int) map[int]uint64 {
	t.Helper()
	raw, err := os.ReadFile(fmt.Sprintf("/proc/self/fdinfo/%d", epfd))
	mustOK(t, err)
	out := map[int]uint64{}
	for _, line := range strings.Split(string(raw), "\n") {
		if !strings.HasPrefix(line, "tfd:") {
			continue
		}
		var fd int
		var events uint32
		var data uint64
		if _, err := fmt.Sscanf(line, "tfd: %d events: %x data: %x", &fd, &events, &data); err != nil {
			t.Fatalf("fdinfo line %q: %v", line, err)
		}
		out[fd] = data
	}
	return out
}

// A login's last authentication message and its greeting, with the
// parameters PostgreSQL 15 reports and a long application name, fit in
// greetingSize: the greeter encodes them without growing its buffer.
func TestGreetingFitsItsBuffer(t *testing.T) {
	params := map[string]string{
		"application_name": strings.Repeat("a", 63), "client_encoding": "UTF8", "DateStyle": "ISO, MDY",
		"default_transaction_read_only": "off", "in_hot_standby": "off", "integer_datetimes": "on",
		"IntervalStyle": "postgres", "is_superuser": "off", "server_encoding": "UTF8",
		"server_version": "15.18 (Debian 15.18-0+deb12u1)", "session_authorization": "bookstore_user_0001",
		"standard_conforming_strings": "on", "TimeZone": "America/Argentina/ComodRivadavia",
	}
	s := &session{}
	w := outbox{buf: make([]byte, 0, greetingSize)}
	s.queue(&w, &pgproto3.AuthenticationSASLFinal{Data: []byte("v=" + strings.Repeat("x", 44))})
	s.queueGreeting(&w, sortedParams(params), nil)
	mustOK(t, w.err)
	if cap(w.buf) != greetingSize {
		t.Errorf("the greeting took %d bytes and grew the buffer past greetingSize (%d)", len(w.buf), greetingSize)
	}
	t.Logf("greeting: %d bytes of %d", len(w.buf), greetingSize)
}
