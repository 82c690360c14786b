package configs_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/pgrotate/pgrotate/configs"
)

// TestParseErrors pins the exact message of each kind of mistake: every
// problem names the file, the line and the full key path, says what is
// allowed, and all problems of a file are reported together.
func TestParseErrors(t *testing.T) {
	tests := []struct {
		name string
		env  map[string]string
		doc  string
		want []string
	}{{
		name: "unknown key and wrong type, both reported",
		doc: yamlLines(
			"listen: 127.0.0.1:6432",
			"upstream:",
			"  host: 127.0.0.1",
			"databases:",
			"  bookstore:",
			"    owner_role: bookstore_owner",
			"    pool_sise: 20",
			"    credentials: {path: /etc/pgrotate/bookstore}",
			"    pool_size: twenty",
			"clients:",
			"  - {user: bookstore_app, password_verifier: VERIFIER}",
		),
		want: []string{
			"pgrotate.yaml:7: databases.bookstore.pool_sise: unknown key",
			`pgrotate.yaml:9: databases.bookstore.pool_size: expected an integer, got "twenty"`,
		},
	}, {
		name: "unknown key at the top and in a list item",
		doc: yamlLines(
			"lisen: 127.0.0.1:6432",
			"databases:",
			"  bookstore: {owner_role: o, credentials: {path: /c}}",
			"clients:",
			"  - user: bookstore_app",
			"    password: app-password-1",
			"    password_verifier: VERIFIER",
		),
		want: []string{
			"pgrotate.yaml:1: lisen: unknown key",
			"pgrotate.yaml:6: clients[0].password: unknown key",
		},
	}, {
		name: "wrong types of duration, boolean and structure",
		doc: yamlLines(
			"auth: {allow_md5: maybe}",
			"databases:",
			"  bookstore:",
			"    owner_role: bookstore_owner",
			"    drain_timeout: soon",
			"    credentials: /etc/pgrotate/bookstore",
			"clients:",
			"  - user: bookstore_app",
			"    password_verifiers: VERIFIER",
		),
		want: []string{
			`pgrotate.yaml:1: auth.allow_md5: expected true or false, got "maybe"`,
			`pgrotate.yaml:5: databases.bookstore.drain_timeout: expected a duration such as "30s", "5m" or "1h30m", or a number of seconds, got "soon"`,
			"pgrotate.yaml:6: databases.bookstore.credentials: expected a mapping, got a single value",
			"pgrotate.yaml:9: clients[0].password_verifiers: expected a list, got a single value",
		},
	}, {
		name: "duplicate key",
		doc: yamlLines(
			"databases:",
			"  bookstore: {owner_role: o, credentials: {path: /c}}",
			"clients:",
			"  - {user: bookstore_app, password_verifier: VERIFIER}",
			"databases:",
			"  other: {owner_role: o, credentials: {path: /c}}",
		),
		want: []string{"pgrotate.yaml:5: databases: duplicate key (first written on line 1)"},
	}, {
		name: "missing required keys point at their parent",
		doc: yamlLines(
			"databases:",
			"  bookstore:",
			"    pool_size: 10",
			"clients:",
			"  - user: bookstore_app",
		),
		want: []string{
			"pgrotate.yaml:2: databases.bookstore.owner_role: required: the NOLOGIN role that owns the database's objects; every server session acts as it",
			"pgrotate.yaml:2: databases.bookstore.credentials.path: required: a directory (Kubernetes Secret mount), a JSON file or a file holding a libpq URL",
			"pgrotate.yaml:5: clients[0]: needs password_verifier, password_verifiers or password_file",
		},
	}, {
		name: "empty file",
		doc:  "",
		want: []string{
			"pgrotate.yaml: databases: at least one database is required",
			"pgrotate.yaml: clients: at least one client is required",
		},
	}, {
		name: "unset environment variable",
		doc: yamlLines(
			"databases:",
			"  bookstore: {owner_role: o, credentials: {path: /c}}",
			"clients:",
			"  - user: bookstore_app",
			"    password_verifier: ${PGROTATE_TEST_UNSET}",
		),
		want: []string{"pgrotate.yaml:5: clients[0].password_verifier: environment variable PGROTATE_TEST_UNSET is not set (write ${PGROTATE_TEST_UNSET:-default} to give a default)"},
	}, {
		name: "malformed references to the environment",
		doc: yamlLines(
			"listen: ${PGROTATE_LISTEN",
			"admin_listen: ${1PORT}",
			"databases:",
			"  bookstore: {owner_role: o, credentials: {path: /c}}",
			"clients:",
			"  - {user: bookstore_app, password_verifier: VERIFIER}",
		),
		want: []string{
			`pgrotate.yaml:1: listen: "${" without a closing "}"; write "$$" for a literal "$"`,
			`pgrotate.yaml:2: admin_listen: "1PORT" is not an environment variable name (letters, digits and _, not starting with a digit); write "$$" for a literal "$"`,
		},
	}, {
		name: "a value from the environment is named, never shown",
		env:  map[string]string{"PGROTATE_TEST_POOL": "s3cret"},
		doc: yamlLines(
			"databases:",
			"  bookstore:",
			"    owner_role: o",
			"    pool_size: ${PGROTATE_TEST_POOL}",
			"    credentials: {path: /c}",
			"clients:",
			"  - {user: bookstore_app, password_verifier: VERIFIER}",
		),
		want: []string{`pgrotate.yaml:4: databases.bookstore.pool_size: expected an integer, got "${PGROTATE_TEST_POOL}" from the environment (value not shown)`},
	}, {
		name: "references to unknown databases and duplicate users",
		doc: yamlLines(
			"databases:",
			"  bookstore: {owner_role: o, credentials: {path: /c}}",
			"clients:",
			"  - user: bookstore_app",
			"    password_verifier: VERIFIER",
			"    databases: [bookstore, inventory]",
			"  - user: bookstore_app",
			"    password_verifier: VERIFIER",
		),
		want: []string{
			`pgrotate.yaml:6: clients[0].databases[1]: unknown database "inventory"; defined: bookstore`,
			`pgrotate.yaml:7: clients[1].user: duplicate user "bookstore_app", already defined at clients[0] (line 4)`,
		},
	}, {
		name: "a password where a verifier belongs, and md5 not allowed",
		doc: yamlLines(
			"databases:",
			"  bookstore: {owner_role: o, credentials: {path: /c}}",
			"clients:",
			"  - user: bookstore_app",
			"    password_verifier: app-password-1",
			"    password_verifiers:",
			"      - md56e6ffd83f64cf6434653bd551d73c4c0",
		),
		want: []string{
			`pgrotate.yaml:5: clients[0].password_verifier: must be a verifier, not a password: "SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>" (pgrotate passwd makes one) or "md5" followed by 32 hex digits`,
			"pgrotate.yaml:7: clients[0].password_verifiers[0]: md5 verifiers are refused unless auth.allow_md5 is true; prefer a SCRAM-SHA-256 verifier (pgrotate passwd makes one)",
		},
	}, {
		name: "out of range values and misspelt choices",
		doc: yamlLines(
			"listen: localhost",
			"admin_listen: 127.0.0.1:99999",
			"log: {format: xml, level: verbose}",
			"limits: {max_client_conn: 0, auth_timeout: 0s, shutdown_timeout: -5}",
			"tls: {mode: prefer}",
			"upstream: {host: db, port: 0, sslmode: verify_full, sslcert: /c.crt}",
			"databases:",
			"  bookstore:",
			"    owner_role: o",
			"    pool_mode: statement",
			"    pool_size: 5",
			"    min_pool_size: 6",
			"    credentials: {path: /c, format: yaml, poll_interval: 0}",
			"clients:",
			"  - {user: bookstore_app, password_verifier: VERIFIER}",
		),
		want: []string{
			`pgrotate.yaml:1: listen: must be host:port, such as "127.0.0.1:6432" or ":6432"; got "localhost"`,
			`pgrotate.yaml:2: admin_listen: must be host:port, such as "127.0.0.1:9187", or "off" to disable the admin server; got "127.0.0.1:99999"`,
			`pgrotate.yaml:3: log.format: must be one of text, json; got "xml"`,
			`pgrotate.yaml:3: log.level: must be one of debug, info, warn, error; got "verbose"`,
			"pgrotate.yaml:4: limits.max_client_conn: must be at least 1, got 0",
			`pgrotate.yaml:4: limits.auth_timeout: must be a positive duration such as "30s" or "5m", got "0s"`,
			`pgrotate.yaml:4: limits.shutdown_timeout: must be a positive duration such as "30s" or "5m", got "-5s"`,
			"pgrotate.yaml:5: tls.cert_file: required: a PEM certificate file is needed when tls.mode is prefer",
			"pgrotate.yaml:5: tls.key_file: required: a PEM key file is needed when tls.mode is prefer",
			"pgrotate.yaml:6: upstream.port: must be from 1 to 65535, got 0",
			`pgrotate.yaml:6: upstream.sslmode: must be one of disable, allow, prefer, require, verify-ca, verify-full; got "verify_full"`,
			"pgrotate.yaml:6: upstream: sslcert and sslkey must be given together",
			`pgrotate.yaml:10: databases.bookstore.pool_mode: must be one of session, transaction; got "statement"`,
			"pgrotate.yaml:12: databases.bookstore.min_pool_size: must be from 0 to pool_size (5), got 6",
			`pgrotate.yaml:13: databases.bookstore.credentials.format: must be one of auto, dir, json, url; got "yaml"`,
			`pgrotate.yaml:13: databases.bookstore.credentials.poll_interval: must be a positive duration such as "30s" or "5m", got "0s"`,
		},
	}, {
		name: "pool size bounds",
		doc: yamlLines(
			"databases:",
			"  a: {owner_role: o, credentials: {path: /c}, pool_size: 0}",
			"  b: {owner_role: o, credentials: {path: /c}, pool_size: 10001}",
			"clients:",
			"  - {user: bookstore_app, password_verifier: VERIFIER}",
		),
		want: []string{
			"pgrotate.yaml:2: databases.a.pool_size: must be from 1 to 10000, got 0",
			"pgrotate.yaml:3: databases.b.pool_size: must be from 1 to 10000, got 10001",
		},
	}, {
		name: "prepared statement cap bounds",
		doc: yamlLines(
			"databases:",
			"  a: {owner_role: o, credentials: {path: /c}, max_prepared_statements: -1}",
			"  b: {owner_role: o, credentials: {path: /c}, max_prepared_statements: 100001}",
			"  c: {owner_role: o, credentials: {path: /c}, max_prepared_statements: 0}",
			"clients:",
			"  - {user: bookstore_app, password_verifier: VERIFIER}",
		),
		want: []string{
			"pgrotate.yaml:2: databases.a.max_prepared_statements: must be from 0 (no cap) to 100000, got -1",
			"pgrotate.yaml:3: databases.b.max_prepared_statements: must be from 0 (no cap) to 100000, got 100001",
		},
	}, {
		name: "YAML syntax error",
		doc:  "databases:\n  bookstore: {owner_role: o\nclients: []\n",
		want: []string{"pgrotate.yaml:2: did not find expected ',' or '}'"},
	}, {
		name: "a second YAML document",
		doc:  validDoc + "---\nlisten: 127.0.0.1:7432\n",
		want: []string{"pgrotate.yaml:9: only one YAML document is allowed"},
	}, {
		name: "YAML syntax error found by the scanner",
		doc:  "databases:\n  bookstore: x\n   y: z\n",
		want: []string{"pgrotate.yaml:3: mapping values are not allowed in this context"},
	}, {
		name: "YAML syntax error: a list broken by a mapping",
		doc:  "- a\nb: c\n",
		want: []string{"pgrotate.yaml:2: did not find expected '-' indicator"},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for k, v := range tt.env {
				t.Setenv(k, v)
			}
			_, err := configs.Parse([]byte(tt.doc), "pgrotate.yaml")
			if err == nil {
				t.Fatal("Parse succeeded; want errors")
			}
			if got, want := err.Error(), strings.Join(tt.want, "\n"); got != want {
				t.Errorf("Parse error:\n%s\nwant:\n%s", got, want)
			}
		})
	}
}

