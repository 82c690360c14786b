package integration

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func queryStrings(t *testing.T, c *pgx.Conn, sql string, args ...any) []string {
	t.Helper()
	// The simple protocol returns every value as text.
	rows, err := c.Query(ctxT(t), sql, append([]any{pgx.QueryExecModeSimpleProtocol}, args...)...)
	if err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	vals, err := pgx.CollectOneRow(rows, func(r pgx.CollectableRow) ([]string, error) {
		var out []string
		for _, v := range r.RawValues() {
			out = append(out, string(v))
		}
		return out, nil
	})
	if err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	return vals
}

func sqlState(err error) string {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		return pe.Code
	}
	return ""
}

// Every session through pgrotate acts as the owner role, logged in as the
// current executing role — whichever pooled server connection it gets.
func TestSessionsActAsOwner(t *testing.T) {
	env := startProxy(t, setup{poolSize: 3})
	for i := range 6 {
		c := env.connect(t)
		got := queryStrings(t, c, "SELECT current_user, session_user")
		if got[0] != ownerRole || got[1] != execRole1 {
			t.Fatalf("connection %d: current_user, session_user = %q; want %s, %s", i, got, ownerRole, execRole1)
		}
		c.Close(ctxT(t))
	}
}

// A migration run through pgrotate creates objects owned by the owner role,
// so the next executing role can use them and the old one can be dropped.
func TestMigrationObjectsBelongToOwner(t *testing.T) {
	env := startProxy(t, setup{})
	c := env.connect(t)
	ctx := ctxT(t)
	_, err := c.Exec(ctx, `
		CREATE TABLE books (id bigserial PRIMARY KEY, title text NOT NULL);
		CREATE INDEX books_title ON books (title);
		CREATE VIEW book_titles AS SELECT title FROM books;
		CREATE FUNCTION book_count() RETURNS bigint LANGUAGE sql AS 'SELECT count(*) FROM books';`)
	if err != nil {
		t.Fatalf("migration through pgrotate: %v", err)
	}
	t.Cleanup(func() {
		_ = cluster.Exec(context.Background(), dbName, "DROP TABLE IF EXISTS books CASCADE; DROP FUNCTION IF EXISTS book_count()")
	})
	rows, err := cluster.QueryStrings(ctx, dbName, `
		SELECT c.relname, pg_get_userbyid(c.relowner) FROM pg_class c
		WHERE c.relname IN ('books', 'books_id_seq', 'books_pkey', 'books_title', 'book_titles')
		UNION ALL
		SELECT p.proname, pg_get_userbyid(p.proowner) FROM pg_proc p WHERE p.proname = 'book_count'`)
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != 6 {
		t.Fatalf("found %d of the 6 migrated objects: %v", len(rows), rows)
	}
	for _, r := range rows {
		if r[1] != ownerRole {
			t.Errorf("%s is owned by %s, want %s", r[0], r[1], ownerRole)
		}
	}
}

// The owner is the session's reset value: whatever a client resets, the
// session still acts as the owner (DESIGN.md §2 fact 1).
func TestResetsKeepTheOwner(t *testing.T) {
	env := startProxy(t, setup{})
	c := env.connect(t)
	for _, reset := range []string{"RESET ROLE", "DISCARD ALL", "RESET ALL", "SET SESSION AUTHORIZATION DEFAULT"} {
		if _, err := c.Exec(ctxT(t), reset); err != nil {
			t.Fatalf("%s: %v", reset, err)
		}
		if got := queryStrings(t, c, "SELECT current_user")[0]; got != ownerRole {
			t.Errorf("after %s current_user = %s, want %s", reset, got, ownerRole)
		}
	}
}

