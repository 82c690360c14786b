package integration

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"
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
		// Spellings PostgreSQL reads as the same thing.
		"SET/**/ROLE " + execRole1,
		`SET "role" TO ` + execRole1,
		"SET session_authorization = " + execRole1,
		`SET U&"\0072ole" TO ` + execRole1,
		"SELECT set_config(lower('ROLE'), 'none', false)",
		`CREATE FUNCTION escape_fn() RETURNS int LANGUAGE sql SET "role" = '` + execRole1 + `' AS 'SELECT 1'`,
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

// A FunctionCall message calls a function by its OID, with no statement
// text: a call of set_config on the role is refused with 42501 too, in both
// pool modes, and one on another setting runs.
func TestRoleGuardRefusesFunctionCall(t *testing.T) {
	const setConfigOID = 2078
	call := func(c *pgx.Conn, setting, value string) (string, error) {
		fe := c.PgConn().Frontend()
		fe.Send(&pgproto3.FunctionCall{Function: setConfigOID,
			Arguments: [][]byte{[]byte(setting), []byte(value), []byte("f")}, ArgFormatCodes: []uint16{0}})
		must(t, fe.Flush())
		var result string
		var err error
		for {
			msg, rerr := fe.Receive()
			must(t, rerr)
			switch m := msg.(type) {
			case *pgproto3.FunctionCallResponse:
				result = string(m.Result)
			case *pgproto3.ErrorResponse:
				err = pgconn.ErrorResponseToPgError(m)
			case *pgproto3.ReadyForQuery:
				return result, err
			}
		}
	}
	for _, mode := range []string{"session", "transaction"} {
		t.Run(mode, func(t *testing.T) {
			env := startProxy(t, setup{poolMode: mode, poolSize: 1})
			c := env.connect(t)
			for _, setting := range []string{"role", "ROLE", "session_authorization"} {
				if _, err := call(c, setting, execRole1); sqlState(err) != "42501" {
					t.Errorf("FunctionCall set_config(%q, …): %v; want SQLSTATE 42501", setting, err)
				}
			}
			if got, err := call(c, "application_name", "by_call"); err != nil || got != "by_call" {
				t.Errorf("FunctionCall set_config('application_name', …) = %q, %v; want it to run", got, err)
			}
			if got := queryStrings(t, c, "SELECT current_user")[0]; got != ownerRole {
				t.Fatalf("current_user = %s", got)
			}
		})
	}
}

// Some role changes have no text the guard can read: a setting name bound
// as a parameter or built at run time, dynamic SQL in a DO block, a
// FunctionCall. In transaction mode the next client never inherits one: a
// transaction that called set_config, ran SET, RESET or DO, or made a
// FunctionCall has its connection's role reset before another client's
// transaction, in the round trip that applies that client's settings.
func TestTransactionModeResetsRolesTheGuardCannotRead(t *testing.T) {
	env := startProxy(t, setup{poolMode: "transaction", poolSize: 1})
	ctx := ctxT(t)
	a, b := env.connect(t), env.connect(t)
	escapes := []struct {
		name string
		run  func() error
	}{
		{"setting name bound as a parameter", func() error {
			_, err := a.Exec(ctx, "SELECT set_config($1, $2, false)", "role", execRole1)
			return err
		}},
		{"setting name built at run time", func() error {
			_, err := a.Exec(ctx, "SELECT set_config('ro' || 'le', session_user, false)")
			return err
		}},
		{"dynamic SQL in a DO block", func() error {
			_, err := a.Exec(ctx, "DO $$BEGIN EXECUTE 'SET R' || 'OLE ' || session_user; END$$")
			return err
		}},
		{"unnamed statement bound in a later transaction", func() error {
			fe := a.PgConn().Frontend()
			sendAll(t, fe, &pgproto3.Parse{Query: "SELECT set_config($1, $2, false)"}, &pgproto3.Sync{})
			sendAll(t, fe, &pgproto3.Bind{Parameters: [][]byte{[]byte("role"), []byte(execRole1)}},
				&pgproto3.Execute{}, &pgproto3.Sync{})
			for _, seg := range segments(t, fe, 2) {
				for _, r := range seg {
					if strings.HasPrefix(r, "error:") {
						return fmt.Errorf("%s", r)
					}
				}
			}
			return nil
		}},
	}
	for _, e := range escapes {
		must(t, e.run())
		if got := queryStrings(t, b, "SELECT current_user")[0]; got != ownerRole {
			t.Fatalf("after another client's %s, current_user = %s; want %s", e.name, got, ownerRole)
		}
	}
	_, err := b.Exec(ctx, "CREATE TABLE after_escapes (x int)")
	must(t, err)
	t.Cleanup(func() { _ = cluster.Exec(context.Background(), dbName, "DROP TABLE IF EXISTS after_escapes") })
	owner, err := cluster.QueryStrings(ctx, dbName, "SELECT pg_get_userbyid(relowner) FROM pg_class WHERE relname = 'after_escapes'")
	must(t, err)
	if len(owner) != 1 || owner[0][0] != ownerRole {
		t.Fatalf("after_escapes owned by %v; want %s", owner, ownerRole)
	}
}

// A function of the app's own that runs SET ROLE, called by text that says
// nothing of roles, gets past the role guard, and in transaction mode the
// next clients of its server connection act as that role too. The
// executing roles are NOINHERIT: those clients' statements fail on the
// owner's tables (42501), and the first such failure has the connection's
// role reset before anyone else's transaction. So the change is loud, and
// lasts one failed transaction.
func TestTransactionModeHealsARoleChangedOutOfSight(t *testing.T) {
	env := startProxy(t, setup{poolMode: "transaction", poolSize: 1})
	ctx := ctxT(t)
	// Made past pgrotate, as a migration tool connected directly might.
	must(t, cluster.Exec(ctx, dbName, `
		CREATE TABLE healed (n int);
		ALTER TABLE healed OWNER TO `+ownerRole+`;
		CREATE FUNCTION act_as_session_user() RETURNS void LANGUAGE plpgsql AS
			$f$BEGIN EXECUTE format('SET %s %I', 'ROLE', session_user); END$f$;
		ALTER FUNCTION act_as_session_user() OWNER TO `+ownerRole))
	t.Cleanup(func() {
		_ = cluster.Exec(context.Background(), dbName, "DROP TABLE IF EXISTS healed; DROP FUNCTION IF EXISTS act_as_session_user()")
	})
	a, b := env.connect(t), env.connect(t)
	_, err := a.Exec(ctx, "SELECT act_as_session_user()", pgx.QueryExecModeSimpleProtocol)
	must(t, err)
	if got := queryStrings(t, b, "SELECT current_user")[0]; got != execRole1 {
		t.Fatalf("the function did not change the role of the next client (current_user %s): the test shows nothing", got)
	}
	_, err = b.Exec(ctx, "INSERT INTO healed VALUES (1)", pgx.QueryExecModeSimpleProtocol)
	if sqlState(err) != "42501" {
		t.Fatalf("an insert acting as the executing role: %v; want 42501", err)
	}
	for _, c := range []*pgx.Conn{b, a} {
		if got := queryStrings(t, c, "SELECT current_user")[0]; got != ownerRole {
			t.Fatalf("after the failure, current_user = %s; want %s", got, ownerRole)
		}
	}
	_, err = b.Exec(ctx, "INSERT INTO healed VALUES (2)", pgx.QueryExecModeSimpleProtocol)
	must(t, err)
}
