package integration

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os/exec"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"
)

// pgx through pgrotate behaves as against PostgreSQL: extended protocol with
// its statement cache, COPY in both directions, errors inside transactions,
// large rows, cancellation, LISTEN/NOTIFY. Both relay engines.
func TestPgxThroughProxy(t *testing.T) {
	for _, r := range relays {
		t.Run(r.name, func(t *testing.T) { testPgxThroughProxy(t, setup{goroutineRelay: r.goroutine}) })
	}
}

func testPgxThroughProxy(t *testing.T, s setup) {
	env := startProxy(t, s)
	c := env.connect(t)
	ctx := ctxT(t)
	if _, err := c.Exec(ctx, "CREATE TABLE pgx_items (id int PRIMARY KEY, body text)"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cluster.Exec(context.Background(), dbName, "DROP TABLE IF EXISTS pgx_items") })

	t.Run("extended protocol with statement cache", func(t *testing.T) {
		for i := range 20 {
			var got int
			if err := c.QueryRow(ctx, "SELECT $1::int * 2", i).Scan(&got); err != nil || got != 2*i {
				t.Fatalf("SELECT %d*2 = %d, %v", i, got, err)
			}
		}
	})
	t.Run("copy from", func(t *testing.T) {
		rows := make([][]any, 5000)
		for i := range rows {
			rows[i] = []any{i, fmt.Sprintf("item %d", i)}
		}
		n, err := c.CopyFrom(ctx, pgx.Identifier{"pgx_items"}, []string{"id", "body"}, pgx.CopyFromRows(rows))
		if err != nil || n != 5000 {
			t.Fatalf("CopyFrom = %d, %v", n, err)
		}
	})
	t.Run("copy to", func(t *testing.T) {
		var out bytes.Buffer
		tag, err := c.PgConn().CopyTo(ctx, &out, "COPY (SELECT id, body FROM pgx_items ORDER BY id) TO STDOUT")
		if err != nil || tag.RowsAffected() != 5000 || !strings.HasPrefix(out.String(), "0\titem 0\n") {
			t.Fatalf("CopyTo = %v, %v, %.20q", tag, err, out.String())
		}
	})
	t.Run("error inside a transaction", func(t *testing.T) {
		tx, err := c.Begin(ctx)
		if err != nil {
			t.Fatal(err)
		}
		_, err = tx.Exec(ctx, "INSERT INTO pgx_items VALUES (1, 'duplicate')")
		if sqlState(err) != "23505" {
			t.Fatalf("duplicate insert: %v; want 23505", err)
		}
		_, err = tx.Exec(ctx, "SELECT 1")
		if sqlState(err) != "25P02" {
			t.Fatalf("statement in failed transaction: %v; want 25P02", err)
		}
		if err := tx.Rollback(ctx); err != nil {
			t.Fatal(err)
		}
		if err := c.Ping(ctx); err != nil {
			t.Fatalf("after rollback: %v", err)
		}
	})
	t.Run("large rows", func(t *testing.T) {
		var n int
		var s string
		err := c.QueryRow(ctx, "SELECT length(x), x FROM (SELECT repeat('ab', 8*1024*1024) AS x) s").Scan(&n, &s)
		if err != nil || n != 16<<20 || len(s) != 16<<20 {
			t.Fatalf("16 MiB row: %d, %d bytes, %v", n, len(s), err)
		}
		big := strings.Repeat("z", 12<<20)
		if err := c.QueryRow(ctx, "SELECT length($1::text)", big).Scan(&n); err != nil || n != len(big) {
			t.Fatalf("12 MiB parameter: %d, %v", n, err)
		}
	})
	t.Run("cancel", func(t *testing.T) {
		cctx, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
		defer cancel()
		_, err := c.Exec(cctx, "SELECT pg_sleep(30)")
		var pe *pgconn.PgError
		if !errors.As(err, &pe) || pe.Code != "57014" {
			// pgx may also close the connection if the cancel is slow; then
			// the error is a timeout, which still proves nothing ran 30 s.
			if !pgconn.Timeout(err) {
				t.Fatalf("cancelled pg_sleep: %v; want SQLSTATE 57014", err)
			}
		}
	})
}

