package integration

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/pgrotate/pgrotate/internal/daemon"
)

// nextRole creates a fresh executing role, as an operator (or `pgrotate
// rotate`) does before updating the credential, and drops it at the end.
func nextRole(t *testing.T, i int) (role, password string) {
	t.Helper()
	role = fmt.Sprintf("%s_r%02d_%d", "bookstore_user", i, time.Now().UnixNano()%1_000_000)
	password = fmt.Sprintf("pw-%d-%d", i, time.Now().UnixNano())
	must(t, cluster.CreateExecutingRole(ctxT(t), bookstore, role, password))
	t.Cleanup(func() { dropRole(context.Background(), role) })
	return role, password
}

func dropRole(ctx context.Context, role string) error {
	id := pgx.Identifier{role}.Sanitize()
	if err := cluster.Exec(ctx, dbName, "REASSIGN OWNED BY "+id+" TO "+ownerRole+"; DROP OWNED BY "+id); err != nil {
		return err
	}
	return cluster.Exec(ctx, "postgres", "DROP ROLE IF EXISTS "+id)
}

// dbStatus returns the status of the bookstore database.
func (e *proxyEnv) dbStatus() daemon.DatabaseStatus {
	return e.daemon.Status().Databases[0]
}

// waitRotated waits until role is the current executing role and every older
// generation has drained, and returns how long each step took.
func (e *proxyEnv) waitRotated(t *testing.T, role string, since time.Time) (promoted, drained time.Duration) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		st := e.dbStatus()
		if st.CurrentRole == role && promoted == 0 {
			promoted = time.Since(since)
		}
		if promoted != 0 && allDrained(st) {
			return promoted, time.Since(since)
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("rotation to %s did not complete: status %+v\nlog:\n%s", role, e.dbStatus(), tail(e.logs.String(), 40))
	return 0, 0
}

func allDrained(st daemon.DatabaseStatus) bool {
	for _, g := range st.Generations {
		if !g.Current && !g.Drained {
			return false
		}
	}
	return true
}

// load runs pgx workers through pgrotate until stopped, counting committed
// transactions and failures. pgxpool keeps its connections open for the whole
// run, and each worker queries in one of pgx's modes (loadModes): rotations
// must carry connections and statements over without the app noticing.
type load struct {
	committed, failed atomic.Int64
	firstErr          atomic.Value
	cancel            context.CancelFunc
	wg                sync.WaitGroup
}

// loadModes are pgx's query modes, which workers take in turn: named
// statements from its cache (the default), the unnamed statement parsed in
// one round trip and bound in the next (describe-exec, which a move may fall
// between), the unnamed statement in one round trip, and simple Queries.
var loadModes = []pgx.QueryExecMode{
	pgx.QueryExecModeCacheStatement, pgx.QueryExecModeDescribeExec,
	pgx.QueryExecModeCacheDescribe, pgx.QueryExecModeExec, pgx.QueryExecModeSimpleProtocol,
}

func startLoad(t *testing.T, env *proxyEnv, workers int) *load {
	t.Helper()
	cfg, err := pgxpool.ParseConfig(env.appURL())
	must(t, err)
	cfg.MaxConns = int32(workers)
	pool, err := pgxpool.NewWithConfig(context.Background(), cfg)
	must(t, err)
	_, err = pool.Exec(ctxT(t), "CREATE TABLE IF NOT EXISTS rot_counter (worker int PRIMARY KEY, n bigint NOT NULL)")
	must(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	l := &load{cancel: cancel}
	for w := range workers {
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			mode := loadModes[w%len(loadModes)]
			for ctx.Err() == nil {
				l.record(ctx, pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
					_, err := tx.Exec(ctx, "INSERT INTO rot_counter VALUES ($1, 1) ON CONFLICT (worker) DO UPDATE SET n = rot_counter.n + 1", mode, w)
					if err != nil {
						return err
					}
					var who string
					return tx.QueryRow(ctx, "SELECT current_user", mode).Scan(&who)
				}))
				// Outside a transaction: a move may come between any two
				// round trips.
				l.record(ctx, checkEcho(ctx, pool, mode, w))
			}
		}()
	}
	t.Cleanup(func() {
		l.stop()
		pool.Close()
		_ = cluster.Exec(context.Background(), dbName, "DROP TABLE IF EXISTS rot_counter")
	})
	return l
}

