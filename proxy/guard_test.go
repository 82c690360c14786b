package proxy

import (
	"slices"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5/pgproto3"
)

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
		// What PostgreSQL reads as the same words.
		"SET/**/ROLE bookstore_user_0001",
		"SET -- a comment\n ROLE bookstore_user_0001",
		"SET /* nested /* comment */ here */ ROLE x",
		`SET "role" TO bookstore_user_0001`,
		`SET "ROLE" TO x`,
		"SET session_authorization = 'x'",
		"SET session_authorization TO x",
		`SET "session_authorization" TO x`,
		"SET SESSION/**/AUTHORIZATION x",
		`SET U&"\0072ole" TO bookstore_user_0001`,
		"SELECT set_config(('role'), 'x', false)",
		"SELECT set_config/**/('role', 'x', false)",
		`SELECT "set_config"('role', 'x', false)`,
		"SELECT pg_catalog.set_config('role', 'x', false)",
		"SELECT set_config(E'role', 'x', false)",
		"SELECT set_config($tag$role$tag$, 'x', false)",
		// A name computed at run time, in text that mentions roles.
		"SELECT set_config(lower('ROLE'), 'x', false)",
		`SELECT set_config(E'r\157le', 'x', false) -- role`,
		"SELECT set_config(U&'\0072ole', session_user, false)",
		// A function's SET clause, run later as the function runs.
		`CREATE FUNCTION f() RETURNS int LANGUAGE sql SET "role" = 'bookstore_user_0001' AS 'SELECT 1'`,
		`ALTER FUNCTION f() SET U&"\0072ole" = 'x'`,
		// Comment markers inside strings, which a reading that ends
		// strings in the wrong place would take as comments.
		"SELECT $$--$$; SET ROLE NONE; SELECT current_user",
		"SELECT $$--$$; SET/**/ROLE NONE",
		"SELECT E'\\'--'; SET ROLE NONE",
		"SELECT E'\\'--'; SET/**/ROLE NONE",
		"SELECT '\\'--'; SET/**/ROLE NONE", // standard_conforming_strings off
		"DO $$BEGIN EXECUTE 'SET/**/ROLE x'; END$$",
		// A string continued on the next line after E'' is an E string too.
		"SELECT E''\n'\\'--', '\\', '--'; SET/**/ROLE NONE",
		// set_config named with Unicode escapes.
		`SELECT U&"set\005fconfig"('role', 'none', false)`,
		// UPDATE is no reserved word: a function may be named update.
		"ALTER FUNCTION update SET role = bookstore_user_0001",
		"ALTER FUNCTION public.update SET role = x",
		"CREATE FUNCTION f() RETURNS update LANGUAGE sql SET role = x AS 'select 1'",
		// A string continued after a -- comment and a newline.
		"SELECT E'a'--\n'\\' x', '--\\' ; SET/**/ROLE none;",
		// An UPDATE in a dollar-quoted body or setting value, before a
		// function's SET clause.
		"CREATE OR REPLACE FUNCTION h() RETURNS text LANGUAGE sql AS $$select current_user::text -- ; update x$$ SET role TO none",
		"ALTER FUNCTION g() SET application_name TO $$-- ;update x$$ SET role TO none",
		// A function's SET clause after a body that updates a column.
		"CREATE FUNCTION f() RETURNS void LANGUAGE sql AS 'UPDATE t SET x = 1' SET role = 'x'",
		// An UPDATE that only one reading sees before the SET: a dollar
		// quote, a carriage return or a backslash turns the semicolon
		// before a SET ROLE into a comment in that reading.
		"SELECT $$ update x --$$;\nSET ROLE other; SELECT current_user",
		"SELECT $$update x /*$$; SET ROLE other; SELECT current_user, $$*/$$",
		"SELECT $$ update x --$$;\nSET SESSION AUTHORIZATION bookstore_user_0001",
		"SELECT 1 AS update --\r; SET ROLE other; CREATE TABLE own_cr(a int)",
		"SELECT 'x\\' ;update x /*'; SET ROLE other; SELECT current_user, '*/'", // standard_conforming_strings off
		"DO $$BEGIN -- ;update x\nSET ROLE other; END$$",
		"CREATE FUNCTION g() RETURNS text LANGUAGE plpgsql AS $$BEGIN -- ;update x\nSET ROLE other; RETURN current_user; END$$",
		"DO $$BEGIN RAISE NOTICE 'x\\'; update t /*'; SET ROLE other; -- */\nEND$$", // standard_conforming_strings off
		// Words that end in update, and a $ inside a name.
		"ALTER FUNCTION asupdate SET role = other",
		"ALTER FUNCTION beginupdate SET role = other",
		"ALTER FUNCTION explainupdate SET role = other",
		"ALTER FUNCTION f$update SET role = other",
		"CREATE FUNCTION f() RETURNS int LANGUAGE sql SET search_path = beginupdate SET role = other AS 'select 1'",
		"CREATE FUNCTION hid() RETURNS text LANGUAGE sql AS $$select current_user::text as update --$$\nSET role = other",
		"SET\vROLE other",
		// A quoted name ends the word before it.
		`SET"role"=other`,
		`SET SESSION"role" TO other`,
		`SET LOCAL"ROLE"=other`,
		`ALTER FUNCTION f() SET"role"=other`,
		`SET"session_authorization"=bookstore_user_0001`,
		// A comment in a body that is lexed again when it runs.
		"DO 'BEGIN --;update x\nSET ROLE other; END'",
		"CREATE FUNCTION f_s() RETURNS name LANGUAGE sql AS 'select 1; --;update x\nSET ROLE other; select current_user'",
		"DO $f$BEGIN PERFORM $q$'$q$; --';update x\nSET ROLE other; END$f$",
		// An E string goes on after a doubled quote.
		"SELECT E'x''\\'', '\\';--';update x\nSET ROLE other",
		// set_config arguments PostgreSQL reads otherwise.
		"select set_config('role '::bpchar, 'other', false)",
		"select set_config('rolex'::char(4), 'other', false)",
		`select set_config('{"a":"role","b":"\', "}'::json->>'a', 'other', false)`,
		`select set_config(E'\x72ole', 'other', false)`,
		`select set_config(E'session_\x61uthorization', 'bookstore_user_0001', false)`,
		// set_config named, not called: an aggregate runs it later.
		"CREATE AGGREGATE agg_r(text, bool) (sfunc = set_config, stype = text, initcond = 'role')",
		`CREATE AGGREGATE agg_r(text, bool) (sfunc = pg_catalog."set_config", stype = text, initcond = E'\x72ole')`,
		// Names PostgreSQL reads as one identifier, where Go's folding or
		// word boundaries would see a keyword before UPDATE.
		"ALTER FUNCTION aſupdate SET role = other",
		"ALTER FUNCTION é$$update SET role = other",
		"ALTER PROCEDURE é$ſ$update SET role = other",
		"ALTER FUNCTION ébegin update SET role = other",
		// Unicode escapes in a name that is not called, and escapes in
		// dynamic SQL.
		`CREATE AGGREGATE agg_u(text, bool) (sfunc = U&"set\005fconfig", stype = text, initcond = 'role')`,
		`CREATE AGGREGATE agg_u(text, bool) (sfunc = pg_catalog.U&"set\005fconfig", stype = text, initcond = U&'\0072ole')`,
		`DO $$BEGIN EXECUTE E'SET \x52OLE other'; END$$`,
		`DO $$BEGIN EXECUTE U&'SET \0052OLE other'; END$$`,
		// A string that goes on on the next line names another role.
		"SET ROLE 'bookstore_owner'\n'_ro'",
		"ALTER FUNCTION f() SET role = 'bookstore_owner' -- x\n'_0001'",
		// Names PostgreSQL does not take for the owner's.
		"SET ROLE bookſtore_owner",
		`SET ROLE """bookstore_owner"""`,
		"SET ROLE 'BOOKSTORE_OWNER'",
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
		"SELECT set_config('app.user_role', $1, true)",
		"SELECT set_config($1, $2, false)", // no role in the text: the transaction-mode reset covers it
		// A column named role, as ORMs update it.
		`UPDATE "users" SET "role" = $1 WHERE "users"."id" = $2`,
		"UPDATE users SET role = 'admin' WHERE id = 1",
		"update only public.users * as u set role = 'x'",
		"INSERT INTO users (id, role) VALUES (1, 'a') ON CONFLICT (id) DO UPDATE SET role = EXCLUDED.role",
		"MERGE INTO users u USING s ON s.id = u.id WHEN MATCHED THEN UPDATE SET role = s.role",
		"DO $$BEGIN UPDATE users SET role = 'x'; END$$",
		"WITH x AS (SELECT 1) UPDATE users SET role = 'a'",
		// Comments before the UPDATE: sqlc's name line, Hibernate, Rails'
		// query log tags.
		"-- name: UpdateUserRole :exec\nUPDATE users SET role = $1 WHERE id = $2",
		"/* update com.example.User */ update users set role=? where id=?",
		`/*action='update',controller='users'*/ UPDATE "users" SET "role" = $1 WHERE "users"."id" = $2`,
		"EXPLAIN ANALYZE UPDATE users SET role = 'admin' WHERE id = 1",
		"PREPARE upd(text, int) AS UPDATE users SET role = $1 WHERE id = $2",
		"SET ROLE TO DEFAULT",
		"SET ROLE BookStore_Owner", // folded to lower case, as PostgreSQL folds a plain name
		`SET"role"=bookstore_owner`,
		"SELECT set_config('app.tenant'::pg_catalog.text, $1, true)",
		`SELECT set_config(E'app.x', 'a\nb', false)`,
		"SET ROLE 'bookstore_owner'",
		"UPDATE café SET role = 'x'",
		"CREATE FUNCTION f() RETURNS void LANGUAGE plpgsql AS $$BEGIN\n  UPDATE users SET role = 'x';\nEND$$",
		"CREATE FUNCTION f() RETURNS void LANGUAGE sql AS $body$UPDATE users SET role = 'x'$body$",
		"SELECT 1; update users set role = 'b' -- after another statement",
		"SELECT set_config('app.role'::text, $1::text, true)",
		`SELECT a & b FROM t WHERE u & 1 = 0`,
	}
	for _, q := range refused {
		if !g.refuses([]byte(q), scanText([]byte(q))) {
			t.Errorf("guard lets through %q", q)
		}
	}
	for _, q := range allowed {
		if g.refuses([]byte(q), scanText([]byte(q))) {
			t.Errorf("guard refuses harmless %q", q)
		}
	}
}

