package main

import (
	"os"
	"strings"
	"testing"
)

// A thread's context switches are its voluntary and involuntary ones
// (proc(5)), read apart; a status without them is an error, not zero.
func TestContextSwitchesOfAThread(t *testing.T) {
	status := "Name:\tpgbouncer\nState:\tS (sleeping)\nvoluntary_ctxt_switches:\t1200\nnonvoluntary_ctxt_switches:\t34\n"
	if n, err := contextSwitches(status); err != nil || n != (switchCounts{voluntary: 1200, involuntary: 34}) || n.total() != 1234 {
		t.Errorf("contextSwitches = %+v, %v; want 1200 voluntary and 34 involuntary", n, err)
	}
	if _, err := contextSwitches("Name:\tx\n"); err == nil {
		t.Error("a status without context switch counts was read as zero")
	}
	self, err := os.ReadFile("/proc/thread-self/status")
	if err != nil {
		t.Fatal(err)
	}
	if n, err := contextSwitches(string(self)); err != nil || n.total() <= 0 {
		t.Errorf("this thread's context switches = %+v, %v; want a positive count", n, err)
	}
}

// The context-switch table has a line for each row both poolers ran, with
// pgrotate's figure over PgBouncer's, for all switches and for the
// involuntary ones.
func TestSwitchTable(t *testing.T) {
	spec := spec{workload: "select-only", protocol: "simple", clients: 16}
	rows := []row{
		{spec: spec, mode: "session",
			bouncer:  measurement{switchesPerTx: 0.40, preemptedPerTx: 0.10, hasCPU: true},
			pgrotate: measurement{switchesPerTx: 0.50, preemptedPerTx: 0.30, hasCPU: true}},
		{spec: spec, mode: "transaction", bouncer: unsupported(), pgrotate: measurement{switchesPerTx: 0.5, hasCPU: true}},
	}
	got := switchTable(rows)
	if !strings.Contains(got, "| select-only | simple | session | 16 | 0.400 | 0.500 | 1.25 | 0.100 | 0.300 | 3.00 |") {
		t.Errorf("table lacks the session row:\n%s", got)
	}
	if strings.Contains(got, "| transaction |") {
		t.Errorf("table lists a row PgBouncer did not run:\n%s", got)
	}
}
