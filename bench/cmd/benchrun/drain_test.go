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
