package integration

import (
	"context"
	"fmt"
	"net"
	"net/url"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Transaction pooling with pgx's default statement cache: many clients share
// few server connections, and every client's named prepared statements keep
// working on whichever connection it gets.
func TestTransactionModePgxStatementCache(t *testing.T) {
	env := startProxy(t, setup{poolMode: "transaction", poolSize: 3})
	ctx := ctxT(t)
	var wg sync.WaitGroup
	errs := make(chan error, 20)
	for w := range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := pgx.Connect(ctx, env.appURL())
			if err != nil {
				errs <- err
				return
			}
			defer c.Close(context.Background())
			for i := range 50 {
				var got int
				var who string
				// Two cached statements per client, used alternately.
				if err := c.QueryRow(ctx, "SELECT $1::int + $2::int", w, i).Scan(&got); err != nil || got != w+i {
					errs <- fmt.Errorf("worker %d: %d+%d = %d, %v", w, w, i, got, err)
					return
				}
				if err := c.QueryRow(ctx, "SELECT current_user").Scan(&who); err != nil || who != ownerRole {
					errs <- fmt.Errorf("worker %d: current_user = %q, %v", w, who, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// pgbench in transaction mode, 100 clients on a pool of 10, in every
// protocol including -M prepared, on both relay engines.
func TestTransactionModePgbench(t *testing.T) {
	for _, r := range relays {
		t.Run(r.name, func(t *testing.T) {
			testTransactionModePgbench(t, setup{poolMode: "transaction", poolSize: 10, goroutineRelay: r.goroutine})
		})
	}
}

func testTransactionModePgbench(t *testing.T, s setup) {
	pgbench := lookPath(t, "pgbench")
	env := startProxy(t, s)
	runPgbench(t, pgbench, env, "-i", "-s", "1", "-q")
	t.Cleanup(func() {
		_ = cluster.Exec(context.Background(), dbName, "DROP TABLE IF EXISTS pgbench_accounts, pgbench_branches, pgbench_tellers, pgbench_history")
	})
	for _, mode := range []string{"simple", "extended", "prepared"} {
		t.Run(mode, func(t *testing.T) {
			out := runPgbench(t, pgbench, env, "-M", mode, "-c", "100", "-j", "2", "-t", "30", "-n")
			if !strings.Contains(out, "number of failed transactions: 0 ") || !strings.Contains(out, "actually processed: 3000/3000") {
				t.Fatalf("pgbench -M %s:\n%s", mode, out)
			}
		})
	}
}

// Two clients with different TimeZone settings share one server connection
// and each sees its own zone, whoever ran on the connection before.
func TestTransactionModeKeepsEachClientsSettings(t *testing.T) {
	env := startProxy(t, setup{poolMode: "transaction", poolSize: 1})
	tokyo, err := pgx.Connect(ctxT(t), env.appURL()+"&timezone=Asia/Tokyo")
	must(t, err)
	defer tokyo.Close(context.Background())
	lima := env.connect(t)
	_, err = lima.Exec(ctxT(t), "SET TimeZone = 'America/Lima'")
	must(t, err)
	for range 5 {
		for c, want := range map[*pgx.Conn]string{tokyo: "Asia/Tokyo", lima: "America/Lima"} {
			if got := queryStrings(t, c, "SELECT current_setting('TimeZone')")[0]; got != want {
				t.Fatalf("TimeZone = %s, want %s", got, want)
			}
		}
	}
}

// PostgreSQL reports only some parameters on the wire. A SET of one it
// does not report (statement_timeout) must not stay on the server
// connection for the next client, whose own startup options or the
// server's default apply instead. A comment in front (a query tag) hides
// nothing.
func TestTransactionModeUnreportedSettingDoesNotLeak(t *testing.T) {
	env := startProxy(t, setup{poolMode: "transaction", poolSize: 1})
	ctx := ctxT(t)
	withOptions := func() *pgx.Conn {
		c, err := pgx.Connect(ctx, env.appURL()+"&options=-c%20statement_timeout%3D5s")
		must(t, err)
		t.Cleanup(func() { c.Close(context.Background()) })
		return c
	}
	a, b, plain := withOptions(), withOptions(), env.connect(t)
	for _, setting := range []string{"SET statement_timeout = 0", "SELECT set_config('statement_timeout', '0', false)", "RESET statement_timeout",
		"/* app:billing */ SET statement_timeout = 0", "-- tagged\nRESET statement_timeout"} {
		_, err := a.Exec(ctx, setting)
		must(t, err)
		if got := queryStrings(t, b, "SHOW statement_timeout")[0]; got != "5s" {
			t.Fatalf("after another client's %q, a client that logged in with statement_timeout=5s sees %s", setting, got)
		}
		if got := queryStrings(t, plain, "SHOW statement_timeout")[0]; got != "0" {
			t.Fatalf("after another client's %q, a client without options sees statement_timeout %s, want the default 0", setting, got)
		}
	}
	// In a transaction block, the client's SET is its own until the end.
	tx, err := a.Begin(ctx)
	must(t, err)
	_, err = tx.Exec(ctx, "SET statement_timeout = '7s'")
	must(t, err)
	var got string
	must(t, tx.QueryRow(ctx, "SHOW statement_timeout").Scan(&got))
	must(t, tx.Commit(ctx))
	if got != "7s" {
		t.Fatalf("inside its transaction a client's SET gave %s, want 7s", got)
	}
}

// When every server connection stays busy past query_wait_timeout, the
// waiting client gets 53300 naming the pool.
func TestTransactionModeWaitTimeout(t *testing.T) {
	env := startProxy(t, setup{poolMode: "transaction", poolSize: 1, queryWait: "500ms"})
	holder := env.connect(t)
	tx, err := holder.Begin(ctxT(t))
	must(t, err)
	defer tx.Rollback(context.Background())
	_, err = tx.Exec(ctxT(t), "SELECT 1")
	must(t, err)
	waiter := env.connect(t)
	_, err = waiter.Exec(ctxT(t), "SELECT 1")
	if sqlState(err) != "53300" || !strings.Contains(err.Error(), `"bookstore"`) {
		t.Fatalf("query while the pool is busy: %v; want SQLSTATE 53300 naming the pool", err)
	}
}

// A client that closes its connection while it waits for a server
// connection, its statement sent, is forgotten at once: it stops counting
// as waiting, and its statement never runs (PgBouncer drops such a client
// too; served in its turn, it would take the connection from one that
// stayed, to run what nobody reads). So is one that sent a Terminate as it
// left, as drivers do when they give up on a query (pgx on a timeout, JDBC,
// libpq): under load, such clients kept their places, the pool ran their
// statements for nobody, and more clients timed out.
func TestTransactionModeWaitingClientThatLeaves(t *testing.T) {
	for _, r := range relays {
		t.Run(r.name, func(t *testing.T) {
			env := startProxy(t, setup{poolMode: "transaction", poolSize: 1, queryWait: "60s", goroutineRelay: r.goroutine})
			ctx := ctxT(t)
			_, err := env.connect(t).Exec(ctx, "DROP TABLE IF EXISTS left_waiting; CREATE TABLE left_waiting (n int)")
			must(t, err)
			tx := holdTheConnection(t, env)

			// Each client sends its INSERT, waits, and leaves: without a
			// word, or with a Terminate as it closes.
			for n, leave := range []func(*pgconn.PgConn){
				func(c *pgconn.PgConn) { must(t, c.Conn().Close()) },
				func(c *pgconn.PgConn) { sayGoodbye(t, c); must(t, c.Conn().Close()) },
			} {
				c := env.connect(t).PgConn()
				c.Frontend().Send(&pgproto3.Query{String: fmt.Sprintf("INSERT INTO left_waiting VALUES (%d)", n)})
				must(t, c.Frontend().Flush())
				waitWaiting(t, env, 1)
				leave(c)
				waitWaiting(t, env, 0)
			}
			// pgx, giving up on a timed-out query, sends a Terminate and
			// waits for the server to close the connection.
			stayer := env.connect(t).PgConn()
			stayer.Frontend().Send(&pgproto3.Query{String: "INSERT INTO left_waiting VALUES (3)"})
			must(t, stayer.Frontend().Flush())
			waitWaiting(t, env, 1)
			sayGoodbye(t, stayer)
			waitWaiting(t, env, 0)
			must(t, stayer.Conn().SetReadDeadline(time.Now().Add(5*time.Second)))
			if n, err := stayer.Conn().Read(make([]byte, 1)); err == nil {
				t.Errorf("the client that said goodbye and stayed read %d bytes; want its connection closed", n)
			}

			must(t, tx.Commit(ctx))
			if got := queryStrings(t, env.connect(t), "SELECT count(*) FROM left_waiting")[0]; got != "0" {
				t.Errorf("%s rows; the statements of clients that left while waiting must not run", got)
			}
		})
	}
}

// sayGoodbye sends c's Terminate.
func sayGoodbye(t *testing.T, c *pgconn.PgConn) {
	t.Helper()
	c.Frontend().Send(&pgproto3.Terminate{})
	must(t, c.Frontend().Flush())
}

// holdTheConnection has a new client hold a server connection, in an open
// transaction: with a pool of one, the others wait.
func holdTheConnection(t *testing.T, env *proxyEnv) pgx.Tx {
	t.Helper()
	tx, err := env.connect(t).Begin(ctxT(t))
	must(t, err)
	_, err = tx.Exec(ctxT(t), "SELECT 1")
	must(t, err)
	return tx
}

// waitWaiting waits up to 5 s for pgrotate to count n clients waiting for
// a server connection.
func waitWaiting(t *testing.T, env *proxyEnv, n float64) {
	t.Helper()
	waitMetric(t, env, "pgrotate_database_waiting_clients", map[string]string{"database": dbName}, n, "clients waiting for a server connection")
}

// waitMetric waits up to 5 s for pgrotate's metric name, summed over the
// series with labels, to be n; what names the count in the failure.
func waitMetric(t *testing.T, env *proxyEnv, name string, labels map[string]string, n float64, what string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		got, _ := value(env.scrape(t), name, labels)
		if got == n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%v %s, want %v", got, what, n)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// A cancel in transaction mode reaches the connection the client holds now.
func TestTransactionModeCancel(t *testing.T) {
	env := startProxy(t, setup{poolMode: "transaction", poolSize: 2})
	c := env.connect(t)
	done := make(chan error, 1)
	go func() {
		_, err := c.Exec(ctxT(t), "SELECT pg_sleep(30)", pgx.QueryExecModeSimpleProtocol)
		done <- err
	}()
	waitForQuery(t, "SELECT pg_sleep(30)")
	must(t, c.PgConn().CancelRequest(ctxT(t)))
	if err := <-done; sqlState(err) != "57014" {
		t.Fatalf("cancelled query: %v; want 57014", err)
	}
	if got := queryStrings(t, c, "SELECT 1")[0]; got != "1" {
		t.Fatalf("after the cancel: %q", got)
	}
}

// psql and COPY in transaction mode.
func TestTransactionModePsqlAndCopy(t *testing.T) {
	env := startProxy(t, setup{poolMode: "transaction", poolSize: 2})
	c := env.connect(t)
	ctx := ctxT(t)
	_, err := c.Exec(ctx, "CREATE TABLE tx_copy (n int)")
	must(t, err)
	t.Cleanup(func() { _ = cluster.Exec(context.Background(), dbName, "DROP TABLE IF EXISTS tx_copy") })
	rows := make([][]any, 1000)
	for i := range rows {
		rows[i] = []any{i}
	}
	n, err := c.CopyFrom(ctx, pgx.Identifier{"tx_copy"}, []string{"n"}, pgx.CopyFromRows(rows))
	if err != nil || n != 1000 {
		t.Fatalf("CopyFrom: %d, %v", n, err)
	}
	out := runPsql(t, env, `\copy tx_copy FROM PROGRAM 'seq 1 10'
SELECT count(*) FROM tx_copy;`)
	if !strings.Contains(out, "1010") {
		t.Fatalf("psql:\n%s", out)
	}
}

// A pgxpool app keeps working across a rotation in transaction mode.
func TestTransactionModeRotation(t *testing.T) {
	env := startProxy(t, setup{poolMode: "transaction", poolSize: 4})
	cfg, err := pgxpool.ParseConfig(env.appURL())
	must(t, err)
	pool, err := pgxpool.NewWithConfig(ctxT(t), cfg)
	must(t, err)
	defer pool.Close()
	for i := 1; i <= 3; i++ {
		role, pw := nextRole(t, i)
		env.writeCredential(t, role, pw)
		env.waitRotated(t, role, time.Now())
		var who string
		must(t, pool.QueryRow(ctxT(t), "SELECT session_user").Scan(&who))
		if who != role {
			t.Fatalf("rotation %d: session_user = %s, want %s", i, who, role)
		}
	}
}

// A server connection terminated while idle in a transaction-mode pool
// (pg_terminate_backend, idle_session_timeout) costs no client a query on
// the event loop: the loop saw the server's FATAL arrive while nobody held
// the connection, retires it, and the next transaction gets a fresh one.
// (On goroutines, the first transaction on it fails and the client
// reconnects; the idle health check otherwise finds it within 30 s.)
func TestTransactionModeIdleServerTerminated(t *testing.T) {
	env := startProxy(t, setup{poolMode: "transaction", poolSize: 1})
	c := env.connect(t)
	pid := queryStrings(t, c, "SELECT pg_backend_pid()")[0]
	// pg_terminate_backend with a timeout returns once the backend is gone,
	// its FATAL and the end of the connection sent.
	if err := cluster.Exec(ctxT(t), "postgres", "SELECT pg_terminate_backend($1::int, 5000)", pid); err != nil {
		t.Fatal(err)
	}
	time.Sleep(100 * time.Millisecond) // for them to reach pgrotate
	got := queryStrings(t, c, "SELECT pg_backend_pid(), current_user")
	if got[0] == pid || got[1] != ownerRole {
		t.Fatalf("after the idle backend %s was terminated: pid %s, current_user %s", pid, got[0], got[1])
	}
}

// A connection whose transaction mentioned roles gets RESET ROLE before it
// is reused, and then serves the next transaction: the reply to RESET ROLE,
// read while no client held it, does not make it look stale.
func TestTransactionModeResetRoleKeepsTheConnection(t *testing.T) {
	env := startProxy(t, setup{poolMode: "transaction", poolSize: 1})
	c := env.connect(t)
	first := queryStrings(t, c, "SELECT pg_backend_pid()::text || ' ' || current_role")[0]
	time.Sleep(100 * time.Millisecond) // RESET ROLE runs after the transaction
	pid := queryStrings(t, c, "SELECT pg_backend_pid()")[0]
	if !strings.HasPrefix(first, pid+" ") {
		t.Fatalf("after RESET ROLE the next transaction ran on backend %s, not %s: the connection was replaced", pid, first)
	}
}

// What a transaction leaves in its server session never reaches the next
// client of that connection: LISTEN, a temporary table, a session-level
// advisory lock, a WITH HOLD cursor and an SQL PREPARE are undone when the
// transaction ends, through the extended protocol (pgx's statement cache,
// also when a cached statement runs again without its text) and the simple
// one. The statements pgrotate prepared on the connection
// for its clients survive: the next client's identical query reuses one.
func TestTransactionModeSessionStateDoesNotLeak(t *testing.T) {
	for _, r := range relays {
		t.Run(r.name, func(t *testing.T) {
			testSessionStateDoesNotLeak(t, setup{poolMode: "transaction", poolSize: 1, goroutineRelay: r.goroutine})
		})
	}
}

func testSessionStateDoesNotLeak(t *testing.T, s setup) {
	env := startProxy(t, s)
	ctx := ctxT(t)
	a := env.connect(t)
	pid := queryStrings(t, a, "SELECT pg_backend_pid()")[0] // a statement pgrotate prepares on the connection
	for _, st := range []struct {
		sql      string
		extended bool // Parse, Bind, Execute through pgx's statement cache
	}{
		{"LISTEN leaky", true},
		{"CREATE TEMP TABLE scratch (x int)", false},
		{"SELECT pg_advisory_lock(42)", true},
		{"DECLARE held CURSOR WITH HOLD FOR SELECT 1", false},
		{"PREPARE leak AS SELECT 1", false},
		// From pgx's statement cache now: Bind and Execute only, the text
		// was read in an earlier transaction.
		{"LISTEN leaky", true},
		{"SELECT pg_advisory_lock(42)", true},
	} {
		if err := runStatement(ctx, a, st.sql, st.extended); err != nil {
			t.Fatalf("%s: %v", st.sql, err)
		}
	}
	must(t, a.Close(ctx))

	b := env.connect(t)
	if got := queryStrings(t, b, "SELECT pg_backend_pid()")[0]; got != pid {
		t.Fatalf("pool of one gave another server connection (%s, then %s)", pid, got)
	}
	left := queryStrings(t, b, `SELECT
		(SELECT count(*) FROM pg_listening_channels()),
		(SELECT count(*) FROM pg_class WHERE relname = 'scratch' AND relpersistence = 't'),
		(SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid()),
		(SELECT count(*) FROM pg_cursors WHERE is_holdable),
		(SELECT count(*) FROM pg_prepared_statements WHERE from_sql)`)
	for i, what := range []string{"listening channels", "temporary tables", "advisory locks", "WITH HOLD cursors", "SQL prepared statements"} {
		if left[i] != "0" {
			t.Errorf("the next client of the connection finds %s %s of the last one", left[i], what)
		}
	}
	// Operators can see it happen: one cleanup after each of A's seven
	// statements (and one after B's check, which names advisory locks).
	if n, _ := value(env.scrape(t), "pgrotate_transaction_cleanups_total", map[string]string{"kind": "session_state"}); n < 7 {
		t.Errorf("pgrotate_transaction_cleanups_total{kind=session_state} = %v, want at least 7", n)
	}
}

// A client whose startup options put pg_temp first in search_path creates
// temporary tables with no word saying so; they are dropped before the
// next client gets the connection all the same.
func TestTransactionModeTempSearchPathDoesNotLeak(t *testing.T) {
	env := startProxy(t, setup{poolMode: "transaction", poolSize: 1})
	ctx := ctxT(t)
	a, err := pgx.Connect(ctx, env.appURL()+"&options=-c%20search_path%3Dpg_temp%2Cpublic")
	must(t, err)
	defer a.Close(context.Background())
	_, err = a.Exec(ctx, "CREATE TABLE private_rows (v text)", pgx.QueryExecModeSimpleProtocol)
	must(t, err)
	b := env.connect(t)
	if got := queryStrings(t, b, "SELECT count(*) FROM pg_class WHERE relname = 'private_rows' AND relpersistence = 't'")[0]; got != "0" {
		t.Fatalf("the next client of the connection finds %s temporary table of the last one", got)
	}
}

// A simple query whose text only looks like DEALLOCATE or DISCARD (a
// column named discarded, a string) leaves the client's cached statements
// working, and after a real DEALLOCATE ALL the client prepares its
// statements again.
func TestTransactionModeStatementsSurviveLookalikes(t *testing.T) {
	env := startProxy(t, setup{poolMode: "transaction", poolSize: 1})
	ctx := ctxT(t)
	c := env.connect(t)
	var n int
	must(t, c.QueryRow(ctx, "SELECT $1::int", 1).Scan(&n)) // prepared into pgx's cache
	for _, sql := range []string{"SELECT 'discarded' AS discarded", "SELECT 'discard all, said the note'"} {
		if _, err := c.Exec(ctx, sql, pgx.QueryExecModeSimpleProtocol); err != nil {
			t.Fatal(err)
		}
		if err := c.QueryRow(ctx, "SELECT $1::int", 2).Scan(&n); err != nil || n != 2 {
			t.Fatalf("cached statement after %q: %d, %v", sql, n, err)
		}
	}
	must(t, c.DeallocateAll(ctx)) // DEALLOCATE ALL, and pgx empties its cache
	if err := c.QueryRow(ctx, "SELECT $1::int", 3).Scan(&n); err != nil || n != 3 {
		t.Fatalf("statement prepared again after DEALLOCATE ALL: %d, %v", n, err)
	}
}

// DEALLOCATE ALL sent as an extended-protocol statement, as psycopg 3
// sends it to clear its statement cache after a failed transaction (and
// DISCARD ALL sent the same way), empties
// the server connection of the statements pgrotate had prepared there: the
// same statement prepared again afterwards, by this client under a new name
// or by another client, is prepared on the server again.
func TestTransactionModeDeallocateAllExtended(t *testing.T) {
	env := startProxy(t, setup{poolMode: "transaction", poolSize: 1})
	ctx := ctxT(t)
	a, b := env.connect(t).PgConn(), env.connect(t).PgConn()
	const sql = "SELECT $1::int + 1"
	run := func(c *pgconn.PgConn, name string) error {
		if _, err := c.Prepare(ctx, name, sql, nil); err != nil {
			return err
		}
		return c.ExecPrepared(ctx, name, [][]byte{[]byte("1")}, nil, nil).Read().Err
	}
	must(t, run(a, "s1"))
	for _, forget := range []string{"DEALLOCATE ALL", "DISCARD ALL"} {
		for _, c := range []*pgconn.PgConn{a, b} {
			if err := c.ExecParams(ctx, forget, nil, nil, nil, nil).Read().Err; err != nil {
				t.Fatal(err)
			}
			if err := run(a, "s2"); err != nil {
				t.Fatalf("the statement prepared again after %s: %v", forget, err)
			}
			if err := run(b, "t1"); err != nil {
				t.Fatalf("another client's statement of the same text after %s: %v", forget, err)
			}
			must(t, a.Deallocate(ctx, "s2"))
			must(t, b.Deallocate(ctx, "t1"))
		}
	}
}

// A client's unnamed statement is its own, from one transaction to the
// next, as on a server of its own: pgx's describe-exec mode parses it in one
// round trip and binds it in the next, by which time another client may have
// parsed its own on the same server connection. A client that never parsed
// one gets an error, never another client's statement.
func TestTransactionModeUnnamedStatementIsTheClients(t *testing.T) {
	env := startProxy(t, setup{poolMode: "transaction", poolSize: 1})
	ctx := ctxT(t)
	a, b, c := env.connect(t), env.connect(t), env.connect(t)
	_, err := a.PgConn().Prepare(ctx, "", "SELECT 'a'::text", nil)
	must(t, err)
	_, err = b.PgConn().Prepare(ctx, "", "SELECT 'b'::text", nil)
	must(t, err)
	res := a.PgConn().ExecPrepared(ctx, "", nil, nil, nil).Read()
	if res.Err != nil || len(res.Rows) != 1 || string(res.Rows[0][0]) != "a" {
		t.Fatalf("client a's unnamed statement returned %q, %v; want a", res.Rows, res.Err)
	}
	if res := c.PgConn().ExecPrepared(ctx, "", nil, nil, nil).Read(); res.Err == nil {
		t.Fatalf("a client that never parsed an unnamed statement ran one: %q", res.Rows)
	}
	// pgrotate's own use of the unnamed statement, within one batch: a
	// named statement the connection already has is parsed as the unnamed
	// one, for the client's ParseComplete; the client's unnamed statement,
	// parsed before it, is still the one its Bind runs.
	const shared = "SELECT 'shared'::text"
	_, err = a.PgConn().Prepare(ctx, "s1", shared, nil) // the connection has it now
	must(t, err)
	batch := a.PgConn().StartPipeline(ctx)
	batch.SendPrepare("", "SELECT 'a2'::text", nil)
	batch.SendPrepare("s2", shared, nil)
	batch.SendQueryPrepared("", nil, nil, nil)
	must(t, batch.Sync())
	var rows [][][]byte
	for {
		r, err := batch.GetResults()
		if err != nil {
			t.Fatalf("pipeline: %v", err)
		}
		if r == nil {
			break
		}
		if rr, ok := r.(*pgconn.ResultReader); ok {
			res := rr.Read()
			must(t, res.Err)
			rows = append(rows, res.Rows...)
		}
		if _, ok := r.(*pgconn.PipelineSync); ok {
			break
		}
	}
	must(t, batch.Close())
	if len(rows) != 1 || string(rows[0][0]) != "a2" {
		t.Fatalf("client a's unnamed statement after a named one parsed in the same batch returned %q; want a2", rows)
	}
	// pgx's describe-exec mode, two clients taking turns on one connection.
	for k := range 20 {
		for i, conn := range []*pgx.Conn{a, b} {
			var got string
			want := fmt.Sprintf("%d-%d", i, k)
			if err := conn.QueryRow(ctx, "SELECT $1::text || '-"+fmt.Sprint(k)+"'", pgx.QueryExecModeDescribeExec, fmt.Sprint(i)).Scan(&got); err != nil || got != want {
				t.Fatalf("client %d, round %d: %q, %v; want %q", i, k, got, err, want)
			}
		}
	}
}

// runStatement runs sql alone in its transaction: in the simple protocol,
// or in the extended one through pgx's statement cache (pgx's Exec would
// take the simple protocol for a statement without arguments).
func runStatement(ctx context.Context, c *pgx.Conn, sql string, extended bool) error {
	if !extended {
		_, err := c.Exec(ctx, sql, pgx.QueryExecModeSimpleProtocol)
		return err
	}
	rows, err := c.Query(ctx, sql, pgx.QueryExecModeCacheStatement)
	if err != nil {
		return err
	}
	rows.Close()
	return rows.Err()
}

// One client's transactions, one after the other, need one server
// connection: looking for an idle connection on the event loop never makes
// the pool open one that nobody then uses.
func TestTransactionModeOpensOnlyTheConnectionsItUses(t *testing.T) {
	env := startProxy(t, setup{poolMode: "transaction", poolSize: 5})
	c := env.connect(t)
	for range 20 {
		queryStrings(t, c, "SELECT 1")
	}
	time.Sleep(300 * time.Millisecond) // a connection opened in the background would be up by now
	total := 0
	for _, g := range env.dbStatus().Generations {
		total += g.Idle + g.Busy
	}
	if total != 1 {
		t.Fatalf("%d server connections for one client's sequential transactions, want 1", total)
	}
}

// A client that waits for a busy pool's only connection has its wait in
// pgrotate_pool_wait_seconds, as long as it was.
func TestTransactionModeWaitIsMeasured(t *testing.T) {
	env := startProxy(t, setup{poolMode: "transaction", poolSize: 1})
	holder := env.connect(t)
	tx, err := holder.Begin(ctxT(t))
	must(t, err)
	_, err = tx.Exec(ctxT(t), "SELECT 1")
	must(t, err)
	waiter := env.connect(t)
	done := make(chan error, 1)
	go func() {
		_, err := waiter.Exec(ctxT(t), "SELECT 1")
		done <- err
	}()
	const held = 300 * time.Millisecond
	time.Sleep(held)
	must(t, tx.Commit(ctxT(t)))
	must(t, <-done)
	f := env.scrape(t)["pgrotate_pool_wait_seconds"]
	if f == nil || len(f.GetMetric()) == 0 {
		t.Fatal("no pgrotate_pool_wait_seconds in /metrics")
	}
	waited := 0.0
	for _, m := range f.GetMetric() {
		waited += m.GetHistogram().GetSampleSum()
	}
	if waited < held.Seconds()*0.8 {
		t.Fatalf("pool waits sum to %.3f s; the waiter alone waited about %.1f s", waited, held.Seconds())
	}
}

// A transaction-mode client idle on the event loop costs no goroutine: its
// session's goroutine ends once the loop holds it, and a new one carries on
// only when the loop gives the client back (it left, it must wait for a
// connection the loop cannot get, Shutdown). Those clients then keep
// working, and each one that leaves is counted out.
func TestTransactionModeIdleClientsHoldNoGoroutine(t *testing.T) {
	const clients = 40
	env := startProxy(t, setup{poolMode: "transaction", poolSize: 2})
	ctx := ctxT(t)
	base := runtime.NumGoroutine()
	conns := make([]*pgx.Conn, clients)
	for i := range conns {
		conns[i] = env.connect(t)
		queryStrings(t, conns[i], "SELECT 1")
	}
	if n := settledGoroutines(base + clients/2); n >= base+clients/2 {
		t.Fatalf("%d goroutines with %d idle clients, %d before them: a goroutine per idle client", n, clients, base)
	}
	for _, c := range conns { // still served, two connections for forty clients
		var one int
		must(t, c.QueryRow(ctx, "SELECT 1").Scan(&one))
	}
	for _, c := range conns {
		must(t, c.Close(ctx))
	}
	waitNoClients(t, env, "active", clients)
}

// waitNoClients waits up to 5 s for pgrotate_client_connections{state} to
// reach 0 once all clients have left.
func waitNoClients(t *testing.T, env *proxyEnv, state string, clients int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		n, _ := value(env.scrape(t), "pgrotate_client_connections", map[string]string{"state": state})
		if n == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%v clients still counted %s after all %d left", n, state, clients)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// settledGoroutines waits up to a second for the goroutine count to fall
// below limit, and returns it.
func settledGoroutines(limit int) int {
	deadline := time.Now().Add(time.Second)
	for {
		n := runtime.NumGoroutine()
		if n < limit || time.Now().After(deadline) {
			return n
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// A plaintext client logs in on the event loop: its startup packet and
// SCRAM exchange are answered there, so a client in the middle of its login
// holds no goroutine, and one slow to answer holds up nobody else. Wrong
// passwords are refused as on a goroutine.
func TestLoginsHoldNoGoroutine(t *testing.T) {
	for _, mode := range []string{"session", "transaction"} {
		t.Run(mode, func(t *testing.T) { loginsHoldNoGoroutine(t, mode) })
	}
}

func loginsHoldNoGoroutine(t *testing.T, mode string) {
	const clients = 40
	env := startProxy(t, setup{poolMode: mode, poolSize: 2})
	ctx := ctxT(t)
	first := env.connect(t) // the pool learns its server's defaults
	queryStrings(t, first, "SELECT 1")
	base := runtime.NumGoroutine()

	stalled := make([]net.Conn, clients)
	for i := range stalled {
		c, err := net.Dial("tcp", env.addr)
		must(t, err)
		fe := pgproto3.NewFrontend(c, c)
		fe.Send(&pgproto3.StartupMessage{ProtocolVersion: pgproto3.ProtocolVersion30,
			Parameters: map[string]string{"user": appUser, "database": dbName}})
		must(t, fe.Flush())
		must(t, c.SetReadDeadline(time.Now().Add(5*time.Second)))
		msg, err := fe.Receive()
		must(t, err)
		if _, ok := msg.(*pgproto3.AuthenticationSASL); !ok {
			t.Fatalf("client %d got %T, want AuthenticationSASL", i, msg)
		}
		stalled[i] = c // and it never answers
	}
	if n := settledGoroutines(base + clients/2); n >= base+clients/2 {
		t.Fatalf("%d goroutines with %d clients in the middle of their login, %d before them: a goroutine per login", n, clients, base)
	}
	if inAuth, _ := value(env.scrape(t), "pgrotate_client_connections", map[string]string{"state": "auth"}); inAuth != clients {
		t.Errorf("pgrotate_client_connections{state=\"auth\"} = %v, want %d", inAuth, clients)
	}

	c := env.connect(t) // others log in and run queries meanwhile
	if got := queryStrings(t, c, "SELECT current_user")[0]; got != ownerRole {
		t.Fatalf("current_user %q, want %q", got, ownerRole)
	}
	must(t, c.Close(ctx))
	if _, err := connectAs(env, appUser, "guess"); sqlState(err) != "28P01" {
		t.Fatalf("wrong password: %v, want SQLSTATE 28P01", err)
	}
	if _, err := connectAs(env, "nobody", appPass); sqlState(err) != "28P01" {
		t.Fatalf("unknown user: %v, want SQLSTATE 28P01", err)
	}

	for _, c := range stalled {
		c.Close()
	}
	waitNoClients(t, env, "auth", clients)
	wrong, _ := value(env.scrape(t), "pgrotate_client_auth_failures_total", map[string]string{"reason": "wrong_password"})
	unknown, _ := value(env.scrape(t), "pgrotate_client_auth_failures_total", map[string]string{"reason": "unknown_user"})
	if wrong != 1 || unknown != 1 {
		t.Errorf("auth failures: wrong_password %v, unknown_user %v; want 1 each", wrong, unknown)
	}
}

// A server connection that PostgreSQL closed while it sat idle in the pool
// (a restart, a failover, pg_terminate_backend) is never handed to a
// client: the next transaction gets a working one, whichever relay serves
// the client (TLS clients are relayed on goroutines). The operator reads
// one log line for them all.
func TestTransactionModeSkipsConnectionsClosedWhileIdle(t *testing.T) {
	for _, r := range relays {
		t.Run(r.name, func(t *testing.T) {
			env := startProxy(t, setup{poolMode: "transaction", poolSize: 2, goroutineRelay: r.goroutine})
			ctx := ctxT(t)
			c := env.connect(t)
			queryStrings(t, c, "SELECT 1")
			must(t, cluster.Exec(ctx, dbName, "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = $1", execRole1))
			for deadline := time.Now().Add(5 * time.Second); ; {
				left, err := cluster.QueryStrings(ctx, dbName, "SELECT count(*) FROM pg_stat_activity WHERE usename = $1", execRole1)
				must(t, err)
				if left[0][0] == "0" {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("%s backends of %s left after pg_terminate_backend", left[0][0], execRole1)
				}
				time.Sleep(20 * time.Millisecond)
			}
			for i := range 3 {
				if _, err := c.Exec(ctx, "SELECT 1"); err != nil {
					t.Fatalf("transaction %d after the pool's connections were closed: %v", i+1, err)
				}
			}
			// One log line says it, not one per connection.
			if n := strings.Count(env.logs.String(), "closing idle server connections found unusable"); n > 1 {
				t.Errorf("%d log lines for the connections closed while idle; want at most one\n%s", n, env.logs.String())
			}
		})
	}
}

// A migration that changes a table under a prepared statement (SELECT *
// after ADD COLUMN) fails the statement's next run with "cached plan must
// not change result type" (0A000), and the driver prepares it again. The
// statement is shared between clients: the error used to come back on its
// server connection for good, whoever prepared the text again. Now each
// client meets it at most once in a row, and one that prepared the text
// after the change reads the new shape. (One whose driver keeps the shape
// it read before, as pgx does, may read rows of the new shape on a
// connection where the statement was prepared anew: README, transaction
// pooling.)
func TestTransactionModePreparedStatementsOutliveAMigration(t *testing.T) {
	env := startProxy(t, setup{poolMode: "transaction", poolSize: 1})
	ctx := ctxT(t)
	t.Cleanup(func() { _ = cluster.Exec(context.Background(), dbName, "DROP TABLE IF EXISTS migrated") })
	must(t, cluster.Exec(ctx, dbName, "DROP TABLE IF EXISTS migrated; CREATE TABLE migrated (a int); INSERT INTO migrated VALUES (1); ALTER TABLE migrated OWNER TO "+ownerRole))
	a, b := env.connect(t), env.connect(t) // pgx's statement cache: named statements
	if got, err := preparedRow(ctx, a, "SELECT * FROM migrated"); err != nil || fmt.Sprint(got) != "[1]" {
		t.Fatalf("before the migration: %q, %v", got, err)
	}
	must(t, cluster.Exec(ctx, dbName, "ALTER TABLE migrated ADD COLUMN b int DEFAULT 7"))
	for i, c := range []*pgx.Conn{b, a, b, a, b} {
		var got []string
		for try := 1; ; try++ {
			var err error
			if got, err = preparedRow(ctx, c, "SELECT * FROM migrated"); err == nil {
				break
			}
			if sqlState(err) != "0A000" || try == 2 {
				t.Fatalf("run %d after the migration, try %d: %v", i+1, try, err)
			}
		}
		if c == b && fmt.Sprint(got) != "[1 7]" {
			t.Fatalf("run %d after the migration, by the client that prepared it after: %q; want [1 7]", i+1, got)
		}
	}
}

// preparedRow runs sql as pgx runs it by default (a prepared statement of
// its cache) and returns its one row.
func preparedRow(ctx context.Context, c *pgx.Conn, sql string) ([]string, error) {
	rows, err := c.Query(ctx, sql)
	if err != nil {
		return nil, err
	}
	return pgx.CollectOneRow(rows, func(r pgx.CollectableRow) ([]string, error) {
		vals, err := r.Values()
		var out []string
		for _, v := range vals {
			out = append(out, fmt.Sprint(v))
		}
		return out, err
	})
}

// PostgreSQL reads a prepared statement's constants with the session's
// settings as it parses it: clients with different DateStyles that prepare
// the same text each read '01/02/2020' their own way, as on direct
// connections, though they share the server connection.
func TestTransactionModePreparedStatementsFollowEachClientsSettings(t *testing.T) {
	env := startProxy(t, setup{poolMode: "transaction", poolSize: 1})
	ctx := ctxT(t)
	connect := func(style string) *pgx.Conn {
		c, err := pgx.Connect(ctx, env.appURL()+"&datestyle="+url.PathEscape(style))
		must(t, err)
		t.Cleanup(func() { c.Close(context.Background()) })
		return c
	}
	dmy, mdy := connect("ISO, DMY"), connect("ISO, MDY")
	const sql = "SELECT '01/02/2020'::date::text"
	for range 2 {
		if got, err := preparedRow(ctx, dmy, sql); err != nil || got[0] != "2020-02-01" {
			t.Errorf("a DMY client read 01/02/2020 as %q, %v", got, err)
		}
		if got, err := preparedRow(ctx, mdy, sql); err != nil || got[0] != "2020-01-02" {
			t.Errorf("an MDY client read 01/02/2020 as %q, %v", got, err)
		}
	}
}

// A cancel that comes while the client's statement waits for a server
// connection is not lost: the statement is cancelled as soon as it runs
// (57014), as PostgreSQL cancels it, instead of running in full (JDBC's
// setQueryTimeout, psql's Ctrl-C on a busy pool).
func TestTransactionModeCancelWhileWaiting(t *testing.T) {
	for _, r := range relays {
		t.Run(r.name, func(t *testing.T) {
			env := startProxy(t, setup{poolMode: "transaction", poolSize: 1, queryWait: "30s", goroutineRelay: r.goroutine})
			ctx := ctxT(t)
			tx := holdTheConnection(t, env)
			waiter := env.connect(t)
			done := make(chan error, 1)
			start := time.Now()
			go func() {
				_, err := waiter.Exec(context.Background(), "SELECT pg_sleep(5)")
				done <- err
			}()
			waitWaiting(t, env, 1)
			must(t, waiter.PgConn().CancelRequest(ctx))
			time.Sleep(100 * time.Millisecond)
			must(t, tx.Commit(ctx))
			if err := <-done; sqlState(err) != "57014" {
				t.Fatalf("a statement cancelled while it waited: %v after %v; want SQLSTATE 57014", err, time.Since(start).Round(time.Millisecond))
			}
		})
	}
}

// A transaction-mode server connection holds every distinct statement its
// clients prepared, shared by text. An app that builds statement texts as
// it goes (literals in the text; pgx caches each as a named statement)
// would grow each backend without end: past max_prepared_statements the
// least recently used are deallocated as the connection is given back, and
// a client whose statement was evicted gets it prepared again, unaware.
// One transaction may use more than the cap (a pipeline of them): eviction
// waits for its end.
func TestTransactionModePreparedStatementsAreCapped(t *testing.T) {
	for _, r := range relays {
		t.Run(r.name, func(t *testing.T) {
			env := startProxy(t, setup{poolMode: "transaction", poolSize: 1, goroutineRelay: r.goroutine,
				extraDB: "max_prepared_statements: 8"})
			ctx := ctxT(t)
			a, b := env.connect(t), env.connect(t) // pgx's statement cache: a named statement per text
			sum := func(c *pgx.Conn, i int) {
				t.Helper()
				var got int
				sql := fmt.Sprintf("SELECT $1::int + %d", i)
				if err := c.QueryRow(ctx, sql, 1000).Scan(&got); err != nil || got != 1000+i {
					t.Fatalf("%s: %d, %v", sql, got, err)
				}
			}
			for i := range 40 {
				sum(a, i)
			}
			held := serverStatements(t, ctx, a)
			if held == 0 || held > 8 {
				t.Fatalf("the server connection holds %d shared statements; want 1 to 8 (max_prepared_statements)", held)
			}
			for i := range 40 { // evicted long ago, still in both clients' caches: prepared again
				sum(a, i)
				sum(b, 39-i)
			}

			tx, err := a.Begin(ctx)
			must(t, err)
			batch := &pgx.Batch{}
			for i := 100; i < 120; i++ {
				batch.Queue(fmt.Sprintf("SELECT $1::int + %d", i), 1000)
			}
			br := tx.SendBatch(ctx, batch)
			for i := 100; i < 120; i++ {
				var got int
				if err := br.QueryRow().Scan(&got); err != nil || got != 1000+i {
					t.Fatalf("pipelined statement %d of 20 in one transaction: %d, %v", i-99, got, err)
				}
			}
			must(t, br.Close())
			must(t, tx.Commit(ctx))
			if held := serverStatements(t, ctx, b); held > 8 {
				t.Fatalf("after the pipeline the server connection holds %d shared statements; want at most 8", held)
			}

			m := env.scrape(t)
			evicted, _ := value(m, "pgrotate_prepared_statements_evicted_total", map[string]string{"database": dbName})
			rounds, _ := value(m, "pgrotate_transaction_cleanups_total", map[string]string{"database": dbName, "kind": "statement_cap"})
			if evicted < 40 || rounds < 5 {
				t.Errorf("metrics: %v statements evicted in %v cleanups; want at least 40 in 5", evicted, rounds)
			}
		})
	}
}

// serverStatements counts the shared statements pgrotate prepared on the
// server connection that runs the query (simple protocol: it prepares none).
func serverStatements(t *testing.T, ctx context.Context, c *pgx.Conn) int {
	t.Helper()
	var n int
	err := c.QueryRow(ctx, `SELECT count(*) FROM pg_prepared_statements WHERE name LIKE 'pgrotate\_%'`,
		pgx.QueryExecModeSimpleProtocol).Scan(&n)
	must(t, err)
	return n
}
