package configs_test

import (
	"testing"
)

// TestEnvExpansion: ${VAR} and ${VAR:-default} are replaced in every value,
// quoted or not and whatever its type; $$ is a literal $, and a $ before
// anything else is kept, as SCRAM verifiers need.
func TestEnvExpansion(t *testing.T) {
	t.Setenv("PGROTATE_TEST_HOST", "db.internal")
	t.Setenv("PGROTATE_TEST_PORT", "5433")
	t.Setenv("PGROTATE_TEST_EMPTY", "")
	t.Setenv("PGROTATE_TEST_APP_SECRET", appVerifier)
	c := mustParse(t, yamlLines(
		"upstream:",
		"  host: ${PGROTATE_TEST_HOST}",
		"  port: ${PGROTATE_TEST_PORT}",
		"  sslrootcert: '${PGROTATE_TEST_UNSET:-/etc/ssl/ca.crt}'",
		"  sslcert: ${PGROTATE_TEST_EMPTY:-/etc/ssl/client.crt}",
		"  sslkey: \"${PGROTATE_TEST_HOST}-$${HOME}-${PGROTATE_TEST_EMPTY}.key\"",
		"databases:",
		"  bookstore:",
		"    owner_role: ${PGROTATE_TEST_OWNER:-bookstore_owner}",
		"    credentials: {path: /c}",
		"clients:",
		"  - user: a",
		"    password_verifier: ${PGROTATE_TEST_APP_SECRET}",
		"  - user: b",
		"    password_verifier: VERIFIER",
	))
	a, _ := c.Client("a")
	b, _ := c.Client("b")
	db, _ := c.Database("bookstore")
	checks := []struct{ name, got, want string }{
		{"unquoted", c.Upstream.Host, "db.internal"},
		{"default when unset, single-quoted", c.Upstream.SSLRootCert, "/etc/ssl/ca.crt"},
		{"default when set but empty", c.Upstream.SSLCert, "/etc/ssl/client.crt"},
		{"several in one value, $$ and an empty variable", c.Upstream.SSLKey, "db.internal-${HOME}-.key"},
		{"default in a nested key", db.OwnerRole, "bookstore_owner"},
		{"a verifier from the environment", a.PasswordVerifier, appVerifier},
		{"a verifier written inline keeps its $ signs", b.PasswordVerifier, appVerifier},
	}
	for _, ch := range checks {
		if ch.got != ch.want {
			t.Errorf("%s: got %q, want %q", ch.name, ch.got, ch.want)
		}
	}
	if c.Upstream.Port != 5433 {
		t.Errorf("an integer from the environment: Port = %d, want 5433", c.Upstream.Port)
	}
}

// TestEnvExpansionSkipsKeys: keys are names, not settings; a "${" in a
// key is taken literally.
func TestEnvExpansionSkipsKeys(t *testing.T) {
	t.Setenv("PGROTATE_TEST_DB", "bookstore")
	c := mustParse(t, yamlLines(
		"databases:",
		"  ${PGROTATE_TEST_DB}: {owner_role: o, credentials: {path: /c}}",
		"clients:",
		"  - {user: bookstore_app, password_verifier: VERIFIER}",
	))
	if _, ok := c.Database("${PGROTATE_TEST_DB}"); !ok {
		t.Errorf("databases = %v; want the key kept as written", c.Databases)
	}
}