// checkEcho runs an autocommit query that must return the worker's number.
func checkEcho(ctx context.Context, pool *pgxpool.Pool, mode pgx.QueryExecMode, w int) error {
	var got int
	if err := pool.QueryRow(ctx, "SELECT $1::int", mode, w).Scan(&got); err != nil {
		return err
	}
	if got != w {
		return fmt.Errorf("worker %d got %d back: another client's result", w, got)
	}
	return nil
}

func (l *load) record(ctx context.Context, err error) {
	switch {
	case err == nil:
		l.committed.Add(1)
	case ctx.Err() != nil: // stopping
	default:
		l.failed.Add(1)
		l.firstErr.CompareAndSwap(nil, err.Error())
	}
}

func (l *load) stop() {
	l.cancel()
	l.wg.Wait()
}

// The product promise: ten rotations in a row under load, each source kind,
// and transaction pooling too, zero failed transactions; each old role
// drains and can be dropped.
func TestTenRotationsUnderLoad(t *testing.T) {
	for _, c := range []struct{ name, kind, mode string }{
		{"dir", "dir", "session"}, {"json", "json", "session"}, {"url", "url", "session"},
		{"dir transaction", "dir", "transaction"},
	} {
		t.Run(c.name, func(t *testing.T) {
			env := startProxy(t, setup{credKind: c.kind, poolMode: c.mode, poolSize: 12})
			l := startLoad(t, env, 8)
			prevRole := execRole1
			for i := 1; i <= 10; i++ {
				role, pw := nextRole(t, i)
				committedBefore := l.committed.Load()
				swapped := time.Now()
				env.writeCredential(t, role, pw)
				promoted, drained := env.waitRotated(t, role, swapped)
				// pgrotate has closed every connection of the old role;
				// PostgreSQL takes a moment to end their backends.
				if n := sessionsLeft(t, prevRole, time.Second); n != 0 {
					rows, _ := cluster.QueryStrings(ctxT(t), "postgres",
						"SELECT pid::text, state, backend_start::text, state_change::text, query FROM pg_stat_activity WHERE usename = $1", prevRole)
					t.Fatalf("rotation %d: %d sessions of %s remain after the drain:\n%v\nstatus: %+v\nlog:\n%s",
						i, n, prevRole, rows, env.dbStatus(), tail(env.logs.String(), 60))
				}
				if prevRole != execRole1 {
					retire(t, prevRole)
				}
				t.Logf("rotation %d: promoted after %v, drained after %v, %d transactions meanwhile",
					i, promoted.Round(time.Millisecond), drained.Round(time.Millisecond), l.committed.Load()-committedBefore)
				prevRole = role
			}
			l.stop()
			if f := l.failed.Load(); f != 0 {
				t.Fatalf("%d failed transactions during rotations (first: %v)", f, l.firstErr.Load())
			}
			if l.committed.Load() == 0 {
				t.Fatal("no transaction committed")
			}
			env.waitForLog(t, "generation drained", "safe_to_retire=true")
		})
	}
}

// sessionsLeft waits up to grace for role's sessions to end and returns how
// many are left.
func sessionsLeft(t *testing.T, role string, grace time.Duration) int {
	t.Helper()
	for deadline := time.Now().Add(grace); ; time.Sleep(10 * time.Millisecond) {
		n, err := cluster.Sessions(ctxT(t), role)
		must(t, err)
		if n == 0 || time.Now().After(deadline) {
			return n
		}
	}
}

// retire drops a drained executing role as an operator would: it must own
// nothing (everything was created as the owner), so DROP OWNED only revokes
// its CONNECT grant, and DROP ROLE succeeds.
func retire(t *testing.T, role string) {
	t.Helper()
	rows, err := cluster.QueryStrings(ctxT(t), dbName,
		"SELECT count(*)::text FROM pg_shdepend WHERE refobjid = (SELECT oid FROM pg_roles WHERE rolname = $1) AND deptype = 'o'", role)
	if err != nil || rows[0][0] != "0" {
		t.Fatalf("%s owns %v objects (%v); want none", role, rows, err)
	}
	id := pgx.Identifier{role}.Sanitize()
	must(t, cluster.Exec(ctxT(t), dbName, "DROP OWNED BY "+id))
	if err := cluster.Exec(ctxT(t), "postgres", "DROP ROLE "+id); err != nil {
		t.Fatalf("DROP ROLE %s after the drain: %v", role, err)
	}
}

