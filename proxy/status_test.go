package proxy

import "testing"

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
