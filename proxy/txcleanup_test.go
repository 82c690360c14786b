package proxy

import (
	"fmt"
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
		{cleanEvict, "DEALLOCATE pgrotate_3; DEALLOCATE pgrotate_1", []string{"statement_cap"}},
		{cleanRole | cleanEvict, "RESET ROLE; DEALLOCATE pgrotate_3; DEALLOCATE pgrotate_1", []string{"role", "statement_cap"}},
	} {
		if got := c.k.query([]string{"pgrotate_3", "pgrotate_1"}); got != c.query {
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

// A server connection keeps at most max_prepared_statements shared
// statements: past the cap the least recently used go, down to an eighth
// below it, so that the round trip that deallocates them is not paid at
// every new statement. A statement used again is kept over one prepared
// later and never used.
func TestConnStmtsEvictLeastRecentlyUsed(t *testing.T) {
	s := newConnStmts()
	for i := 1; i <= 16; i++ {
		s.add(fmt.Sprintf("pgrotate_%d", i))
	}
	if got := s.evict(16); got != nil {
		t.Fatalf("at the cap, evicted %q; want none", got)
	}
	if !s.use("pgrotate_1") || !s.use("pgrotate_2") || s.use("pgrotate_99") {
		t.Fatal("use: held statements must be found, and only those")
	}
	s.add("pgrotate_17")
	got := s.evict(16)
	want := []string{"pgrotate_3", "pgrotate_4", "pgrotate_5"} // 17 held, down to 16-16/8 = 14
	if !slices.Equal(got, want) {
		t.Fatalf("evicted %q, want %q", got, want)
	}
	if s.len() != 14 || s.use("pgrotate_3") || !s.use("pgrotate_1") || !s.use("pgrotate_17") {
		t.Fatalf("after eviction: %d held, the evicted must be gone and the rest stay", s.len())
	}
	if got := s.evict(0); got != nil {
		t.Fatalf("no cap (0): evicted %q", got)
	}
}