func BenchmarkGuardOrdinaryQuery(b *testing.B) {
	g := newRoleGuard("bookstore_owner")
	q := []byte("SELECT abalance FROM pgbench_accounts WHERE aid = 48291;")
	b.ReportAllocs()
	for range b.N {
		if g.refuses(q, scanText(q)) {
			b.Fatal("refused")
		}
	}
}

// scanText finds, in one pass and whatever the case, the words after
// which a server connection needs RESET ROLE (role), has lost its
// prepared statements (forget), or holds session state another client
// must not inherit (session).
func TestScanText(t *testing.T) {
	for _, c := range []struct {
		sql  string
		want mentions
	}{
		{"SELECT abalance FROM pgbench_accounts WHERE aid = 1", mentions{}},
		{"SET ROLE x", mentions{role: true, settings: true}},
		{"select rolname from pg_roles", mentions{role: true}},
		{"SET SESSION AUTHORIZATION x", mentions{role: true, settings: true}},
		{"select 'auth'", mentions{}},
		{"DEALLOCATE ALL", mentions{forget: true}},
		{"discard all", mentions{forget: true}},
		{"select 1; Discard Plans; reset role", mentions{role: true, forget: true, settings: true}},
		{"select 'deal', 'disc', 'rol'", mentions{}},
		{"UPDATE items SET discarded = true, deallocated_at = now()", mentions{}},
		{"LISTEN orders", mentions{session: true}},
		{"unlisten *", mentions{session: true}},
		{"SELECT * FROM pg_listening_channels()", mentions{}},
		{"CREATE TEMP TABLE t (x int)", mentions{session: true}},
		{"create temporary table t (x int)", mentions{session: true}},
		{"CREATE TABLE pg_temp.t (x int)", mentions{session: true}},
		{"SELECT temperature, attempts, template FROM readings WHERE temp_id = 1", mentions{}},
		{"DECLARE c CURSOR WITH HOLD FOR SELECT 1", mentions{session: true}},
		{"SELECT threshold, holder FROM alerts", mentions{}},
		{"SELECT pg_advisory_lock(42)", mentions{session: true}},
		{"SELECT pg_try_advisory_lock_shared(42)", mentions{session: true}},
		{"SELECT pg_advisory_xact_lock(42), pg_try_advisory_xact_lock(7)", mentions{}},
		{"PREPARE q AS SELECT 1", mentions{session: true}},
		{"SELECT prepared_at FROM jobs", mentions{}},
		{"temp", mentions{session: true}},
		{"role", mentions{role: true}},
		{"rol", mentions{}},
		{"SET statement_timeout = 0", mentions{settings: true}},
		{"  set search_path to app", mentions{settings: true}},
		{"SELECT 1;\nSET SESSION TimeZone = 'UTC'", mentions{settings: true}},
		{"RESET statement_timeout", mentions{settings: true}},
		{"reset all", mentions{settings: true}},
		{"UPDATE pg_settings SET setting = 'x' WHERE name = 'search_path'", mentions{settings: true}},
		{"update pg_catalog.pg_settings set setting = 'x' where name = 'work_mem'", mentions{settings: true}},
		{"SELECT set_config('app.tenant', '42', false)", mentions{settings: true}},
		{"SELECT pg_catalog.SET_CONFIG('app.tenant', '42', false)", mentions{settings: true}},
		{"SELECT Set_Config('app.tenant', '42', false)", mentions{settings: true}},
		{"SELECT reset_config, offset_configs FROM my_config", mentions{}},
		{"SET LOCAL statement_timeout = 0", mentions{}},
		{"SET TRANSACTION ISOLATION LEVEL SERIALIZABLE", mentions{}},
		{"UPDATE accounts SET balance = 0; SELECT setting, reset_val FROM pg_settings", mentions{}},
		{"SELECT * FROM sets WHERE preset = 1", mentions{}},
		// Comments in front of a statement (query tags) hide nothing.
		{"/* tenant:a */ SET search_path = ta", mentions{settings: true}},
		{"-- x\nSET work_mem = '78MB'", mentions{settings: true}},
		{"/* a /* nested */ b */ reset all", mentions{settings: true}},
		{"/**/DO $$begin execute 'set work_mem=''81MB'''; end$$", mentions{settings: true}},
		{"select 1; /*x*/ set work_mem = '82MB'", mentions{settings: true}},
		{"SET /* why */ LOCAL statement_timeout = 0", mentions{}},
		{"/* SET x = 1 */ SELECT 1", mentions{}},
		{"-- SET x = 1", mentions{}},
		{"/* unterminated SET x = 1", mentions{}},
		{"", mentions{}},
	} {
		if got := scanText([]byte(c.sql)); got != c.want {
			t.Errorf("scanText(%q) = %+v, want %+v", c.sql, got, c.want)
		}
	}
}

