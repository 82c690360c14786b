package pgcluster

import (
	"context"
	"errors"
	"fmt"
	"os"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"go.uber.org/goleak"
)

// shared is the one cluster most tests of this package use; TestMain owns it.
var shared *Cluster

var store = Bookstore{DB: "bookstore", Owner: "bookstore_owner"}

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(withSharedCluster{m})
}

// withSharedCluster runs the tests between Start and Stop of shared, so that
// goleak checks after the cluster is gone.
type withSharedCluster struct{ m *testing.M }

func (w withSharedCluster) Run() int {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	c, err := Start(ctx, Options{})
	if err != nil {
		fmt.Fprintln(os.Stderr, "starting the shared test cluster:", err)
		return 1
	}
	shared = c
	code := w.m.Run()
	if err := c.Stop(); err != nil {
		fmt.Fprintln(os.Stderr, "stopping the shared test cluster:", err)
		code = 1
	}
	return code
}

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// connectAs logs in over TCP with scram-sha-256, optionally with startup
// options, the way pgrotate logs in to the upstream.
func connectAs(ctx context.Context, t *testing.T, user, password, db, options string) (*pgx.Conn, error) {
	t.Helper()
	cfg, err := pgx.ParseConfig(shared.TCPURL(user, password, db))
	if err != nil {
		t.Fatalf("parsing TCPURL: %v", err)
	}
	if options != "" {
		cfg.RuntimeParams["options"] = options
	}
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err == nil {
		t.Cleanup(func() { conn.Close(context.Background()) })
	}
	return conn, err
}

func mustBookstore(ctx context.Context, t *testing.T) {
	t.Helper()
	if err := shared.CreateBookstore(ctx, store); err != nil {
		t.Fatal(err)
	}
}

const ownerOption = "-c role=bookstore_owner"

// An executing role's sessions act as the owner, whether the role comes from
// the startup option (what pgrotate sends) or from ALTER ROLE … SET role
// (what a direct login gets), and what they create belongs to the owner.
func TestExecutingRoleActsAsOwner(t *testing.T) {
	ctx := testCtx(t)
	mustBookstore(ctx, t)
	const role, password = "bookstore_user_0001", `it's a "secret" \ 0001`
	if err := shared.CreateExecutingRole(ctx, store, role, password); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ name, options string }{
		{"startup option", ownerOption},
		{"role default from ALTER ROLE SET", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			conn, err := connectAs(ctx, t, role, password, store.DB, tc.options)
			if err != nil {
				t.Fatalf("logging in as %s: %v", role, err)
			}
			var current, session string
			if err := conn.QueryRow(ctx, "SELECT current_user, session_user").Scan(&current, &session); err != nil {
				t.Fatal(err)
			}
			if current != store.Owner || session != role {
				t.Errorf("current_user, session_user = %s, %s; want %s, %s", current, session, store.Owner, role)
			}
		})
	}

	conn, err := connectAs(ctx, t, role, password, store.DB, ownerOption)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Exec(ctx, "CREATE TABLE IF NOT EXISTS books (id int)"); err != nil {
		t.Fatalf("creating a table as the executing role: %v", err)
	}
	got, err := shared.QueryStrings(ctx, store.DB, "SELECT tableowner FROM pg_tables WHERE tablename = 'books'")
	if err != nil {
		t.Fatal(err)
	}
	if want := [][]string{{store.Owner}}; !reflect.DeepEqual(got, want) {
		t.Errorf("owner of books = %v, want %v", got, want)
	}
}

// A login role that is not a member of the owner cannot act as it, and
// cannot even connect to the bookstore database.
func TestNonMemberIsRefused(t *testing.T) {
	ctx := testCtx(t)
	mustBookstore(ctx, t)
	const role, password = "intruder", "intruder-pw"
	if err := shared.CreateLoginRole(ctx, role, password); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, db, options, message string
	}{
		{"startup role option", "postgres", ownerOption, "permission denied to set role"},
		{"bookstore database", store.DB, "", "permission denied for database"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := connectAs(ctx, t, role, password, tc.db, tc.options)
			var pgErr *pgconn.PgError
			if !errors.As(err, &pgErr) || pgErr.Code != "42501" || !strings.Contains(pgErr.Message, tc.message) {
				t.Fatalf("login error = %v; want SQLSTATE 42501 %q", err, tc.message)
			}
		})
	}
}

// Creating the layout again converges: the password is replaced, the role
// stays NOINHERIT and a member of the owner exactly once.
func TestCreateIsIdempotentAndReplacesPassword(t *testing.T) {
	ctx := testCtx(t)
	const role = "bookstore_user_0003"
	mustBookstore(ctx, t)
	mustBookstore(ctx, t)
	for _, pw := range []string{"first-password", "second-password"} {
		if err := shared.CreateExecutingRole(ctx, store, role, pw); err != nil {
			t.Fatal(err)
		}
	}
	_, err := connectAs(ctx, t, role, "first-password", store.DB, ownerOption)
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) || pgErr.Code != "28P01" {
		t.Errorf("login with the replaced password: err = %v, want SQLSTATE 28P01", err)
	}
	if _, err := connectAs(ctx, t, role, "second-password", store.DB, ownerOption); err != nil {
		t.Errorf("login with the current password: %v", err)
	}
	got, err := shared.QueryStrings(ctx, "postgres", `
		SELECT r.rolinherit, r.rolcanlogin, count(m.*)
		  FROM pg_roles r LEFT JOIN pg_auth_members m
		    ON m.member = r.oid AND m.roleid = $2::regrole
		 WHERE r.rolname = $1 GROUP BY 1, 2`, role, store.Owner)
	if err != nil {
		t.Fatal(err)
	}
	if want := [][]string{{"f", "t", "1"}}; !reflect.DeepEqual(got, want) {
		t.Errorf("rolinherit, rolcanlogin, memberships = %v, want %v", got, want)
	}
}

