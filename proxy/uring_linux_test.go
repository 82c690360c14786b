//go:build linux

package proxy

import (
	"bytes"
	"errors"
	"syscall"
	"testing"
)

func newTestRing(t testing.TB, entries uint32) *sendRing {
	t.Helper()
	r, err := newSendRing(entries)
	if errors.Is(err, errNoRing) {
		t.Skipf("this kernel refuses io_uring (%v); the loop sends with sendto here", err)
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(r.close)
	return r
}

func socketPair(t testing.TB) (int, int) {
	t.Helper()
	fds, err := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_STREAM|syscall.SOCK_NONBLOCK|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { syscall.Close(fds[0]); syscall.Close(fds[1]) })
	return fds[0], fds[1]
}

type sendResult struct {
	tag uint64
	res int32
}

// Sends queued for several sockets are all made, in order per socket, by
// one submit, and each reports how much it sent.
func TestSendRingSendsInOneSubmit(t *testing.T) {
	r := newTestRing(t, 8)
	a1, b1 := socketPair(t)
	a2, b2 := socketPair(t)
	r.queueSend(a1, []byte("hello "), 1)
	r.queueSend(a2, []byte("other"), 2)
	r.queueSend(a1, []byte("world"), 3)
	var got []sendResult
	if err := r.submit(func(tag uint64, res int32) { got = append(got, sendResult{tag, res}) }); err != nil {
		t.Fatal(err)
	}
	want := map[uint64]int32{1: 6, 2: 5, 3: 5}
	if len(got) != 3 {
		t.Fatalf("results %v, want three", got)
	}
	for _, g := range got {
		if want[g.tag] != g.res {
			t.Fatalf("send %d sent %d bytes, want %d", g.tag, g.res, want[g.tag])
		}
	}
	buf := make([]byte, 64)
	if n, _ := syscall.Read(b1, buf); string(buf[:n]) != "hello world" {
		t.Fatalf("first socket got %q", buf[:n])
	}
	if n, _ := syscall.Read(b2, buf); string(buf[:n]) != "other" {
		t.Fatalf("second socket got %q", buf[:n])
	}
}

// A socket that takes nothing more makes its send fail with EAGAIN at once,
// as sendto would: the ring never keeps a send (and its buffer) for later.
func TestSendRingFullSocketIsRefusedAtOnce(t *testing.T) {
	r := newTestRing(t, 4)
	a, _ := socketPair(t)
	if err := fillSocket(a); err != nil {
		t.Fatal(err)
	}
	r.queueSend(a, []byte("more"), 7)
	var got []sendResult
	if err := r.submit(func(tag uint64, res int32) { got = append(got, sendResult{tag, res}) }); err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0].tag != 7 || got[0].res != -int32(syscall.EAGAIN) {
		t.Fatalf("results %v, want tag 7 with -EAGAIN", got)
	}
}

// BenchmarkSends compares one sendto per socket with one submit for all,
// for 16 sockets with a 100-byte message each (a loop's wake-up under
// load); the peers are drained outside the timer's interest alike.
func BenchmarkSends(b *testing.B) {
	const socks = 16
	msg := bytes.Repeat([]byte{'m'}, 100)
	var as, bs [socks]int
	for i := range as {
		as[i], bs[i] = socketPair(b)
	}
	drain := func() {
		buf := make([]byte, 4096)
		for _, fd := range bs {
			syscall.Read(fd, buf)
		}
	}
	b.Run("sendto", func(b *testing.B) {
		for b.Loop() {
			for _, fd := range as {
				rawWrite(fd, msg)
			}
			drain()
		}
	})
	b.Run("ring", func(b *testing.B) {
		r := newTestRing(b, socks)
		for b.Loop() {
			for i, fd := range as {
				r.queueSend(fd, msg, uint64(i))
			}
			r.submit(func(uint64, int32) {})
			drain()
		}
	})
	b.Run("drain-only", func(b *testing.B) {
		for b.Loop() {
			drain()
		}
	})
}