// A cancel request reaches the server connection of the client that sent it
// and ends its query with 57014, and nobody else's.
func TestCancelHitsTheRightQuery(t *testing.T) {
	env := startProxy(t, setup{})
	victim, bystander := env.connect(t), env.connect(t)
	ctx := ctxT(t)
	bystanderDone := make(chan error, 1)
	go func() {
		_, err := bystander.Exec(ctx, "SELECT pg_sleep(1.5)", pgx.QueryExecModeSimpleProtocol)
		bystanderDone <- err
	}()
	victimDone := make(chan error, 1)
	go func() {
		_, err := victim.Exec(ctx, "SELECT pg_sleep(30)", pgx.QueryExecModeSimpleProtocol)
		victimDone <- err
	}()
	waitForQuery(t, "SELECT pg_sleep(30)")
	if err := victim.PgConn().CancelRequest(ctx); err != nil {
		t.Fatal(err)
	}
	if err := <-victimDone; sqlState(err) != "57014" {
		t.Fatalf("cancelled query: %v; want SQLSTATE 57014", err)
	}
	if err := <-bystanderDone; err != nil {
		t.Fatalf("the other client's query was hit: %v", err)
	}
}

// A client that leaves while its statement runs (a web worker killed
// mid-request) has the statement cancelled: closing the server connection
// alone would leave the backend running it to its end, beside the
// replacement the pool opens.
func TestClientLeavingMidStatementCancelsIt(t *testing.T) {
	for _, mode := range []string{"session", "transaction"} {
		t.Run(mode, func(t *testing.T) {
			env := startProxy(t, setup{poolMode: mode, poolSize: 2})
			c := env.connect(t)
			conn := c.PgConn().Conn()
			const text = "SELECT pg_sleep(60) /* left behind */"
			go func() { _, _ = c.Exec(context.Background(), text) }()
			waitForQuery(t, text)
			_ = conn.(*net.TCPConn).SetLinger(0)
			_ = conn.Close()
			for deadline := time.Now().Add(5 * time.Second); runningNow(t, text) != "0"; time.Sleep(50 * time.Millisecond) {
				if time.Now().After(deadline) {
					t.Fatal("the statement of the client that left still runs after 5 s")
				}
			}
		})
	}
}

// waitForQuery waits until PostgreSQL runs a query with that text.
func waitForQuery(t *testing.T, text string) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if runningNow(t, text) != "0" {
			return
		}
	}
	t.Fatalf("query %q never started", text)
}

// runningNow is how many backends run a query with that text now.
func runningNow(t *testing.T, text string) string {
	t.Helper()
	rows, err := cluster.QueryStrings(ctxT(t), "postgres", "SELECT count(*)::text FROM pg_stat_activity WHERE query = $1 AND state = 'active'", text)
	must(t, err)
	return rows[0][0]
}

// LISTEN/NOTIFY works in session mode: notifications reach the listener.
func TestListenNotify(t *testing.T) {
	env := startProxy(t, setup{})
	listener, notifier := env.connect(t), env.connect(t)
	ctx := ctxT(t)
	if _, err := listener.Exec(ctx, "LISTEN orders"); err != nil {
		t.Fatal(err)
	}
	if _, err := notifier.Exec(ctx, "SELECT pg_notify('orders', 'order 42')"); err != nil {
		t.Fatal(err)
	}
	n, err := listener.WaitForNotification(ctx)
	if err != nil || n.Channel != "orders" || n.Payload != "order 42" {
		t.Fatalf("notification = %+v, %v", n, err)
	}
}

// psql through pgrotate: queries, \copy in and out, and an error that does
// not end the session.
func TestPsql(t *testing.T) {
	env := startProxy(t, setup{})
	script := `
\set ON_ERROR_STOP 0
CREATE TABLE psql_t (n int);
\copy psql_t FROM PROGRAM 'seq 1 1000'
SELECT current_user, count(*) FROM psql_t;
SELECT 1/0;
\copy (SELECT sum(n) FROM psql_t) TO STDOUT
DROP TABLE psql_t;
`
	out := runPsql(t, env, script)
	for _, want := range []string{ownerRole + "|1000", "division by zero", "500500"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("psql output lacks %q:\n%s", want, out)
		}
	}
}

// pgbench through pgrotate: initialization (a migration), then select-only
// load in the simple, extended and prepared protocols, with zero errors.
func TestPgbench(t *testing.T) {
	for _, r := range relays {
		t.Run(r.name, func(t *testing.T) { testPgbench(t, setup{poolSize: 20, goroutineRelay: r.goroutine}) })
	}
}

func testPgbench(t *testing.T, s setup) {
	pgbench := lookPath(t, "pgbench")
	env := startProxy(t, s)
	runPgbench(t, pgbench, env, "-i", "-s", "1", "-q")
	t.Cleanup(func() {
		_ = cluster.Exec(context.Background(), dbName, "DROP TABLE IF EXISTS pgbench_accounts, pgbench_branches, pgbench_tellers, pgbench_history")
	})
	rows, err := cluster.QueryStrings(ctxT(t), dbName, "SELECT DISTINCT pg_get_userbyid(relowner) FROM pg_class WHERE relname LIKE 'pgbench_%'")
	if err != nil || len(rows) != 1 || rows[0][0] != ownerRole {
		t.Fatalf("pgbench tables owned by %v (%v); want only %s", rows, err, ownerRole)
	}
	for _, mode := range []string{"simple", "extended", "prepared"} {
		t.Run(mode, func(t *testing.T) {
			out := runPgbench(t, pgbench, env, "-S", "-M", mode, "-c", "16", "-j", "2", "-t", "200", "-n")
			if !strings.Contains(out, "number of failed transactions: 0 ") || !strings.Contains(out, "actually processed: 3200/3200") {
				t.Fatalf("pgbench -M %s did not complete every transaction:\n%s", mode, out)
			}
		})
	}
}