// sessionArrivals are the two ways a session-mode client starts: one that
// waits for the pool to open a connection for it (its session goes on on a
// goroutine), and one that finds a connection ready in the pool (the event
// loop greets and relays it, and a goroutine only starts when the session
// needs one: a kick, as in a rotation).
var sessionArrivals = []struct {
	name    string
	connect func(t *testing.T, env *proxyEnv) *pgx.Conn
}{
	{"new connection", func(t *testing.T, env *proxyEnv) *pgx.Conn { return env.connect(t) }},
	{"pooled connection", func(t *testing.T, env *proxyEnv) *pgx.Conn {
		must(t, env.connect(t).Close(ctxT(t)))
		waitNoClients(t, env, "active", 1) // its connection is back in the pool
		return env.connect(t)
	}},
}

// A session-mode client idle across a rotation keeps working: it moves to
// the new executing role with its settings and prepared statements intact,
// the unnamed one too (pgx's describe-exec mode parses it in one round trip
// and binds it in the next; a move may fall between the two).
func TestIdleSessionMovesWithItsState(t *testing.T) {
	for _, a := range sessionArrivals {
		t.Run(a.name, func(t *testing.T) { idleSessionMovesWithItsState(t, a.connect) })
	}
}

func idleSessionMovesWithItsState(t *testing.T, connect func(*testing.T, *proxyEnv) *pgx.Conn) {
	env := startProxy(t, setup{})
	c := connect(t, env)
	ctx := ctxT(t)
	_, err := c.Exec(ctx, "SET statement_timeout = '7s'", pgx.QueryExecModeSimpleProtocol)
	must(t, err)
	_, err = c.Prepare(ctx, "double_it", "SELECT $1::int * 2")
	must(t, err)
	_, err = c.PgConn().Prepare(ctx, "", "SELECT $1::int + 100", nil)
	must(t, err)

	role, pw := nextRole(t, 1)
	env.writeCredential(t, role, pw)
	env.waitRotated(t, role, time.Now())

	wantUnnamed(t, c, "1", "101")
	got := queryStrings(t, c, "SELECT session_user, current_user, current_setting('statement_timeout')")
	if got[0] != role || got[1] != ownerRole || got[2] != "7s" {
		t.Fatalf("after the rotation: session_user, current_user, statement_timeout = %q; want %s, %s, 7s", got, role, ownerRole)
	}
	var doubled int
	if err := c.QueryRow(ctx, "double_it", 21).Scan(&doubled); err != nil || doubled != 42 {
		t.Fatalf("prepared statement after the move: %d, %v", doubled, err)
	}
	if auth := c.PgConn().ParameterStatus("session_authorization"); auth != role {
		t.Errorf("ParameterStatus session_authorization = %q, want %q", auth, role)
	}
}

// Custom settings (a dot in the name) are how apps hand a tenant or a user
// to row-level security policies and audit triggers, and PostgreSQL lists
// them nowhere. A session moved at a rotation keeps them, whether set at
// startup (options), with SET or with set_config, in either protocol.
func TestSessionMoveCarriesCustomSettings(t *testing.T) {
	env := startProxy(t, setup{})
	ctx := ctxT(t)
	c, err := pgx.Connect(ctx, env.appURL()+"&options=-c%20app.region%3Deu")
	must(t, err)
	t.Cleanup(func() { c.Close(context.Background()) })
	_, err = c.Exec(ctx, `SET "App".tenant_id = '42'`, pgx.QueryExecModeSimpleProtocol)
	must(t, err)
	_, err = c.Exec(ctx, "SELECT set_config('myapp.user', $1, false)", "alice")
	must(t, err)
	_, err = c.Exec(ctx, "SET LOCAL app.scratch = 'gone'") // outside a transaction: a warning, no effect
	must(t, err)
	const read = "SELECT session_user, current_setting('app.region', true), current_setting('app.tenant_id', true), " +
		"current_setting('myapp.user', true), coalesce(current_setting('app.scratch', true), 'null')"

	role, pw := nextRole(t, 1)
	env.writeCredential(t, role, pw)
	env.waitRotated(t, role, time.Now())

	got := queryStrings(t, c, read)
	if want := []string{role, "eu", "42", "alice", "null"}; fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("after the move: %q; want %q", got, want)
	}
}

