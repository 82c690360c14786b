//go:build linux

package proxy

import (
	"bytes"
	"io"
	"net"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgproto3"
	"go.uber.org/goleak"
)

// loopRig is one relay round on an event loop between two real TCP socket
// pairs: the test plays the client on one end and the server on the other.
type loopRig struct {
	loop           *eventLoop
	client, server net.Conn // the test's ends
	relay          *evRelay
	st             *relayState
	cliSide        net.Conn // pgrotate's ends, given back after the round
	srvSide        net.Conn
}

func startLoopRig(t *testing.T) *loopRig {
	t.Helper()
	l, err := newEventLoop(true)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(l.close)
	return startRelayOn(t, l)
}

// startRelayOn starts one more rig's relay round on loop l; prep, if
// given, may set up pgrotate's ends of the sockets first.
func startRelayOn(t *testing.T, l *eventLoop, prep ...func(cliSide, srvSide net.Conn)) *loopRig {
	t.Helper()
	var err error
	rig := &loopRig{loop: l, st: newRelayState()}
	var cliSide, srvSide net.Conn
	rig.client, cliSide = tcpPair(t)
	srvSide, rig.server = tcpPair(t)
	for _, f := range prep {
		f(cliSide, srvSide)
	}
	fds, ok, err := detach(cliSide, srvSide)
	if !ok || err != nil {
		t.Fatalf("detach: ok=%v err=%v", ok, err)
	}
	m := (*Metrics)(nil).forDatabase("test")
	dirs := [2]evDir{
		{rd: newClientReader(nil), interest: fromClient, in: &clientInspector{st: rig.st, m: m}},
		{rd: newServerReader(nil), interest: fromServer, in: serverInspector{st: rig.st, sc: &serverConn{params: map[string]string{}}, m: m}},
	}
	if rig.relay, err = l.startRelay([2]int(fds), dirs, nil); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		rig.client.Close()
		rig.server.Close()
	})
	return rig
}

// end waits for the round to end and takes pgrotate's sockets back, as the
// session does.
func (rig *loopRig) end(t *testing.T) evResult {
	t.Helper()
	var res evResult
	select {
	case res = <-rig.relay.done:
	case <-time.After(10 * time.Second):
		t.Fatal("relay round did not end")
	}
	var err error
	if rig.cliSide, err = attach(rig.relay.fds[0]); err != nil {
		t.Fatal(err)
	}
	if rig.srvSide, err = attach(rig.relay.fds[1]); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rig.cliSide.Close(); rig.srvSide.Close() })
	return res
}

func bigReply(t *testing.T, rows int) []byte {
	msgs := []pgproto3.Message{&pgproto3.RowDescription{Fields: []pgproto3.FieldDescription{{Name: []byte("x")}}}}
	for i := range rows {
		msgs = append(msgs, &pgproto3.DataRow{Values: [][]byte{bytes.Repeat([]byte{byte('a' + i%26)}, 1000)}})
	}
	msgs = append(msgs, &pgproto3.CommandComplete{CommandTag: []byte("SELECT")}, &pgproto3.ReadyForQuery{TxStatus: 'I'})
	return encode(t, msgs...)
}

// A reply far larger than the socket buffers reaches a client that reads it
// slowly byte for byte: the loop holds back what the client's socket does
// not take and stops reading the server meanwhile, instead of blocking or
// buffering without bound. A Terminate from the client then ends the round
// with the server connection intact.
func TestEventLoopRelaysLargeReplyToSlowClient(t *testing.T) {
	t.Cleanup(func() { goleak.VerifyNone(t) }) // runs last, after the rig's cleanup
	rig := startLoopRig(t)
	query := encode(t, &pgproto3.Query{String: "SELECT big"})
	if _, err := rig.client.Write(query); err != nil {
		t.Fatal(err)
	}
	got := make([]byte, len(query))
	if _, err := io.ReadFull(rig.server, got); err != nil || !bytes.Equal(got, query) {
		t.Fatalf("server got %q, %v; want the query", got, err)
	}
	reply := bigReply(t, 8000) // 8 MB
	go func() { _, _ = rig.server.Write(reply) }()
	time.Sleep(100 * time.Millisecond) // let the client's socket fill up
	got = make([]byte, len(reply))
	if _, err := io.ReadFull(rig.client, got); err != nil || !bytes.Equal(got, reply) {
		t.Fatalf("client got %d bytes (err %v), not the %d-byte reply byte for byte", len(got), err, len(reply))
	}
	if !rig.st.idle() {
		t.Fatal("relay state not idle after ReadyForQuery")
	}
	if _, err := rig.client.Write([]byte{'X', 0, 0, 0, 4}); err != nil {
		t.Fatal(err)
	}
	res := rig.end(t)
	if res.errs[0] != nil || !isDeadline(res.errs[1]) {
		t.Fatalf("round ended with %v; want the client's Terminate (nil) and the server direction interrupted", res.errs)
	}
}