// TestErrorsAreInspectable shows how a caller reaches each problem's file,
// line and key without parsing the message.
func TestErrorsAreInspectable(t *testing.T) {
	doc := strings.Replace(validDoc, "owner_role: bookstore_owner", "owner_rol: bookstore_owner", 1)
	_, err := configs.Parse([]byte(doc), "pgrotate.yaml")

	var list configs.Errors
	if !errors.As(err, &list) {
		t.Fatalf("error %T is not configs.Errors", err)
	}
	// Problems come in file order: the missing owner_role is reported at
	// its database (line 2), before the misspelt key (line 3).
	want := configs.Errors{
		{File: "pgrotate.yaml", Line: 2, Key: "databases.bookstore.owner_role", Msg: "required: the NOLOGIN role that owns the database's objects; every server session acts as it"},
		{File: "pgrotate.yaml", Line: 3, Key: "databases.bookstore.owner_rol", Msg: "unknown key"},
	}
	if len(list) != len(want) {
		t.Fatalf("got %d problems, want %d:\n%v", len(list), len(want), err)
	}
	for i := range want {
		if *list[i] != *want[i] {
			t.Errorf("problem %d = %+v, want %+v", i, *list[i], *want[i])
		}
	}
	var one *configs.Error
	if !errors.As(err, &one) || one.Line != 2 {
		t.Errorf("errors.As(*Error) = %+v; want the first problem", one)
	}
}