// A client in another client_encoding than the server's (LATIN1) moves at
// a rotation with its settings as it set them, letters beyond ASCII
// included: they are read and applied in the server's encoding.
func TestSessionMoveCarriesSettingsInTheClientsEncoding(t *testing.T) {
	env := startProxy(t, setup{})
	ctx := ctxT(t)
	cfg, err := pgconn.ParseConfig(env.appURL())
	must(t, err)
	cfg.RuntimeParams["client_encoding"] = "LATIN1"
	c, err := pgconn.ConnectConfig(ctx, cfg)
	must(t, err)
	t.Cleanup(func() { c.Close(context.Background()) })
	const latin1 = "J\xfcrgen" // Jürgen in LATIN1
	_, err = c.Exec(ctx, "SET app.uname = '"+latin1+"'").ReadAll()
	must(t, err)

	role, pw := nextRole(t, 1)
	env.writeCredential(t, role, pw)
	env.waitRotated(t, role, time.Now())

	res, err := c.Exec(ctx, "SELECT session_user, current_setting('app.uname'), current_setting('client_encoding')").ReadAll()
	must(t, err)
	got := []string{string(res[0].Rows[0][0]), string(res[0].Rows[0][1]), string(res[0].Rows[0][2])}
	if want := []string{role, latin1, "LATIN1"}; fmt.Sprintf("%q", got) != fmt.Sprintf("%q", want) {
		t.Fatalf("after the move: %q; want %q", got, want)
	}
}

// wantUnnamed binds the client's unnamed statement to arg, as pgx's
// describe-exec mode does, and wants want back.
func wantUnnamed(t *testing.T, c *pgx.Conn, arg, want string) {
	t.Helper()
	res := c.PgConn().ExecPrepared(ctxT(t), "", [][]byte{[]byte(arg)}, nil, nil).Read()
	if res.Err != nil || len(res.Rows) != 1 || string(res.Rows[0][0]) != want {
		t.Fatalf("binding the unnamed statement to %s: rows %q, %v; want %s", arg, res.Rows, res.Err, want)
	}
}

// A client holding state that cannot move (LISTEN) keeps its old connection
// until drain_timeout, then gets a clean 57P01 naming the rotation.
func TestUnmovableSessionGetsDrainTimeout(t *testing.T) {
	for _, a := range sessionArrivals {
		t.Run(a.name, func(t *testing.T) { unmovableSessionGetsDrainTimeout(t, a.connect) })
	}
}

func unmovableSessionGetsDrainTimeout(t *testing.T, connect func(*testing.T, *proxyEnv) *pgx.Conn) {
	env := startProxy(t, setup{drainTimeout: "1s"})
	c := connect(t, env)
	_, err := c.Exec(ctxT(t), "LISTEN orders")
	must(t, err)
	role, pw := nextRole(t, 1)
	env.writeCredential(t, role, pw)
	env.waitRotated(t, role, time.Now())
	_, err = c.Exec(ctxT(t), "SELECT 1")
	if sqlState(err) != "57P01" {
		t.Fatalf("query after drain_timeout: %v; want SQLSTATE 57P01", err)
	}
	env.waitForLog(t, "drain timeout", "LISTEN")
}

