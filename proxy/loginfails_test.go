package proxy

import (
	"testing"
	"time"
)

// Failed logins get a line each up to the burst, per kind (SQLSTATE): past
// it, that kind is counted, announced once, and reported at the window's
// end, while other kinds keep their lines. A closing server schedules no
// more reports.
func TestLoginFailuresAreLoggedWithinBounds(t *testing.T) {
	var due []func()
	var reported []string
	f := loginFailures{
		after: func(d time.Duration, fn func()) *time.Timer {
			if d != loginFailWindow-time.Second {
				t.Errorf("the report is due in %v; want at the window's end, %v on", d, loginFailWindow-time.Second)
			}
			due = append(due, fn)
			return time.NewTimer(time.Hour)
		},
		windowEnd: func(code string, skipped int) { reported = append(reported, code, string(rune('0'+skipped))) },
	}
	t0 := time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC)
	for i := range loginFailBurst {
		if ok, first := f.admit("08P01", t0.Add(time.Duration(i)*time.Millisecond)); !ok || first {
			t.Fatalf("failure %d: admit = %v, %v; want a line of its own", i, ok, first)
		}
	}
	for i := range 5 {
		ok, first := f.admit("08P01", t0.Add(time.Second))
		if ok || first != (i == 0) {
			t.Fatalf("failure %d past the burst: admit = %v, first %v; want counted, announced once", i, ok, first)
		}
	}
	if ok, _ := f.admit("28P01", t0.Add(time.Second)); !ok {
		t.Fatal("a wrong password during a flood of garbage: not logged; want its own budget")
	}
	if len(due) != 1 {
		t.Fatalf("%d reports due; want one, for the flooded kind", len(due))
	}
	due[0]() // the window ends
	if len(reported) != 2 || reported[0] != "08P01" || reported[1] != "5" {
		t.Fatalf("reported %q at the window's end; want 5 failures of 08P01", reported)
	}
	if ok, _ := f.admit("08P01", t0.Add(loginFailWindow)); !ok {
		t.Fatalf("first failure of the next window: admit = %v; want a line", ok)
	}
	f.close()
	for range loginFailBurst {
		f.admit("08P01", t0.Add(loginFailWindow+time.Second))
	}
	if ok, _ := f.admit("08P01", t0.Add(loginFailWindow+time.Second)); ok || len(due) != 1 {
		t.Fatalf("after close: admit = %v, %d reports due; want counted, and no report scheduled", ok, len(due))
	}
}

// A window that begins while the last one's report is still due (the
// timer runs late) is counted into that report, and announced again only
// once it is out.
func TestLoginFailuresLateReportCountsTheNextWindow(t *testing.T) {
	var due []func()
	var reported []int
	f := loginFailures{
		after:     func(_ time.Duration, fn func()) *time.Timer { due = append(due, fn); return time.NewTimer(time.Hour) },
		windowEnd: func(_ string, skipped int) { reported = append(reported, skipped) },
	}
	t0 := time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC)
	flood := func(at time.Time, n int) {
		for range n {
			f.admit("08P01", at)
		}
	}
	flood(t0, loginFailBurst+3)                      // 3 left out, a report due
	flood(t0.Add(loginFailWindow), loginFailBurst+2) // the next window: 2 more, before the report ran
	if len(due) != 1 {
		t.Fatalf("%d reports due; want the first window's alone", len(due))
	}
	due[0]()
	if len(reported) != 1 || reported[0] != 5 {
		t.Fatalf("reported %v; want one report of all 5 left out", reported)
	}
	if _, first := f.admit("08P01", t0.Add(loginFailWindow+time.Second)); !first || len(due) != 2 {
		t.Fatalf("the next failure left out: first %v, %d reports due; want it announced, a report due", first, len(due))
	}
}
