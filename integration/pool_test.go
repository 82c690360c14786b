package integration

import (
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// min_pool_size keeps warm connections ready before any client comes.
func TestMinPoolSizeWarmsUp(t *testing.T) {
	env := startProxy(t, setup{poolSize: 5, extraDB: "min_pool_size: 3, server_idle_timeout: 1s"})
	waitFor(t, func() bool { return idleConns(env) == 3 }, "3 idle server connections")
	// Above the minimum, idle connections are closed after server_idle_timeout.
	var cs []func()
	for range 5 {
		c := env.connect(t)
		cs = append(cs, func() { c.Close(ctxT(t)) })
	}
	for _, closeIt := range cs {
		closeIt()
	}
	waitFor(t, func() bool { return idleConns(env) == 5 }, "5 idle connections after 5 clients left")
	waitFor(t, func() bool { return idleConns(env) == 3 }, "idle connections to shrink back to min_pool_size")
}

// server_lifetime replaces old connections, whatever their use.
func TestServerLifetimeReplacesConnections(t *testing.T) {
	env := startProxy(t, setup{poolSize: 2, poolMode: "transaction", extraDB: "server_lifetime: 1s"})
	c := env.connect(t)
	first := queryStrings(t, c, "SELECT pg_backend_pid()")[0]
	waitFor(t, func() bool {
		return queryStrings(t, c, "SELECT pg_backend_pid()")[0] != first
	}, "a fresh server connection after server_lifetime")
}

// In transaction mode the event loop keeps the connections its
// transactions give back for its next transactions, away from the pool's
// upkeep. One it stops needing still goes back to upkeep while the load
// goes on: a pool that a burst grew shrinks to what a steady trickle of
// queries needs, after server_idle_timeout.
func TestTransactionPoolShrinksWhileAClientKeepsQuerying(t *testing.T) {
	env := startProxy(t, setup{poolSize: 4, poolMode: "transaction", extraDB: "min_pool_size: 1, server_idle_timeout: 1s"})
	clients := make([]*pgx.Conn, 4)
	for i := range clients {
		clients[i] = env.connect(t)
	}
	// The burst: four transactions at once take four connections.
	errs := make(chan error, len(clients))
	for _, c := range clients {
		go func() {
			_, err := c.Exec(ctxT(t), "SELECT pg_sleep(0.3)")
			errs <- err
		}()
	}
	for range clients {
		must(t, <-errs)
	}
	if n := serverConns(env); n != 4 {
		t.Fatalf("%d server connections after four concurrent transactions, want 4", n)
	}
	// The trickle: one client queries every 20 ms, more often than the
	// loop's idle spell (100 ms), so it never goes quiet.
	for deadline := time.Now().Add(10 * time.Second); serverConns(env) > 2; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%d server connections after 10 s of one client querying (server_idle_timeout 1s), want at most 2", serverConns(env))
		}
		queryStrings(t, clients[0], "SELECT 1")
	}
}

// serverConns counts the test database's server connections, idle or busy.
func serverConns(env *proxyEnv) int {
	n := 0
	for _, g := range env.dbStatus().Generations {
		n += g.Idle + g.Busy
	}
	return n
}

// idleBackend runs one client on a pool of one connection and returns the
// pid of its backend once the connection is back in the pool, idle.
func idleBackend(t *testing.T, env *proxyEnv) string {
	t.Helper()
	c := env.connect(t)
	pid := queryStrings(t, c, "SELECT pg_backend_pid()")[0]
	must(t, c.Close(ctxT(t)))
	waitFor(t, func() bool { return idleConns(env) == 1 }, "the connection back in the pool")
	return pid
}

func idleConns(env *proxyEnv) int {
	n := 0
	for _, g := range env.dbStatus().Generations {
		n += g.Idle
	}
	return n
}

// A server connection that stays idle is checked once per
// server_check_delay, not at every round of upkeep: a big idle pool costs
// the database a few empty queries a minute, not dozens a second.
func TestIdleConnectionsAreCheckedOncePerCheckDelay(t *testing.T) {
	const conns, delay, watch = 3, 400 * time.Millisecond, 2 * time.Second
	env := startProxy(t, setup{poolSize: conns, extraDB: "min_pool_size: 3, server_check_delay: 400ms"})
	waitFor(t, func() bool { return idleConns(env) == conns }, "3 idle server connections")
	before := healthChecks(t, env, "ok")
	time.Sleep(watch)
	checks := healthChecks(t, env, "ok") - before
	// Each connection is due every 400–500 ms (upkeep runs every 100 ms):
	// 4 or 5 checks in 2 s, 3 at the least on a slow machine. Checked at
	// every upkeep round, it would be ~20.
	perConn := checks / conns
	if perConn < 2 || perConn > 6 {
		t.Fatalf("%v health checks of %d idle connections in %s (%.1f each), want about %d each (one per server_check_delay %s)",
			checks, conns, watch, perConn, int(watch/delay), delay)
	}
}