// A refused Parse is replaced by one that declares as many parameters as
// the client will bind: the client's own types where it gave them, text
// where it left them to the server.
func TestRefusedParseKeepsParameters(t *testing.T) {
	g := newRoleGuard("owner")
	for _, c := range []struct {
		in   pgproto3.Parse
		want []uint32
	}{
		{pgproto3.Parse{Name: "s", Query: "SET ROLE x"}, []uint32{}},
		{pgproto3.Parse{Name: "s", Query: "SELECT set_config('role', $1, false)"}, []uint32{25}},
		{pgproto3.Parse{Query: "SELECT set_config('role', $2, $1)", ParameterOIDs: []uint32{16}}, []uint32{16, 25}},
		{pgproto3.Parse{Query: "SELECT set_config('role', $1, false)", ParameterOIDs: []uint32{0, 1043}}, []uint32{25, 1043}},
		{pgproto3.Parse{Query: "SELECT set_config('role', a$1, false), $$x$$, $10"}, slices.Repeat([]uint32{25}, 10)},
	} {
		body, err := c.in.Encode(nil)
		if err != nil {
			t.Fatal(err)
		}
		got := g.refusedParse(body[5:])
		if got.Name != c.in.Name || got.Query != g.refusal {
			t.Errorf("%q: got name %q, query %q", c.in.Query, got.Name, got.Query)
		}
		if !slices.Equal(got.ParameterOIDs, c.want) {
			t.Errorf("%q %v: parameter types %v, want %v", c.in.Query, c.in.ParameterOIDs, got.ParameterOIDs, c.want)
		}
	}
}

func BenchmarkScanTextKilobyte(b *testing.B) {
	q := []byte(strings.Repeat("SELECT o.id, o.created_at, c.name FROM orders o JOIN customers c ON c.id = o.customer_id WHERE ", 10))
	b.SetBytes(int64(len(q)))
	for range b.N {
		if m := scanText(q); m != (mentions{}) {
			b.Fatal(m)
		}
	}
}