// runPsql runs a psql script through pgrotate and returns its output.
func runPsql(t *testing.T, env *proxyEnv, script string) string {
	t.Helper()
	cmd := exec.Command(lookPath(t, "psql"), "-X", "-A", "-t", env.appURL())
	cmd.Stdin = strings.NewReader(script)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("psql: %v\n%s", err, out)
	}
	return string(out)
}

func runPgbench(t *testing.T, pgbench string, env *proxyEnv, args ...string) string {
	t.Helper()
	cmd := exec.Command(pgbench, append(args, env.appURL())...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("pgbench %v: %v\n%s\npgrotate log:\n%s", args, err, out, tail(env.logs.String(), 30))
	}
	return string(out)
}

func lookPath(t *testing.T, name string) string {
	t.Helper()
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	p := cluster.BinDir + "/" + name
	if _, err := exec.LookPath(p); err != nil {
		t.Fatalf("%s not found on PATH or in %s: install PostgreSQL's client programs", name, cluster.BinDir)
	}
	return p
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}

// An md5 client (auth.allow_md5) logs in and is refused with a wrong
// password, in both pool modes. Its login starts on the event loop and goes
// on on a goroutine, which runs the md5 exchange.
func TestMD5ClientLogsIn(t *testing.T) {
	for _, mode := range []string{"session", "transaction"} {
		t.Run(mode, func(t *testing.T) {
			env := startProxy(t, setup{poolMode: mode, md5: true})
			c := env.connect(t)
			if got := queryStrings(t, c, "SELECT current_user")[0]; got != ownerRole {
				t.Fatalf("current_user %q, want %q", got, ownerRole)
			}
			if _, err := connectAs(env, appUser, "guess"); sqlState(err) != "28P01" {
				t.Fatalf("wrong md5 password: %v, want SQLSTATE 28P01", err)
			}
		})
	}
}

// A login that arrives in pieces (each write split in three, a little
// apart), with a startup packet longer than one small read, logs in and
// runs queries: on the event loop, each message waits until it is whole.
func TestLoginArrivingInPieces(t *testing.T) {
	for _, mode := range []string{"session", "transaction"} {
		t.Run(mode, func(t *testing.T) {
			env := startProxy(t, setup{poolMode: mode})
			ctx := ctxT(t)
			must(t, env.connect(t).Close(ctx)) // a transaction pool learns its server's defaults
			cfg, err := pgx.ParseConfig(env.url(appUser, appPass, dbName))
			must(t, err)
			cfg.RuntimeParams["application_name"] = strings.Repeat("a", 1500)
			cfg.DialFunc = func(ctx context.Context, network, addr string) (net.Conn, error) {
				var d net.Dialer
				c, err := d.DialContext(ctx, network, addr)
				if err != nil {
					return nil, err
				}
				return dribble{c}, nil
			}
			c, err := pgx.ConnectConfig(ctx, cfg)
			must(t, err)
			defer c.Close(ctx)
			if got := queryStrings(t, c, "SELECT current_user")[0]; got != ownerRole {
				t.Fatalf("current_user %q, want %q", got, ownerRole)
			}
			if got := queryStrings(t, c, "SELECT current_setting('application_name')")[0]; !strings.HasPrefix(got, "aaaaaaaa") {
				t.Errorf("application_name %q, want the client's", got)
			}
		})
	}
}

// dribble writes each buffer in three pieces, 5 ms apart.
type dribble struct{ net.Conn }

func (d dribble) Write(b []byte) (int, error) {
	n := 0
	for len(b) > 0 {
		k := min(len(b), max(1, (len(b)+2)/3))
		m, err := d.Conn.Write(b[:k])
		n += m
		if err != nil {
			return n, err
		}
		b = b[k:]
		time.Sleep(5 * time.Millisecond)
	}
	return n, nil
}