// TestErrorsNeverShowSecrets: whatever is wrong around a client, the
// message names keys and variables, never a verifier, a password or a
// value that came from the environment.
func TestErrorsNeverShowSecrets(t *testing.T) {
	t.Setenv("PGROTATE_TEST_SECRET", "hunter2-from-env")
	doc := yamlLines(
		"listen: ${PGROTATE_TEST_SECRET}",
		"databases:",
		"  bookstore:",
		"    owner_role: o",
		"    credentials: {path: /c}",
		"    pool_size: ${PGROTATE_TEST_SECRET}",
		"clients:",
		"  - {user: a, password_verifier: hunter2-inline}",
		"  - {user: b, password_verifier: VERIFIER, password_verifiers: [hunter2-listed]}",
		"  - {user: c, password_verifier: md5hunter2md5}",
		"  - {user: d, password_verifier: '${PGROTATE_TEST_SECRET}'}",
	)
	_, err := configs.Parse([]byte(doc), "pgrotate.yaml")
	if err == nil {
		t.Fatal("Parse succeeded; want errors")
	}
	if got := strings.Count(err.Error(), "\n") + 1; got != 6 {
		t.Errorf("got %d problems, want 6:\n%v", got, err)
	}
	for _, secret := range []string{"hunter2", appVerifier[14:]} {
		if strings.Contains(err.Error(), secret) {
			t.Errorf("error shows secret %q:\n%v", secret, err)
		}
	}
}