// Interrupting a round (a kick, to move the session) in the middle of a
// reply loses nothing: what the loop accepted is flushed by the session, and
// the rest of the reply is still in the server connection for the next round.
func TestEventLoopInterruptKeepsTheStream(t *testing.T) {
	t.Cleanup(func() { goleak.VerifyNone(t) }) // runs last, after the rig's cleanup
	rig := startLoopRig(t)
	reply := bigReply(t, 4000)
	go func() { _, _ = rig.server.Write(reply) }()
	time.Sleep(100 * time.Millisecond) // the client reads nothing yet
	rig.relay.interrupt(nil)
	res := rig.end(t)
	if !isDeadline(res.errs[0]) || !isDeadline(res.errs[1]) {
		t.Fatalf("round ended with %v; want both directions interrupted", res.errs)
	}
	// The session flushes what the loop accepted, then the next round
	// relays the rest, still unread in the server connection.
	rd := rig.relay.dirs[1].rd
	rd.src = rig.srvSide
	go func() {
		if _, err := rig.cliSide.Write(rig.relay.dirs[1].out.spill); err != nil {
			return
		}
		_ = rd.pump(rig.cliSide, fromServer, stopAtReady{serverInspector{st: rig.st, sc: &serverConn{params: map[string]string{}}, m: (*Metrics)(nil).forDatabase("t")}})
	}()
	got := make([]byte, len(reply))
	if _, err := io.ReadFull(rig.client, got); err != nil || !bytes.Equal(got, reply) {
		t.Fatalf("client got %d bytes (err %v), not the reply byte for byte", len(got), err)
	}
}

// Relays on one loop read into the scratch buffer they share. Replies cut
// mid-message, in a header and inside a ParameterStatus the relay inspects
// whole, with the other relay's read in between each time, still reach
// each client byte for byte: the cut-off part moved out of the scratch
// before the other relay read into it.
func TestEventLoopRelaysShareTheScratch(t *testing.T) {
	t.Cleanup(func() { goleak.VerifyNone(t) }) // runs last, after the rigs' cleanup
	a := startLoopRig(t)
	b := startRelayOn(t, a.loop)
	// The replies differ from their first byte on, so that bytes of one
	// left in the scratch would show in the other. Each is cut in its first
	// message's header, in its ParameterStatus's header, in that message's
	// body, and at its end.
	before := [][]pgproto3.Message{
		{&pgproto3.RowDescription{Fields: []pgproto3.FieldDescription{{Name: []byte("a")}}},
			&pgproto3.DataRow{Values: [][]byte{[]byte(strings.Repeat("a", 200))}}},
		{&pgproto3.ParameterStatus{Name: "TimeZone", Value: "Europe/Paris"},
			&pgproto3.NoticeResponse{Severity: "NOTICE", Code: "00000", Message: "hello"}},
	}
	statuses := []*pgproto3.ParameterStatus{
		{Name: "application_name", Value: "alpha"},
		{Name: "DateStyle", Value: "ISO, MDY"},
	}
	rigs := []*loopRig{a, b}
	replies, cuts := make([][]byte, 2), make([][]int, 2)
	for i := range rigs {
		at := len(encode(t, before[i]...))
		replies[i] = encode(t, append(before[i], statuses[i], &pgproto3.ReadyForQuery{TxStatus: 'I'})...)
		cuts[i] = []int{3, at + 2, at + 12, len(replies[i])}
	}
	sent := []int{0, 0}
	for k := range cuts[0] {
		for i, rig := range rigs {
			if _, err := rig.server.Write(replies[i][sent[i]:cuts[i][k]]); err != nil {
				t.Fatal(err)
			}
			sent[i] = cuts[i][k]
			time.Sleep(20 * time.Millisecond) // the loop reads this piece before the other relay's
		}
	}
	for i, rig := range rigs {
		got := make([]byte, len(replies[i]))
		if _, err := io.ReadFull(rig.client, got); err != nil || !bytes.Equal(got, replies[i]) {
			t.Fatalf("client %d got %q (err %v), want %q", i, got, err, replies[i])
		}
	}
}

// A client that disconnects ends the round with its error, and the loop
// stops reading either socket.
func TestEventLoopClientGone(t *testing.T) {
	t.Cleanup(func() { goleak.VerifyNone(t) }) // runs last, after the rig's cleanup
	rig := startLoopRig(t)
	rig.client.Close()
	res := rig.end(t)
	if res.errs[0] != io.EOF || !isDeadline(res.errs[1]) {
		t.Fatalf("round ended with %v; want EOF from the client, server interrupted", res.errs)
	}
}

