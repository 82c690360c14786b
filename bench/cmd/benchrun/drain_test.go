package main

import (
	"testing"
	"time"
)

// The rotation table says when the old role could have been dropped, and
// whether that happened under load.
func TestDrainedCell(t *testing.T) {
	cases := []struct {
		d    drained
		want string
	}{
		{drained{after: 2300 * time.Millisecond, loadEnd: 5 * time.Second}, "2.3 s"},
		{drained{after: 5400 * time.Millisecond, loadEnd: 5 * time.Second, leftAtEnd: 3}, "5.4 s (3 left when the load ended at 5.0 s)"},
		{drained{after: -1, loadEnd: 5 * time.Second, leftAtEnd: 2}, "not within 30s of the end (2 left then)"},
	}
	for _, c := range cases {
		if got := c.d.String(); got != c.want {
			t.Errorf("%+v: got %q, want %q", c.d, got, c.want)
		}
	}
}

// The polls are read against the end of the load: what was left then is
// the last count seen before it, and the role is gone at the first poll
// that saw none.
func TestDrainFromPolls(t *testing.T) {
	s := func(ms, n int) drainSample { return drainSample{at: time.Duration(ms) * time.Millisecond, sessions: n} }
	got := drainFrom([]drainSample{s(100, 16), s(2000, 9), s(4900, 3), s(5100, 3), s(5300, 0)}, 5*time.Second)
	if got.after != 5300*time.Millisecond || got.leftAtEnd != 3 {
		t.Errorf("got gone after %v with %d left at the end, want 5.3s and 3", got.after, got.leftAtEnd)
	}
	got = drainFrom([]drainSample{s(100, 16), s(4000, 0)}, 5*time.Second)
	if got.after != 4*time.Second || got.String() != "4.0 s" {
		t.Errorf("gone under load: got %v (%q), want 4s", got.after, got.String())
	}
	if got = drainFrom([]drainSample{s(100, 16), s(900, 2)}, 5*time.Second); got.after >= 0 || got.leftAtEnd != 2 {
		t.Errorf("never gone: got %+v", got)
	}
}
