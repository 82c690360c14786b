package proxy

import (
	"fmt"
	"testing"
)

// The custom settings a statement sets are found by name, as PostgreSQL
// would name them (lower case, quotes gone); SET LOCAL, UPDATE's SET and
// built-in settings are not custom settings of the session.
func TestCustomSettingsScan(t *testing.T) {
	var c customSettings
	for _, sql := range []string{
		`SET app.tenant_id = 42`,
		`select 1; SET SESSION "MyApp" . "User" TO 'x'`,
		`SELECT set_config('audit.actor', $1, false)`,
		`SET LOCAL app.scratch = 1`,
		`SET statement_timeout = 0`,
		`UPDATE t SET a = 1`,
		`SELECT 'set app.quoted = 1'`,
	} {
		c.scan([]byte(sql), scanText([]byte(sql)))
	}
	if got := fmt.Sprint(sortedKeys(c)); got != "[app.tenant_id audit.actor myapp.user]" {
		t.Fatalf("custom settings found: %s", got)
	}
}
