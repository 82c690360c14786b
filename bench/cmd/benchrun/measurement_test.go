package main

import (
	"testing"
	"time"
)

// A row run several times shows the median of each figure, so one run
// disturbed by other work on the machine does not decide the comparison.
func TestMedianOfRepeatedRuns(t *testing.T) {
	runs := []measurement{
		{tps: 9000, transactions: 90, p99: 3 * time.Millisecond, cpuPerTx: 40 * time.Microsecond, switchesPerTx: 0.5, preemptedPerTx: 0.2, hasCPU: true},
		{tps: 5000, transactions: 50, failedTx: 1, p99: 9 * time.Millisecond, cpuPerTx: 70 * time.Microsecond, switchesPerTx: 0.9, preemptedPerTx: 0.1, hasCPU: true},
		{tps: 10000, transactions: 100, p99: 2 * time.Millisecond, cpuPerTx: 35 * time.Microsecond, switchesPerTx: 0.4, preemptedPerTx: 0.3, hasCPU: true},
	}
	m := median(runs)
	if m.tps != 9000 || m.p99 != 3*time.Millisecond || m.cpuPerTx != 40*time.Microsecond || m.switchesPerTx != 0.5 || m.preemptedPerTx != 0.2 || !m.hasCPU {
		t.Errorf("median = %+v, want tps 9000, p99 3ms, CPU 40µs, 0.5 context switches, 0.2 preempted", m)
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

// The rotation dip compares the worst second from the credential swap on
// with the median second before it; the first second (logins) counts for
// neither, and the worst quiet second shows the machine's own variation.
func TestRotationDipFromProgress(t *testing.T) {
	out := `pgbench (15.18)
progress: 1.0 s, 3000.0 tps, lat 5.000 ms stddev 1.000, 0 failed
progress: 2.0 s, 9000.0 tps, lat 1.700 ms stddev 0.500, 0 failed
progress: 3.0 s, 10000.0 tps, lat 1.600 ms stddev 0.500, 0 failed
progress: 4.0 s, 9500.0 tps, lat 1.650 ms stddev 0.500, 0 failed
progress: 5.0 s, 8550.0 tps, lat 1.800 ms stddev 0.700, 0 failed
progress: 6.0 s, 9400.0 tps, lat 1.650 ms stddev 0.500, 0 failed
transaction type: <builtin: select only>
number of transactions actually processed: 49450
number of failed transactions: 0 (0.000%)
tps = 9890.0 (without initial connection time)
`
	var r rotationResult
	if err := r.read(out, 3500*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	if r.before != 9500 || r.quietWorst != 9000 || r.worst != 8550 {
		t.Errorf("before %v, quiet worst %v, worst after %v: want 9500, 9000, 8550", r.before, r.quietWorst, r.worst)
	}
	if d := r.dip(); d < 9.99 || d > 10.01 {
		t.Errorf("dip = %.2f %%, want 10 %%", d)
	}
	if err := r.read("progress: 1.0 s, 3000.0 tps\n", 3*time.Second); err == nil {
		t.Error("no second on either side of the swap: want an error")
	}
}

// With -C pgbench reports tps with the logins counted in, in other words.
func TestSummaryOfAConnectRun(t *testing.T) {
	out := `pgbench (15.18)
transaction type: <builtin: select only>
number of transactions actually processed: 930
number of failed transactions: 0 (0.000%)
latency average = 21.472 ms
average connection time = 5.120 ms
tps = 185.771872 (including reconnection times)
`
	m, err := parseSummary(out)
	if err != nil {
		t.Fatal(err)
	}
	if m.tps != 185.771872 || m.transactions != 930 {
		t.Errorf("tps %v, transactions %d; want 185.771872, 930", m.tps, m.transactions)
	}
}
