package main

import (
	"math"
	"strings"
	"testing"
	"time"
)

// The sign test's p-values, against the binomial distribution by hand: 5
// of 5 pairs one way is 2 × 1/32; 3 to 2 is no evidence at all.
func TestSignTest(t *testing.T) {
	for _, c := range []struct {
		a, b int
		want float64
	}{
		{5, 0, 2.0 / 32},
		{0, 5, 2.0 / 32},
		{3, 2, 1},
		{9, 1, 2 * 11.0 / 1024},
		{0, 0, 1},
	} {
		if got := signTest(c.a, c.b); math.Abs(got-c.want) > 1e-12 {
			t.Errorf("signTest(%d, %d) = %g, want %g", c.a, c.b, got, c.want)
		}
	}
}

// Each repeat of a row pairs the two poolers' runs, which ran back to back;
// the report lists every pair's R/B ratio and CPU figures and counts, per workload and in
// all, the pairs that favour pgrotate, with the sign test's p.
func TestPairTableCountsPairsThatFavourEachPooler(t *testing.T) {
	run := func(tps float64, cpuMicros int, p99ms ...int) measurement {
		m := measurement{tps: tps, cpuPerTx: time.Duration(cpuMicros) * time.Microsecond, hasCPU: true}
		if len(p99ms) > 0 {
			m.p99 = time.Duration(p99ms[0]) * time.Millisecond
		}
		return m
	}
	rows := []row{
		{spec: spec{workload: "select-only", protocol: "simple", clients: 16}, mode: "session",
			pairs: pairUp(
				[]measurement{run(1000, 100, 10), run(1000, 100, 10), run(1000, 100, 10)},
				[]measurement{run(1100, 90, 8), run(900, 95, 12), run(1000, 110, 9)})},
		{spec: spec{workload: "tpcb", protocol: "simple", clients: 64}, mode: "transaction",
			pairs: pairUp(
				[]measurement{run(100, 200), run(100, 200), failed(nil, "ERROR: boom")},
				[]measurement{run(100, 210), run(100, 220), run(100, 230)})},
	}
	out := pairTable(rows)
	for _, want := range []string{
		"| select-only | simple | session | 16 | 0.90 · 0.95 · 1.10 | 90.0 / 100.0 · 95.0 / 100.0 · 110.0 / 100.0 | 1.10 · 0.90 · 1.00 | 0.80 · 1.20 · 0.90 |",
		"| tpcb | simple | transaction | 64 | 1.05 · 1.10 | 210.0 / 200.0 · 220.0 / 200.0 | 1.00 · 1.00 | — · — |", // the failed repeat is no pair; no latency figures
		"- select-only, 3 pairs: CPU R/B median 0.950, pgrotate lower in 2 and higher in 1 (p = 1); tps R/B median 1.000, pgrotate faster in 1 and slower in 1 (p = 1); p99 R/B median 0.900, pgrotate lower in 2 and higher in 1 (p = 1).",
		"- tpcb, 2 pairs: CPU R/B median 1.075, pgrotate lower in 0 and higher in 2 (p = 0.5); tps R/B median 1.000, pgrotate faster in 0 and slower in 0 (p = 1).", // no p99 part without latency figures
		"- all, 5 pairs: CPU R/B median 1.050, pgrotate lower in 2 and higher in 3 (p = 1);",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("pair table lacks %q:\n%s", want, out)
		}
	}
	if got := pairTable([]row{{pairs: pairUp([]measurement{run(1, 1)}, []measurement{run(1, 1)})}}); got != "" {
		t.Errorf("rows of one pair each: want no table, got:\n%s", got)
	}
}
