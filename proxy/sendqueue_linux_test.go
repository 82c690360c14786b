//go:build linux

package proxy

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgproto3"
	"go.uber.org/goleak"
)

// Both ways the loop writes, batched through io_uring (limits.batch_sends,
// the default) and one call at a time, keep the promises below.
var sendModes = []struct {
	name  string
	batch bool
}{{"batched", true}, {"one call each", false}}

func loopRigSending(t *testing.T, batch bool, prep ...func(cliSide, srvSide net.Conn)) *loopRig {
	t.Helper()
	l, err := newEventLoop(batch)
	if err != nil {
		t.Fatal(err)
	}
	if batch && l.ringErr != nil {
		l.close()
		t.Skipf("this kernel refuses io_uring (%v)", l.ringErr)
	}
	t.Cleanup(l.close)
	return startRelayOn(t, l, prep...)
}

// A stream of small replies, each read and written on its own, to a client
// that reads nothing for a while: once the client's socket is full, what
// the loop had queued and the socket did not take waits, the loop stops
// reading the server, and the client then gets every byte in order.
func TestEventLoopSmallWritesToAFullClient(t *testing.T) {
	for _, mode := range sendModes {
		t.Run(mode.name, func(t *testing.T) {
			t.Cleanup(func() { goleak.VerifyNone(t) }) // runs last, after the rig's cleanup
			rig := loopRigSending(t, mode.batch, func(cliSide, _ net.Conn) {
				// A small send buffer fills sooner; the client's receive
				// buffer stays as it is (tiny ones stall loopback TCP).
				_ = cliSide.(*net.TCPConn).SetWriteBuffer(4096)
			})
			var want []byte
			for i := range 400 {
				msg := encode(t, &pgproto3.DataRow{Values: [][]byte{[]byte(fmt.Sprintf("row %04d %s", i, bytes.Repeat([]byte{'v'}, 1000)))}})
				want = append(want, msg...)
				if _, err := rig.server.Write(msg); err != nil {
					t.Fatal(err)
				}
				time.Sleep(200 * time.Microsecond) // one read, one write each, mostly
			}
			if spilled := rig.spilled(t); spilled == 0 {
				t.Fatal("nothing waits for the client: its socket never filled up")
			}
			got := make([]byte, len(want))
			if n, err := io.ReadFull(rig.client, got); err != nil || !bytes.Equal(got, want) {
				t.Fatalf("client got %d bytes (err %v), not the %d sent in order", n, err, len(want))
			}
		})
	}
}

// spilled is how many bytes the loop holds for the client.
func (rig *loopRig) spilled(t *testing.T) int {
	n := make(chan int, 1)
	if !rig.loop.post(func() { n <- len(rig.relay.dirs[1].out.spill) }) {
		t.Fatal("loop stopped")
	}
	return <-n
}

// A write the client's socket refuses (it was shut for writing: EPIPE)
// ends the round with a write error in the direction that wrote; the
// server side is interrupted, not failed.
func TestEventLoopFailedWriteEndsTheRound(t *testing.T) {
	for _, mode := range sendModes {
		t.Run(mode.name, func(t *testing.T) {
			t.Cleanup(func() { goleak.VerifyNone(t) }) // runs last, after the rig's cleanup
			rig := loopRigSending(t, mode.batch)
			if err := syscall.Shutdown(rig.relay.fds[0], syscall.SHUT_WR); err != nil {
				t.Fatal(err)
			}
			reply := encode(t, &pgproto3.CommandComplete{CommandTag: []byte("SELECT 1")}, &pgproto3.ReadyForQuery{TxStatus: 'I'})
			if _, err := rig.server.Write(reply); err != nil {
				t.Fatal(err)
			}
			res := rig.end(t)
			if !isDeadline(res.errs[0]) || !isWriteErr(res.errs[1]) || !errors.Is(res.errs[1], syscall.EPIPE) {
				t.Fatalf("round ended with %v; want the client interrupted and EPIPE writing to it", res.errs)
			}
		})
	}
}

// Queueing writes and sending them makes no allocation once the queue's
// buffers exist, as for the rest of the relay's steady state.
func TestSendQueueDoesNotAllocate(t *testing.T) {
	q := sendQueue{ring: newTestRing(t, sendBatchSize)}
	var ws [4]evWriter
	peers := make([]int, len(ws))
	for i := range ws {
		ws[i].fd, peers[i] = socketPair(t)
		ws[i].queue = &q
	}
	msg := encode(t, &pgproto3.CommandComplete{CommandTag: []byte("SELECT 1")}, &pgproto3.ReadyForQuery{TxStatus: 'I'})
	buf := make([]byte, 4096)
	round := func() {
		for i := range ws {
			if _, err := ws[i].Write(msg); err != nil {
				t.Fatal(err)
			}
		}
		q.flush()
		for _, fd := range peers {
			if n, _ := syscall.Read(fd, buf); n != len(msg) {
				t.Fatalf("peer read %d bytes, want %d", n, len(msg))
			}
		}
	}
	round() // warm: the queue gets its buffers and arrays
	if n := testing.AllocsPerRun(100, round); n != 0 {
		t.Fatalf("%v allocations per round of four writes, want 0", n)
	}
}