// A statement the session prepared that PostgreSQL no longer accepts (its
// table was dropped since) does not keep the session from moving: on the
// new connection it fails when run, as it would have on the old one, and
// the session's other statements work.
func TestSessionMovesWithAStaleStatement(t *testing.T) {
	env := startProxy(t, setup{})
	c := env.connect(t)
	ctx := ctxT(t)
	_, err := c.Exec(ctx, "CREATE TABLE doomed (n int)")
	must(t, err)
	t.Cleanup(func() { _ = cluster.Exec(context.Background(), dbName, "DROP TABLE IF EXISTS doomed") })
	_, err = c.Prepare(ctx, "read_doomed", "SELECT n FROM doomed WHERE n > $1")
	must(t, err)
	_, err = c.Prepare(ctx, "double_it", "SELECT $1::int * 2")
	must(t, err)
	_, err = c.PgConn().Prepare(ctx, "", "SELECT count(*) FROM doomed WHERE n > $1", nil)
	must(t, err)
	must(t, cluster.Exec(ctx, dbName, "DROP TABLE doomed"))

	role, pw := nextRole(t, 1)
	env.writeCredential(t, role, pw)
	env.waitRotated(t, role, time.Now())

	res := c.PgConn().ExecPrepared(ctx, "", [][]byte{[]byte("0")}, nil, nil).Read()
	if sqlState(res.Err) != "42P01" {
		t.Errorf("the unnamed statement on the dropped table: %v; want SQLSTATE 42P01", res.Err)
	}
	var n int
	if err := c.QueryRow(ctx, "read_doomed", 0).Scan(&n); sqlState(err) != "42P01" {
		t.Errorf("the named statement on the dropped table: %v; want SQLSTATE 42P01", err)
	}
	if err := c.QueryRow(ctx, "double_it", 21).Scan(&n); err != nil || n != 42 {
		t.Errorf("another prepared statement after the move: %d, %v", n, err)
	}
	if got := queryStrings(t, c, "SELECT session_user"); got[0] != role {
		t.Errorf("session_user after the rotation = %s, want %s", got[0], role)
	}
}

// A session whose last Parse of the unnamed statement failed has none, and
// after a move it still has none: binding it fails as on PostgreSQL (26000).
func TestSessionMoveKeepsAFailedUnnamedStatementMissing(t *testing.T) {
	env := startProxy(t, setup{})
	c := env.connect(t)
	if _, err := c.PgConn().Prepare(ctxT(t), "", "SELECT n FROM no_such_table WHERE n > $1", nil); sqlState(err) != "42P01" {
		t.Fatalf("parsing a statement on a missing table: %v; want SQLSTATE 42P01", err)
	}
	role, pw := nextRole(t, 1)
	env.writeCredential(t, role, pw)
	env.waitRotated(t, role, time.Now())
	res := c.PgConn().ExecPrepared(ctxT(t), "", [][]byte{[]byte("0")}, nil, nil).Read()
	if sqlState(res.Err) != "26000" {
		t.Fatalf("binding the unnamed statement after the move: %v; want SQLSTATE 26000", res.Err)
	}
}

// What a move cannot carry (README): the sequence state behind currval()
// and lastval(), which PostgreSQL gives no way to read. After a move they
// fail with 55000, as in a new session; they never report another value.
func TestSessionMoveLosesSequenceState(t *testing.T) {
	env := startProxy(t, setup{})
	c := env.connect(t)
	ctx := ctxT(t)
	_, err := c.Exec(ctx, "CREATE SEQUENCE moved_ids")
	must(t, err)
	t.Cleanup(func() { _ = cluster.Exec(context.Background(), dbName, "DROP SEQUENCE IF EXISTS moved_ids") })
	if got := queryStrings(t, c, "SELECT nextval('moved_ids'), currval('moved_ids')"); got[1] != "1" {
		t.Fatalf("currval before the rotation = %s; want 1", got[1])
	}
	role, pw := nextRole(t, 1)
	env.writeCredential(t, role, pw)
	env.waitRotated(t, role, time.Now())
	for _, q := range []string{"SELECT currval('moved_ids')", "SELECT lastval()"} {
		if _, err := c.Exec(ctx, q); sqlState(err) != "55000" {
			t.Errorf("%s after the move: %v; want SQLSTATE 55000", q, err)
		}
	}
}

