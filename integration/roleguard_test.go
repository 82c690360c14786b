package integration

import (
	"context"
	"fmt"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// Every way a client might try to stop acting as the owner is refused with
// 42501, in both pool modes and both protocols, and no object ever ends up
// owned by a role other than the owner.
func TestRoleGuardRefusesEscapes(t *testing.T) {
	escapes := []string{
		"SET ROLE " + execRole1,
		"SET ROLE NONE",
		"SET SESSION AUTHORIZATION " + execRole1,
		"SELECT set_config('role', 'none', false)",
		"SELECT 1; SET ROLE NONE; CREATE TABLE escaped (x int)",
		"DO $$BEGIN PERFORM set_config('role', 'none', false); END$$",
	}
	for _, mode := range []string{"session", "transaction"} {
		t.Run(mode, func(t *testing.T) {
			// In transaction mode both clients share one server connection,
			// where a refused statement must not collide with the other's.
			env := startProxy(t, setup{poolMode: mode, poolSize: map[string]int{"session": 2, "transaction": 1}[mode]})
			clients := []*pgx.Conn{env.connect(t), env.connect(t)}
			for n, sql := range escapes {
				for _, how := range escapeRoutes {
					for i, c := range clients {
						for try, err := range how.run(ctxT(t), c.PgConn(), fmt.Sprintf("escape_%d", n), sql) {
							if sqlState(err) != "42501" {
								t.Errorf("client %d, %q (%s), try %d: %v; want SQLSTATE 42501", i, sql, how.name, try+1, err)
							}
						}
					}
				}
				for _, c := range clients {
					if got := queryStrings(t, c, "SELECT current_user")[0]; got != ownerRole {
						t.Fatalf("after %q current_user = %s", sql, got)
					}
				}
			}
			c := clients[0]
			// Setting the role to the owner itself stays allowed, for apps
			// that used to do it on connect.
			if _, err := c.Exec(ctxT(t), "SET ROLE "+ownerRole); err != nil {
				t.Errorf("SET ROLE to the owner: %v", err)
			}
			_, err := c.Exec(ctxT(t), "CREATE TABLE guard_probe (x int)")
			must(t, err)
			t.Cleanup(func() { _ = cluster.Exec(context.Background(), dbName, "DROP TABLE IF EXISTS guard_probe, escaped") })
			rows, err := cluster.QueryStrings(ctxT(t), dbName,
				"SELECT relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = 'public' AND pg_get_userbyid(c.relowner) <> $1", ownerRole)
			must(t, err)
			if len(rows) != 0 {
				t.Fatalf("objects owned by a role other than the owner: %v", rows)
			}
		})
	}
}

// An escape that takes its role as a parameter, as an app binding it would
// send it (SET ROLE takes no parameters, so set_config is the way), is
// refused with 42501 too: the statement put in its place declares the same
// parameters, so the client's Bind fits it.
func TestRoleGuardRefusesParameterizedEscapes(t *testing.T) {
	const sql = "SELECT set_config('role', $1, false)"
	for _, mode := range []string{"session", "transaction"} {
		t.Run(mode, func(t *testing.T) {
			env := startProxy(t, setup{poolMode: mode, poolSize: map[string]int{"session": 2, "transaction": 1}[mode]})
			for i, c := range []*pgx.Conn{env.connect(t), env.connect(t)} {
				// pgx: its statement cache (named), the described unnamed
				// statement, and the unnamed statement with the types
				// guessed from the arguments.
				for _, qm := range []pgx.QueryExecMode{pgx.QueryExecModeCacheStatement, pgx.QueryExecModeCacheDescribe,
					pgx.QueryExecModeDescribeExec, pgx.QueryExecModeExec} {
					for try := 1; try <= 2; try++ {
						if _, err := c.Exec(ctxT(t), sql, qm, "none"); sqlState(err) != "42501" {
							t.Errorf("client %d, %v, try %d: %v; want SQLSTATE 42501", i, qm, try, err)
						}
					}
				}
				// psycopg and JDBC declare the parameter's type in the Parse.
				for _, oids := range [][]uint32{nil, {25}} {
					err := c.PgConn().ExecParams(ctxT(t), sql, [][]byte{[]byte("none")}, oids, nil, nil).Read().Err
					if sqlState(err) != "42501" {
						t.Errorf("client %d, parameter types %v: %v; want SQLSTATE 42501", i, oids, err)
					}
				}
				if got := queryStrings(t, c, "SELECT current_user")[0]; got != ownerRole {
					t.Fatalf("current_user = %s", got)
				}
			}
		})
	}
}

// escapeRoutes are the ways a statement reaches the server: a simple Query,
// the unnamed statement (Parse, Bind, Execute, Sync in one batch), and a
// named statement prepared once and executed after, as JDBC and psycopg do
// with a statement used often and pgx does with its statement cache. Each
// route runs the statement twice. Both clients use the same statement names,
// and leave them prepared, as an app that goes away does.
var escapeRoutes = []struct {
	name string
	run  func(ctx context.Context, c *pgconn.PgConn, name, sql string) []error
}{
	{"simple query", func(ctx context.Context, c *pgconn.PgConn, _, sql string) []error {
		_, err1 := c.Exec(ctx, sql).ReadAll()
		_, err2 := c.Exec(ctx, sql).ReadAll()
		return []error{err1, err2}
	}},
	{"unnamed statement", func(ctx context.Context, c *pgconn.PgConn, _, sql string) []error {
		return []error{
			c.ExecParams(ctx, sql, nil, nil, nil, nil).Read().Err,
			c.ExecParams(ctx, sql, nil, nil, nil, nil).Read().Err,
		}
	}},
	{"named statement", func(ctx context.Context, c *pgconn.PgConn, name, sql string) []error {
		if _, err := c.Prepare(ctx, name, sql, nil); err != nil {
			return []error{fmt.Errorf("prepare: %w", err)}
		}
		return []error{
			c.ExecPrepared(ctx, name, nil, nil, nil).Read().Err,
			c.ExecPrepared(ctx, name, nil, nil, nil).Read().Err,
		}
	}},
}
