package integration

import (
	"context"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pgrotate/pgrotate/internal/pgcluster"
)

// With two upstream hosts, a primary that goes away costs its clients one
// error each: the next connection, and every new client, lands on the
// other host, with no restart of pgrotate or the app.
func TestFailoverToTheNextHost(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	standby, err := pgcluster.Start(ctx, pgcluster.Options{})
	must(t, err)
	defer standby.Stop()
	primary, err := pgcluster.Start(ctx, pgcluster.Options{})
	must(t, err)
	defer primary.Stop()
	for _, c := range []*pgcluster.Cluster{primary, standby} {
		must(t, c.CreateBookstore(ctx, bookstore))
		must(t, c.CreateExecutingRole(ctx, bookstore, execRole1, execPass1))
	}
	env := startProxy(t, setup{upstreamHost: fmt.Sprintf("127.0.0.1:%d,127.0.0.1:%d", primary.Port, standby.Port)})

	app := env.connect(t)
	if port := queryStrings(t, app, "SELECT inet_server_port()")[0]; port != fmt.Sprint(primary.Port) {
		t.Fatalf("connected to port %s; want the first host, %d", port, primary.Port)
	}
	must(t, primary.Stop()) // the failover

	if _, err := app.Exec(ctxT(t), "SELECT 1"); err == nil {
		t.Fatal("a query on the lost primary succeeded")
	}
	after := env.connect(t)
	if port := queryStrings(t, after, "SELECT inet_server_port(), current_user")[0]; port != fmt.Sprint(standby.Port) {
		t.Fatalf("a new client landed on port %s; want the second host, %d", port, standby.Port)
	}
	if got := queryStrings(t, after, "SELECT current_user")[0]; got != ownerRole {
		t.Fatalf("current_user on the new host = %s", got)
	}
}

// A client that logs in while PostgreSQL refuses connections for a moment
// (a restart, a network blip) waits, within query_wait_timeout, for pgrotate
// to get a server connection, rather than failing: pgrotate retries the
// login with backoff, as PgBouncer keeps its clients queued.
func TestLoginsWaitOutAnUpstreamBlip(t *testing.T) {
	for _, mode := range []string{"session", "transaction"} {
		t.Run(mode, func(t *testing.T) {
			gate := startGate(t, fmt.Sprintf("127.0.0.1:%d", cluster.Port))
			env := startProxy(t, setup{poolMode: mode, upstreamPort: gate.port()})
			gate.shut.Store(true)
			got := make(chan error, 1)
			go func() {
				ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
				defer cancel()
				c, err := pgx.Connect(ctx, env.appURL())
				if err == nil {
					var one int
					err = c.QueryRow(ctx, "SELECT 1").Scan(&one)
					c.Close(ctx)
				}
				got <- err
			}()
			env.waitForLog(t, "server connection failed") // the client's login was refused once
			gate.shut.Store(false)
			if err := <-got; err != nil {
				t.Fatalf("a client that came during the blip failed: %v", err)
			}
		})
	}
}

// upstreamGate forwards TCP connections to PostgreSQL while open and closes
// new ones at once while shut, as a restarting server or a network blip
// would.
type upstreamGate struct {
	ln    net.Listener
	to    string
	shut  atomic.Bool
	tries atomic.Int64 // connections accepted, shut or not
	wg    sync.WaitGroup
	mu    sync.Mutex
	conns []net.Conn
}

func startGate(t *testing.T, to string) *upstreamGate {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	must(t, err)
	g := &upstreamGate{ln: ln, to: to}
	g.wg.Add(1)
	go g.accept()
	t.Cleanup(g.close)
	return g
}

func (g *upstreamGate) port() int { return g.ln.Addr().(*net.TCPAddr).Port }

func (g *upstreamGate) accept() {
	defer g.wg.Done()
	for {
		c, err := g.ln.Accept()
		if err != nil {
			return
		}
		g.tries.Add(1)
		if g.shut.Load() {
			c.Close()
			continue
		}
		up, err := net.Dial("tcp", g.to)
		if err != nil {
			c.Close()
			continue
		}
		g.mu.Lock()
		g.conns = append(g.conns, c, up)
		g.mu.Unlock()
		g.wg.Add(2)
		go g.pipe(c, up)
		go g.pipe(up, c)
	}
}

func (g *upstreamGate) pipe(dst, src net.Conn) {
	defer g.wg.Done()
	_, _ = io.Copy(dst, src)
	dst.Close()
	src.Close()
}

func (g *upstreamGate) close() {
	g.ln.Close()
	g.mu.Lock()
	for _, c := range g.conns {
		c.Close()
	}
	g.mu.Unlock()
	g.wg.Wait()
}

// Clients waiting in transaction mode while PostgreSQL refuses every login
// are told so when query_wait_timeout ends, each of them: 08006 and the
// login failure, not 53300 with a hint to raise pool_size for a pool that
// holds no connection.
func TestWaitersAreToldLoginsFailed(t *testing.T) {
	gate := startGate(t, fmt.Sprintf("127.0.0.1:%d", cluster.Port))
	env := startProxy(t, setup{poolMode: "transaction", poolSize: 1, queryWait: "1s", upstreamPort: gate.port()})
	ctx := ctxT(t)
	holdTheConnection(t, env)
	const waiters = 3
	errs := make(chan error, waiters)
	for range waiters {
		c := env.connect(t)
		go func() {
			_, err := c.Exec(ctx, "SELECT 1")
			errs <- err
		}()
	}
	waitWaiting(t, env, waiters)
	gate.shut.Store(true)
	must(t, cluster.Exec(ctx, dbName, "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = $1", execRole1))
	for range waiters {
		if err := <-errs; sqlState(err) != "08006" {
			t.Errorf("a client waiting while logins failed: %v; want SQLSTATE 08006\n%s", err, env.logs.String())
		}
	}
}

// While PostgreSQL refuses logins (a restart, max_connections reached),
// pgrotate tries them one at a time for the whole pool, with backoff, not
// once per waiting client: a full server is not made to start and end a
// backend a second for each of them. When logins work again, every
// waiting client gets its connection.
func TestLoginRetriesArePooled(t *testing.T) {
	const clients = 10
	gate := startGate(t, fmt.Sprintf("127.0.0.1:%d", cluster.Port))
	env := startProxy(t, setup{poolSize: clients, queryWait: "30s", upstreamPort: gate.port()})
	gate.shut.Store(true)
	errs := make(chan error, clients)
	for range clients {
		go func() {
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			c, err := pgx.Connect(ctx, env.appURL())
			if err == nil {
				_, err = c.Exec(ctx, "SELECT 1")
				c.Close(ctx)
			}
			errs <- err
		}()
	}
	time.Sleep(time.Second) // the clients' first logins, all at once, have failed
	before := gate.tries.Load()
	time.Sleep(3 * time.Second)
	// One at a time, resting 0.1, 0.2, 0.4, 0.8 s, then every second: about
	// 5 tries in 3 s; each client on its own would make about 4 times 10.
	if tries := gate.tries.Load() - before; tries > 8 {
		t.Errorf("%d logins tried in 3 s for %d waiting clients; want them tried one at a time", tries, clients)
	}
	gate.shut.Store(false)
	for range clients {
		if err := <-errs; err != nil {
			t.Errorf("a client that waited while logins failed: %v", err)
		}
	}
}
