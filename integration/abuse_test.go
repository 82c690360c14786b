package integration

import (
	"context"
	"crypto/rand"
	"io"
	"net"
	"os"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// A flood of garbage startup packets, slow-loris connections that never
// finish their startup, and wrong passwords leaves good clients served; the
// slow ones are dropped at auth_timeout. Logins run on the event loop (see
// TestLoginsHoldNoGoroutine); a session-mode client goes on on a goroutine
// once authenticated, a transaction-mode one stays on the loop.
func TestAbuseLeavesGoodClientsServed(t *testing.T) {
	for _, mode := range []string{"session", "transaction"} {
		t.Run(mode, func(t *testing.T) { abuse(t, mode) })
	}
}

func abuse(t *testing.T, mode string) {
	env := startProxy(t, setup{maxClientConn: 400, poolMode: mode})
	good := env.connect(t)
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	attack := func(n int, f func()) {
		for range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for ctx.Err() == nil {
					f()
				}
			}()
		}
	}
	attack(4, func() { // garbage where a startup packet belongs
		c, err := net.Dial("tcp", env.addr)
		if err != nil {
			return
		}
		junk := make([]byte, 64)
		_, _ = rand.Read(junk)
		_, _ = c.Write(junk)
		_ = c.SetReadDeadline(time.Now().Add(time.Second))
		_, _ = c.Read(make([]byte, 256))
		c.Close()
	})
	var slow []net.Conn
	var slowMu sync.Mutex
	for range 50 { // slow loris: connect, send one byte, then nothing
		c, err := net.Dial("tcp", env.addr)
		must(t, err)
		_, _ = c.Write([]byte{0})
		slowMu.Lock()
		slow = append(slow, c)
		slowMu.Unlock()
	}
	attack(3, func() { // wrong passwords
		if c, err := connectAs(env, appUser, "guess"); err == nil {
			c.Close(context.Background())
		}
	})

	deadline := time.Now().Add(3 * time.Second)
	for n := 0; time.Now().Before(deadline); n++ {
		if got := queryStrings(t, good, "SELECT current_user")[0]; got != ownerRole {
			t.Fatalf("query %d during the flood: current_user %q", n, got)
		}
		c := env.connect(t) // new good logins keep working too
		c.Close(ctxT(t))
	}
	cancel()
	wg.Wait()
	// The flood's failures are logged within bounds: at most 20 lines per
	// kind (SQLSTATE) in 10 s, then one line saying the rest are counted;
	// the flood lasts one window of each kind.
	logs := env.logs.String()
	perKind := map[string]int{}
	for _, line := range strings.Split(logs, "\n") {
		if !strings.Contains(line, `msg="client session failed"`) {
			continue
		}
		_, after, _ := strings.Cut(line, " sqlstate=")
		code, _, _ := strings.Cut(after, " ")
		perKind[code]++
	}
	if perKind["08P01"] == 0 {
		t.Errorf("no garbage startup packet logged at all (lines by SQLSTATE: %v)", perKind)
	}
	for code, n := range perKind {
		if n > 20 {
			t.Errorf("%d lines of sessions failed with %s during a 3 s flood; want at most 20", n, code)
		}
	}
	if !strings.Contains(logs, "clients failing to log in fast") {
		t.Errorf("the log does not say that failed logins are counted, not logged:\n%s", tail(logs, 20))
	}
	// auth_timeout (5s in the harness) drops the slow loris connections.
	for _, c := range slow {
		_ = c.SetReadDeadline(time.Now().Add(15 * time.Second))
		if _, err := c.Read(make([]byte, 1)); err == nil {
			t.Fatal("a connection that never sent its startup packet got an answer")
		}
		c.Close()
	}
}

// When pgrotate runs out of file descriptors, the event loop stops
// accepting for a moment, says so once, and then serves the clients that
// waited in the listen backlog; clients already connected are served
// throughout.
func TestOutOfDescriptorsPausesAccepting(t *testing.T) {
	env := startProxy(t, setup{poolMode: "transaction"})
	good := env.connect(t)
	var limit syscall.Rlimit
	must(t, syscall.Getrlimit(syscall.RLIMIT_NOFILE, &limit))
	// The test and pgrotate share the process: leave one descriptor free,
	// take it with the client's own socket, and the loop's accept4 finds
	// none. Descriptors other goroutines open or close meanwhile can spoil
	// an attempt; a few are allowed.
	var waiting net.Conn
	attempts := 0
	for ; waiting == nil && attempts < 5; attempts++ {
		waiting = dialWithOneDescriptorLeft(t, env, limit)
	}
	if waiting == nil {
		t.Fatal("could not make the loop run out of descriptors")
	}
	t.Logf("the loop ran out of descriptors at attempt %d", attempts)
	defer waiting.Close()
	if got := queryStrings(t, good, "SELECT current_user")[0]; got != ownerRole {
		t.Fatalf("a connected client during the pause: current_user %q", got)
	}
	// Accepting resumes: the client that waited gets its answer.
	must(t, waiting.SetDeadline(time.Now().Add(5*time.Second)))
	_, err := waiting.Write([]byte{0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f}) // SSLRequest
	must(t, err)
	answer := make([]byte, 1)
	if _, err := io.ReadFull(waiting, answer); err != nil || answer[0] != 'N' {
		t.Fatalf("after the pause: answer %q, %v; want 'N'", answer, err)
	}
}

// dialWithOneDescriptorLeft connects a client while the process may open
// only that client's socket, and gives the limit back once the loop has
// failed to accept it (pgrotate logs it); nil if the attempt was spoilt.
func dialWithOneDescriptorLeft(t *testing.T, env *proxyEnv, limit syscall.Rlimit) net.Conn {
	t.Helper()
	before := strings.Count(env.logs.String(), "cannot accept clients")
	fds, err := os.ReadDir("/proc/self/fd") // its own descriptor is closed again
	must(t, err)
	lowered := limit
	lowered.Cur = uint64(len(fds)) // the ones open now, and one more
	must(t, syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lowered))
	c, err := net.Dial("tcp", env.addr)
	paused := false
	for deadline := time.Now().Add(time.Second); err == nil && !paused && time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		paused = strings.Count(env.logs.String(), "cannot accept clients") > before
	}
	must(t, syscall.Setrlimit(syscall.RLIMIT_NOFILE, &limit))
	if err != nil || !paused {
		if c != nil {
			c.Close()
		}
		return nil
	}
	return c
}
