//go:build linux

package proxy

import (
	"bytes"
	"errors"
	"io"
	"net"
	"os"
	"testing"
	"time"

	"go.uber.org/goleak"
)

// pollPair is a pollConn (pgrotate's side, out of Go's netpoller) and the
// ordinary connection at the other end.
func pollPair(t *testing.T) (*pollConn, net.Conn) {
	t.Helper()
	a, b := tcpPair(t)
	pc, ok := toPollConn(a).(*pollConn)
	if !ok {
		t.Fatal("a plain TCP connection did not become a pollConn")
	}
	t.Cleanup(func() { pc.Close() })
	return pc, b
}

// A pollConn carries a stream larger than the socket buffers both ways:
// its writes wait for room and its reads wait for bytes, with poll(2).
func TestPollConnStreams(t *testing.T) {
	defer goleak.VerifyNone(t)
	pc, peer := pollPair(t)
	payload := bytes.Repeat([]byte("0123456789abcdef"), 1<<18) // 4 MiB
	go func() {
		_, _ = io.Copy(peer, io.LimitReader(peer, int64(len(payload)))) // echo
	}()
	done := make(chan error, 1)
	go func() {
		_, err := pc.Write(payload)
		done <- err
	}()
	got := make([]byte, len(payload))
	if _, err := io.ReadFull(pc, got); err != nil || !bytes.Equal(got, payload) {
		t.Fatalf("echo through the pollConn: %v, equal=%v", err, bytes.Equal(got, payload))
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// Deadlines behave as on a net.Conn: a read with nothing to read fails with
// os.ErrDeadlineExceeded once it passes, also when another goroutine sets
// it while the read waits (how a relay is interrupted).
func TestPollConnDeadlines(t *testing.T) {
	defer goleak.VerifyNone(t)
	pc, _ := pollPair(t)
	_ = pc.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
	if _, err := pc.Read(make([]byte, 10)); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("read past its deadline: %v", err)
	}
	_ = pc.SetReadDeadline(time.Time{})
	go func() {
		time.Sleep(50 * time.Millisecond)
		_ = pc.SetReadDeadline(time.Now())
	}()
	if _, err := pc.Read(make([]byte, 10)); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("read interrupted by a deadline set meanwhile: %v", err)
	}
}

// Closing a pollConn wakes a read blocked on it, and reads after the close
// fail with net.ErrClosed.
func TestPollConnCloseWakesReader(t *testing.T) {
	defer goleak.VerifyNone(t)
	pc, _ := pollPair(t)
	errc := make(chan error, 1)
	go func() {
		_, err := pc.Read(make([]byte, 10))
		errc <- err
	}()
	time.Sleep(50 * time.Millisecond)
	if err := pc.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-errc:
		if err == nil {
			t.Fatal("a read blocked during Close returned no error")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Close did not wake the blocked read")
	}
	if _, err := pc.Read(make([]byte, 1)); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("read after Close: %v, want net.ErrClosed", err)
	}
}

// pending tells, without consuming anything, whether bytes or the end of
// the stream wait on the socket: how the loop tells a connection that
// spoke while idle from one whose event was only a health check's reply.
func TestPollConnPending(t *testing.T) {
	pc, peer := pollPair(t)
	if pc.pending() {
		t.Fatal("a quiet connection reports pending bytes")
	}
	if _, err := peer.Write([]byte("E")); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, pc.pending, "the byte the peer sent to show as pending")
	got := make([]byte, 1)
	if _, err := io.ReadFull(pc, got); err != nil || got[0] != 'E' {
		t.Fatalf("read after pending: %q, %v (pending must not consume)", got, err)
	}
	if pc.pending() {
		t.Fatal("pending after everything was read")
	}
	peer.Close()
	waitUntil(t, pc.pending, "the end of the stream to show as pending")
}

func waitUntil(t *testing.T, cond func() bool, what string) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); !cond(); time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

// A session-mode server connection changes form with the client it serves:
// an event-loop round takes it out of Go's netpoller (loopFD), a TLS
// client's goroutine relay hands it back (forGoroutines), and the next
// loop round takes it out again. The stream goes on across every change,
// and the reader follows the connection.
func TestServerConnChangesFormWithItsClients(t *testing.T) {
	defer goleak.VerifyNone(t)
	a, peer := tcpPair(t)
	sc := &serverConn{conn: a, rd: newServerReader(a)}
	t.Cleanup(func() { sc.conn.Close() })
	roundTrip := func(step string) {
		t.Helper()
		if sc.rd.src != sc.conn {
			t.Fatalf("%s: the reader does not read the connection's current form", step)
		}
		if _, err := sc.conn.Write([]byte(step)); err != nil {
			t.Fatalf("%s: write: %v", step, err)
		}
		got := make([]byte, len(step))
		if _, err := io.ReadFull(peer, got); err != nil || string(got) != step {
			t.Fatalf("%s: peer got %q, %v", step, got, err)
		}
		if _, err := peer.Write([]byte(step)); err != nil {
			t.Fatal(err)
		}
		if _, err := io.ReadFull(sc.conn, got); err != nil || string(got) != step {
			t.Fatalf("%s: server connection read %q, %v", step, got, err)
		}
	}
	for _, step := range []string{"loop", "goroutines", "loop again"} {
		if step == "goroutines" {
			if err := sc.forGoroutines(); err != nil {
				t.Fatal(err)
			}
			if _, ok := sc.conn.(*net.TCPConn); !ok {
				t.Fatalf("after forGoroutines the connection is a %T, not back in the netpoller", sc.conn)
			}
		} else {
			fd, ok := sc.loopFD()
			if pc, isPoll := sc.conn.(*pollConn); !ok || !isPoll || pc.fd != fd {
				t.Fatalf("%s: loopFD gave %d, %v with the connection a %T", step, fd, ok, sc.conn)
			}
		}
		roundTrip(step)
	}
}
