package proxy

import (
	"slices"
	"strings"
	"testing"
)

// A transaction's cleanup runs every kind it needs in one query: the
// session-state cleanup includes RESET ROLE, and DEALLOCATE ALL follows
// either.
func TestCleanupQueryAndKinds(t *testing.T) {
	for _, c := range []struct {
		k     txCleanup
		query string
		kinds []string
	}{
		{cleanRole, "RESET ROLE", []string{"role"}},
		{cleanSession, sessionCleanup, []string{"session_state"}},
		{cleanSession | cleanRole, sessionCleanup, []string{"session_state"}},
		{cleanStatements, "DEALLOCATE ALL", []string{"statements"}},
		{cleanRole | cleanStatements, "RESET ROLE; DEALLOCATE ALL", []string{"role", "statements"}},
		{cleanSession | cleanStatements, sessionCleanup + "; DEALLOCATE ALL", []string{"session_state", "statements"}},
	} {
		if got := c.k.query(); got != c.query {
			t.Errorf("%b: query %q, want %q", c.k, got, c.query)
		}
		if got := c.k.kinds(); !slices.Equal(got, c.kinds) {
			t.Errorf("%b: kinds %q, want %q", c.k, got, c.kinds)
		}
	}
	if !strings.HasPrefix(sessionCleanup, "RESET ROLE;") {
		t.Errorf("sessionCleanup does not start with RESET ROLE: %q", sessionCleanup)
	}
}
