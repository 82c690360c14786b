package proxy

import (
	"testing"
	"time"
)

// Failed logins get a line each up to the burst; the rest of the window is
// counted, announced once, and the next line logged says how many were
// left out.
func TestLoginFailuresAreLoggedWithinBounds(t *testing.T) {
	var f loginFailures
	t0 := time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC)
	for i := range loginFailBurst {
		if ok, skipped, first := f.admit(t0.Add(time.Duration(i) * time.Millisecond)); !ok || skipped != 0 || first {
			t.Fatalf("failure %d: admit = %v, %d, %v; want a line of its own", i, ok, skipped, first)
		}
	}
	for i := range 5 {
		ok, _, first := f.admit(t0.Add(time.Second))
		if ok || first != (i == 0) {
			t.Fatalf("failure %d past the burst: admit = %v, first %v; want counted, announced once", i, ok, first)
		}
	}
	if ok, skipped, _ := f.admit(t0.Add(loginFailWindow)); !ok || skipped != 5 {
		t.Fatalf("first failure of the next window: admit = %v, %d; want a line saying 5 were left out", ok, skipped)
	}
	if ok, skipped, _ := f.admit(t0.Add(loginFailWindow + time.Millisecond)); !ok || skipped != 0 {
		t.Fatalf("second failure of the next window: admit = %v, %d; want a line, nothing left out", ok, skipped)
	}
}
