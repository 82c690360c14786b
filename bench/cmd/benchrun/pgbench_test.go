package main

import (
	"slices"
	"testing"
	"time"
)

// A run against PostgreSQL directly gets -T plus the time its clients'
// logins take (pgbench's clock includes them); the poolers get -T as set.
func TestDirectRunsGetTimeForTheirLogins(t *testing.T) {
	b := &pgbench{jobs: 2, duration: 5 * time.Second}
	s := spec{workload: "select-only", protocol: "simple", clients: 256}
	pooler := target{name: "pgrotate", db: "bookstore", proc: &daemon{}}
	direct := target{name: "direct", db: "bookstore"}
	for _, tc := range []struct {
		t     target
		wantT string
	}{{pooler, "5"}, {direct, "15"}} {
		args := b.benchArgs(tc.t, s, b.runDuration(tc.t, s), "log")
		i := slices.Index(args, "-T")
		if i < 0 || args[i+1] != tc.wantT {
			t.Errorf("%s: pgbench %v; want -T %s", tc.t.name, args, tc.wantT)
		}
	}
}
