package integration

import (
	"context"
	"crypto/rand"
	"net"
	"sync"
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
	// auth_timeout (5s in the harness) drops the slow loris connections.
	for _, c := range slow {
		_ = c.SetReadDeadline(time.Now().Add(15 * time.Second))
		if _, err := c.Read(make([]byte, 1)); err == nil {
			t.Fatal("a connection that never sent its startup packet got an answer")
		}
		c.Close()
	}
}
