package proxy

import (
	"testing"

	"github.com/pgrotate/pgrotate/rotation"
)

// A database's status is read in two halves, the current generation and
// the pool's connections per generation. Labelled as of the generation
// reported, a promotion between the reads cannot make the old role look
// safe to retire while it still has connections.
func TestGenerationsAsOf(t *testing.T) {
	pool := func() []GenerationStatus { // the pool's view, just after generation 10 was promoted
		return []GenerationStatus{
			{Generation: 10, Busy: 0},
			{Generation: 9, Busy: 5},
			{Generation: 8},
		}
	}
	want := map[uint64][3][2]bool{ // as of → per generation 10, 9, 8: {current, drained}
		9:  {{false, false}, {true, false}, {false, true}},
		10: {{true, false}, {false, false}, {false, true}},
	}
	for asOf, w := range want {
		for i, g := range GenerationsAsOf(pool(), asOf) {
			if got := [2]bool{g.Current, g.Drained}; got != w[i] {
				t.Errorf("as of %d, generation %d: current, drained = %v, want %v", asOf, g.Generation, got, w[i])
			}
		}
	}
}

// A role is one login for the whole process. A drained generation's role
// may be retired only when no database uses it: not as its current role (a
// password-only rotation, or a change back to an earlier credential), and
// not in another database that reads the same credential source and still
// has server connections of it.
func TestMarkRetirable(t *testing.T) {
	session := []GenerationStatus{ // drained at once
		{Generation: 2, Role: "exec_b", Current: true, Idle: 4},
		{Generation: 1, Role: "exec_a", Drained: true},
	}
	tx := []GenerationStatus{ // one transaction still runs as exec_a
		{Generation: 2, Role: "exec_b", Current: true, Idle: 1},
		{Generation: 1, Role: "exec_a", Busy: 1},
	}
	passwordOnly := []GenerationStatus{
		{Generation: 2, Role: "exec_c", Current: true, Idle: 2},
		{Generation: 1, Role: "exec_c", Drained: true},
	}
	old := []GenerationStatus{
		{Generation: 3, Role: "exec_e", Current: true, Busy: 1},
		{Generation: 2, Role: "exec_d", Drained: true},
	}
	MarkRetirable([][]GenerationStatus{session, tx, passwordOnly, old}, []string{"exec_b", "exec_b", "exec_c", "exec_e"})
	for _, c := range []struct {
		g    GenerationStatus
		want bool
	}{{session[1], false}, {tx[1], false}, {passwordOnly[1], false}, {old[1], true}, {session[0], false}} {
		if c.g.SafeToRetire != c.want {
			t.Errorf("generation %d (%s): safe_to_retire %v, want %v", c.g.Generation, c.g.Role, c.g.SafeToRetire, c.want)
		}
	}
	tx[1].Busy = 0
	tx[1].Drained = true
	MarkRetirable([][]GenerationStatus{session, tx}, []string{"exec_b", "exec_b"})
	if !session[1].SafeToRetire || !tx[1].SafeToRetire {
		t.Errorf("exec_a drained everywhere: safe_to_retire %v, %v; want true, true", session[1].SafeToRetire, tx[1].SafeToRetire)
	}
}

// A login under way counts as a use of its generation: a promotion while a
// client's connection of the old generation is being opened must not find
// the old generation drained, and the end of the login says whether it
// now is.
func TestConnSetCountsLoginsInProgress(t *testing.T) {
	c := newConnSet()
	old := rotation.Generation{N: 1, Cred: rotation.Credential{Username: "exec_a"}}
	c.dialStart(old)
	if c.count(1) != 1 || !c.usesRole("exec_a") {
		t.Fatalf("login in progress: count %d, uses exec_a %v; want 1, true", c.count(1), c.usesRole("exec_a"))
	}
	if g := c.snapshot(2); g[len(g)-1].Drained {
		t.Fatalf("generation 1 drained while a login of it is under way: %+v", g)
	}
	if left := c.dialEnd(1, nil); left != 0 || c.usesRole("exec_a") {
		t.Fatalf("after the failed login: %d left, uses exec_a %v; want 0, false", left, c.usesRole("exec_a"))
	}
	c.dialStart(old)
	sc := &serverConn{gen: old}
	if left := c.dialEnd(1, sc); left != 1 {
		t.Fatalf("after a login that succeeded: %d left, want 1", left)
	}
	if left := c.remove(sc); left != 0 {
		t.Fatalf("after its close: %d left, want 0", left)
	}
}