// What a session sets does not leak to the next client of the same server
// connection: the connection is reset with DISCARD ALL in between.
func TestSessionStateDoesNotLeakBetweenClients(t *testing.T) {
	env := startProxy(t, setup{poolSize: 1})
	c := env.connect(t)
	ctx := ctxT(t)
	if _, err := c.Exec(ctx, "SET search_path = nowhere; CREATE TEMP TABLE scratch (x int); LISTEN leaky"); err != nil {
		t.Fatal(err)
	}
	pid := queryStrings(t, c, "SELECT pg_backend_pid()")[0]
	c.Close(ctx)

	c2 := env.connect(t)
	got := queryStrings(t, c2, "SELECT pg_backend_pid(), current_setting('search_path'), (SELECT count(*) FROM pg_listening_channels()), to_regclass('pg_temp.scratch') IS NULL")
	if got[0] != pid {
		t.Fatalf("pool of one gave a different server connection (%s, then %s)", pid, got[0])
	}
	if got[1] != `"$user", public` || got[2] != "0" || got[3] != "t" {
		t.Errorf("second client sees search_path=%s, %s listening channels, temp table gone=%s; want a clean session", got[1], got[2], got[3])
	}
}

// The client's own startup parameters apply to its session.
func TestStartupParametersApply(t *testing.T) {
	env := startProxy(t, setup{})
	cfg, err := pgx.ParseConfig(env.appURL() + "&application_name=orders-api&timezone=Asia/Tokyo&options=-c%20search_path%3Dpublic")
	if err != nil {
		t.Fatal(err)
	}
	c, err := pgx.ConnectConfig(ctxT(t), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(context.Background())
	got := queryStrings(t, c, "SELECT current_setting('application_name'), current_setting('TimeZone'), current_setting('search_path')")
	if got[0] != "orders-api" || got[1] != "Asia/Tokyo" || got[2] != "public" {
		t.Errorf("settings = %q; want orders-api, Asia/Tokyo, public", got)
	}
	if tz := c.PgConn().ParameterStatus("TimeZone"); tz != "Asia/Tokyo" {
		t.Errorf("ParameterStatus TimeZone = %q, want Asia/Tokyo", tz)
	}
}

// A session-mode connection is handed from client to client with the
// startup settings of the client that used it last still applied (pgrotate
// applies them again after DISCARD ALL, so that the next login of the same
// application waits for no round trip). Each client still sees exactly its
// own settings: the same application's, another application's, or none.
func TestNextClientSeesOnlyItsOwnStartupSettings(t *testing.T) {
	env := startProxy(t, setup{poolSize: 1})
	ctx := ctxT(t)
	connect := func(params string) *pgx.Conn {
		t.Helper()
		c, err := pgx.Connect(ctx, env.appURL()+params)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	first := connect("")
	defaults := queryStrings(t, first, "SELECT current_setting('TimeZone'), current_setting('DateStyle')")
	first.Close(ctx)
	const orders = "&application_name=orders-api&timezone=Asia/Tokyo"
	cases := []struct {
		name, params, app, tz string
	}{
		{"first client of an application", orders, "orders-api", "Asia/Tokyo"},
		{"the same application again", orders, "orders-api", "Asia/Tokyo"},
		{"another application", "&application_name=billing", "billing", defaults[0]},
		{"a client without settings", "", "", defaults[0]},
		{"the first application after them", orders, "orders-api", "Asia/Tokyo"},
	}
	var pid string
	for _, tc := range cases {
		c := connect(tc.params)
		got := queryStrings(t, c, "SELECT pg_backend_pid(), current_setting('application_name'), current_setting('TimeZone'), current_setting('DateStyle')")
		if pid != "" && got[0] != pid {
			t.Fatalf("%s: pool of one gave a different server connection (%s, then %s)", tc.name, pid, got[0])
		}
		pid = got[0]
		if got[1] != tc.app || got[2] != tc.tz || got[3] != defaults[1] {
			t.Errorf("%s: application_name=%q TimeZone=%q DateStyle=%q; want %q, %q, %q", tc.name, got[1], got[2], got[3], tc.app, tc.tz, defaults[1])
		}
		if ps := c.PgConn().ParameterStatus("TimeZone"); ps != tc.tz {
			t.Errorf("%s: ParameterStatus TimeZone = %q, want %q", tc.name, ps, tc.tz)
		}
		// What the session sets itself goes with it.
		if _, err := c.Exec(ctx, "SET DateStyle = 'SQL, DMY'; SET TimeZone = 'America/Lima'"); err != nil {
			t.Fatal(err)
		}
		c.Close(ctx)
	}
}

// A role cannot be requested at startup: sessions always act as the owner.
func TestStartupRoleOptionRefused(t *testing.T) {
	env := startProxy(t, setup{})
	_, err := pgx.Connect(ctxT(t), env.appURL()+"&options=-c%20role%3Dpostgres")
	if sqlState(err) != "42501" {
		t.Fatalf("connect with -c role=postgres: %v; want SQLSTATE 42501", err)
	}
}

// Clients get PostgreSQL's SQLSTATEs for what went wrong, and the operator
// one log line saying why; nothing about the upstream leaks to the client.
func TestConnectErrors(t *testing.T) {
	env := startProxy(t, setup{})
	cases := []struct {
		name, url, state, clientMsg string
		logParts                    []string
	}{
		{"wrong password", env.url(appUser, "not-the-password", dbName), "28P01",
			`password authentication failed for user "bookstore_app"`, []string{"28P01", "wrong"}},
		{"unknown user", env.url("mallory", appPass, dbName), "28P01",
			`password authentication failed for user "mallory"`, []string{"28P01", "unknown user"}},
		{"unknown database", env.url(appUser, appPass, "nosuchdb"), "3D000",
			`database "nosuchdb" does not exist`, []string{"3D000"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := pgx.Connect(ctxT(t), tc.url)
			var pe *pgconn.PgError
			if !errors.As(err, &pe) || pe.Code != tc.state || pe.Message != tc.clientMsg {
				t.Fatalf("connect: %v; want SQLSTATE %s %q", err, tc.state, tc.clientMsg)
			}
			env.waitForLog(t, tc.logParts...)
		})
	}
}

// An executing role that is not a member of the owner cannot be used: the
// client gets a generic 08006, the log says "permission denied to set role".
func TestNonMemberExecutingRole(t *testing.T) {
	if err := cluster.Exec(ctxT(t), dbName, "GRANT CONNECT ON DATABASE "+dbName+" TO "+nonMember); err != nil {
		t.Fatal(err)
	}
	env := startProxy(t, setup{execRole: nonMember, execPass: strangerPw, invalid: true})
	_, err := pgx.Connect(ctxT(t), env.appURL())
	var pe *pgconn.PgError
	if !errors.As(err, &pe) || pe.Code != "08006" {
		t.Fatalf("connect: %v; want SQLSTATE 08006", err)
	}
	if strings.Contains(pe.Message+pe.Detail+pe.Hint, nonMember) {
		t.Errorf("client error names the executing role: %+v", pe)
	}
	env.waitForLog(t, "permission denied to set role")
}

// When the upstream is down the client learns only that; the log has why.
func TestUpstreamDown(t *testing.T) {
	env := startProxy(t, setup{upstreamPort: unusedPort(t), invalid: true})
	_, err := pgx.Connect(ctxT(t), env.appURL())
	var pe *pgconn.PgError
	if !errors.As(err, &pe) || pe.Code != "08006" {
		t.Fatalf("connect: %v; want SQLSTATE 08006", err)
	}
	if strings.Contains(pe.Message, "127.0.0.1") {
		t.Errorf("client error names the upstream host: %q", pe.Message)
	}
}

// Killing the server backend under a client ends that client's session with
// an error, and the operator reads why in the log; the next client gets a
// fresh, working connection.
func TestKilledBackend(t *testing.T) {
	for _, a := range sessionArrivals {
		t.Run(a.name, func(t *testing.T) { killedBackend(t, a.connect) })
	}
}

func killedBackend(t *testing.T, connect func(*testing.T, *proxyEnv) *pgx.Conn) {
	env := startProxy(t, setup{poolSize: 1})
	c := connect(t, env)
	pid := queryStrings(t, c, "SELECT pg_backend_pid()")[0]
	if err := cluster.Exec(ctxT(t), "postgres", "SELECT pg_terminate_backend($1::int)", pid); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Exec(ctxT(t), "SELECT 1"); err == nil {
		t.Fatal("query on a killed backend succeeded")
	}
	wantServerEnded(t, env, pid)
	c2 := env.connect(t)
	got := queryStrings(t, c2, "SELECT pg_backend_pid(), current_user")
	if got[0] == pid || got[1] != ownerRole {
		t.Fatalf("next client got pid %s (killed %s), current_user %s", got[0], pid, got[1])
	}
}

// In transaction mode too, a backend killed under a client's transaction
// is logged with the server's reason.
func TestKilledBackendInTransactionMode(t *testing.T) {
	env := startProxy(t, setup{poolMode: "transaction", poolSize: 1})
	c := env.connect(t)
	tx, err := c.Begin(ctxT(t))
	must(t, err)
	var pid string
	must(t, tx.QueryRow(ctxT(t), "SELECT pg_backend_pid()::text").Scan(&pid))
	must(t, cluster.Exec(ctxT(t), "postgres", "SELECT pg_terminate_backend($1::int)", pid))
	if _, err := tx.Exec(ctxT(t), "SELECT 1"); err == nil {
		t.Fatal("query on a killed backend succeeded")
	}
	wantServerEnded(t, env, pid)
}

// wantServerEnded checks that pgrotate logged the end of backend pid by the
// server, with PostgreSQL's SQLSTATE for pg_terminate_backend (57P01).
func wantServerEnded(t *testing.T, env *proxyEnv, pid string) {
	t.Helper()
	for _, line := range strings.Split(env.logs.String(), "\n") {
		if strings.Contains(line, `msg="the database server ended a session"`) &&
			strings.Contains(line, "sqlstate=57P01") && strings.Contains(line, "pid="+pid) {
			return
		}
	}
	t.Errorf("no log line says the server ended backend %s:\n%s", pid, tail(env.logs.String(), 10))
}

// Beyond max_client_conn clients are refused as PostgreSQL refuses them.
func TestTooManyClients(t *testing.T) {
	env := startProxy(t, setup{maxClientConn: 2})
	env.connect(t)
	env.connect(t)
	_, err := pgx.Connect(ctxT(t), env.appURL())
	if sqlState(err) != "53300" {
		t.Fatalf("third client: %v; want SQLSTATE 53300", err)
	}
}

// A startup setting PostgreSQL refuses fails the login with PostgreSQL's
// own SQLSTATE and message, as a direct connection would. The server
// connection it was tried on stays in the pool, for the next client.
func TestRefusedStartupSetting(t *testing.T) {
	env := startProxy(t, setup{poolSize: 1})
	pid := idleBackend(t, env)
	_, err := pgx.Connect(ctxT(t), env.appURL()+"&timezone=Nowhere/Bogus")
	var pe *pgconn.PgError
	if !errors.As(err, &pe) || pe.Code != "22023" || !strings.Contains(pe.Message, "TimeZone") {
		t.Fatalf("connect with timezone=Nowhere/Bogus: %v; want SQLSTATE 22023 about TimeZone", err)
	}
	// PostgreSQL's detail says what is wrong with the value, as directly.
	_, err = pgx.Connect(ctxT(t), env.appURL()+"&datestyle=nonsense")
	if !errors.As(err, &pe) || pe.Code != "22023" || !strings.Contains(pe.Detail, `"nonsense"`) {
		t.Fatalf("connect with datestyle=nonsense: %v (detail %q); want SQLSTATE 22023 with PostgreSQL's detail", err, pe.Detail)
	}
	c := env.connect(t)
	if got := queryStrings(t, c, "SELECT pg_backend_pid(), current_setting('TimeZone') <> 'Nowhere/Bogus'"); got[0] != pid || got[1] != "t" {
		t.Errorf("next client got backend %s (TimeZone refused: %s); want the pool's one connection, %s", got[0], got[1], pid)
	}
}

// A client waiting for a server connection that gives up (its own connect
// timeout) and closes its connection is forgotten at once: it stops
// counting against max_client_conn, and the next client in line is served
// when a connection frees up, not after query_wait_timeout.
func TestWaitingClientThatLeavesIsForgotten(t *testing.T) {
	for _, r := range relays {
		t.Run(r.name, func(t *testing.T) {
			env := startProxy(t, setup{poolSize: 1, maxClientConn: 5, queryWait: "60s", goroutineRelay: r.goroutine})
			holder := env.connect(t)
			const quitters = 3
			for range quitters {
				cfg, err := pgx.ParseConfig(env.appURL())
				must(t, err)
				cfg.ConnectTimeout = 300 * time.Millisecond
				if _, err := pgx.ConnectConfig(ctxT(t), cfg); err == nil {
					t.Fatal("a client got a connection while the only one was held")
				}
			}
			waitNoClients(t, env, "waiting", quitters)
			must(t, holder.Close(ctxT(t)))
			// Room for 5: the quitters no longer hold any of it.
			for range 4 {
				c := env.connect(t)
				queryStrings(t, c, "SELECT 1")
				must(t, c.Close(ctxT(t)))
			}
			if strings.Contains(env.logs.String(), "53300") {
				t.Error("a client that had left was told its wait timed out")
			}
		})
	}
}

// A client's startup settings reach PostgreSQL in SQL that pgrotate writes,
// on a server connection that another client may have left in its own
// client_encoding. In some encodings (SJIS) the second byte of a character
// can be a backslash: read in such an encoding, a value holding the right
// bytes would end its string early and run the rest as SQL, past the role
// guard, and a value in UTF-8 would be garbled. Neither happens, in either
// pool mode.
func TestStartupSettingsWhateverTheLastClientsEncoding(t *testing.T) {
	for _, mode := range []string{"session", "transaction"} {
		t.Run(mode, func(t *testing.T) {
			env := startProxy(t, setup{poolMode: mode, poolSize: 1})
			ctx := ctxT(t)
			connectErr := func(params map[string]string) (*pgconn.PgConn, error) {
				cfg, err := pgconn.ParseConfig(env.appURL())
				must(t, err)
				for k, v := range params {
					cfg.RuntimeParams[k] = v
				}
				c, err := pgconn.ConnectConfig(ctx, cfg)
				if err == nil {
					t.Cleanup(func() { c.Close(context.Background()) })
				}
				return c, err
			}
			connect := func(params map[string]string) *pgconn.PgConn {
				t.Helper()
				c, err := connectErr(params)
				must(t, err)
				return c
			}
			queryErr := func(c *pgconn.PgConn, sql string) ([]string, error) {
				res := c.ExecParams(ctx, sql, nil, nil, nil, nil).Read()
				if res.Err != nil {
					return nil, res.Err
				}
				var row []string
				for _, v := range res.Rows[0] {
					row = append(row, string(v))
				}
				return row, nil
			}
			query := func(c *pgconn.PgConn, sql string) []string {
				t.Helper()
				row, err := queryErr(c, sql)
				must(t, err)
				return row
			}
			// The SJIS client leaves the only server connection in SJIS: in
			// session mode pgrotate applies its settings again at release.
			sjis := connect(map[string]string{"client_encoding": "SJIS", "backslash_quote": "on"})
			query(sjis, "SELECT 1")
			if mode == "session" {
				must(t, sjis.Close(ctx))
			}
			// Not UTF-8 either: it is refused as such (22021), at login or
			// at its first statement, or it runs as the owner.
			injected := "\x95\x5c', false), pg_catalog.set_config($$role$$, $$" + execRole1 + "$$, false) --"
			c, err := connectErr(map[string]string{"application_name": injected})
			var got []string
			if err == nil {
				got, err = queryErr(c, "SELECT current_user")
			}
			switch {
			case err != nil && sqlState(err) != "22021":
				t.Fatalf("a client whose application_name holds SQL: %v; want SQLSTATE 22021 or to run as %s", err, ownerRole)
			case err == nil && got[0] != ownerRole:
				t.Fatalf("a client whose application_name holds SQL runs as %s; want %s", got[0], ownerRole)
			}

			if mode == "transaction" {
				query(sjis, "SELECT 1") // the connection is SJIS's again
			} else {
				sjis = connect(map[string]string{"client_encoding": "SJIS"})
				must(t, sjis.Close(ctx))
			}
			city := connect(map[string]string{"options": "-c app.city=zürich"})
			if got := query(city, "SELECT current_setting('app.city')")[0]; got != "zürich" {
				t.Fatalf("app.city = %q after a client in SJIS; want zürich", got)
			}
		})
	}
}