// A session that cannot move yet stays on its old connection with all it
// had: pgrotate's look at its state does not cost it its unnamed statement.
func TestUnmovableSessionKeepsItsUnnamedStatement(t *testing.T) {
	env := startProxy(t, setup{drainTimeout: "30s"})
	c := env.connect(t)
	_, err := c.Exec(ctxT(t), "LISTEN orders")
	must(t, err)
	_, err = c.PgConn().Prepare(ctxT(t), "", "SELECT $1::int + 100", nil)
	must(t, err)
	role, pw := nextRole(t, 1)
	env.writeCredential(t, role, pw)
	env.waitForLog(t, "cannot move to the new credential yet", "LISTEN")
	wantUnnamed(t, c, "2", "102")
}

// A client in the middle of a pipeline is not idle, even when the server
// has answered all it asked (a Flush, not a Sync): the statements since the
// last Sync are one implicit transaction, which a move would cut in two.
// The client moves once the pipeline is synced, and its transaction stays
// whole: the statement that fails after the rotation rolls back the insert
// sent before it.
func TestSessionMidPipelineMovesAfterSync(t *testing.T) {
	env := startProxy(t, setup{})
	c := env.connect(t)
	_, err := c.Exec(ctxT(t), "CREATE TABLE pipeline_rows (n int)")
	must(t, err)
	t.Cleanup(func() { _ = cluster.Exec(context.Background(), dbName, "DROP TABLE pipeline_rows") })
	pl := c.PgConn().StartPipeline(ctxT(t))
	pl.SendQueryParams("INSERT INTO pipeline_rows VALUES (1)", nil, nil, nil, nil)
	pl.SendFlushRequest()
	must(t, pl.Flush())
	res, err := pl.GetResults()
	must(t, err)
	_, err = res.(*pgconn.ResultReader).Close()
	must(t, err)

	role, pw := nextRole(t, 1)
	env.writeCredential(t, role, pw)
	env.waitForLog(t, "client is busy", "moves at its next idle moment")

	pl.SendQueryParams("SELECT 1/0", nil, nil, nil, nil)
	must(t, pl.Sync())
	if _, err = pl.GetResults(); sqlState(err) != "22012" {
		t.Fatalf("division by zero in the pipeline: %v; want SQLSTATE 22012", err)
	}
	if res, err = pl.GetResults(); err != nil {
		t.Fatalf("the pipeline's sync: %T %v", res, err)
	}
	must(t, pl.Close())
	env.waitRotated(t, role, time.Now())
	if got := queryStrings(t, c, "SELECT session_user, count(*)::text FROM pipeline_rows"); got[0] != role || got[1] != "0" {
		t.Fatalf("after the pipeline: session_user, rows = %q; want %s and 0 (the insert rolled back with its implicit transaction)", got, role)
	}
}

// A client reading a portal in batches outside a transaction, as
// node-postgres' pg-cursor does (Execute with a row limit and Flush, Sync
// only at the end), holds an open implicit transaction: a rotation moves it
// only after the Sync, and the portal reads on to its last row.
func TestSessionPortalReadAcrossRotation(t *testing.T) {
	env := startProxy(t, setup{})
	c := env.connect(t)
	pc, ctx := c.PgConn(), ctxT(t)
	fe := pc.Frontend()
	fe.Send(&pgproto3.Parse{Query: "SELECT g FROM generate_series(1, 50) g"})
	fe.Send(&pgproto3.Bind{})
	fe.Send(&pgproto3.Execute{MaxRows: 10})
	fe.Send(&pgproto3.Flush{})
	must(t, fe.Flush())
	next := readPortal(t, ctx, pc, 1)

	role, pw := nextRole(t, 1)
	env.writeCredential(t, role, pw)
	env.waitForLog(t, "client is busy", "unsynced_batch=true")

	fe.Send(&pgproto3.Execute{})
	fe.Send(&pgproto3.Sync{})
	must(t, fe.Flush())
	if next = readPortal(t, ctx, pc, next); next != 51 {
		t.Fatalf("the portal ended after row %d; want 50", next-1)
	}
	env.waitRotated(t, role, time.Now())
	if got := queryStrings(t, c, "SELECT session_user"); got[0] != role {
		t.Fatalf("session_user after the portal = %s; want %s", got[0], role)
	}
}

