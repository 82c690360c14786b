package integration

import (
	"context"
	"testing"

	"github.com/jackc/pgx/v5"
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
			env := startProxy(t, setup{poolMode: mode, poolSize: 2})
			c := env.connect(t)
			for _, sql := range escapes {
				for _, qm := range []pgx.QueryExecMode{pgx.QueryExecModeSimpleProtocol, pgx.QueryExecModeExec} {
					_, err := c.Exec(ctxT(t), sql, qm)
					if sqlState(err) != "42501" {
						t.Errorf("%q (%v): %v; want SQLSTATE 42501", sql, qm, err)
					}
				}
				if got := queryStrings(t, c, "SELECT current_user")[0]; got != ownerRole {
					t.Fatalf("after %q current_user = %s", sql, got)
				}
			}
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
