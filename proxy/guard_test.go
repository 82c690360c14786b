package proxy

import "testing"

func TestRoleGuard(t *testing.T) {
	g := newRoleGuard("bookstore_owner")
	refused := []string{
		"SET ROLE postgres",
		"set role none",
		"SET SESSION ROLE bookstore_user_0001",
		"SET LOCAL ROLE TO someone",
		"select 1; SET ROLE = postgres; select 2",
		`SET ROLE "Bookstore_Owner"`,
		"SET SESSION AUTHORIZATION postgres",
		"SELECT set_config('role', 'postgres', false)",
		"select SET_CONFIG ( 'session_authorization', 'x', true)",
		"SELECT set_config($$role$$, 'postgres', false)",
		"DO $$BEGIN PERFORM set_config('role', 'x', false); END$$",
	}
	allowed := []string{
		"SELECT 1",
		"SET ROLE bookstore_owner",
		`SET ROLE "bookstore_owner"`,
		"RESET ROLE",
		"SET SESSION AUTHORIZATION DEFAULT",
		"SELECT rolname FROM pg_roles",
		"CREATE TABLE user_roles (role text)",
		"SELECT set_config('application_name', 'x', false)",
	}
	for _, q := range refused {
		if !g.refuses([]byte(q)) {
			t.Errorf("guard lets through %q", q)
		}
	}
	for _, q := range allowed {
		if g.refuses([]byte(q)) {
			t.Errorf("guard refuses harmless %q", q)
		}
	}
}

func BenchmarkGuardOrdinaryQuery(b *testing.B) {
	g := newRoleGuard("bookstore_owner")
	q := []byte("SELECT abalance FROM pgbench_accounts WHERE aid = 48291;")
	b.ReportAllocs()
	for range b.N {
		if g.refuses(q) {
			b.Fatal("refused")
		}
	}
}
