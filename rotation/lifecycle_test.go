package rotation

import (
	"slices"
	"testing"
	"time"
)

// Executing roles are named <owner without _owner>_user_<NNNN> by default,
// and only names of that exact shape are the lifecycle's to manage.
func TestExecutingRoleNames(t *testing.T) {
	for owner, prefix := range map[string]string{"bookstore_owner": "bookstore_user", "shop": "shop_user", "a_owner_owner": "a_owner_user"} {
		if got := DefaultRolePrefix(owner); got != prefix {
			t.Errorf("DefaultRolePrefix(%q) = %q, want %q", owner, got, prefix)
		}
	}
	if got := roleName("bookstore_user", 7); got != "bookstore_user_0007" {
		t.Errorf("roleName = %q", got)
	}
	pat := rolePattern("bookstore_user")
	for name, ours := range map[string]bool{
		"bookstore_user_0001": true, "bookstore_user_12345": true,
		"bookstore_user_01": false, "bookstore_user_r01_123": false, "xbookstore_user_0001": false, "bookstore_user_0001x": false,
	} {
		if pat.MatchString(name) != ours {
			t.Errorf("%s matched: %v, want %v", name, !ours, ours)
		}
	}
	at := time.Date(2026, 1, 15, 10, 4, 31, 0, time.UTC)
	c := createdPattern.FindStringSubmatch(createdComment("bookstore_owner", at))
	if c == nil || c[1] != "2026-01-15T10:04:31Z" {
		t.Errorf("created time not recoverable from the role comment: %v", c)
	}
}

// keep_previous keeps the newest older roles; the rest retire oldest first.
func TestSplitOlder(t *testing.T) {
	roles := []ExecRole{{Name: "r1"}, {Name: "r2"}, {Name: "r3"}, {Name: "r4"}}
	cases := []struct {
		keep         int
		retire, kept []string
	}{
		{0, []string{"r1", "r2", "r3"}, nil},
		{2, []string{"r1"}, []string{"r2", "r3"}},
		{5, nil, []string{"r1", "r2", "r3"}},
	}
	for _, tc := range cases {
		l := &Lifecycle{KeepPrevious: tc.keep}
		retire, kept := l.splitOlder(roles, "r4")
		if !slices.Equal(retire, tc.retire) || !slices.Equal(kept, tc.kept) {
			t.Errorf("keep %d: retire %v keep %v; want %v, %v", tc.keep, retire, kept, tc.retire, tc.kept)
		}
	}
}
