package main

import (
	"strings"
	"testing"
)

// The warm-up fills each pool with select-only, then runs every workload
// once on the full pool; connect opens a connection per transaction and
// warms no backend, so it is left out.
func TestWarmUpWorkloads(t *testing.T) {
	for _, c := range []struct {
		in, want []string
	}{
		{[]string{"select-only", "tpcb"}, []string{"select-only", "select-only", "tpcb"}},
		{[]string{"tpcb", "connect"}, []string{"select-only", "tpcb"}},
		{[]string{"connect"}, []string{"select-only"}},
	} {
		if got := warmUpWorkloads(c.in); strings.Join(got, ",") != strings.Join(c.want, ",") {
			t.Errorf("warmUpWorkloads(%v) = %v, want %v", c.in, got, c.want)
		}
	}
}
