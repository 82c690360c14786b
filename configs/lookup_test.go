package configs_test

import (
	"slices"
	"testing"

	"github.com/pgrotate/pgrotate/configs"
)

// TestClientLookups: clients are found by user, list their secrets in a
// fixed order, and with no databases listed may use every database.
func TestClientLookups(t *testing.T) {
	c := mustParse(t, yamlLines(
		"databases:",
		"  bookstore: {owner_role: o, credentials: {path: /c}}",
		"  inventory: {owner_role: o, credentials: {path: /c}}",
		"clients:",
		"  - user: bookstore_app",
		"    password_verifier: VERIFIER",
		"    password_verifiers: [SCRAM-SHA-256$second, SCRAM-SHA-256$third]",
		"    databases: [bookstore]",
		"  - user: admin",
		"    password_file: /etc/pgrotate/admin.verifiers",
	))
	app, ok := c.Client("bookstore_app")
	if !ok {
		t.Fatal(`Client("bookstore_app") not found`)
	}
	if want := []string{appVerifier, "SCRAM-SHA-256$second", "SCRAM-SHA-256$third"}; !slices.Equal(app.Secrets(), want) {
		t.Errorf("Secrets() = %q, want %q", app.Secrets(), want)
	}
	if !app.Allows("bookstore") || app.Allows("inventory") {
		t.Errorf("bookstore_app Allows(bookstore, inventory) = %v, %v; want true, false", app.Allows("bookstore"), app.Allows("inventory"))
	}
	admin, _ := c.Client("admin")
	if len(admin.Secrets()) != 0 || !admin.Allows("bookstore") || !admin.Allows("inventory") {
		t.Errorf("admin: Secrets() = %q, Allows = %v, %v; want none, true, true", admin.Secrets(), admin.Allows("bookstore"), admin.Allows("inventory"))
	}
	if _, ok := c.Client("nobody"); ok {
		t.Error(`Client("nobody") found`)
	}
	if _, ok := c.Database("nothere"); ok {
		t.Error(`Database("nothere") found`)
	}
}

// TestRoleGuardEnabled: the guard is on unless switched off explicitly,
// also on a Database built by hand rather than parsed.
func TestRoleGuardEnabled(t *testing.T) {
	off := false
	if !(&configs.Database{}).RoleGuardEnabled() {
		t.Error("RoleGuardEnabled() on a zero Database = false, want true")
	}
	if (&configs.Database{RoleGuard: &off}).RoleGuardEnabled() {
		t.Error("RoleGuardEnabled() with role_guard false = true, want false")
	}
}
