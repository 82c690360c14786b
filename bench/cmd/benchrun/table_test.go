package main

import (
	"strings"
	"testing"
	"time"
)

// With repeated runs the report says how far each pooler's runs in a row
// were apart, and in how many rows the R/B ratio is no further from 1 than
// that: the yardstick for reading the R/B columns.
func TestNoiseTableMeasuresRatiosAgainstTheRunsSpread(t *testing.T) {
	run := func(tps float64, cpu time.Duration) measurement {
		// p99 follows tps: 10 ms at 10,000 tps.
		return measurement{tps: tps, p99: time.Duration(1e8/tps) * time.Microsecond, cpuPerTx: cpu, hasCPU: true}
	}
	rows := []row{
		{ // runs up to 10 % apart; R/B tps 1.05 and CPU 0.97: both within
			spec: spec{workload: "select-only", protocol: "simple", clients: 16}, mode: "session",
			bouncer:  median([]measurement{run(10000, 30*time.Microsecond), run(11000, 32*time.Microsecond), run(10500, 31*time.Microsecond)}),
			pgrotate: median([]measurement{run(11000, 30*time.Microsecond), run(11025, 30*time.Microsecond), run(11050, 30*time.Microsecond)}),
		},
		{ // runs 2 % apart; R/B tps 1.20 and CPU 1.30: both outside
			spec: spec{workload: "tpcb", protocol: "extended", clients: 64}, mode: "transaction",
			bouncer:  median([]measurement{run(1000, 200*time.Microsecond), run(1010, 202*time.Microsecond), run(1020, 204*time.Microsecond)}),
			pgrotate: median([]measurement{run(1212, 262*time.Microsecond), run(1212, 262*time.Microsecond), run(1212, 263*time.Microsecond)}),
		},
	}
	out := noiseTable(rows)
	for _, want := range []string{
		"| select-only | simple | session | 16 | 1.10 | 1.00 | 1.10 | 1.00 | 1.07 | 1.00 |",
		"| tpcb | extended | transaction | 64 | 1.02 | 1.00 | 1.02 | 1.00 | 1.02 | 1.00 |",
		"in 1 of 2 rows for tps, 1 of 2 for p99 and 1 of 2 for CPU.",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("noise table lacks %q:\n%s", want, out)
		}
	}
	if got := noiseTable([]row{{bouncer: run(1, time.Microsecond), pgrotate: run(1, time.Microsecond)}}); got != "" {
		t.Errorf("rows of one run each: want no table, got:\n%s", got)
	}
}