// Sessions counts a role's sessions; TerminateBackends ends them all and
// returns only when they are gone.
func TestSessionsAndTerminateBackends(t *testing.T) {
	ctx := testCtx(t)
	mustBookstore(ctx, t)
	const role, password = "bookstore_user_0002", "pw-0002"
	if err := shared.CreateExecutingRole(ctx, store, role, password); err != nil {
		t.Fatal(err)
	}
	var conns []*pgx.Conn
	for range 3 {
		conn, err := connectAs(ctx, t, role, password, store.DB, ownerOption)
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, conn)
	}
	if n, err := shared.Sessions(ctx, role); err != nil || n != 3 {
		t.Fatalf("Sessions = %d, %v; want 3", n, err)
	}
	if n, err := shared.TerminateBackends(ctx, role); err != nil || n != 3 {
		t.Fatalf("TerminateBackends = %d, %v; want 3", n, err)
	}
	if n, err := shared.Sessions(ctx, role); err != nil || n != 0 {
		t.Errorf("Sessions after terminate = %d, %v; want 0", n, err)
	}
	if _, err := conns[0].Exec(ctx, "SELECT 1"); err == nil {
		t.Error("a terminated session still answered a query")
	}
	if n, err := shared.TerminateBackends(ctx, "nobody_here"); err != nil || n != 0 {
		t.Errorf("TerminateBackends of a role without sessions = %d, %v; want 0", n, err)
	}
}

// Restart ends every session and comes back on the same port.
func TestRestartKeepsPort(t *testing.T) {
	ctx := testCtx(t)
	before := shared.Port
	conn, err := pgx.Connect(ctx, shared.AdminURL("postgres"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	if err := shared.Restart(ctx); err != nil {
		t.Fatal(err)
	}
	if shared.Port != before {
		t.Errorf("port after restart = %d, want %d", shared.Port, before)
	}
	if _, err := conn.Exec(ctx, "SELECT 1"); err == nil {
		t.Error("a session from before the restart still answered")
	}
	got, err := shared.QueryStrings(ctx, "postgres", "SELECT current_setting('port')")
	if err != nil {
		t.Fatal(err)
	}
	if want := [][]string{{fmt.Sprint(before)}}; !reflect.DeepEqual(got, want) {
		t.Errorf("server port = %v, want %v", got, want)
	}
}

// QueryStrings returns the server's text rendering of every type, and ""
// for NULL; parameters are bound, not interpolated.
func TestQueryStringsRendersText(t *testing.T) {
	ctx := testCtx(t)
	got, err := shared.QueryStrings(ctx, "postgres",
		"SELECT 42, NULL::text, true, $1::text, '{1,2}'::int[] UNION ALL SELECT 7, 'x', false, 'y', '{}'",
		"it's")
	if err != nil {
		t.Fatal(err)
	}
	want := [][]string{{"42", "", "t", "it's", "{1,2}"}, {"7", "x", "f", "y", "{}"}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("QueryStrings = %q, want %q", got, want)
	}
}

// The server runs with the settings pgrotate's tests rely on.
func TestServerSettings(t *testing.T) {
	ctx := testCtx(t)
	got, err := shared.QueryStrings(ctx, "postgres", `
		SELECT name, setting FROM pg_settings
		 WHERE name IN ('listen_addresses', 'password_encryption', 'fsync', 'max_connections', 'log_connections')
		 ORDER BY name`)
	if err != nil {
		t.Fatal(err)
	}
	want := [][]string{
		{"fsync", "off"}, {"listen_addresses", "127.0.0.1"}, {"log_connections", "on"},
		{"max_connections", "300"}, {"password_encryption", "scram-sha-256"},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("settings = %v, want %v", got, want)
	}
	if shared.Version < 10 {
		t.Errorf("Version = %d, want a server major version", shared.Version)
	}
}

// The superuser cannot use its passwordless socket trust over TCP.
func TestSuperuserNeedsSocket(t *testing.T) {
	ctx := testCtx(t)
	_, err := connectAs(ctx, t, "postgres", "", "postgres", "")
	if err == nil {
		t.Fatal("superuser logged in over TCP without a password")
	}
}

// TCPURL escapes every part, so names and passwords with URL syntax in them
// come back unchanged.
func TestTCPURLEscapes(t *testing.T) {
	const user, password, db = "app@corp", "p:/?#@ %w", "book store/1"
	cfg, err := pgconn.ParseConfig(shared.TCPURL(user, password, db))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.User != user || cfg.Password != password || cfg.Database != db ||
		cfg.Host != "127.0.0.1" || int(cfg.Port) != shared.Port {
		t.Errorf("parsed %q %q %q %s:%d", cfg.User, cfg.Password, cfg.Database, cfg.Host, cfg.Port)
	}
}