// readPortal reads a portal's replies from row number next on, to
// PortalSuspended or ReadyForQuery, and returns the number of the row that
// would come next.
func readPortal(t *testing.T, ctx context.Context, pc *pgconn.PgConn, next int) int {
	t.Helper()
	for {
		msg, err := pc.ReceiveMessage(ctx)
		must(t, err)
		switch m := msg.(type) {
		case *pgproto3.DataRow:
			if got := string(m.Values[0]); got != strconv.Itoa(next) {
				t.Fatalf("row %s where row %d was due", got, next)
			}
			next++
		case *pgproto3.PortalSuspended, *pgproto3.ReadyForQuery:
			return next
		case *pgproto3.ErrorResponse:
			t.Fatalf("reading the portal from row %d: %s (SQLSTATE %s)", next, m.Message, m.Code)
		}
	}
}

// A password-only change (same role, new password) is a rotation too: new
// logins use the new password and the old connections drain.
func TestPasswordOnlyRotation(t *testing.T) {
	role, pw := nextRole(t, 1)
	env := startProxy(t, setup{execRole: role, execPass: pw})
	l := startLoad(t, env, 4)
	for l.committed.Load() < 100 { // every worker has its connection
		time.Sleep(10 * time.Millisecond)
	}
	before := env.dbStatus().Generation
	newPw := pw + "-rotated"
	must(t, cluster.Exec(ctxT(t), "postgres", fmt.Sprintf("ALTER ROLE %s PASSWORD '%s'", pgx.Identifier{role}.Sanitize(), newPw)))
	env.writeCredential(t, role, newPw)
	deadline := time.Now().Add(20 * time.Second)
	for env.dbStatus().Generation == before || !allDrained(env.dbStatus()) {
		if time.Now().After(deadline) {
			t.Fatalf("password change not promoted and drained: %+v", env.dbStatus())
		}
		time.Sleep(20 * time.Millisecond)
	}
	l.stop()
	if f := l.failed.Load(); f != 0 {
		t.Fatalf("%d failed transactions (first: %v)", f, l.firstErr.Load())
	}
	// The old generation drained, but its role is the current one: it must
	// never be called safe to retire.
	for _, g := range env.dbStatus().Generations {
		if g.SafeToRetire {
			t.Fatalf("/status calls generation %d (%s) safe to retire while %s is the current role: %+v", g.Generation, g.Role, role, env.dbStatus())
		}
	}
	env.waitForLog(t, "generation drained", "its role is still in use", "safe_to_retire=false", "used_by_database="+dbName)
	if strings.Contains(env.logs.String(), "safe_to_retire=true") {
		t.Fatal("the log calls the current role safe to retire")
	}
}

// After a rotation, a new client of a session pool gets a connection of the
// new generation without closing the old generation's idle connections on
// its way: those are the replacer's to close, one per paced step. (A client
// that closed every one it met ended dozens of backends at once, and
// PostgreSQL stalled for a second under load.)
func TestNewClientLeavesIdleOldConnectionsToTheReplacer(t *testing.T) {
	env := startProxy(t, setup{poolSize: 20})
	ctx := ctxT(t)
	const idle = 10
	var first []*pgx.Conn
	for range idle {
		first = append(first, env.connect(t))
	}
	for _, c := range first {
		must(t, c.Close(ctx))
	}
	waitFor(t, func() bool {
		n, err := cluster.Sessions(ctx, execRole1)
		return err == nil && n == idle
	}, "ten idle server connections of the first generation")

	role, pw := nextRole(t, 1)
	env.writeCredential(t, role, pw)
	waitFor(t, func() bool { return env.dbStatus().CurrentRole == role }, "the promotion of "+role)
	c := env.connect(t)
	if got := queryStrings(t, c, "SELECT session_user")[0]; got != role {
		t.Fatalf("new client runs as %s, want %s", got, role)
	}
	n, err := cluster.Sessions(ctx, execRole1)
	must(t, err)
	// The replacer closes one per step and rests at least 100 ms after each.
	if n < idle-4 {
		t.Fatalf("%d of %d idle old connections left right after a new client logged in; the client closed them instead of the replacer", n, idle)
	}
	env.waitRotated(t, role, time.Now()) // and the replacer does finish
}
