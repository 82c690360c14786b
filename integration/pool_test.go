package integration

import "testing"

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

func idleConns(env *proxyEnv) int {
	n := 0
	for _, g := range env.dbStatus().Generations {
		n += g.Idle
	}
	return n
}