// A server connection that died while idle (pg_terminate_backend, a
// restarted server, a network cut) is found by its health check and
// replaced before a client is handed it: the next client gets a working
// session on a new backend.
func TestDeadIdleConnectionIsReplacedBeforeUse(t *testing.T) {
	env := startProxy(t, setup{poolSize: 1, extraDB: "min_pool_size: 1, server_check_delay: 300ms"})
	pid := idleBackend(t, env)
	must(t, cluster.Exec(ctxT(t), "postgres", "SELECT pg_terminate_backend($1::int, 5000)", pid))
	waitFor(t, func() bool { return healthChecks(t, env, "failed") >= 1 }, "a failed health check")
	waitFor(t, func() bool { return idleConns(env) == 1 }, "min_pool_size to open a new connection")
	c := env.connect(t)
	if got := queryStrings(t, c, "SELECT pg_backend_pid()")[0]; got == pid {
		t.Fatalf("the client was handed backend %s, terminated while idle", pid)
	}
}

// A session-mode connection goes back to the pool with its reset (DISCARD
// ALL) sent and the replies not yet read: the next client's login reads
// them. A backend that ends meanwhile is found then, and the client gets a
// new connection instead of an error.
func TestBackendEndedAfterItsResetIsNotHandedOut(t *testing.T) {
	env := startProxy(t, setup{poolSize: 1})
	pid := idleBackend(t, env)
	must(t, cluster.Exec(ctxT(t), "postgres", "SELECT pg_terminate_backend($1::int, 5000)", pid))
	c := env.connect(t)
	if got := queryStrings(t, c, "SELECT pg_backend_pid(), current_user"); got[0] == pid || got[1] != ownerRole {
		t.Fatalf("the client got backend %s as %s; want a new one (not %s) acting as %s", got[0], got[1], pid, ownerRole)
	}
}

// healthChecks is pgrotate_server_health_checks_total of the test database
// with the given result.
func healthChecks(t *testing.T, env *proxyEnv, result string) float64 {
	v, _ := value(env.scrape(t), "pgrotate_server_health_checks_total", map[string]string{"database": dbName, "result": result})
	return v
}

// A health check that hangs (the server's host froze: the backend answers
// nothing until the check's 5 s timeout) holds up only its own connection:
// a client is served at once by another idle one, and the frozen one is
// closed when its check fails.
func TestHungHealthCheckHoldsUpNoOtherConnection(t *testing.T) {
	env := startProxy(t, setup{poolSize: 2, extraDB: "min_pool_size: 2, server_check_delay: 300ms"})
	c1, c2 := env.connect(t), env.connect(t) // session mode: one server connection each
	frozen := queryStrings(t, c1, "SELECT pg_backend_pid()")[0]
	other := queryStrings(t, c2, "SELECT pg_backend_pid()")[0]
	// The frozen one is given back first, which puts it first in the
	// round's list (puddle lists idle connections oldest first).
	must(t, c1.Close(ctxT(t)))
	waitFor(t, func() bool { return idleConns(env) == 1 }, "the frozen connection back in the pool")
	must(t, c2.Close(ctxT(t)))
	waitFor(t, func() bool { return idleConns(env) == 2 }, "both connections back in the pool")
	pid, err := strconv.Atoi(frozen)
	must(t, err)
	must(t, syscall.Kill(pid, syscall.SIGSTOP))
	t.Cleanup(func() { _ = syscall.Kill(pid, syscall.SIGCONT) })

	// The frozen one is due 300–400 ms after it was given back, the other
	// one at the same round or the next; the frozen one's check then hangs
	// for 5 s, and the round with it.
	time.Sleep(time.Second)
	start := time.Now()
	c := env.connect(t)
	got := queryStrings(t, c, "SELECT pg_backend_pid()")[0]
	if took := time.Since(start); took > 2*time.Second || got != other {
		t.Fatalf("a client waited %s and ran on backend %s while the check of frozen backend %s hung, want the other idle connection (backend %s) at once",
			took.Round(time.Millisecond), got, frozen, other)
	}
	must(t, c.Close(ctxT(t)))
	waitFor(t, func() bool { return healthChecks(t, env, "failed") >= 1 }, "the frozen connection's check to fail")
	// Whether or not it was checked in the frozen one's round, the other
	// connection, idle again, is checked once upkeep goes on, and passes.
	waitFor(t, func() bool { return healthChecks(t, env, "ok") >= 1 }, "the other connection's health check to pass")
}