// A client may send its next messages right behind its last login message,
// before it has read the server's answer. pgrotate serves them after the
// greeting: a query is answered; a Terminate ends the session at once, and
// the server connection, still idle, serves the next client. (On the event
// loop such a Terminate once ended the round while it was being started,
// and the loop waited on itself for good.)
func TestMessagesRightBehindLogin(t *testing.T) {
	for _, mode := range []string{"session", "transaction"} {
		t.Run(mode+"/query", func(t *testing.T) {
			env := startProxy(t, setup{poolMode: mode, poolSize: 1})
			ctx := ctxT(t)
			must(t, env.connect(t).Close(ctx)) // the pool opens its connection
			waitNoClients(t, env, "active", 1) // and has it back: the loop serves the next client
			query, err := (&pgproto3.Query{String: "SELECT 6 * 7"}).Encode(nil)
			must(t, err)
			c := connectTrailing(t, env, query)
			defer c.Close(ctx)
			var got string
			for {
				msg, err := c.PgConn().ReceiveMessage(ctx)
				must(t, err)
				if row, ok := msg.(*pgproto3.DataRow); ok {
					got = string(row.Values[0])
				}
				if _, ok := msg.(*pgproto3.ReadyForQuery); ok {
					break
				}
			}
			if got != "42" {
				t.Fatalf("the query sent behind the login returned %q, want 42", got)
			}
			if got := queryStrings(t, c, "SELECT current_user")[0]; got != ownerRole {
				t.Fatalf("current_user %q, want %q", got, ownerRole)
			}
		})
		t.Run(mode+"/terminate", func(t *testing.T) {
			env := startProxy(t, setup{poolMode: mode, poolSize: 1})
			ctx := ctxT(t)
			must(t, env.connect(t).Close(ctx))
			waitNoClients(t, env, "active", 1)
			c := connectTrailing(t, env, []byte{'X', 0, 0, 0, 4})
			if _, err := c.Exec(ctx, "SELECT 1"); err == nil {
				t.Fatal("a query after the client's own Terminate succeeded")
			}
			waitNoClients(t, env, "active", 1)
			next := env.connect(t)
			defer next.Close(ctx)
			if got := queryStrings(t, next, "SELECT current_user")[0]; got != ownerRole {
				t.Fatalf("current_user %q, want %q", got, ownerRole)
			}
		})
	}
}

// connectTrailing logs in with pgx, sending tail right behind the last
// SCRAM message; pgx is greeted before pgrotate reads tail.
func connectTrailing(t *testing.T, env *proxyEnv, tail []byte) *pgx.Conn {
	t.Helper()
	cfg, err := pgx.ParseConfig(env.url(appUser, appPass, dbName))
	must(t, err)
	cfg.DialFunc = func(ctx context.Context, network, addr string) (net.Conn, error) {
		var d net.Dialer
		c, err := d.DialContext(ctx, network, addr)
		return &trailing{Conn: c, tail: tail}, err
	}
	c, err := pgx.ConnectConfig(ctxT(t), cfg)
	must(t, err)
	return c
}

// trailing appends tail to the client's last SCRAM message (the
// client-final-message, "c=…"), as a client that sends ahead would.
type trailing struct {
	net.Conn
	tail []byte
	sent bool
}

func (c *trailing) Write(b []byte) (int, error) {
	if c.sent || len(b) < 7 || b[0] != 'p' || !bytes.HasPrefix(b[5:], []byte("c=")) {
		return c.Conn.Write(b)
	}
	c.sent = true
	if _, err := c.Conn.Write(append(bytes.Clone(b), c.tail...)); err != nil {
		return 0, err
	}
	return len(b), nil
}

// A session-mode client is relayed by the event loop with no goroutine
// waiting for it while it holds its connection, as none does for a
// transaction-mode client: one that found a connection ready in the pool
// (the loop greets it), and one that waited for the pool to open one (a
// goroutine greets it, then hands it to the loop for good).
func TestSessionClientsHoldNoGoroutine(t *testing.T) {
	const clients = 20
	env := startProxy(t, setup{poolMode: "session", poolSize: clients})
	ctx := ctxT(t)
	base := runtime.NumGoroutine()
	for _, arrival := range []string{"on an empty pool", "on pooled connections"} {
		conns := make([]*pgx.Conn, clients)
		for i := range conns {
			conns[i] = env.connect(t)
			if got := queryStrings(t, conns[i], "SELECT current_user")[0]; got != ownerRole {
				t.Fatalf("current_user %q, want %q", got, ownerRole)
			}
		}
		// The pool's connections and their upkeep add a few goroutines, not
		// one per client.
		if n := settledGoroutines(base + clients/2); n >= base+clients/2 {
			t.Fatalf("%d goroutines with %d session-mode clients connected %s, %d before them: a goroutine per client", n, clients, arrival, base)
		}
		for _, c := range conns {
			must(t, c.Close(ctx))
		}
		waitNoClients(t, env, "active", clients)
	}
}
