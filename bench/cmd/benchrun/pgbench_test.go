package main

import (
	"io"
	"slices"
	"strings"
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

// The connect workload is select-only with a new connection, and so a
// login, for every transaction (-C); the other workloads log in once.
func TestConnectWorkloadLogsInForEveryTransaction(t *testing.T) {
	b := &pgbench{jobs: 2, duration: 5 * time.Second}
	pooler := target{name: "pgrotate", db: "bookstore", proc: &daemon{}}
	for _, tc := range []struct {
		workload string
		s, c     bool // -S and -C expected
	}{{"select-only", true, false}, {"tpcb", false, false}, {"connect", true, true}} {
		s := spec{workload: tc.workload, protocol: "simple", clients: 16}
		args := b.benchArgs(pooler, s, b.runDuration(pooler, s), "log")
		if got := slices.Contains(args, "-S"); got != tc.s {
			t.Errorf("%s: pgbench %v: -S %v, want %v", tc.workload, args, got, tc.s)
		}
		if got := slices.Contains(args, "-C"); got != tc.c {
			t.Errorf("%s: pgbench %v: -C %v, want %v", tc.workload, args, got, tc.c)
		}
	}
}

// connect runs only when named: the default matrix is select-only and
// TPC-B, and the connect rows get a note saying what their figures mean.
func TestConnectWorkloadRunsWhenNamed(t *testing.T) {
	def, err := parseSettings([]string{"-pgrotate", "x"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if slices.Contains(def.workloads, "connect") || strings.Contains(notes(def), "pgbench -S -C") {
		t.Errorf("default workloads %v include connect, or its note", def.workloads)
	}
	named, err := parseSettings([]string{"-pgrotate", "x", "-workloads", "connect"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(named.workloads, []string{"connect"}) || !strings.Contains(notes(named), "pgbench -S -C") {
		t.Errorf("-workloads connect: workloads %v, notes:\n%s", named.workloads, notes(named))
	}
}
