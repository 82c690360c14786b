package main

import (
	"testing"
	"time"
)

// A row run several times shows the median of each figure, so one run
// disturbed by other work on the machine does not decide the comparison.
func TestMedianOfRepeatedRuns(t *testing.T) {
	runs := []measurement{
		{tps: 9000, transactions: 90, p99: 3 * time.Millisecond, cpuPerTx: 40 * time.Microsecond, hasCPU: true},
		{tps: 5000, transactions: 50, failedTx: 1, p99: 9 * time.Millisecond, cpuPerTx: 70 * time.Microsecond, hasCPU: true},
		{tps: 10000, transactions: 100, p99: 2 * time.Millisecond, cpuPerTx: 35 * time.Microsecond, hasCPU: true},
	}
	m := median(runs)
	if m.tps != 9000 || m.p99 != 3*time.Millisecond || m.cpuPerTx != 40*time.Microsecond || !m.hasCPU {
		t.Errorf("median = %+v, want tps 9000, p99 3ms, CPU 40µs", m)
	}
	if m.transactions != 240 || m.failedTx != 1 {
		t.Errorf("transactions %d, failed %d: want the sums 240 and 1", m.transactions, m.failedTx)
	}
	if even := median(runs[:2]); even.tps != 7000 {
		t.Errorf("median of two runs = %v tps, want their mean 7000", even.tps)
	}
}

// A run that failed makes the row's cell say so, whatever the other runs did.
func TestMedianKeepsAFailure(t *testing.T) {
	runs := []measurement{{tps: 9000, hasCPU: true}, {problem: "failed: connection refused"}, {tps: 9100, hasCPU: true}}
	if m := median(runs); m.ok() || m.problem != "failed: connection refused" {
		t.Errorf("median = %+v, want the failure", m)
	}
}