// Closing the loop with no round running stops its goroutine (goleak).
func TestEventLoopClose(t *testing.T) {
	defer goleak.VerifyNone(t)
	l, err := newEventLoop(true)
	if err != nil {
		t.Fatal(err)
	}
	l.close()
	if l.post(func() {}) {
		t.Fatal("a stopped loop accepted a command")
	}
}

// The loop counts among the machine's CPUs: GOMAXPROCS stays as it was,
// except that with one P the loops get a second (goroutines must have one
// while a loop waits holding its own), given back when the last loop stops.
// Here the operator set GOMAXPROCS (the environment variable), and gets
// that value back.
func TestEventLoopsLeaveGoroutinesAP(t *testing.T) {
	defer goleak.VerifyNone(t)
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(0))
	for _, tc := range []struct{ before, running int }{{1, 2}, {2, 2}, {4, 4}} {
		t.Setenv("GOMAXPROCS", strconv.Itoa(tc.before))
		runtime.GOMAXPROCS(tc.before)
		a, err := newEventLoop(true)
		if err != nil {
			t.Fatal(err)
		}
		b, err := newEventLoop(true)
		if err != nil {
			t.Fatal(err)
		}
		if got := runtime.GOMAXPROCS(0); got != tc.running {
			t.Errorf("GOMAXPROCS %d with two loops running, set to %d before; want %d", got, tc.before, tc.running)
		}
		a.close()
		if got := runtime.GOMAXPROCS(0); got != tc.running {
			t.Errorf("GOMAXPROCS %d with one of two loops stopped; want %d", got, tc.running)
		}
		b.close()
		if got := runtime.GOMAXPROCS(0); got != tc.before {
			t.Errorf("GOMAXPROCS %d after the loops stopped; want %d as before", got, tc.before)
		}
	}
}

// Go lowers GOMAXPROCS by itself when the machine loses CPUs. If that
// leaves one P while a loop runs, the loop raises it to 2 again within a
// wait or two, and when it stops it gives GOMAXPROCS back to Go's default,
// automatic updates included (raising it had turned them off).
func TestEventLoopRaisesGOMAXPROCSLoweredUnderIt(t *testing.T) {
	defer goleak.VerifyNone(t)
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(0))
	t.Setenv("GOMAXPROCS", "") // not the operator's choice: Go's default
	runtime.SetDefaultGOMAXPROCS()
	def := runtime.GOMAXPROCS(0)
	l, err := newEventLoop(true)
	if err != nil {
		t.Fatal(err)
	}
	runtime.GOMAXPROCS(1) // as Go's automatic update would
	l.post(func() {})     // wakes the loop should it be asleep
	deadline := time.Now().Add(5 * time.Second)
	for runtime.GOMAXPROCS(0) < 2 {
		if time.Now().After(deadline) {
			t.Fatal("GOMAXPROCS still 1 with a loop running, 5 s after it was lowered")
		}
		time.Sleep(time.Millisecond)
	}
	l.close()
	if got := runtime.GOMAXPROCS(0); got != def {
		t.Errorf("GOMAXPROCS %d after the loop stopped; want Go's default %d", got, def)
	}
}

// A loop with nothing to do sleeps in a blocking system call: it holds no
// P, so the runtime sends it no preemption signal and an idle pgrotate does
// not wake (it used to, ~280 times a second). Bytes arriving wake it.
func TestEventLoopSleepsWhenIdle(t *testing.T) {
	t.Cleanup(func() { goleak.VerifyNone(t) }) // runs last, after the rig's cleanup
	rig := startLoopRig(t)
	query := encode(t, &pgproto3.Query{String: "SELECT 1"})
	for round := range 2 {
		deadline := time.Now().Add(5 * time.Second)
		for !loopSleeping() {
			if time.Now().After(deadline) {
				t.Fatalf("round %d: the idle loop is not asleep in a system call:\n%s", round, loopStack())
			}
			time.Sleep(10 * time.Millisecond)
		}
		if _, err := rig.client.Write(query); err != nil {
			t.Fatal(err)
		}
		got := make([]byte, len(query))
		if _, err := io.ReadFull(rig.server, got); err != nil || !bytes.Equal(got, query) {
			t.Fatalf("round %d: server got %q, %v; want the query", round, got, err)
		}
	}
	rig.client.Close()
	rig.end(t)
}

// loopStack returns the stack of the goroutine running an event loop.
func loopStack() string {
	buf := make([]byte, 1<<20)
	buf = buf[:runtime.Stack(buf, true)]
	for _, g := range strings.Split(string(buf), "\n\n") {
		if strings.Contains(g, "proxy.(*eventLoop).run(") {
			return g
		}
	}
	return ""
}

// loopSleeping reports whether the event loop's goroutine waits in sleep's
// system call.
func loopSleeping() bool {
	g := loopStack()
	return strings.Contains(g, "[syscall") && strings.Contains(g, "proxy.(*eventLoop).sleep(")
}
